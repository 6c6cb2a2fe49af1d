"""The emulator's HTTP layer against ``docs/contract.md`` (``reconciler/emulator/app.py``,
``config.py``): the pipeline every request goes through, in-process.

Covers:
- command-line values: ``--client`` and ``--fault-rate`` parsing, the default client; the app a
  Starlette app exposing its state;
- OAuth: Basic and form credentials, scope intersection, bad credentials, grant type, the token
  endpoint's own 60-a-minute limit (400 invalid_request), expired and unknown bearer tokens;
  errors with RFC 6749's error_description and a JSON token request told to send a form (seed
  reconciliations, 004);
- common behaviour: Genesys error bodies, ``inin-correlation-id`` on every answer equal to the
  error's contextId, 404/405, every endpoint's scope (403 naming it), rate-limit headers, 429
  with Retry-After, unlimited mode, an injected 429's headers agreeing with Retry-After;
- idempotency: a repeated request id replays the first answer (status, body, ETag) and changes
  nothing, per client, for 24 h, before the rate limit; injected 429/500/503/drop-before are not
  remembered; drop-after commits and a repeat gets the committed answer; a request id names one
  operation (method and path); the memory survives a snapshot;
- faults: seeded reproducible sequence, latency and jitter through the injected sleep, admin
  endpoints (only with admin, no token, never faulted, reset to the seeded org).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from reconciler.emulator.app import ENDPOINTS, create_app
from reconciler.emulator.config import (
    ALL_SCOPES,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    FAULT_KINDS,
    ClientSpec,
    EmulatorConfig,
    parse_client_spec,
    parse_fault_rate,
)
from reconciler.emulator.state import STORE_ID
from reconciler.endpoints import HEADERS, PATHS, SCOPES
from tests.emulator_api import (
    IDX,
    RID,
    Api,
    P,
    T,
    assert_error,
    template,
)


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    a = Api()
    yield a
    await a.http.aclose()


@pytest.mark.parametrize(
    ("spec", "scopes"),
    [
        ("ci:s3cret", ALL_SCOPES),
        ("ci:s3cret:ai:prompt:read", {"ai:prompt:read"}),
        ("ci:s3cret:ai:prompt:read, ai:prompt:write", {"ai:prompt:read", "ai:prompt:write"}),
        ("ci:s3cret:", set()),
    ],
)
def test_client_spec_splits_on_the_first_two_colons(spec: str, scopes: set[str]) -> None:
    c = parse_client_spec(spec)
    assert (c.id, c.secret, c.scopes) == ("ci", "s3cret", frozenset(scopes))


@pytest.mark.parametrize("spec", ["ci", "ci:", ":s3cret", "ci:s3cret:ai:prompt:read,nope:x"])
def test_client_spec_refusals(spec: str) -> None:
    with pytest.raises(ValueError, match="--client"):
        parse_client_spec(spec)


def test_fault_rate_parsing() -> None:
    assert parse_fault_rate("drop-after=0.5") == ("drop-after", 0.5)
    assert [parse_fault_rate(f"{k}=1")[0] for k in FAULT_KINDS] == list(FAULT_KINDS)
    with pytest.raises(ValueError, match="valid kinds: 429, 500, 503, drop-before, drop-after"):
        parse_fault_rate("404=0.1")
    for bad in ("503=2", "503=-0.1", "503=nan", "503", "503=x"):
        with pytest.raises(ValueError, match="503"):
            parse_fault_rate(bad)


def test_default_configuration() -> None:
    c = EmulatorConfig()
    assert (c.host, c.port, c.rate_limit, c.ingest_delay, c.admin) == (
        "127.0.0.1",
        8787,
        300,
        2.0,
        False,
    )
    assert [(k.id, k.secret, k.scopes) for k in c.clients] == [
        ("emulator-client", "emulator-secret", frozenset(SCOPES.all))
    ]


def test_the_app_is_a_starlette_app_exposing_its_state() -> None:
    app = create_app(EmulatorConfig(seed=1))
    assert isinstance(app, Starlette)
    assert app.state.emulator is app.emulator and app.gateway is app.emulator.gateway
    assert app.config.seed == 1 and app.log == []


async def test_token_by_basic_auth_or_form_fields_with_scope_intersection() -> None:
    a = Api(clients=[ClientSpec("c", "secret-1", frozenset(SCOPES.read))])
    r = await a.login("c", "secret-1")
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 86400 and body["access_token"]
    assert set(body["scope"].split()) == set(SCOPES.read)
    r = await a.http.post(
        PATHS.token,
        data={
            "grant_type": "client_credentials",
            "client_id": "c",
            "client_secret": "secret-1",
            "scope": "ai:prompt:read ai:prompt:write no:such:scope",
        },
    )
    assert r.status_code == 200 and r.json()["scope"] == "ai:prompt:read"  # never an error
    a.token = r.json()["access_token"]
    assert (await a("GET", P)).status_code == 200
    body = assert_error(await a("GET", T), 403, "missing.scope")
    assert SCOPES.template_read in body["message"]


@pytest.mark.parametrize(
    ("cid", "secret", "form", "status", "error"),
    [
        ("emulator-client", "wrong", {}, 401, "invalid_client"),
        ("nobody", "emulator-secret", {}, 401, "invalid_client"),
        ("emulator-client", "emulator-secret", {"grant_type": "password"}, 400, None),
    ],
)
async def test_token_refusals(
    api: Api, cid: str, secret: str, form: dict[str, str], status: int, error: str | None
) -> None:
    r = await api.login(cid, secret, **form)
    assert r.status_code == status and r.json()["error"] == (error or "unsupported_grant_type")
    assert r.headers[HEADERS.correlation_id]
    assert (await api.http.get(PATHS.token)).status_code == 405


async def test_token_endpoint_allows_60_a_minute_per_client() -> None:
    a = Api(clients=[ClientSpec("c", "s"), ClientSpec("d", "s")])
    for _ in range(60):
        assert (await a.login("c", "s")).status_code == 200
    r = await a.login("c", "s")
    assert r.status_code == 400
    assert r.json() == {
        "error": "invalid_request",
        "error_description": "rate limit exceeded",
        "description": "rate limit exceeded",
    }
    assert (await a.login("d", "s")).status_code == 200  # per client
    a.clock.t += 60
    assert (await a.login("c", "s")).status_code == 200


async def test_expired_unknown_and_missing_bearer_tokens() -> None:
    a = Api(token_lifetime=100)
    assert (await a("GET", T)).status_code == 200
    a.clock.t += 101
    body = assert_error(await a("GET", T), 401, "bad.credentials")
    assert "expired" in body["message"]
    assert_error(
        await a.http.get(T, headers={"Authorization": "Bearer nope"}), 401, "bad.credentials"
    )
    assert_error(await a.http.get(T), 401, "bad.credentials")


@pytest.mark.parametrize(
    ("cid", "secret", "form", "status", "error"),
    [
        ("emulator-client", "wrong", {"grant_type": "client_credentials"}, 401, "invalid_client"),
        ("emulator-client", "emulator-secret", {"grant_type": "password"}, 400, None),
        ("emulator-client", "emulator-secret", {}, 400, "invalid_request"),
    ],
)
async def test_oauth_errors_carry_rfc_6749_error_description(
    api: Api, cid: str, secret: str, form: dict[str, str], status: int, error: str | None
) -> None:
    r = await api.http.post(PATHS.token, data=form, auth=(cid, secret))
    body = r.json()
    assert r.status_code == status and body["error"] == (error or "unsupported_grant_type")
    assert set(body) == {"error", "error_description", "description"}
    assert body["error_description"] == body["description"] and body["description"]
    if status == 401:
        assert r.headers["WWW-Authenticate"].startswith("Basic")


async def test_seed_004_json_token_request_is_told_to_send_a_form(api: Api) -> None:
    r = await api.http.post(
        PATHS.token,
        json={"grant_type": "client_credentials"},
        auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
    )
    body = r.json()
    assert r.status_code == 400 and body["error"] == "invalid_request"
    assert "x-www-form-urlencoded" in body["error_description"]


async def test_error_shape_and_correlation_ids_on_every_answer(api: Api) -> None:
    body = assert_error(await api("GET", f"{T}/nope"), 404, "not.found")
    assert body["details"] == []
    ok = await api("GET", T)
    assert ok.headers[HEADERS.correlation_id] != body["contextId"]
    for r in (ok, await api.login(), await api.http.get("/__emulator/faults")):
        assert r.headers[HEADERS.correlation_id]
        assert all(h in r.headers for h in (HEADERS.rate_allowed, HEADERS.rate_count))
        assert HEADERS.rate_reset in r.headers
    assert_error(await api("GET", "/api/v2/nothing/here"), 404, "not.found")
    r = await api("PATCH", T, json={})
    assert_error(r, 405, "method.not.allowed")
    assert r.headers["Allow"] == "GET, POST"
    assert_error(await api("POST", T, content=b"{not json"), 400, "validation.failed")


PARAMS = {
    "templateId": "t-1",
    "version": "1.0.0",
    "promptId": "p-1",
    "vectorStoreId": STORE_ID,
    "indexId": "i-1",
}


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[f"{e.method} {e.path}" for e in ENDPOINTS])
async def test_every_endpoint_needs_its_scope(endpoint: Any) -> None:
    a = Api(clients=[ClientSpec("c", "s", ALL_SCOPES - {endpoint.scope})])
    await a.login("c", "s")
    r = await a(endpoint.method, endpoint.path.format(**PARAMS), json={})
    body = assert_error(r, 403, "missing.scope")
    assert endpoint.scope in body["message"] and body["details"] == [endpoint.scope]


async def test_read_scopes_are_enough_to_read() -> None:
    a = Api(clients=[ClientSpec("reader", "s", frozenset(SCOPES.read))])
    await a.login("reader", "s")
    for path in (T, P, PATHS.models, PATHS.vector_stores, IDX):
        assert (await a("GET", path)).status_code == 200, path
    assert_error(await a("POST", T, json=template()), 403, "missing.scope")


async def test_rate_window_headers_and_429() -> None:
    a = Api(rate_limit=3)
    r = await a("GET", T)
    assert [r.headers[h] for h in (HEADERS.rate_allowed, HEADERS.rate_count)] == ["3", "1"]
    assert r.headers[HEADERS.rate_reset] == "60"  # the window starts with the first request
    a.clock.t += 20
    for n in (2, 3):
        r = await a("GET", T)
        assert r.headers[HEADERS.rate_count] == str(n) and r.headers[HEADERS.rate_reset] == "40"
    body = assert_error(await a("GET", T), 429, "rate.limited")
    assert "3 requests" in body["message"]
    r = await a("POST", T, json=template())
    assert r.status_code == 429 and r.headers[HEADERS.retry_after] == "40"
    other = a.session()  # another token has its own window
    await other.login()
    assert (await other("GET", T)).status_code == 200
    a.clock.t += 40
    r = await a("GET", T)
    assert r.status_code == 200 and r.json()["total"] == 0  # the refused POST did nothing
    assert r.headers[HEADERS.rate_count] == "1"


async def test_rate_limit_zero_is_unlimited() -> None:
    a = Api(rate_limit=0)
    for _ in range(400):
        r = await a("GET", PATHS.models)
    assert r.status_code == 200 and r.headers[HEADERS.rate_allowed] == "0"


async def test_injected_429_rate_headers_agree_with_retry_after() -> None:
    a = Api(rate_limit=300)
    await a("GET", T)
    await a.faults(rates={"429": 1.0})
    r = await a("GET", T)
    assert_error(r, 429, "rate.limited")
    retry = r.headers[HEADERS.retry_after]
    assert r.headers[HEADERS.rate_reset] == retry == "1"
    assert r.headers[HEADERS.rate_count] == r.headers[HEADERS.rate_allowed] == "300"
    await a.faults(rates={})
    r = await a("GET", T)  # the real window is back: 3 requests used, 60 s left
    assert (r.headers[HEADERS.rate_count], r.headers[HEADERS.rate_reset]) == ("3", "60")
    # a real 429 reads the same way
    b = Api(rate_limit=1)
    await b("GET", T)
    b.clock.t += 15
    r = await b("GET", T)
    assert r.status_code == 429 and r.headers[HEADERS.retry_after] == "45"
    assert r.headers[HEADERS.rate_reset] == "45" and r.headers[HEADERS.rate_count] == "1"


async def test_repeated_request_id_replays_the_first_answer(api: Api) -> None:
    key = {RID: "11111111-1111-1111-1111-111111111111"}
    first = await api("POST", T, json=template(), headers=key)
    again = await api("POST", T, json=template("another-name"), headers=key)
    assert first.status_code == again.status_code == 201 and first.content == again.content
    assert (await api("GET", T)).json()["total"] == 1
    refused = await api("POST", T, json=template(), headers={RID: "r2"})
    assert_error(refused, 409, "name.exists")
    assert (await api("DELETE", f"{T}/{first.json()['id']}")).status_code == 204
    replay = await api("POST", T, json=template(), headers={RID: "r2"})
    assert replay.content == refused.content  # the refusal is replayed, state notwithstanding
    assert replay.headers[HEADERS.correlation_id] == refused.json()["contextId"]
    assert (await api("GET", T)).json()["total"] == 0
    log = (await api.http.get("/__emulator/requests")).json()["requests"]
    assert [e["replayed"] for e in log if e["requestId"] == "r2"] == [False, True]
    # per client: another client's same id is another operation
    other = api.session()
    api.app.emulator.clients["second"] = ClientSpec("second", "s")
    await other.login("second", "s")
    assert (await other("POST", T, json=template(), headers=key)).status_code == 201


async def test_replays_come_before_the_rate_limit_and_expire_after_24_hours() -> None:
    a = Api(rate_limit=2)
    key = {RID: "k-1"}
    created = await a("POST", T, json=template(), headers=key)
    assert (await a("GET", T)).status_code == 200
    assert (await a("GET", T)).status_code == 429
    replay = await a("POST", T, json=template(), headers=key)
    assert replay.status_code == 201 and replay.content == created.content
    a.clock.t += 24 * 3600 + 1
    await a.login()  # the token lived 24 h too
    assert_error(await a("POST", T, json=template(), headers=key), 409, "name.exists")


async def test_replay_keeps_the_etag_header(api: Api) -> None:
    tid = (await api.template())["id"]
    p = await api.prompt(tid)
    key = {RID: "put-1", "If-Match": p["etag"]}
    first = await api("PUT", f"{P}/{p['id']}", json={"temperature": 0.2}, headers=key)
    again = await api("PUT", f"{P}/{p['id']}", json={"temperature": 0.9}, headers=key)
    assert first.status_code == again.status_code == 200
    assert first.headers["ETag"] == again.headers["ETag"] == again.json()["etag"]
    assert (await api("GET", f"{P}/{p['id']}")).json()["temperature"] == 0.2


@pytest.mark.parametrize("kind", ["429", "500", "503"])
async def test_injected_error_answers_are_not_remembered(api: Api, kind: str) -> None:
    await api.faults(rates={kind: 1.0})
    r = await api("POST", T, json=template(), headers={RID: "k"})
    assert r.status_code == int(kind) and r.json()["status"] == int(kind)
    await api.faults(rates={})
    assert (await api("POST", T, json=template(), headers={RID: "k"})).status_code == 201


async def test_drop_before_acts_not_and_is_not_remembered(api: Api) -> None:
    await api.faults(rates={"drop-before": 1.0})
    with pytest.raises(httpx.RemoteProtocolError):
        await api("POST", T, json=template(), headers={RID: "k"})
    await api.faults(rates={})
    assert (await api("GET", T)).json()["total"] == 0
    assert (await api("POST", T, json=template(), headers={RID: "k"})).status_code == 201


async def test_drop_after_commits_and_the_repeat_gets_the_committed_answer(api: Api) -> None:
    await api.faults(rates={"drop-after": 1.0})
    with pytest.raises(httpx.RemoteProtocolError):
        await api("POST", T, json=template(), headers={RID: "k"})
    await api.faults(rates={})
    listing = (await api("GET", T)).json()
    assert listing["total"] == 1
    r = await api("POST", T, json=template(), headers={RID: "k"})
    assert r.status_code == 201 and r.json() == listing["entities"][0]
    assert (await api("GET", T)).json()["total"] == 1
    log = (await api.http.get("/__emulator/requests")).json()["requests"]
    writes = [e for e in log if e["method"] == "POST" and e["path"] == T]
    assert [(e["status"], e["fault"]) for e in writes] == [
        ("201 (answer dropped)", "drop-after"),
        (201, None),
    ]


async def test_a_request_id_names_one_operation(api: Api) -> None:
    # found by the fuzz run: the id of a refused POST, sent again with PUT on the same path,
    # replayed the POST's 400 instead of answering 405
    key = {RID: "same-id"}
    first = await api("POST", T, json=template(), headers=key)
    assert first.status_code == 201
    assert_error(await api("PUT", T, json=template(), headers=key), 405, "method.not.allowed")
    r = await api("PUT", f"{T}/{first.json()['id']}", json=template(description="d"), headers=key)
    assert r.status_code == 200 and r.json()["version"] == 2  # acted: another operation
    again = await api("POST", T, json=template(), headers=key)
    assert again.status_code == 201 and again.content == first.content  # the repeat replays


async def test_idempotency_memory_survives_a_snapshot(api: Api) -> None:
    first = await api("POST", T, json=template(), headers={RID: "k"})
    b = Api()
    b.app.emulator.restore(json.loads(json.dumps(api.app.emulator.snapshot())))
    replay = await b("POST", T, json=template(), headers={RID: "k"})
    assert replay.status_code == 201 and replay.content == first.content


async def _statuses(seed: int) -> list[Any]:
    a = Api(seed=seed, fault_rates={"503": 0.3, "500": 0.1, "drop-before": 0.1})
    out: list[Any] = []
    for _ in range(40):
        try:
            out.append((await a("GET", PATHS.models)).status_code)
        except httpx.RemoteProtocolError:
            out.append("dropped")
    return out


async def test_faults_are_reproducible_with_a_seed() -> None:
    first, again, other = await _statuses(3), await _statuses(3), await _statuses(4)
    assert first == again and first != other
    assert {200, 500, 503, "dropped"} <= set(first)


async def test_latency_and_jitter_through_the_injected_sleep() -> None:
    a = Api(latency_ms=50, jitter_ms=10)
    await a("GET", T)
    assert len(a.sleeps) == 2 and all(0.05 <= s <= 0.06 for s in a.sleeps)  # token + GET
    await a.http.get("/__emulator/requests")
    assert len(a.sleeps) == 2  # admin endpoints are never delayed
    await a.faults(latencyMs=0, jitterMs=0)
    await a("GET", T)
    assert len(a.sleeps) == 2


async def test_admin_endpoints_only_with_admin() -> None:
    a = Api(admin=False)
    for method, name in (("GET", "requests"), ("GET", "faults"), ("POST", "reset")):
        assert_error(await a(method, f"/__emulator/{name}"), 404, "not.found")


async def test_admin_endpoints_need_no_token_and_are_never_faulted(api: Api) -> None:
    await api.template()
    r = await api.faults(rates={"503": 1.0, "drop-before": 1.0})
    assert r.json()["rates"] == {
        "429": 0.0,
        "500": 0.0,
        "503": 1.0,
        "drop-before": 1.0,
        "drop-after": 0.0,
    }
    assert_error(await api("GET", T), 503, "service.unavailable")
    log = (await api.http.get("/__emulator/requests")).json()["requests"]
    assert {"method", "path", "status", "requestId"} <= set(log[-1])
    assert log[-1]["status"] == "503 (injected)" and log[-1]["fault"] == "503"
    for bad in ({"rates": {"404": 0.1}}, {"rates": {"503": 2}}, {"latencyMs": -1}, {"x": 1}):
        assert_error(await api.http.put("/__emulator/faults", json=bad), 400, "validation.failed")
    assert (await api.http.get("/__emulator/faults")).json()["rates"]["503"] == 1.0
    r = await api.http.post("/__emulator/reset")
    assert r.status_code == 200 and r.json() == {"reset": True}
    assert (await api.http.get("/__emulator/faults")).json()["rates"]["503"] == 0.0
    assert (await api("GET", T)).json()["total"] == 0  # the org is back to its seeded state
    assert len((await api("GET", PATHS.models)).json()["entities"]) == 3
    assert_error(await api.http.get("/__emulator/nothing"), 404, "not.found")
