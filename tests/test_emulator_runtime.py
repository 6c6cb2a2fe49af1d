"""The gateway at run time through the emulator's API (``state/runtime.py``).

Covers: invocations following the split (seeded and reproducible, sticky by session), fallbacks
in order for invocations and routed dispatch (failing and refusing models), 503
models.unavailable when every model fails, telemetry (cursor paging, filters, time windows),
analytics grouping and metrics, audit records (kept, their own scope); seed reconciliation
(001): dispatch metadata echoed, and the request id echoed on every answer that carried one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from reconciler.emulator.config import (
    ALL_SCOPES,
    ClientSpec,
)
from reconciler.endpoints import SCOPES
from tests.emulator_api import (
    ANALYTICS,
    AUDIT,
    DISPATCH,
    INVOKE,
    RID,
    TELEMETRY,
    Api,
    T,
    assert_error,
    invoke,
    split_prompt,
    template,
)


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    a = Api()
    yield a
    await a.http.aclose()


async def test_invocations_follow_the_split_reproducibly() -> None:
    runs = []
    for _ in range(2):
        a = Api(seed=5)
        p = await split_prompt(a)
        served = [(await invoke(a, p["id"])).json()["version"] for _ in range(200)]
        runs.append(served)
    assert runs[0] == runs[1]
    share = runs[0].count("1.0.0") / 200
    assert 0.7 < share < 0.9 and "1.1.0" in runs[0]
    r = await invoke(a, p["id"])
    body = r.json()
    assert set(body) >= {"responseId", "output", "version", "tokenUsage"}
    assert set(body["tokenUsage"]) == {"prompt", "completion"} and body["modelId"] == "model-gen-4"
    assert_error(
        await a("POST", INVOKE, json={"promptId": "nope", "userInput": "x"}), 404, "not.found"
    )
    assert_error(await a("POST", INVOKE, json={"userInput": "x"}), 400, "validation.failed")


async def test_sticky_split_keeps_a_session_on_one_version(api: Api) -> None:
    p = await split_prompt(api, "sticky")
    for session in ("alice", "bob", "carol"):
        served = {(await invoke(api, p["id"], session)).json()["version"] for _ in range(10)}
        assert len(served) == 1
    many = {(await invoke(api, p["id"], f"s-{i}")).json()["version"] for i in range(50)}
    assert many == {"1.0.0", "1.1.0"}


async def test_invocation_falls_back_and_records_errors(api: Api) -> None:
    p = await split_prompt(api)
    await api.faults(failingModels=["model-gen-4"])
    assert (await invoke(api, p["id"])).json()["modelId"] == "model-fallback-3"
    await api.faults(failingModels=["model-gen-4", "model-fallback-3"])
    assert_error(await invoke(api, p["id"]), 503, "models.unavailable")
    await api.faults(failingModels=[])
    rows = (
        await api(
            "POST",
            ANALYTICS,
            json={"groupBy": ["modelId"], "metrics": ["errorCount", "totalTokens"]},
        )
    ).json()["data"]
    by_model = {r["modelId"]: r for r in rows}
    assert by_model[None]["errorCount"] == 1 and by_model["model-fallback-3"]["errorCount"] == 0
    assert set(by_model["model-fallback-3"]) == {"modelId", "errorCount", "totalTokens"}


async def test_routed_dispatch_tries_fallbacks_in_order(api: Api) -> None:
    body = {
        "modelId": "model-gen-4",
        "prompt": "Summarize this transcript",
        "parameters": {"temperature": 0.7},
        "fallbackModels": ["model-fallback-3", "anthropic/claude-3-sonnet"],
        "safetyFilters": ["pii", "profanity"],
    }
    r = await api("POST", DISPATCH, json=body)
    assert r.status_code == 200 and r.json()["modelId"] == "model-gen-4"
    assert r.json()["fallbackUsed"] is False and r.json()["output"]
    await api.faults(failingModels=["model-gen-4"], refusingModels=["model-fallback-3"])
    r = await api("POST", DISPATCH, json=body)
    assert r.json()["modelId"] == "anthropic/claude-3-sonnet"
    assert [(a["modelId"], a["status"]) for a in r.json()["attempts"]] == [
        ("model-gen-4", 503),
        ("model-fallback-3", 422),
        ("anthropic/claude-3-sonnet", 200),
    ]
    await api.faults(failingModels=["model-gen-4", "model-fallback-3", "anthropic/claude-3-sonnet"])
    assert_error(await api("POST", DISPATCH, json=body), 503, "models.unavailable")
    for bad in (
        {"modelId": "gpt-x"},
        {"fallbackModels": ["gpt-x"]},
        {"parameters": {"temperature": 3}},
        {"safetyFilters": ["nsfw"]},
        {"prompt": ""},
        {"colour": "x"},
    ):
        assert_error(await api("POST", DISPATCH, json={**body, **bad}), 400, "validation.failed")


async def test_seed_001_dispatch_metadata_and_the_request_id_echoed(api: Api) -> None:
    body = {
        "modelId": "model-gen-4",
        "prompt": "Summarize this transcript",
        "parameters": {"temperature": 0.7, "maxTokens": 2048, "topP": 0.95},
        "fallbackModels": ["model-fallback-3"],
        "safetyFilters": ["pii", "profanity"],
        "metadata": {"routingVersion": "v1.2", "dispatchSource": "go-router"},
    }
    rid = "6f1c1c1e-0000-4000-8000-000000000001"
    r = await api("POST", DISPATCH, json=body, headers={RID: rid})
    assert r.status_code == 200 and r.headers[RID] == rid
    assert r.json()["metadata"] == body["metadata"]
    again = await api("POST", DISPATCH, json=body, headers={RID: rid})
    assert again.headers[RID] == rid and again.content == r.content  # replayed
    # echoed on every answer that carried one, reads and refusals included
    assert (await api("GET", T, headers={RID: "read-1"})).headers[RID] == "read-1"
    r = await api("POST", DISPATCH, json={**body, "metadata": {"n": 1}}, headers={RID: "x"})
    assert_error(r, 400, "validation.failed")
    assert r.headers[RID] == "x"
    assert RID not in (await api("GET", T)).headers
    r = await api("POST", DISPATCH, json={**body, "prompt": "p" * 8001})
    assert "8000" in assert_error(r, 400, "validation.failed")["message"]
    r = await api("POST", T, json=template(), headers={RID: "k" * 257})
    assert_error(r, 400, "validation.failed")


async def test_telemetry_cursor_paging_and_filters(api: Api) -> None:
    p = await split_prompt(api)
    start = api.clock.t
    for _ in range(7):
        await invoke(api, p["id"])
        api.clock.t += 10
    pages, cursor = [], None
    while True:
        params: dict[str, Any] = {"promptId": p["id"], "pageSize": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await api("GET", TELEMETRY, params=params)).json()
        pages.append(len(page["entities"]))
        cursor = page.get("nextPageCursor")
        if not cursor:
            break
    assert pages == [3, 3, 1]
    row = (await api("GET", TELEMETRY)).json()["entities"][0]
    assert set(row) >= {
        "timestamp",
        "promptId",
        "version",
        "latencyMs",
        "inputTokens",
        "outputTokens",
        "error",
    }
    window = {
        "startTime": _iso(start - 1),
        "endTime": _iso(start + 25),
    }
    assert len((await api("GET", TELEMETRY, params=window)).json()["entities"]) == 3
    assert (await api("GET", TELEMETRY, params={"promptId": "other"})).json()["entities"] == []
    assert_error(await api("GET", TELEMETRY, params={"cursor": "zzz"}), 400, "validation.failed")
    assert_error(
        await api("GET", TELEMETRY, params={"startTime": "yesterday"}), 400, "validation.failed"
    )


def _iso(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


async def test_analytics_groups_rows(api: Api) -> None:
    p = await split_prompt(api)
    for _ in range(20):
        await invoke(api, p["id"])
    rows = (await api("POST", ANALYTICS, json={"groupBy": ["version"]})).json()["data"]
    assert {r["version"] for r in rows} == {"1.0.0", "1.1.0"}
    seed_002 = {"totalTokens", "inputTokens", "outputTokens", "latencyMs", "errorCount"}
    richer = {"invocations", "latencyP50Ms", "latencyP95Ms", "latencyP99Ms"}
    richer |= {"guardrailBlocks", "fallbackCount"}  # the richer row (assumed): all, none asked
    assert all(set(r) == {"version", *seed_002, *richer} for r in rows)
    assert all(r["totalTokens"] == r["inputTokens"] + r["outputTokens"] for r in rows)
    total = (await api("POST", ANALYTICS, json={"groupBy": [], "metrics": ["totalTokens"]})).json()
    assert total["data"][0]["totalTokens"] == sum(r["totalTokens"] for r in rows)
    by_gateway = (
        await api("POST", ANALYTICS, json={"groupBy": ["llmGatewayId", "modelId"]})
    ).json()["data"]
    assert by_gateway[0]["llmGatewayId"] == p["id"]
    future = {"dateFrom": _iso(api.clock.t + 1), "dateTo": _iso(api.clock.t + 100)}
    assert (await api("POST", ANALYTICS, json=future)).json()["data"] == []
    assert_error(
        await api("POST", ANALYTICS, json={"groupBy": ["colour"]}), 400, "validation.failed"
    )
    assert_error(await api("POST", ANALYTICS, json={"metrics": ["cost"]}), 400, "validation.failed")


async def test_audit_log_records() -> None:
    record = {
        "promptId": "p",
        "action": "update",
        "timestamp": "2026-01-01T00:00:00Z",
        "details": {"identity": "Prompt/x"},
        "complianceStatus": "APPROVED",
    }
    a = Api()
    r = await a("POST", AUDIT, json=record)
    assert r.status_code == 201 and r.json()["id"] and r.json()["action"] == "update"
    assert a.app.gateway.audit_logs[-1]["details"] == {"identity": "Prompt/x"}
    assert_error(await a("POST", AUDIT, json={**record, "action": ""}), 400, "validation.failed")
    assert_error(await a("POST", AUDIT, json={**record, "x": 1}), 400, "validation.failed")
    b = Api(clients=[ClientSpec("c", "s", ALL_SCOPES - {SCOPES.audit_write})])
    await b.login("c", "s")
    assert (
        SCOPES.audit_write
        in assert_error(await b("POST", AUDIT, json=record), 403, "missing.scope")["message"]
    )
