"""Simulated traffic, the emulator's clock and the richer analytics query (``state/traffic.py``,
``state/ledger.py``, ``state/runtime.py``; ``docs/contract.md``, "The emulator's traffic and
clock" and the analytics endpoint).

Covers: the clock advanced moves ``Date``, telemetry timestamps, analytics windows and token
expiry; traffic routed by the split as it stands when each invocation happens (a split changed
mid-way); per-version error, guardrail-block and fallback rates as set (fixed seeds, 6-sigma
bounds: they cannot flake); the same seed and calls give the same rows; exact counts; the
half-open window; the filter by prompt and versions; nearest-rank percentiles; every bad
traffic or clock body refused naming its field; the admin endpoints absent without ``--admin``;
the row cap; the setting and the clock kept by a snapshot (the clock never goes back); real
invocations counted beside simulated ones. Speed is the benchmark's (``bench/bench_emulator.py``),
never a test's.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import AsyncIterator
from typing import Any

import jsonschema
import pytest

from reconciler.emulator.state.common import parse_time
from reconciler.emulator.state.runtime import nearest_rank
from tests.emulator_api import (
    ANALYTICS,
    INVOKE,
    TELEMETRY,
    Api,
    P,
    assert_error,
    invoke,
    split_prompt,
)

CLOCK, TRAFFIC = "/__emulator/clock", "/__emulator/traffic"
NAME = "support-agent"  # split_prompt's prompt


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    a = Api(seed=11)
    yield a
    await a.http.aclose()


async def _traffic(a: Api, prompts: dict[str, Any]) -> dict[str, Any]:
    r = await a.http.put(TRAFFIC, json={"prompts": prompts})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _advance(a: Api, seconds: float) -> str:
    r = await a.http.post(CLOCK, json={"advanceSeconds": seconds})
    assert r.status_code == 200, r.text
    return str(r.json()["now"])


async def _now(a: Api) -> float:
    r = await a.http.get(CLOCK)
    assert r.status_code == 200
    return parse_time(r.json()["now"], "now") or 0.0


def _iso(t: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


async def _rows(a: Api, **query: Any) -> list[dict[str, Any]]:
    r = await a("POST", ANALYTICS, json=query)
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


async def _by_version(a: Api, pid: str, start: float, end: float) -> dict[str, dict[str, Any]]:
    rows = await _rows(
        a, dateFrom=_iso(start), dateTo=_iso(end), groupBy=["version"], filter={"promptId": pid}
    )
    return {r["version"]: r for r in rows}


def _near(count: int, n: int, p: float) -> bool:
    """Within six standard deviations of a binomial's mean."""
    return abs(count - n * p) <= 6 * math.sqrt(n * p * (1 - p)) + 1


# -- the clock ----------------------------------------------------------------------------------
async def test_the_clock_moves_date_timestamps_and_windows(api: Api) -> None:
    p = await split_prompt(api)
    start = await _now(api)
    r = await api("GET", P)
    assert r.headers["Date"] == email.utils.formatdate(start, usegmt=True)
    now = await _advance(api, 3600)
    assert parse_time(now, "now") == start + 3600
    r = await invoke(api, p["id"])
    assert r.headers["Date"] == email.utils.formatdate(start + 3600, usegmt=True)
    row = (await api("GET", TELEMETRY)).json()["entities"][-1]
    assert row["timestamp"] == now and row["simulated"] is False
    assert await _rows(api, dateFrom=_iso(start), dateTo=_iso(start + 3599)) == []
    rows = await _rows(api, dateFrom=_iso(start + 3600), metrics=["invocations"])
    assert rows == [{"invocations": 1}]
    # the injected clock still runs beneath the offset
    api.clock.t += 5
    assert await _now(api) == start + 3605


async def test_every_answer_carries_date_admin_and_errors_included(api: Api) -> None:
    expected = email.utils.formatdate(api.clock.t, usegmt=True)
    for r in (
        await api.http.get(CLOCK),
        await api.http.get("/__emulator/nope"),
        await api.http.get(P),  # 401: no token
        await api("GET", "/api/v2/nothing"),
        await api.http.get("/api/v2/docs/openapi.json"),
    ):
        assert r.headers["Date"] == expected, r.url


