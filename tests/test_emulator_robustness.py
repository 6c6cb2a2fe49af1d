"""The emulator against hostile input: each case is a request that once answered 500 (or did
damage), found by hand or by the fuzz run (``test_emulator_fuzz.py``), kept as a fixed example.

Covers: bodies (nesting bounded at 32 levels, NaN/Infinity literals, non-finite and huge numbers,
non-UTF-8, non-object bodies, the 1 MiB bound answering 413 by Content-Length and by stream),
wrong types where a string was hashed (`modelEndpointRef: []`, filter, category and group lists
holding lists), falsy non-objects once taken for "absent" (`safetyGuardrails: []`), query
parameters (`int()`'s lenient forms, cursors of thousands of digits, the calendar's ends),
Unicode and control characters in path parameters, the admin endpoints (`latencyMs: 1e309`
and NaN refused with nothing changed, a refused snapshot leaving the org as it was, snapshots
whose objects the gateway would refuse), and the body parser's own rules (``emulator.body``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from reconciler.emulator import body as bodies
from reconciler.emulator.state import STORE_ID
from reconciler.endpoints import PATHS
from tests.emulator_api import (
    ANALYTICS,
    AUDIT,
    DISPATCH,
    IDX,
    INDEX,
    INVOKE,
    TELEMETRY,
    Api,
    P,
    T,
    V,
    assert_error,
    prompt,
    template,
    version,
)


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    a = Api()
    yield a
    await a.http.aclose()


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth - 1):
        value = [value]
    return [value] if depth else value


# -- bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "deeper than 32"),  # RecursionError once: a 500
        (json.dumps({"details": nested(40)}).encode(), "deeper than 32"),
        (b'{"name": NaN}', "NaN"),
        (b'{"name": "abc", "max_tokens": Infinity}', "Infinity"),
        (b'{"name": "abc", "max_tokens": -Infinity}', "Infinity"),
        (b'{"name": "abc", "max_tokens": 1e309}', "out of range"),
        (b'{"name": "abc", "max_tokens": ' + b"9" * 5000 + b"}", "not JSON"),
        (b'{"name": "\xff\xfe"}', "UTF-8"),
        (b"\xef\xbb\xbf{}", "not JSON"),  # a BOM
        (b"{not json", "not JSON"),
        (b"\x0b", "not JSON"),  # found by the fuzz run: strip() took it for an empty body
        (b"\x0c{}", "not JSON"),
        (b" \t\r\n", "not JSON"),  # and whitespace alone for no body
    ],
)
async def test_unreadable_bodies_are_400(api: Api, raw: bytes, words: str) -> None:
    for path in (T, AUDIT):
        r = await api("POST", path, content=raw, headers={"Content-Type": "application/json"})
        assert words in assert_error(r, 400, "validation.failed")["message"]


async def test_nesting_up_to_the_bound_is_read(api: Api) -> None:
    rec = {"action": "x", "details": {"d": nested(30)}}  # 32 levels with the two objects
    r = await api("POST", AUDIT, json=rec)
    assert r.status_code == 201 and r.json()["details"] == rec["details"]
    assert (await api.http.get("/__emulator/state")).status_code == 200  # and snapshotted


async def test_huge_but_finite_numbers_are_range_errors(api: Api) -> None:
    r = await api("POST", T, content=b'{"name": "abc", "max_tokens": ' + b"9" * 400 + b"}")
    assert "max_tokens" in assert_error(r, 400, "validation.failed")["message"]
    r = await api("PUT", f"{IDX}/i", json={**INDEX, "dimensions": 10**40})
    assert_error(r, 400, "validation.failed")


@pytest.mark.parametrize("raw", [b"[]", b'"x"', b"1", b"null", b"true", b"[{}]"])
async def test_non_object_bodies(api: Api, raw: bytes) -> None:
    tid = (await api.template())["id"]
    for method, path, status in (
        ("POST", T, 400),
        ("POST", V(tid), 400),
        ("POST", P, 400),
        ("PUT", f"{IDX}/i", 422),
        ("POST", INVOKE, 400),
        ("POST", DISPATCH, 400),
        ("POST", ANALYTICS, 400),
        ("POST", AUDIT, 400),
    ):
        assert_error(await api(method, path, content=raw), status, "validation.failed")


async def test_bodies_over_the_bound_are_413(api: Api) -> None:
    big = json.dumps({"name": "abc", "description": "x" * bodies.MAX_BODY_BYTES}).encode()
    r = await api("POST", T, content=big)
    assert_error(r, 413, "request.too.large")

    async def stream() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"name": "abc", "description": "'
        for _ in range(40):
            yield b"x" * 32768
        yield b'"}'

    r = await api("POST", T, content=stream())
    assert_error(r, 413, "request.too.large")
    r = await api.http.post(PATHS.token, content=b"grant_type=" + b"x" * bodies.MAX_BODY_BYTES)
    assert r.status_code == 413 and r.json()["error"] == "invalid_request"
    assert (await api("GET", T)).json()["total"] == 0
    ok = json.dumps({"name": "abc", "description": "x" * (bodies.MAX_BODY_BYTES - 100)})
    assert (await api("POST", T, content=ok.encode())).status_code == 201


# -- types the state machine once hashed or took for "absent" ----------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"modelEndpointRef": []},  # unhashable: a 500 once
        {"modelEndpointRef": {"id": "model-gen-4"}},
        {"modelId": ["model-gen-4"], "modelEndpointRef": None},
        {"safetyGuardrails": {"contentFiltering": [["pii"]]}},
        {"safetyGuardrails": {"blockedCategories": [{}]}},
        {"safetyGuardrails": []},  # once silently the defaults
        {"safetyGuardrails": 0},
        {"trafficDistribution": {"versions": [{"version": [], "weight": 1}]}},
        {"trafficDistribution": {"defaultVersion": {}}},
        {"templateId": []},
    ],
)
async def test_prompt_fields_of_the_wrong_type(api: Api, change: dict[str, Any]) -> None:
    tid = (await api.template())["id"]
    assert_error(await api("POST", P, json={**prompt(tid), **change}), 400, "validation.failed")
    p = await api.prompt(tid)
    assert_error(await api("PUT", f"{P}/{p['id']}", json=change), 400, "validation.failed")
    assert (await api("GET", f"{P}/{p['id']}")).json() == p


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (DISPATCH, {"modelId": "model-gen-4", "prompt": "x", "safetyFilters": [["pii"]]}),
        (DISPATCH, {"modelId": "model-gen-4", "prompt": "x", "safetyFilters": {"pii": 1}}),
        (DISPATCH, {"modelId": "model-gen-4", "prompt": "x", "fallbackModels": 0}),
        (DISPATCH, {"modelId": "model-gen-4", "prompt": "x", "parameters": []}),
        (DISPATCH, {"modelId": [], "prompt": "x"}),
        (ANALYTICS, {"groupBy": [["version"]]}),
        (ANALYTICS, {"groupBy": {"version": 1}}),
        (ANALYTICS, {"metrics": [{}]}),
        (ANALYTICS, {"metrics": {}}),
        (ANALYTICS, {"dateFrom": 2026}),
        (INVOKE, {"promptId": ["p"]}),
        (AUDIT, {"action": ["x"]}),
    ],
)
async def test_runtime_fields_of_the_wrong_type(api: Api, path: str, body: Any) -> None:
    assert_error(await api("POST", path, json=body), 400, "validation.failed")


@pytest.mark.parametrize("path", [INVOKE, DISPATCH, ANALYTICS, AUDIT, T, P])
async def test_an_unknown_field_is_refused_even_when_null(api: Api, path: str) -> None:
    # found by the fuzz run: {"": null} was accepted by the analytics query (null dropped first)
    assert_error(await api("POST", path, json={"": None}), 400, "validation.failed")


async def test_null_means_absent_in_runtime_bodies(api: Api) -> None:
    r = await api(
        "POST",
        DISPATCH,
        json={"modelId": "model-gen-4", "prompt": "x", "fallbackModels": None, "metadata": None},
    )
    assert r.status_code == 200 and "metadata" not in r.json()
    r = await api("POST", ANALYTICS, json={"groupBy": None, "metrics": None, "dateTo": None})
    assert r.status_code == 200
    r = await api("POST", AUDIT, json={"action": "x", "details": None, "promptId": None})
    assert r.status_code == 201 and "details" not in r.json()


# -- query and path parameters -----------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"pageSize": "1_0"},  # int() reads 10
        {"pageSize": " 5"},
        {"pageSize": "١٠"},  # Arabic-Indic digits: int() reads 10
        {"pageSize": "9" * 5000},
        {"pageNumber": "9" * 30},
        {"pageNumber": "0x10"},
        {"pageSize": "2.0"},
    ],
)
async def test_paging_parameters_are_plain_integers(api: Api, params: dict[str, str]) -> None:
    assert_error(await api("GET", T, params=params), 400, "validation.failed")


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"cursor": "c" + "9" * 5000}, 400),  # int() past its 4300 digits: a 500 once
        ({"cursor": "c١"}, 400),
        ({"cursor": "c" + "9" * 12}, 200),  # past the last entry: an empty page
        ({"startTime": "0001-01-01T00:00:00+14:00"}, 200),  # the calendar's first day
        ({"endTime": "9999-12-31T23:59:59-14:00"}, 200),  # and its last
        ({"startTime": "10000-01-01T00:00:00Z"}, 400),
        ({"pageSize": "-1"}, 400),
    ],
)
async def test_telemetry_parameters_at_the_edges(
    api: Api, params: dict[str, str], status: int
) -> None:
    r = await api("GET", TELEMETRY, params=params)
    if status == 400:
        assert_error(r, 400, "validation.failed")
    else:
        assert r.status_code == 200 and r.json()["entities"] == [], r.text


async def test_lowercase_rfc_3339_date_times(api: Api) -> None:
    params = {"startTime": "2026-01-01t00:00:00z", "endTime": "2026-01-02T00:00:00.123456+01:00"}
    assert (await api("GET", TELEMETRY, params=params)).status_code == 200


@pytest.mark.parametrize(
    "segment", ["%00", "%0A%0D", "%E2%80%AE", "%F0%9F%92%A9", "%FF", "..", " "]
)
async def test_odd_path_parameters_are_not_found(api: Api, segment: str) -> None:
    tid = (await api.template())["id"]
    for path in (
        f"{T}/{segment}",
        f"{V(tid)}/{segment}",
        f"{P}/{segment}",
        f"/api/v2/ai/vectorstores/{segment}/indexes",
        f"{IDX}/{segment}",
    ):
        r = await api("GET", path)
        assert r.status_code == 404, (path, r.text)
        assert_error(r, 404, "not.found")


# -- admin endpoints ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"latencyMs": 1e309}',  # OverflowError in int(): a 500 once
        b'{"latencyMs": NaN}',
        b'{"rates": {"503": 0.5}, "jitterMs": 1e300}',
        b'{"ingestDelay": Infinity}',
        b'{"rates": {"503": 0.5}, "seed": true}',
        b"[" * 5000,
        b'{"refusingModels": {}}',  # found by the fuzz run: {} was taken for "none"
        b'{"rates": []}',
        b"null",
        b"\x0b",
        b" \t\r\n",
    ],
)
async def test_refused_faults_change_nothing(api: Api, raw: bytes) -> None:
    before = (await api.http.get("/__emulator/faults")).json()
    r = await api.http.put("/__emulator/faults", content=raw)
    assert_error(r, 400, "validation.failed")
    assert (await api.http.get("/__emulator/faults")).json() == before


async def test_admin_methods_are_405_with_allow(api: Api) -> None:
    r = await api.http.delete("/__emulator/state")
    assert_error(r, 405, "method.not.allowed")
    assert r.headers["Allow"] == "GET, PUT"


async def _populated(api: Api) -> dict[str, Any]:
    t = await api.template()
    await api.version(t["id"], "1.0.0")
    await api.prompt(t["id"], trafficDistribution={"defaultVersion": "1.0.0"})
    await api("PUT", f"{IDX}/i", json={**INDEX, "autoIngestTrigger": True})
    await api("POST", INVOKE, json={"promptId": next(iter(api.app.gateway.prompts))})
    await api("POST", AUDIT, json={"action": "x"})
    return dict((await api.http.get("/__emulator/state")).json())


def _broken(snap: dict[str, Any], how: str) -> Any:
    s = json.loads(json.dumps(snap))
    tid = next(iter(s["templates"]))
    pid = next(iter(s["prompts"]))
    if how == "template not an object":
        s["templates"][tid] = 1
    elif how == "template id not its key":
        s["templates"][tid]["id"] = "other"
    elif how == "template invalid":
        s["templates"][tid]["max_tokens"] = 5
    elif how == "version of no template":
        s["versions"]["nope"] = s["versions"][tid]
    elif how == "prompt routed to a missing version":
        s["prompts"][pid]["trafficDistribution"] = {"defaultVersion": "9.9.9"}
    elif how == "prompt model a list":
        s["prompts"][pid]["modelEndpointRef"] = []
    elif how == "prompt etag missing":
        del s["prompts"][pid]["etag"]
    elif how == "index of an unknown store":
        s["indexes"]["other-store"] = s["indexes"][STORE_ID]
    elif how == "index status unknown":
        s["indexes"][STORE_ID]["i"]["status"] = "DONE"
    elif how == "readyAt not finite":
        s["readyAt"] = {f"{STORE_ID}/i": "soon"}
    elif how == "telemetry tokens a string":
        s["telemetry"][0]["inputTokens"] = "12"
    elif how == "telemetry not a list":
        s["telemetry"] = {}
    elif how == "idempotency status 500":
        s["idempotency"] = [
            {"client": "c", "method": "POST", "path": T, "requestId": "r", "expires": 1e12}
            | {"status": 500, "body": ""}
        ]
    elif how == "idempotency header with a line break":
        s["idempotency"] = [
            {
                "client": "c",
                "method": "POST",
                "path": T,
                "requestId": "r",
                "expires": 1e12,
                "status": 201,
                "body": "{}",
                "headers": {"ETag": "a\r\nSet-Cookie: x"},
            }
        ]
    elif how == "audit record null":  # found by the fuzz run: kept as {}
        s["auditLogs"] = [None]
    elif how == "versions of a template null":
        s["versions"][tid] = None
    elif how == "promptLabels of no prompt not a list":
        s["promptLabels"] = {"gone": "1.0.0"}
    elif how == "promptLabels entry null":  # found by the fuzz run: taken for none
        s["promptLabels"] = {pid: None}
    elif how == "readyAt of no index not a number":
        s["readyAt"] = {"gone/x": "soon"}
    elif how == "format true":  # found by the fuzz run: True == 1 in Python
        s["format"] = True
    elif how == "not an object":
        return [s]
    return s


BROKEN = [
    "template not an object",
    "template id not its key",
    "template invalid",
    "version of no template",
    "prompt routed to a missing version",
    "prompt model a list",
    "prompt etag missing",
    "index of an unknown store",
    "index status unknown",
    "readyAt not finite",
    "telemetry tokens a string",
    "telemetry not a list",
    "idempotency status 500",
    "idempotency header with a line break",
    "audit record null",
    "versions of a template null",
    "promptLabels of no prompt not a list",
    "promptLabels entry null",
    "readyAt of no index not a number",
    "format true",
    "not an object",
]


@pytest.mark.parametrize("how", BROKEN)
async def test_a_refused_snapshot_leaves_the_org_as_it_was(api: Api, how: str) -> None:
    snap = await _populated(api)
    await api("POST", T, json=template("second-template"), headers={"X-Genesys-Request-Id": "k"})
    before = (await api.http.get("/__emulator/state")).json()
    r = await api.http.put("/__emulator/state", json=_broken(snap, how))
    assert_error(r, 400, "validation.failed")
    assert (await api.http.get("/__emulator/state")).json() == before  # wiped once
    assert (await api("GET", T)).json()["total"] == 2


async def test_a_good_snapshot_round_trips_through_the_admin_endpoint(api: Api) -> None:
    snap = await _populated(api)
    b = Api()
    b.clock.t = api.clock.t
    assert (await b.http.put("/__emulator/state", json=snap)).status_code == 200
    assert (await b.http.get("/__emulator/state")).json() == snap
    pid = next(iter(snap["prompts"]))
    assert (await b("GET", f"{P}/{pid}")).json() == snap["prompts"][pid]
    rows = (await b("POST", ANALYTICS, json={"groupBy": ["promptId"]})).json()["data"]
    assert rows[0]["promptId"] == pid


def test_body_parser_rules() -> None:
    assert bodies.parse(b"") is None
    with pytest.raises(bodies.BodyError, match="not JSON"):
        bodies.parse(b"  \n")
    assert bodies.parse(b'{"a": [1, 2.5, "\\u00e9"]}') == {"a": [1, 2.5, "é"]}
    assert bodies.parse(json.dumps(nested(32)).encode()) == nested(32)
    empty: list[Any] = []
    for _ in range(19):
        empty = [empty]
    assert bodies.parse(b"[" * 20 + b"]" * 20, max_depth=20) == empty
    with pytest.raises(bodies.BodyError, match="deeper than 20"):
        bodies.parse(json.dumps(nested(21)).encode(), max_depth=20)
    with pytest.raises(bodies.BodyError, match="out of range"):
        bodies.parse(b"[1e400]")
    assert bodies.parse(b"[1e308, 12345678901234567890123]") == [1e308, 12345678901234567890123]


async def test_seeded_requests_on_the_odd_ones_are_still_fine(api: Api) -> None:
    # sanity: the ordinary requests of these tables are accepted, so each refusal above is
    # the odd value's doing
    tid = (await api.template())["id"]
    assert (await api("POST", V(tid), json=version("1.0.0"))).status_code == 201
    assert (await api("POST", P, json=prompt(tid))).status_code == 201
    assert (await api("PUT", f"{IDX}/i", json=INDEX)).status_code == 201
    r = await api("POST", DISPATCH, json={"modelId": "model-gen-4", "prompt": "x"})
    assert r.status_code == 200
    assert (await api("GET", T, params={"pageSize": "10", "pageNumber": "+1"})).status_code == 200
