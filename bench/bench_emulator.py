"""Benchmark: the emulator's own throughput, in-process and over loopback HTTP.

In-process (the ASGI app under the httpx transport, one client, requests one after another, as
the project's tests drive it): GET of a list page (25 of 100 templates), POST of a template with
an idempotency key, PUT of a vector index. Over loopback (the uvicorn server in a thread, one
keep-alive httpx client): the same GET and POST. The target is at least 1,000 requests a second
in-process for reads and writes alike, so the emulator never dominates a test's time. Rate
limiting is off (``rate_limit=0``) and no fault is injected. ``bench/run.py`` collects the rows.
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


def main() -> list[dict[str, Any]]:
    return asyncio.run(in_process()) + loopback()


if __name__ == "__main__":
    json.dump(main(), sys.stdout, indent=2)
    print()
