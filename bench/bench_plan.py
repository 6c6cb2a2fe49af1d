"""Benchmark: reading a large live org for a plan, by listing versus one GET per object.

An in-process emulator holds 2,000 managed templates with 3 versions each, 500 prompts and 200
indexes. Rows: the live read by listing (what plan and drift do) and a per-object GET baseline
(list ids, then GET each object), both wall time and requests; then the same two under the
gateway's default rate limit (300 requests a minute per token) on a simulated clock shared by
the emulator and the client, giving the time a real org would take and how many 429s were hit.
Also the emulator's own throughput (in-process GETs and writes per second).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from reconciler.client import GatewayClient, Settings
from reconciler.emulator.app import create_app
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.state import STORE_ID
from reconciler.emulator.transport import in_process_transport
from reconciler.endpoints import PATHS
from reconciler.gateway import GatewayReader
from reconciler.live import read_live

TEMPLATES, VERSIONS, PROMPTS, INDEXES = 2000, 3, 500, 200
URL = "http://127.0.0.1:8787"
MANAGED = {"managed-by": "llmgw"}


class SimClock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t

    async def sleep(self, s: float) -> None:
        self.t += s
        await asyncio.sleep(0)


def populate(app: Any) -> None:
    g = app.gateway
    tids = []
    for i in range(TEMPLATES):
        t = g.create_template(
            {
                "name": f"tpl-{i:05d}",
                "user_template": "Q: {{q}}",
                "variables": ["q"],
                "labels": MANAGED,
            },
            "/t",
        ).body
        tids.append(t["id"])
        for v in range(VERSIONS):
            g.create_version(
                t["id"],
                {
                    "version": f"1.{v}.0",
                    "content": f"v{v} {{{{q}}}}",
                    "variables": {"q": "string"},
                    "labels": MANAGED,
                },
            )
    for i in range(PROMPTS):
        g.create_prompt(
            {
                "name": f"prompt-{i:05d}",
                "templateId": tids[i],
                "modelEndpointRef": "model-gen-4",
                "systemPrompt": "You help.",
                "labels": MANAGED,
            },
            "/p",
        )
    for i in range(INDEXES):
        g.put_index(
            STORE_ID,
            f"index-{i:04d}",
            {
                "dimensions": 1536,
                "similarityMetric": "cosine",
                "embeddingFormat": "float32",
                "labels": MANAGED,
            },
            None,
            None,
        )


async def by_listing(client: GatewayClient) -> int:
    live = await read_live(GatewayReader(client))
    return len(live.objects)


async def by_object(client: GatewayClient) -> int:
    """The naive way: list ids, then GET every object (the baseline the listing design avoids)."""
    templates = await client.list_pages(PATHS.templates)
    prompts = await client.list_pages(PATHS.prompts)
    indexes = await client.list_pages(PATHS.indexes.format(vectorStoreId=STORE_ID))
    await client.list_pages(PATHS.models)
    gets = [PATHS.template.format(templateId=t["id"]) for t in templates]
    for t in templates:
        versions = await client.list_pages(PATHS.versions.format(templateId=t["id"]))
        gets += [PATHS.version.format(templateId=t["id"], version=v["version"]) for v in versions]
    gets += [PATHS.prompt.format(promptId=p["id"]) for p in prompts]
    gets += [PATHS.index.format(vectorStoreId=STORE_ID, indexId=x["indexId"]) for x in indexes]
    await asyncio.gather(*(client.request("GET", g) for g in gets))
    return len(gets)


async def scenario(read: Any, rate_limit: int) -> dict[str, Any]:
    clock = SimClock() if rate_limit else None
    config = EmulatorConfig(rate_limit=rate_limit, ingest_delay=0)
    app = create_app(config, clock=clock or time.time)
    populate(app)
    kw: dict[str, Any] = {"sleep": clock.sleep, "clock": clock} if clock else {}
    client = GatewayClient(
        Settings(URL, URL, "emulator-client", "emulator-secret"),
        transport=in_process_transport(app),
        parallelism=8,
        **kw,
    )
    start_sim = clock() if clock else 0.0
    t0 = time.perf_counter()
    async with client:
        await read(client)
    wall = time.perf_counter() - t0
    limited = sum(1 for r in app.log if r["status"] == 429)
    row: dict[str, Any] = {
        "requests": client.requests_sent,
        "wall_s": round(wall, 2),
    }
    if clock:
        row["simulated_minutes_at_300_per_min"] = round((clock() - start_sim) / 60, 1)
        row["429s"] = limited
    return row


async def throughput() -> list[dict[str, Any]]:
    app = create_app(EmulatorConfig(rate_limit=0))
    populate(app)
    client = GatewayClient(
        Settings(URL, URL, "emulator-client", "emulator-secret"),
        transport=in_process_transport(app),
        parallelism=8,
    )
    rows = []
    async with client:
        n = 2000
        t0 = time.perf_counter()
        await asyncio.gather(
            *(client.request("GET", PATHS.templates, params={"pageSize": 25}) for _ in range(n))
        )
        rows.append(
            {
                "case": "emulator in-process: GET a list page",
                "requests_per_s": round(n / (time.perf_counter() - t0)),
            }
        )
        t0 = time.perf_counter()
        await asyncio.gather(
            *(
                client.request(
                    "PUT",
                    PATHS.index.format(vectorStoreId=STORE_ID, indexId=f"w-{i}"),
                    json={"dimensions": 8, "similarityMetric": "cosine", "embeddingFormat": "int8"},
                    request_id=f"r-{i}",
                )
                for i in range(n)
            )
        )
        rows.append(
            {
                "case": "emulator in-process: PUT an index (idempotency key)",
                "requests_per_s": round(n / (time.perf_counter() - t0)),
            }
        )
    return rows


def main() -> list[dict[str, Any]]:
    size = f"{TEMPLATES} templates x {VERSIONS} versions, {PROMPTS} prompts, {INDEXES} indexes"
    rows = []
    for name, read in (
        ("live read by listing", by_listing),
        ("baseline: GET per object", by_object),
    ):
        for limit in (0, 300):
            res = asyncio.run(scenario(read, limit))
            rows.append(
                {"case": f"{name}{' (rate limit 300/min)' if limit else ''}", "org": size, **res}
            )
    rows += asyncio.run(throughput())
    return rows


if __name__ == "__main__":
    import json

    for r in main():
        print(json.dumps(r))
