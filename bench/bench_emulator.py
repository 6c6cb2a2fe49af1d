"""Benchmark: the emulator's own throughput, in-process and over loopback HTTP.

In-process (the ASGI app under the httpx transport, one client, requests one after another, as
the project's tests drive it): GET of a list page (25 of 100 templates), POST of a template with
an idempotency key, PUT of a vector index. Over loopback (the uvicorn server in a thread, one
keep-alive httpx client): the same GET and POST. The target is at least 1,000 requests a second
in-process for reads and writes alike, so the emulator never dominates a test's time. Rate
limiting is off (``rate_limit=0``) and no fault is injected. ``bench/run.py`` collects the rows.

Simulated traffic (in-process, ``--admin``): a rollout step of 30 simulated minutes at 600
invocations a minute (18,000 invocations, a split over two versions, errors and jitter on one),
by emulator CPU time (the target: well under a second), then the query a rollout gate sends
over that step (``groupBy`` version, ``filter`` by prompt), and a telemetry page once the
ledger holds its cap of 1,000,000 rows.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import httpx

from reconciler.emulator.app import create_app
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.server import running
from reconciler.emulator.state import STORE_ID
from reconciler.emulator.transport import in_process_transport
from reconciler.endpoints import HEADERS, PATHS

URL = "http://127.0.0.1:8787"
N_IN_PROCESS = 3000
N_LOOPBACK = 1000
SEEDED_TEMPLATES = 100


def _template(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "user_template": "Q: {{q}}",
        "variables": ["q"],
        "labels": {"managed-by": "llmgw"},
    }


def _row(case: str, n: int, seconds: float) -> dict[str, Any]:
    return {
        "benchmark": f"emulator {case}",
        "requests": n,
        "wall_s": round(seconds, 3),
        "requests_per_s": round(n / seconds),
        "us_per_request": round(seconds / n * 1e6),
    }


async def in_process() -> list[dict[str, Any]]:
    app = create_app(EmulatorConfig(rate_limit=0, ingest_delay=0))
    for i in range(SEEDED_TEMPLATES):
        app.gateway.create_template(_template(f"seed-{i:04d}"), URL + PATHS.templates)
    rows = []
    async with httpx.AsyncClient(transport=in_process_transport(app), base_url=URL) as http:
        r = await http.post(
            PATHS.token,
            data={"grant_type": "client_credentials"},
            auth=("emulator-client", "emulator-secret"),
        )
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        for _ in range(50):  # warm-up
            await http.get(PATHS.templates, headers=auth)

        t0 = time.perf_counter()
        for _ in range(N_IN_PROCESS):
            r = await http.get(PATHS.templates, params={"pageSize": 25}, headers=auth)
        assert r.status_code == 200 and len(r.json()["entities"]) == 25
        rows.append(
            _row("in-process: GET a list page (25 of 100)", N_IN_PROCESS, time.perf_counter() - t0)
        )

        t0 = time.perf_counter()
        for i in range(N_IN_PROCESS):
            r = await http.post(
                PATHS.templates,
                json=_template(f"bench-{i:05d}"),
                headers={**auth, HEADERS.request_id: f"req-{i}"},
            )
        assert r.status_code == 201
        rows.append(
            _row(
                "in-process: POST a template (idempotency key)",
                N_IN_PROCESS,
                time.perf_counter() - t0,
            )
        )

        t0 = time.perf_counter()
        for i in range(N_IN_PROCESS):
            r = await http.put(
                PATHS.index.format(vectorStoreId=STORE_ID, indexId=f"idx-{i}"),
                json={"dimensions": 8, "similarityMetric": "cosine", "embeddingFormat": "int8"},
                headers={**auth, HEADERS.request_id: f"put-{i}"},
            )
        assert r.status_code == 201
        rows.append(_row("in-process: PUT a vector index", N_IN_PROCESS, time.perf_counter() - t0))
    return rows


def loopback() -> list[dict[str, Any]]:
    rows = []
    with running(EmulatorConfig(port=0, rate_limit=0)) as url, httpx.Client(base_url=url) as http:
        r = http.post(
            PATHS.token,
            data={"grant_type": "client_credentials"},
            auth=("emulator-client", "emulator-secret"),
        )
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        for i in range(SEEDED_TEMPLATES):
            http.post(PATHS.templates, json=_template(f"seed-{i:04d}"), headers=auth)
        t0 = time.perf_counter()
        for _ in range(N_LOOPBACK):
            r = http.get(PATHS.templates, params={"pageSize": 25}, headers=auth)
        assert r.status_code == 200
        rows.append(
            _row("loopback HTTP: GET a list page (25 of 100)", N_LOOPBACK, time.perf_counter() - t0)
        )
        t0 = time.perf_counter()
        for i in range(N_LOOPBACK):
            r = http.post(
                PATHS.templates,
                json=_template(f"bench-{i:05d}"),
                headers={**auth, HEADERS.request_id: f"req-{i}"},
            )
        assert r.status_code == 201
        rows.append(
            _row(
                "loopback HTTP: POST a template (idempotency key)",
                N_LOOPBACK,
                time.perf_counter() - t0,
            )
        )
    return rows


STEPS = 5  # rollout steps of 30 simulated minutes, one after another
QUERIES = 200


async def traffic() -> list[dict[str, Any]]:
    app = create_app(
        EmulatorConfig(rate_limit=0, ingest_delay=0, admin=True, seed=1),
        clock=lambda: 1_800_000_000.0,  # only the advances move it: exact counts
    )
    g = app.gateway
    t = g.create_template(_template("bench-traffic"), URL + PATHS.templates).body
    for v in ("1.0.0", "1.1.0"):
        g.create_version(t["id"], {"version": v, "content": "Q {{q}}", "variables": {"q": 1}})
    split = {"versions": [{"version": "1.0.0", "weight": 0.9}, {"version": "1.1.0", "weight": 0.1}]}
    p = g.create_prompt(
        {
            "name": "bench-agent",
            "templateId": t["id"],
            "modelEndpointRef": "model-gen-4",
            "systemPrompt": "You help.",
            "trafficDistribution": split,
        },
        URL + PATHS.prompts,
    ).body
    rows = []
    async with httpx.AsyncClient(transport=in_process_transport(app), base_url=URL) as http:
        setting = {
            "perMinute": 600,
            "versions": {
                "1.0.0": {"latencyMs": 180},
                "1.1.0": {"errorRate": 0.05, "latencyMs": 220, "latencyJitterMs": 40},
            },
        }
        r = await http.put("/__emulator/traffic", json={"prompts": {"bench-agent": setting}})
        assert r.status_code == 200, r.text
        cpu, wall = 0.0, 0.0
        for _ in range(STEPS):
            c0, w0 = time.process_time(), time.perf_counter()
            r = await http.post("/__emulator/clock", json={"advanceSeconds": 1800})
            cpu += time.process_time() - c0
            wall += time.perf_counter() - w0
            assert r.status_code == 200
        made = len(g.telemetry)
        assert made == STEPS * 18000, made
        rows.append(
            {
                "benchmark": "emulator simulated traffic: a 30-minute step at 600/min "
                "(18,000 invocations)",
                "steps": STEPS,
                "cpu_s_per_step": round(cpu / STEPS, 4),
                "wall_s_per_step": round(wall / STEPS, 4),
                "invocations_per_cpu_s": round(made / cpu),
            }
        )
        auth = {"Authorization": f"Bearer {(await _token(http))}"}
        now = (await http.get("/__emulator/clock")).json()["now"]
        step_start = g.telemetry.entity(len(g.telemetry) - 18000)["timestamp"]
        query = {
            "dateFrom": step_start,
            "dateTo": now,
            "groupBy": ["version"],
            "filter": {"promptId": p["id"]},
        }
        t0 = time.perf_counter()
        for _ in range(QUERIES):
            r = await http.post(PATHS.analytics, json=query, headers=auth)
        seconds = time.perf_counter() - t0
        assert sum(row["invocations"] for row in r.json()["data"]) == 18000, r.text
        rows.append(
            _row("analytics over a step (18,000 of 90,000 rows, by version)", QUERIES, seconds)
        )
        c0 = time.process_time()
        r = await http.post("/__emulator/clock", json={"advanceSeconds": 100 * 60 * 24 * 60})
        fill = time.process_time() - c0
        assert len(g.telemetry) == g.telemetry.cap
        token = {"Authorization": f"Bearer {(await _token(http))}"}
        t0 = time.perf_counter()
        for i in range(QUERIES):
            r = await http.get(
                PATHS.telemetry,
                params={"pageSize": 100, "cursor": f"c{500_000 + 100 * i}"},
                headers=token,
            )
        seconds = time.perf_counter() - t0
        assert len(r.json()["entities"]) == 100
        row = _row("telemetry page of 100 at the 1,000,000-row cap", QUERIES, seconds)
        rows.append({**row, "cpu_s_to_fill_the_cap": round(fill, 2)})
    return rows


async def _token(http: httpx.AsyncClient) -> str:
    r = await http.post(
        PATHS.token,
        data={"grant_type": "client_credentials"},
        auth=("emulator-client", "emulator-secret"),
    )
    return str(r.json()["access_token"])


def main() -> list[dict[str, Any]]:
    return asyncio.run(in_process()) + asyncio.run(traffic()) + loopback()


if __name__ == "__main__":
    json.dump(main(), sys.stdout, indent=2)
    print()