async def test_token_expiry_follows_the_clock(api: Api) -> None:
    assert (await api("GET", P)).status_code == 200
    await _advance(api, 86400 + 1)
    assert_error(await api("GET", P), 401, "bad.credentials")


async def test_the_clock_is_bounded_in_all() -> None:
    a = Api()
    for _ in range(92):  # 100 years in all
        r = await a.http.post(CLOCK, json={"advanceSeconds": 400 * 86400})
        if r.status_code != 200:
            break
    assert r.status_code == 400 and "advanceSeconds" in r.json()["message"]


# -- routing, rates, counts ---------------------------------------------------------------------
async def test_traffic_follows_the_split_as_it_stands_when_it_happens(api: Api) -> None:
    p = await split_prompt(api)  # 1.0.0 at 0.8, 1.1.0 at 0.2
    await _traffic(api, {NAME: {"perMinute": 600}})
    t0 = await _now(api)
    await _advance(api, 600)
    r = await api(
        "PUT",
        f"{P}/{p['id']}",
        json={
            "trafficDistribution": {
                "versions": [
                    {"version": "1.0.0", "weight": 0.3},
                    {"version": "1.1.0", "weight": 0.7},
                ]
            }
        },
        headers={"If-Match": p["etag"]},
    )
    assert r.status_code == 200, r.text
    await _advance(api, 600)
    before = await _by_version(api, p["id"], t0, t0 + 600)
    after = await _by_version(api, p["id"], t0 + 600, t0 + 1200)
    assert sum(r["invocations"] for r in before.values()) == 6000  # exactly 600 a minute
    assert sum(r["invocations"] for r in after.values()) == 6000
    assert _near(before["1.1.0"]["invocations"], 6000, 0.2)
    assert _near(after["1.1.0"]["invocations"], 6000, 0.7)


async def test_each_version_behaves_as_set(api: Api) -> None:
    p = await split_prompt(api)
    behaviour = {"errorRate": 0.1, "guardrailBlockRate": 0.05, "fallbackRate": 0.2}
    await _traffic(
        api,
        {
            NAME: {
                "perMinute": 1000,
                "versions": {
                    "1.1.0": {**behaviour, "latencyMs": 500, "latencyJitterMs": 50},
                    "1.0.0": {"latencyMs": 100, "outputTokens": 40},
                },
            }
        },
    )
    t0 = await _now(api)
    await _advance(api, 1800)
    rows = await _by_version(api, p["id"], t0, t0 + 1800)
    stable, canary = rows["1.0.0"], rows["1.1.0"]
    assert stable["invocations"] + canary["invocations"] == 30000
    assert (stable["errorCount"], stable["guardrailBlocks"], stable["fallbackCount"]) == (0, 0, 0)
    assert stable["latencyMs"] == stable["latencyP99Ms"] == 100.0
    assert stable["outputTokens"] == 40 * stable["invocations"]
    n = canary["invocations"]
    assert _near(canary["errorCount"], n, 0.1)
    assert _near(canary["guardrailBlocks"], n, 0.05)
    assert _near(canary["fallbackCount"], n, 0.2)
    assert abs(canary["latencyMs"] - 500) < 3 and 560 < canary["latencyP95Ms"] < 605
    lost = canary["errorCount"] + canary["guardrailBlocks"]  # answered no tokens
    assert 100 * (n - lost) <= canary["outputTokens"] <= 100 * n
    models = await _rows(
        api, groupBy=["modelId"], filter={"promptId": p["id"], "versions": ["1.1.0"]}
    )
    assert {r["modelId"]: r["invocations"] for r in models} == {
        "model-gen-4": n - canary["fallbackCount"],
        "model-fallback-3": canary["fallbackCount"],  # the prompt's first fallback
    }


async def test_an_unlisted_version_behaves_like_the_first_listed(api: Api) -> None:
    p = await split_prompt(api)
    await _traffic(api, {NAME: {"perMinute": 60, "versions": {"9.9.9": {"latencyMs": 42}}}})
    t0 = await _now(api)
    await _advance(api, 600)
    rows = await _by_version(api, p["id"], t0, t0 + 600)
    assert {r["latencyMs"] for r in rows.values()} == {42.0}
    assert sum(r["invocations"] for r in rows.values()) == 600


async def _run(seed: int) -> tuple[Any, ...]:
    a = Api(seed=seed)
    p = await split_prompt(a)
    await _traffic(
        a,
        {
            NAME: {
                "perMinute": 300,
                "versions": {"1.0.0": {"errorRate": 0.2, "latencyJitterMs": 30}},
            }
        },
    )
    await _advance(a, 300)
    await invoke(a, p["id"])
    await _advance(a, 120.5)
    rows = await _rows(a, groupBy=["version", "modelId"])
    page = (await a("GET", TELEMETRY, params={"pageSize": 100})).json()["entities"]
    for entity in page:
        entity.pop("promptId")  # an id: the same under one seed anyway
    return rows, page


async def test_the_same_seed_and_calls_give_the_same_traffic() -> None:
    first, again, other = await _run(4), await _run(4), await _run(5)
    assert first == again
    assert first != other


async def test_traffic_stops_and_restarts() -> None:
    a = Api(seed=1)
    p = await split_prompt(a)
    await _traffic(a, {NAME: {"perMinute": 120}})
    await _advance(a, 60)
    assert (await _traffic(a, {}))["prompts"] == {}
    await _advance(a, 600)
    assert (await a.http.get(TRAFFIC)).json() == {"prompts": {}}
    rows = await _rows(a, filter={"promptId": p["id"]}, metrics=["invocations"])
    assert rows == [{"invocations": 120}]


async def test_a_name_no_prompt_has_makes_no_traffic_until_one_does() -> None:
    a = Api(seed=1)
    await _traffic(a, {NAME: {"perMinute": 60}})
    await _advance(a, 600)
    assert await _rows(a) == []
    p = await split_prompt(a)
    t0 = await _now(a)
    await _advance(a, 60)
    assert await _rows(a, metrics=["invocations"]) == [{"invocations": 60}]
    row = (await a("GET", TELEMETRY)).json()["entities"][0]
    assert row["promptId"] == p["id"] and row["simulated"] is True
    assert (parse_time(row["timestamp"], "t") or 0) >= t0


async def test_a_whole_step_of_18000_invocations(api: Api) -> None:
    await split_prompt(api)
    await _traffic(api, {NAME: {"perMinute": 600}})
    await _advance(api, 1800)
    assert await _rows(api, metrics=["invocations"]) == [{"invocations": 18000}]
    pages, cursor = 0, None
    while True:
        params: dict[str, Any] = {"pageSize": 100, **({"cursor": cursor} if cursor else {})}
        page = (await api("GET", TELEMETRY, params=params)).json()
        pages += 1
        cursor = page.get("nextPageCursor")
        if not cursor or pages > 200:
            break
    assert pages == 180


async def test_the_row_cap_keeps_the_newest() -> None:
    a = Api(seed=2, max_telemetry_rows=1000)
    p = await split_prompt(a)
    await _traffic(a, {NAME: {"perMinute": 600}})
    await _advance(a, 100)
    first_page = (await a("GET", TELEMETRY, params={"pageSize": 1})).json()
    await _advance(a, 3600 * 24 * 30)  # 26 million invocations: only the newest 1000 are made
    a.token = ""  # expired meanwhile
    assert len(a.app.gateway.telemetry) == 1000
    now = await _now(a)
    assert await _rows(a, metrics=["invocations"]) == [{"invocations": 1000}]
    oldest = (await a("GET", TELEMETRY, params={"pageSize": 1})).json()["entities"][0]
    assert parse_time(oldest["timestamp"], "t") == pytest.approx(now - 100, abs=0.2)
    # a cursor to a row dropped since pages on from the oldest kept
    page = (await a("GET", TELEMETRY, params={"cursor": first_page["nextPageCursor"]})).json()
    assert page["entities"][0] == oldest
    for _ in range(3):
        await invoke(a, p["id"])
    assert len(a.app.gateway.telemetry) == 1000


# -- analytics -----------------------------------------------------------------------------------
async def test_the_window_is_half_open(api: Api) -> None:
    p = await split_prompt(api)
    t0 = api.clock.t
    await invoke(api, p["id"])
    api.clock.t += 10
    await invoke(api, p["id"])
    count = ["invocations"]
    assert await _rows(api, dateFrom=_iso(t0), dateTo=_iso(t0 + 10), metrics=count) == [
        {"invocations": 1}
    ]
    assert await _rows(api, dateFrom=_iso(t0), dateTo=_iso(t0 + 10.001), metrics=count) == [
        {"invocations": 2}
    ]
    assert await _rows(api, dateFrom=_iso(t0 + 0.001), metrics=count) == [{"invocations": 1}]


async def test_the_filter_by_prompt_and_versions(api: Api) -> None:
    p = await split_prompt(api)
    other = await api.prompt(p["templateId"], "other-agent")
    await _traffic(api, {NAME: {"perMinute": 60}, "other-agent": {"perMinute": 30}})
    await _advance(api, 600)
    assert await _rows(api, metrics=["invocations"]) == [{"invocations": 900}]
    mine = await _rows(api, filter={"promptId": p["id"]}, groupBy=["promptId"])
    assert [(r["promptId"], r["invocations"]) for r in mine] == [(p["id"], 600)]
    theirs = await _rows(api, filter={"promptId": other["id"]}, metrics=["invocations"])
    assert theirs == [{"invocations": 300}]
    canary = await _rows(api, filter={"versions": ["1.1.0"]}, groupBy=["version"])
    assert [r["version"] for r in canary] == ["1.1.0"]
    assert await _rows(api, filter={"promptId": "no-such-prompt"}) == []
    assert await _rows(api, filter={"versions": []}) == []
    assert await _rows(api, filter={"versions": ["7.7.7"]}) == []
    assert await _rows(api, filter=None, metrics=["invocations"]) == [{"invocations": 900}]


async def test_percentiles_by_nearest_rank(api: Api) -> None:
    values = [float(v) for v in range(1, 101)]
    assert [nearest_rank(values, q) for q in (0.5, 0.95, 0.99)] == [50.0, 95.0, 99.0]
    assert nearest_rank([7.0], 0.99) == 7.0 and nearest_rank([1.0, 2.0], 0.5) == 1.0
    p = await split_prompt(api)
    for _ in range(37):
        await invoke(api, p["id"])
    latencies = sorted(
        e["latencyMs"]
        for e in (await api("GET", TELEMETRY, params={"pageSize": 100})).json()["entities"]
    )
    (row,) = await _rows(api)
    assert row["invocations"] == 37
    for q, name in ((0.5, "latencyP50Ms"), (0.95, "latencyP95Ms"), (0.99, "latencyP99Ms")):
        assert row[name] == latencies[math.ceil(q * 37) - 1]
    assert row["latencyMs"] == round(sum(latencies) / 37, 1)
    assert row["guardrailBlocks"] == 0 and row["fallbackCount"] == 0


async def test_a_real_invocation_served_by_a_fallback_counts(api: Api) -> None:
    p = await split_prompt(api)
    await _traffic(api, {NAME: {"perMinute": 60}})
    await api.faults(failingModels=["model-gen-4"])
    assert (await invoke(api, p["id"])).json()["modelId"] == "model-fallback-3"
    await _advance(api, 60)
    (row,) = await _rows(api, metrics=["invocations", "fallbackCount", "guardrailBlocks"])
    assert row == {"invocations": 61, "fallbackCount": 1, "guardrailBlocks": 0}


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"filter": []}, "filter"),
        ({"filter": {"prompt": "x"}}, "prompt"),
        ({"filter": {"promptId": 3}}, "filter.promptId"),
        ({"filter": {"promptId": ""}}, "filter.promptId"),
        ({"filter": {"versions": "1.0.0"}}, "filter.versions"),
        ({"filter": {"versions": ["1.0.0", 2]}}, "filter.versions"),
        ({"filter": {"versions": ["v"] * 101}}, "filter.versions"),
        ({"metrics": ["latencyP90Ms"]}, "latencyP99Ms"),  # the message lists the allowed
        ({"groupBy": ["model"]}, "modelId"),
    ],
)
async def test_bad_analytics_queries(api: Api, query: dict[str, Any], named: str) -> None:
    r = await api("POST", ANALYTICS, json=query)
    assert named in assert_error(r, 400, "validation.failed")["message"]


# -- the admin bodies ----------------------------------------------------------------------------
GOOD = {"perMinute": 60}


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ([], "body"),
        ({}, "prompts"),
        ({"prompts": [], "x": 1}, "x"),
        ({"prompts": []}, "prompts"),
        ({"prompts": {NAME: GOOD, **{f"prompt-{i}": GOOD for i in range(100)}}}, "prompts"),
        ({"prompts": {"ab": GOOD}}, "prompt name"),
        ({"prompts": {NAME: {}}}, "perMinute"),
        ({"prompts": {NAME: 5}}, NAME),
        ({"prompts": {NAME: {"perMinute": -1}}}, "perMinute"),
        ({"prompts": {NAME: {"perMinute": 100001}}}, "perMinute"),
        ({"prompts": {NAME: {"perMinute": "60"}}}, "perMinute"),
        ({"prompts": {NAME: {"perMinute": True}}}, "perMinute"),
        ({"prompts": {NAME: {"perMinute": None}}}, "perMinute"),
        ({"prompts": {NAME: {"perMinute": 1, "rate": 2}}}, "rate"),
        ({"prompts": {NAME: {**GOOD, "versions": []}}}, "versions"),
        ({"prompts": {NAME: {**GOOD, "versions": {"1.0.0": {"errorRate": 1.5}}}}}, "errorRate"),
        ({"prompts": {NAME: {**GOOD, "versions": {"1.0.0": {"colour": 1}}}}}, "colour"),
        ({"prompts": {NAME: {**GOOD, "versions": {"1.0.0": {"latencyMs": -5}}}}}, "latencyMs"),
        (
            {"prompts": {NAME: {**GOOD, "versions": {"1.0.0": {"guardrailBlockRate": -0.1}}}}},
            "guardrailBlockRate",
        ),
        (
            {"prompts": {NAME: {**GOOD, "versions": {"1.0.0": {"fallbackRate": 2}}}}},
            "fallbackRate",
        ),
        (
            {"prompts": {NAME: {**GOOD, "versions": {"1.0.0": {"outputTokens": 1.5}}}}},
            "outputTokens",
        ),
        (
            {"prompts": {NAME: {**GOOD, "versions": {"1.0.0": {"latencyJitterMs": 4e6}}}}},
            "latencyJitterMs",
        ),
        ({"prompts": {NAME: {**GOOD, "versions": {"": {}}}}}, "version"),
        (
            {"prompts": {NAME: {**GOOD, "versions": {f"v{i}": {} for i in range(51)}}}},
            "versions",
        ),
    ],
)
async def test_bad_traffic_bodies_name_the_field(api: Api, body: Any, named: str) -> None:
    before = (await api.http.get(TRAFFIC)).json()
    r = await api.http.put(TRAFFIC, json=body)
    assert named in assert_error(r, 400, "validation.failed")["message"]
    assert (await api.http.get(TRAFFIC)).json() == before


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        (b'{"prompts": {"support-agent": {"perMinute": 1e999}}}', "perMinute"),
        (
            b'{"prompts": {"support-agent": {"perMinute": 1, "versions": {"1.0.0": '
            b'{"errorRate": -1e999}}}}}',
            "errorRate",
        ),
    ],
)
async def test_numbers_beyond_a_float_name_the_field(api: Api, raw: bytes, named: str) -> None:
    r = await api.http.put(TRAFFIC, content=raw, headers={"Content-Type": "application/json"})
    assert named in assert_error(r, 400, "validation.failed")["message"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        [],
        {"advanceSeconds": -1},
        {"advanceSeconds": "60"},
        {"advanceSeconds": None},
        {"advanceSeconds": 400 * 86400 + 1},
        {"advanceSeconds": 60, "x": 1},
        b'{"advanceSeconds": 1e999}',
    ],
)
async def test_bad_clock_bodies_name_the_field(api: Api, body: Any) -> None:
    before = await _now(api)
    if isinstance(body, bytes):
        r = await api.http.post(CLOCK, content=body, headers={"Content-Type": "application/json"})
    else:
        r = await api.http.post(CLOCK, json=body)
    message = assert_error(r, 400, "validation.failed")["message"]
    assert "advanceSeconds" in message or "x" in message or "body" in message
    assert await _now(api) == before


async def test_the_admin_endpoints_need_admin() -> None:
    a = Api(admin=False)
    for method, path, body in (
        ("GET", CLOCK, None),
        ("POST", CLOCK, {"advanceSeconds": 1}),
        ("GET", TRAFFIC, None),
        ("PUT", TRAFFIC, {"prompts": {}}),
    ):
        assert_error(await a.http.request(method, path, json=body), 404, "not.found")
    assert CLOCK not in (await a.http.get("/api/v2/docs/openapi.json")).text


async def test_methods_the_admin_endpoints_do_not_take(api: Api) -> None:
    r = await api.http.delete(CLOCK)
    assert_error(r, 405, "method.not.allowed")
    assert r.headers["Allow"] == "GET, POST"
    assert (await api.http.post(TRAFFIC, json={"prompts": {}})).headers["Allow"] == "GET, PUT"


# -- persistence ---------------------------------------------------------------------------------
async def test_a_snapshot_keeps_the_setting_and_the_clock(api: Api) -> None:
    p = await split_prompt(api)
    setting = {NAME: {"perMinute": 60, "versions": {"1.1.0": {"guardrailBlockRate": 1}}}}
    await _traffic(api, setting)
    await _advance(api, 600)
    snapshot = (await api.http.get("/__emulator/state")).json()
    document = (await api.http.get("/api/v2/docs/openapi.json")).json()
    schema = {"$ref": "#/components/schemas/Snapshot", "components": document["components"]}
    jsonschema.Draft202012Validator(schema).validate(snapshot)  # blocked rows say so
    assert all(
        row.get("guardrailBlocked") for row in snapshot["telemetry"] if row["version"] == "1.1.0"
    )
    blocked = await _rows(api, metrics=["guardrailBlocks", "invocations"])
    b = Api(seed=11)
    assert (await b.http.put("/__emulator/state", json=snapshot)).status_code == 200
    assert await _now(b) == await _now(api)
    assert (await b.http.get(TRAFFIC)).json() == {"prompts": setting}
    assert await _rows(b, metrics=["guardrailBlocks", "invocations"]) == blocked
    await _advance(b, 60)
    assert (await _rows(b, metrics=["invocations"]))[0]["invocations"] == 660
    # a restore never moves the clock back
    later = await _advance(b, 3600)
    assert (await b.http.put("/__emulator/state", json=snapshot)).status_code == 200
    assert await _now(b) == parse_time(later, "now")
    bad = {**snapshot, "clock": {"offsetSeconds": -1}}
    assert (await b.http.put("/__emulator/state", json=bad)).status_code == 400
    bad = {**snapshot, "traffic": {"prompts": {NAME: {"perMinute": -1}}}}
    assert (await b.http.put("/__emulator/state", json=bad)).status_code == 400
    assert p["id"] in {e["promptId"] for e in snapshot["telemetry"]}


async def test_real_invocations_still_work_beside_traffic(api: Api) -> None:
    p = await split_prompt(api)
    await _traffic(api, {NAME: {"perMinute": 600}})
    await _advance(api, 60)
    r = await api("POST", INVOKE, json={"promptId": p["id"], "userInput": "hello"})
    assert r.status_code == 200
    await _advance(api, 60)
    page = (await api("GET", TELEMETRY, params={"pageSize": 100, "cursor": "c550"})).json()
    flags = [e["simulated"] for e in page["entities"]]
    assert flags.count(False) == 1 and len(flags) == 100
    assert await _rows(api, metrics=["invocations"]) == [{"invocations": 1201}]
