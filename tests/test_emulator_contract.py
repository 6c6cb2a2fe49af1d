"""The emulator against ``docs/contract.md``, in-process (the ASGI app under an httpx transport,
a plain ``httpx.AsyncClient``, an injected clock and sleep: no sockets, no waiting).

Covers, endpoint by endpoint, success and failure answers:
- command-line values: ``--client`` and ``--fault-rate`` parsing, the default client;
- OAuth: Basic and form credentials, scope intersection, bad credentials, grant type, the token
  endpoint's own 60-a-minute limit (400 invalid_request), expired and unknown bearer tokens;
- common behaviour: Genesys error bodies, ``inin-correlation-id`` on every answer equal to the
  error's contextId, 404/405, every endpoint's scope (403 naming it), rate-limit headers, 429
  with Retry-After, unlimited mode;
- idempotency: a repeated request id replays the first answer (status, body, ETag) and changes
  nothing, per client, for 24 h, before the rate limit; injected 429/500/503/drop-before are not
  remembered; drop-after commits and a repeat gets the committed answer;
- templates, versions, prompts (and splits), vector stores and indexes: defaults, server fields,
  validation limits, preconditions (412 and 004's 409), name/version conflicts, immutability,
  withdrawal rules, PROCESSING -> ACTIVE on the injected clock;
- paging: page-number on every list, cursor on telemetry;
- runtime: invocations following the split (seeded, sticky), fallbacks in order for invocations
  and routed dispatch, telemetry, analytics grouping, audit records;
- faults: seeded reproducible sequence, latency and jitter through the injected sleep, admin
  endpoints (only with admin, no token, never faulted, reset to the seeded org);
- state: snapshot/restore round trips (org and idempotency memory);
- seed reconciliations (docs/contract.md): a prompt without templateId splitting over its own
  labels (003), dispatch metadata and the request id echoed (001), Go's empty webhook URL and
  id beside indexId (004), OAuth errors with error_description, If-Match/If-None-Match forms
  read the same for every kind, an injected 429's headers agreeing with Retry-After, a version
  created withdrawn (000); a request id naming one operation (method and path).
"""

from __future__ import annotations

import copy
import hashlib
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
from reconciler.emulator.state import STORE_ID, Gateway
from reconciler.emulator.transport import in_process_transport
from reconciler.endpoints import HEADERS, PATHS, SCOPES

URL = "http://127.0.0.1:8787"
T = PATHS.templates
P = PATHS.prompts
IDX = PATHS.indexes.format(vectorStoreId=STORE_ID)
INVOKE, DISPATCH = PATHS.invocations, PATHS.dispatch
TELEMETRY, ANALYTICS, AUDIT = PATHS.telemetry, PATHS.analytics, PATHS.audit_logs
RID = HEADERS.request_id
ERROR_KEYS = {"message", "code", "status", "contextId", "details"}


def V(tid: str, version: str | None = None) -> str:
    if version is None:
        return PATHS.versions.format(templateId=tid)
    return PATHS.version.format(templateId=tid, version=version)


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


class Api:
    """One in-process emulator, a plain httpx client on it, and a logged-in token."""

    def __init__(self, **config: Any) -> None:
        self.clock = Clock()
        self.sleeps: list[float] = []
        config.setdefault("ingest_delay", 5.0)
        config.setdefault("admin", True)
        config.setdefault("rate_limit", 0)
        self.config = EmulatorConfig(**config)
        self.app = create_app(self.config, clock=self.clock, sleep=self._sleep)
        self.http = httpx.AsyncClient(transport=in_process_transport(self.app), base_url=URL)
        self.token = ""

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    async def login(
        self,
        cid: str = DEFAULT_CLIENT_ID,
        secret: str = DEFAULT_CLIENT_SECRET,
        **form: str,
    ) -> httpx.Response:
        r = await self.http.post(
            PATHS.token, data={"grant_type": "client_credentials", **form}, auth=(cid, secret)
        )
        if r.status_code == 200:
            self.token = r.json()["access_token"]
        return r

    async def __call__(self, method: str, path: str, **kw: Any) -> httpx.Response:
        if not self.token:
            assert (await self.login()).status_code == 200
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return await self.http.request(method, path, headers=headers, **kw)

    def session(self) -> Api:
        """Another client session on the same emulator (log in again to get its token)."""
        other = copy.copy(self)
        other.token = ""
        return other

    async def faults(self, **faults: Any) -> httpx.Response:
        r = await self.http.put("/__emulator/faults", json=faults)
        assert r.status_code == 200, r.text
        return r

    async def template(self, name: str = "support-ticket-classifier", **kw: Any) -> dict[str, Any]:
        r = await self("POST", T, json=template(name, **kw))
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def version(self, tid: str, v: str, **kw: Any) -> dict[str, Any]:
        r = await self("POST", V(tid), json=version(v, **kw))
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def prompt(self, tid: str, name: str = "support-agent", **kw: Any) -> dict[str, Any]:
        r = await self("POST", P, json=prompt(tid, name, **kw))
        assert r.status_code == 201, r.text
        return dict(r.json())


def template(name: str = "support-ticket-classifier", **kw: Any) -> dict[str, Any]:
    return {"name": name, "user_template": "Msg: {{m}}", "variables": ["m"], **kw}


def version(v: str, **kw: Any) -> dict[str, Any]:
    return {"version": v, "content": "Hello {{m}}", "variables": {"m": "string"}, **kw}


def prompt(tid: str, name: str = "support-agent", **kw: Any) -> dict[str, Any]:
    return {
        "name": name,
        "templateId": tid,
        "modelEndpointRef": "model-gen-4",
        "systemPrompt": "You help.",
        **kw,
    }


INDEX = {"dimensions": 1536, "similarityMetric": "cosine", "embeddingFormat": "float32"}


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert set(body) == ERROR_KEYS and body["code"] == code and body["status"] == status
    assert r.headers[HEADERS.correlation_id] == body["contextId"]
    return body


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    a = Api()
    yield a
    await a.http.aclose()


# -- command-line values -----------------------------------------------------------------------


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


# -- OAuth -------------------------------------------------------------------------------------


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


# -- common behaviour --------------------------------------------------------------------------


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


# -- idempotency -------------------------------------------------------------------------------


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


# -- prompt templates --------------------------------------------------------------------------


async def test_template_defaults_and_server_managed_fields(api: Api) -> None:
    r = await api(
        "POST",
        T,
        json=template(id="ignored", version=99, dateCreated="x", selfUri="y", description=None),
    )
    assert r.status_code == 201
    t = r.json()
    assert t["id"] != "ignored" and t["version"] == 1 and t["max_tokens"] == 4096
    assert t["safety_guardrails"] == {
        "pii_filter": True,
        "jailbreak_detection": True,
        "output_moderation": True,
    }
    assert "description" not in t and "system_instruction" not in t and t["labels"] == {}
    assert t["selfUri"] == f"{URL}{T}/{t['id']}" and t["dateCreated"] == t["dateModified"]
    assert (await api("GET", f"{T}/{t['id']}")).json() == t
    partial = await api.template("partial-guards", safety_guardrails={"pii_filter": False})
    assert partial["safety_guardrails"]["pii_filter"] is False
    assert partial["safety_guardrails"]["output_moderation"] is True


@pytest.mark.parametrize(
    "change",
    [
        {"name": "ab"},
        {"name": "x" * 129},
        {"max_tokens": 255},
        {"max_tokens": 128001},
        {"max_tokens": "4096"},
        {"safety_guardrails": {"pii_filter": "yes"}},
        {"safety_guardrails": {"toxicity": True}},
        {"user_template": "Hi {{who}}", "variables": []},
        {"variables": "m"},
        {"surprise": 1},
    ],
)
async def test_template_validation(api: Api, change: dict[str, Any]) -> None:
    body = assert_error(
        await api("POST", T, json={**template(), **change}), 400, "validation.failed"
    )
    assert body["details"]


async def test_template_limits_are_inclusive(api: Api) -> None:
    await api.template("abc", max_tokens=256)
    await api.template("x" * 128, max_tokens=128000)


async def test_template_replace_with_if_match_and_conflicts(api: Api) -> None:
    t = await api.template()
    other = await api.template("other-template")
    url = f"{T}/{t['id']}"
    assert (await api("GET", T)).json()["entities"][1] == t
    r = await api("PUT", url, json=template(description="d"), headers={"If-Match": "version=1"})
    assert r.status_code == 200 and r.json()["version"] == 2 and r.json()["description"] == "d"
    assert r.json()["dateCreated"] == t["dateCreated"]
    assert (await api("GET", T)).json()["entities"][1] == r.json()  # never a stale page
    body = assert_error(
        await api("PUT", url, json=template(), headers={"If-Match": "version=1"}),
        412,
        "precondition.failed",
    )
    assert "version 2" in body["message"]
    r = await api("PUT", url, json=template(), headers={"If-Match": "2"})
    assert r.status_code == 200 and "description" not in r.json()  # a replace, not a merge
    assert (await api("PUT", url, json=template())).json()["version"] == 4
    assert_error(await api("PUT", url, json=template(other["name"])), 409, "name.exists")
    assert_error(await api("PUT", f"{T}/nope", json=template()), 404, "not.found")


async def test_template_delete_refused_while_bound(api: Api) -> None:
    t = await api.template()
    await api.version(t["id"], "1.0.0")
    p = await api.prompt(t["id"])
    body = assert_error(await api("DELETE", f"{T}/{t['id']}"), 409, "template.bound")
    assert "support-agent" in body["message"]
    assert (await api("DELETE", f"{P}/{p['id']}")).status_code == 204
    r = await api("DELETE", f"{T}/{t['id']}")
    assert r.status_code == 204 and r.content == b""
    assert_error(await api("GET", f"{T}/{t['id']}"), 404, "not.found")
    assert_error(await api("GET", V(t["id"])), 404, "not.found")


# -- template versions -------------------------------------------------------------------------


async def test_version_create_read_and_list(api: Api) -> None:
    tid = (await api.template())["id"]
    r = await api(
        "POST",
        V(tid),
        json=version(
            "1.2.0",
            abTestingTrigger={"enabled": True, "trafficPercent": 0.2, "variantId": "b"},
            metadata={"owner": "ops"},
        ),
        headers={HEADERS.ab_test: "variant=b,traffic=20"},
    )
    assert r.status_code == 201
    v = r.json()
    assert v["status"] == "ACTIVE" and v["rollbackDirective"] is False and v["dateCreated"]
    assert v["templateId"] == tid and v["metadata"] == {"owner": "ops"}
    assert v["contentHash"] == "sha256:" + hashlib.sha256(b"Hello {{m}}").hexdigest()
    assert (await api("GET", V(tid, "1.2.0"))).json() == v
    for n in ("1.10.0", "1.0.0"):
        await api.version(tid, n)
    listing = (await api("GET", V(tid))).json()
    assert [x["version"] for x in listing["entities"]] == ["1.0.0", "1.2.0", "1.10.0"]
    assert_error(await api("POST", V(tid), json=version("1.0.0")), 409, "version.exists")
    assert_error(await api("GET", V(tid, "9.9.9")), 404, "not.found")
    assert_error(await api("POST", V("nope"), json=version("1.0.0")), 404, "not.found")
    r = await api(
        "POST",
        V(tid),
        json=version("2.0.0", abTestingTrigger={"enabled": True, "trafficPercent": 0.2}),
        headers={HEADERS.ab_test: "variant=b,traffic=30"},
    )
    assert "traffic 30" in assert_error(r, 400, "validation.failed")["message"]
    r = await api("POST", V(tid), json=version("2.0.0"), headers={HEADERS.ab_test: "50%"})
    assert HEADERS.ab_test in assert_error(r, 400, "validation.failed")["message"]


@pytest.mark.parametrize(
    "change",
    [
        {"content": "Hi {{m}} {{x}}"},  # a placeholder missing from the matrix
        {"variables": {"m": "string", "z": "number"}},  # a matrix key unused
        {"content": "é" * 2047 + "{{m}}"},  # 4099 bytes of UTF-8, 2052 characters
        {"version": "v2"},
        {"content": ""},
        {"rollbackDirective": "yes"},
        {"abTestingTrigger": {"trafficPercent": 1.5}},
        {"metadata": {"n": 1}},
        {"colour": "blue"},
    ],
)
async def test_version_validation(api: Api, change: dict[str, Any]) -> None:
    tid = (await api.template())["id"]
    assert_error(
        await api("POST", V(tid), json={**version("1.0.0"), **change}), 400, "validation.failed"
    )


async def test_version_content_limit_counts_bytes(api: Api) -> None:
    tid = (await api.template())["id"]
    await api.version(tid, "1.0.0", content="é" * 2045 + "{{m}}")  # 4095 bytes


async def test_version_patch_changes_only_mutable_fields(api: Api) -> None:
    tid = (await api.template())["id"]
    v = await api.version(tid, "1.0.0")
    body = assert_error(
        await api("PATCH", V(tid, "1.0.0"), json={"content": "changed {{m}}"}),
        422,
        "immutable.field",
    )
    assert body["details"] == ["content"]
    assert_error(
        await api("PATCH", V(tid, "1.0.0"), json={"abTestingTrigger": {"enabled": True}}),
        422,
        "immutable.field",
    )
    assert_error(
        await api("PATCH", V(tid, "1.0.0"), json={"colour": "x"}), 400, "validation.failed"
    )
    r = await api(
        "PATCH",
        V(tid, "1.0.0"),
        json={"metadata": {"owner": "x"}, "labels": {"team": "a"}, "content": v["content"]},
    )
    assert r.status_code == 200
    assert r.json()["metadata"] == {"owner": "x"} and r.json()["labels"] == {"team": "a"}
    assert r.json()["contentHash"] == v["contentHash"]


async def test_version_withdrawal_rules(api: Api) -> None:
    tid = (await api.template())["id"]
    for n in ("1.0.0", "1.1.0"):
        await api.version(tid, n)
    p = await api.prompt(tid, trafficDistribution={"defaultVersion": "1.0.0"})
    assert_error(
        await api("PATCH", V(tid, "1.0.0"), json={"rollbackDirective": True}), 409, "version.routed"
    )
    assert_error(await api("DELETE", V(tid, "1.0.0")), 409, "version.routed")
    split = {"versions": [{"version": "1.0.0", "weight": 0.0}, {"version": "1.1.0", "weight": 1.0}]}
    r = await api("PUT", f"{P}/{p['id']}", json={"trafficDistribution": split})
    assert r.status_code == 200
    r = await api("PATCH", V(tid, "1.0.0"), json={"rollbackDirective": True})
    assert r.status_code == 200 and r.json()["status"] == "WITHDRAWN"
    body = assert_error(
        await api(
            "PUT", f"{P}/{p['id']}", json={"trafficDistribution": {"defaultVersion": "1.0.0"}}
        ),
        409,
        "version.withdrawn",
    )
    assert "1.0.0" in body["message"]
    half = {"versions": [{"version": "1.0.0", "weight": 0.5}, {"version": "1.1.0", "weight": 0.5}]}
    assert_error(
        await api("PUT", f"{P}/{p['id']}", json={"trafficDistribution": half}),
        409,
        "version.withdrawn",
    )
    w = await api.version(tid, "2.0.0", rollbackDirective=True)
    assert w["status"] == "WITHDRAWN"
    r = await api("PATCH", V(tid, "1.0.0"), json={"rollbackDirective": False})
    assert r.json()["status"] == "ACTIVE"
    assert (await api("DELETE", V(tid, "2.0.0"))).status_code == 204
    assert_error(await api("GET", V(tid, "2.0.0")), 404, "not.found")


# -- gateway prompts ---------------------------------------------------------------------------


async def test_prompt_create_defaults_alias_and_etag(api: Api) -> None:
    tid = (await api.template())["id"]
    body = prompt(tid)
    del body["modelEndpointRef"]
    r = await api("POST", P, json={**body, "modelId": "anthropic/claude-3-sonnet", "id": "x"})
    assert r.status_code == 201
    p = r.json()
    assert p["modelEndpointRef"] == "anthropic/claude-3-sonnet" and "modelId" not in p
    assert p["templateId"] == tid and p["id"] != "x" and p["status"]
    assert (p["temperature"], p["topP"], p["maxTokens"], p["fallbackModels"]) == (
        0.7,
        0.95,
        2048,
        [],
    )
    assert p["safetyGuardrails"] == {
        "contentFiltering": [],
        "maxTokens": 4096,
        "blockedCategories": [],
    }
    assert "version" not in p and "trafficDistribution" not in p and p["labels"] == {}
    assert r.headers["ETag"] == p["etag"]
    got = await api("GET", f"{P}/{p['id']}")
    assert got.json() == p and got.headers["ETag"] == p["etag"]
    listed = (await api("GET", P)).json()["entities"]
    assert listed == [p]
    assert_error(await api("POST", P, json=prompt(tid)), 409, "name.exists")


@pytest.mark.parametrize("missing", ["name", "modelEndpointRef", "systemPrompt"])
async def test_prompt_required_fields(api: Api, missing: str) -> None:
    tid = (await api.template())["id"]
    body = prompt(tid)
    del body[missing]
    assert (
        missing
        in assert_error(await api("POST", P, json=body), 400, "validation.failed")["message"]
    )


async def test_prompt_merge_put_if_match_and_delete(api: Api) -> None:
    tid = (await api.template())["id"]
    p = await api.prompt(tid, version="1.0.0", labels={"managed-by": "llmgw"})
    url = f"{P}/{p['id']}"
    r = await api("PUT", url, json={"temperature": 1.1}, headers={"If-Match": p["etag"]})
    assert r.status_code == 200
    q = r.json()
    assert q["temperature"] == 1.1 and q["systemPrompt"] == "You help." and q["version"] == "1.0.0"
    assert q["labels"] == {"managed-by": "llmgw"} and q["etag"] != p["etag"]
    assert r.headers["ETag"] == q["etag"]
    assert_error(
        await api("PUT", url, json={"temperature": 1.2}, headers={"If-Match": p["etag"]}),
        412,
        "precondition.failed",
    )
    r = await api("PUT", url, json={"systemPrompt": "You help more.", "version": "1.1.0"})
    assert r.json()["systemPrompt"] == "You help more." and r.json()["temperature"] == 1.1
    r = await api(
        "PUT", url, json={"temperature": None, "version": None, "modelId": "model-fallback-3"}
    )
    assert r.json()["temperature"] == 0.7 and "version" not in r.json()
    assert r.json()["modelEndpointRef"] == "model-fallback-3"
    assert_error(await api("PUT", f"{P}/nope", json={}), 404, "not.found")
    assert_error(
        await api("DELETE", url, headers={"If-Match": p["etag"]}), 412, "precondition.failed"
    )
    assert (await api("DELETE", url, headers={"If-Match": r.json()["etag"]})).status_code == 204
    assert_error(await api("GET", url), 404, "not.found")


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 2.5},
        {"temperature": -0.1},
        {"topP": 1.5},
        {"modelEndpointRef": "gpt-x"},
        {"fallbackModels": ["gpt-x"]},
        {"maxTokens": 4097},
        {"modelEndpointRef": "model-fallback-3", "maxTokens": 2049},
        {"systemPrompt": "x" * 8001},
        {
            "safetyGuardrails": {"maxTokens": 10, "contentFiltering": [], "blockedCategories": []},
            "systemPrompt": "y" * 44,
        },
        {"safetyGuardrails": {"contentFiltering": ["nsfw"]}},
        {"safetyGuardrails": {"blockedCategories": ["gossip"]}},
        {"version": "latest"},
        {"templateId": "no-such-template"},
        {"trafficDistribution": {"versions": [{"version": "1.0.0", "weight": 0.5}]}},
        {"trafficDistribution": {"versions": [{"version": "9.9.9", "weight": 1.0}]}},
        {"trafficDistribution": {"defaultVersion": "9.9.9"}},
        {
            "trafficDistribution": {
                "versions": [{"version": "1.0.0", "weight": 1}],
                "splitStrategy": "x",
            }
        },
        {"colour": "blue"},
    ],
)
async def test_prompt_validation(api: Api, change: dict[str, Any]) -> None:
    tid = (await api.template())["id"]
    await api.version(tid, "1.0.0")
    p = await api.prompt(tid)
    assert_error(await api("PUT", f"{P}/{p['id']}", json=change), 400, "validation.failed")
    assert (await api("GET", f"{P}/{p['id']}")).json() == p  # nothing changed


async def test_prompt_limits_and_split_tolerance(api: Api) -> None:
    tid = (await api.template())["id"]
    for n in ("1.0.0", "1.1.0"):
        await api.version(tid, n)
    p = await api.prompt(
        tid,
        systemPrompt="z" * 8000,
        safetyGuardrails={"maxTokens": 2000},
        temperature=2.0,
        topP=0,
        maxTokens=4096,
        fallbackModels=["model-fallback-3"],
        trafficDistribution={
            "versions": [
                {"version": "1.0.0", "weight": 0.7},
                {"version": "1.1.0", "weight": 0.295},
            ],
            "splitStrategy": "sticky",
        },
    )
    assert p["safetyGuardrails"]["contentFiltering"] == []
    other = await api.template("other-template")
    assert_error(
        await api("PUT", f"{P}/{p['id']}", json={"templateId": other["id"]}),
        400,
        "validation.failed",
    )  # the split's versions are not the new template's


# -- vector stores and indexes -----------------------------------------------------------------


async def test_index_lifecycle_with_ingest_delay(api: Api) -> None:
    spec = {**INDEX, "autoIngestTrigger": True, "webhookSyncUrl": "https://hooks.example/x"}
    r = await api("PUT", f"{IDX}/idx-1", json=spec, headers={"If-None-Match": "*"})
    assert r.status_code == 201
    idx = r.json()
    assert idx["status"] == "PROCESSING" and idx["indexId"] == "idx-1"
    assert idx["etag"] == r.headers["ETag"] and idx["syncEventId"] and idx["updatedAt"]
    assert idx["webhookSyncUrl"] == spec["webhookSyncUrl"] and 0 < idx["retrievalPrecision"] <= 1
    assert_error(
        await api("PUT", f"{IDX}/idx-1", json=spec, headers={"If-None-Match": "*"}),
        409,
        "precondition.failed",
    )
    assert_error(
        await api("PUT", f"{IDX}/idx-1", json=spec, headers={"If-Match": idx["etag"]}),
        409,
        "index.processing",
    )
    api.clock.t += 4
    assert (await api("GET", f"{IDX}/idx-1")).json()["status"] == "PROCESSING"
    api.clock.t += 1
    got = await api("GET", f"{IDX}/idx-1")
    assert got.json()["status"] == "ACTIVE" and got.headers["ETag"] == idx["etag"]
    body = assert_error(
        await api(
            "PUT",
            f"{IDX}/idx-1",
            json={**spec, "dimensions": 768},
            headers={"If-Match": idx["etag"]},
        ),
        422,
        "immutable.field",
    )
    assert body["details"] == ["dimensions"]
    assert_error(
        await api("PUT", f"{IDX}/idx-1", json={**spec, "embeddingFormat": "int8"}),
        422,
        "immutable.field",
    )
    assert_error(
        await api("PUT", f"{IDX}/idx-1", json=spec, headers={"If-Match": '"stale"'}),
        409,
        "precondition.failed",
    )
    r = await api(
        "PUT",
        f"{IDX}/idx-1",
        json={**INDEX, "labels": {"a": "b"}},
        headers={"If-Match": idx["etag"]},
    )
    assert (
        r.status_code == 200 and r.json()["status"] == "ACTIVE" and r.json()["etag"] != idx["etag"]
    )
    assert "webhookSyncUrl" not in r.json() and r.json()["autoIngestTrigger"] is False
    listing = (await api("GET", IDX)).json()
    assert listing["total"] == 1 and listing["entities"] == [r.json()]
    assert_error(
        await api("DELETE", f"{IDX}/idx-1", headers={"If-Match": idx["etag"]}),
        409,
        "precondition.failed",
    )
    assert (await api("DELETE", f"{IDX}/idx-1")).status_code == 204
    assert_error(await api("GET", f"{IDX}/idx-1"), 404, "not.found")
    assert_error(await api("DELETE", f"{IDX}/idx-1"), 404, "not.found")


async def test_index_preconditions_and_validation(api: Api) -> None:
    assert_error(
        await api("PUT", f"{IDX}/new", json=INDEX, headers={"If-Match": '"x"'}),
        409,
        "precondition.failed",
    )
    for dims in (0, 4097, "8"):
        assert_error(
            await api("PUT", f"{IDX}/new", json={**INDEX, "dimensions": dims}),
            400,
            "validation.failed",
        )
    for change in (
        {"similarityMetric": "l7"},
        {"embeddingFormat": "float64"},
        {"autoIngestTrigger": "yes"},
        {"webhookSyncUrl": "ftp://x"},
        {"shards": 3},
        {"indexId": "other"},
    ):
        assert_error(
            await api("PUT", f"{IDX}/new", json={**INDEX, **change}), 422, "validation.failed"
        )
    for path in (
        "/api/v2/ai/vectorstores/nope/indexes/x",
        "/api/v2/ai/vectorstores/nope/indexes",
    ):
        assert_error(await api("GET", path), 404, "not.found")
    assert_error(
        await api("PUT", "/api/v2/ai/vectorstores/nope/indexes/x", json=INDEX), 404, "not.found"
    )
    r = await api("PUT", f"{IDX}/new", json={**INDEX, "autoIngestTrigger": False})
    assert r.status_code == 201 and r.json()["status"] == "ACTIVE"


async def test_ingest_delay_zero_is_active_at_once() -> None:
    a = Api(ingest_delay=0)
    r = await a("PUT", f"{IDX}/i", json={**INDEX, "autoIngestTrigger": True})
    assert r.json()["status"] == "ACTIVE"


# -- seeded data and paging --------------------------------------------------------------------


async def test_seeded_models_and_store_and_nothing_else(api: Api) -> None:
    models = (await api("GET", PATHS.models)).json()["entities"]
    assert {(m["id"], m["contextWindow"], m["maxOutputTokens"]) for m in models} == {
        ("anthropic/claude-3-sonnet", 200000, 4096),
        ("model-gen-4", 128000, 4096),
        ("model-fallback-3", 16000, 2048),
    }
    assert all(m["provider"] for m in models)
    stores = (await api("GET", PATHS.vector_stores)).json()["entities"]
    assert [s["id"] for s in stores] == [STORE_ID] and stores[0]["name"]
    for path in (T, P, IDX):
        assert (await api("GET", path)).json()["total"] == 0


async def test_page_number_paging(api: Api) -> None:
    for i in range(30):
        await api.template(f"template-{i:02d}")
    first = (await api("GET", T)).json()
    assert (first["pageSize"], first["pageNumber"], first["total"]) == (25, 1, 30)
    assert len(first["entities"]) == 25 and first["pageCount"] == first["numPages"] == 2
    second = (await api("GET", T, params={"pageSize": 25, "pageNumber": 2})).json()
    assert len(second["entities"]) == 5
    names = [t["name"] for t in first["entities"] + second["entities"]]
    assert names == sorted(names) and len(set(names)) == 30
    whole = second["entities"][0]
    assert (await api("GET", f"{T}/{whole['id']}")).json() == whole
    assert (await api("GET", T, params={"pageNumber": 3})).json()["entities"] == []
    assert len((await api("GET", T, params={"pageSize": 100})).json()["entities"]) == 30
    for bad in ({"pageSize": 101}, {"pageSize": 0}, {"pageNumber": 0}, {"pageSize": "x"}):
        assert_error(await api("GET", T, params=bad), 400, "validation.failed")
    models = (await api("GET", PATHS.models, params={"pageSize": 2, "pageNumber": 2})).json()
    assert len(models["entities"]) == 1 and models["pageCount"] == 2


# -- runtime -----------------------------------------------------------------------------------


async def _split_prompt(a: Api, strategy: str = "random") -> dict[str, Any]:
    tid = (await a.template())["id"]
    for n in ("1.0.0", "1.1.0"):
        await a.version(tid, n)
    split = {
        "versions": [{"version": "1.0.0", "weight": 0.8}, {"version": "1.1.0", "weight": 0.2}],
        "splitStrategy": strategy,
    }
    return await a.prompt(tid, trafficDistribution=split, fallbackModels=["model-fallback-3"])


async def _invoke(a: Api, pid: str, session: str = "s-1") -> httpx.Response:
    return await a("POST", INVOKE, json={"promptId": pid, "userInput": "hi", "sessionId": session})


async def test_invocations_follow_the_split_reproducibly() -> None:
    runs = []
    for _ in range(2):
        a = Api(seed=5)
        p = await _split_prompt(a)
        served = [(await _invoke(a, p["id"])).json()["version"] for _ in range(200)]
        runs.append(served)
    assert runs[0] == runs[1]
    share = runs[0].count("1.0.0") / 200
    assert 0.7 < share < 0.9 and "1.1.0" in runs[0]
    r = await _invoke(a, p["id"])
    body = r.json()
    assert set(body) >= {"responseId", "output", "version", "tokenUsage"}
    assert set(body["tokenUsage"]) == {"prompt", "completion"} and body["modelId"] == "model-gen-4"
    assert_error(
        await a("POST", INVOKE, json={"promptId": "nope", "userInput": "x"}), 404, "not.found"
    )
    assert_error(await a("POST", INVOKE, json={"userInput": "x"}), 400, "validation.failed")


async def test_sticky_split_keeps_a_session_on_one_version(api: Api) -> None:
    p = await _split_prompt(api, "sticky")
    for session in ("alice", "bob", "carol"):
        served = {(await _invoke(api, p["id"], session)).json()["version"] for _ in range(10)}
        assert len(served) == 1
    many = {(await _invoke(api, p["id"], f"s-{i}")).json()["version"] for i in range(50)}
    assert many == {"1.0.0", "1.1.0"}


async def test_invocation_falls_back_and_records_errors(api: Api) -> None:
    p = await _split_prompt(api)
    await api.faults(failingModels=["model-gen-4"])
    assert (await _invoke(api, p["id"])).json()["modelId"] == "model-fallback-3"
    await api.faults(failingModels=["model-gen-4", "model-fallback-3"])
    assert_error(await _invoke(api, p["id"]), 503, "models.unavailable")
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


async def test_telemetry_cursor_paging_and_filters(api: Api) -> None:
    p = await _split_prompt(api)
    start = api.clock.t
    for _ in range(7):
        await _invoke(api, p["id"])
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
    p = await _split_prompt(api)
    for _ in range(20):
        await _invoke(api, p["id"])
    rows = (await api("POST", ANALYTICS, json={"groupBy": ["version"]})).json()["data"]
    assert {r["version"] for r in rows} == {"1.0.0", "1.1.0"}
    assert all(
        set(r)
        == {"version", "totalTokens", "inputTokens", "outputTokens", "latencyMs", "errorCount"}
        for r in rows
    )
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


# -- faults and admin endpoints ----------------------------------------------------------------


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


# -- state -------------------------------------------------------------------------------------


async def test_snapshot_and_restore_round_trip(api: Api) -> None:
    t = await api.template()
    await api.version(t["id"], "1.0.0")
    p = await api.prompt(t["id"], trafficDistribution={"defaultVersion": "1.0.0"})
    await api("PUT", f"{IDX}/i", json={**INDEX, "autoIngestTrigger": True})
    snap = json.loads(json.dumps(api.app.gateway.snapshot()))
    await api("PUT", f"{P}/{p['id']}", json={"temperature": 0.1})  # later changes don't leak
    assert snap["prompts"][p["id"]]["temperature"] == 0.7
    b = Api()
    b.clock.t = api.clock.t
    r = await b.http.put("/__emulator/state", json=snap)
    assert r.status_code == 200
    assert (await b("GET", f"{P}/{p['id']}")).json() == p
    r = await b("PUT", f"{T}/{t['id']}", json=template(), headers={"If-Match": "version=1"})
    assert r.json()["version"] == 2
    assert (await b("GET", f"{IDX}/i")).json()["status"] == "PROCESSING"
    b.clock.t += 5
    assert (await b("GET", f"{IDX}/i")).json()["status"] == "ACTIVE"
    g = Gateway(now=lambda: 1.0)
    g.restore(snap)
    assert g.snapshot() == snap
    for garbage in ([], {"format": 9}, {"templates": [1, 2]}):
        with pytest.raises(ValueError):
            g.restore(garbage)  # type: ignore[arg-type]


async def test_idempotency_memory_survives_a_snapshot(api: Api) -> None:
    first = await api("POST", T, json=template(), headers={RID: "k"})
    b = Api()
    b.app.emulator.restore(json.loads(json.dumps(api.app.emulator.snapshot())))
    replay = await b("POST", T, json=template(), headers={RID: "k"})
    assert replay.status_code == 201 and replay.content == first.content


# -- seed reconciliations (docs/contract.md, "Seed reconciliations") ---------------------------


async def test_seed_003_prompt_without_template_splits_over_its_own_labels(api: Api) -> None:
    # seed 003's calls, in its order: create (no templateId), a new release, then a split
    r = await api(
        "POST",
        P,
        json={
            "name": "support_agent",
            "modelEndpointRef": "anthropic/claude-3-sonnet",
            "systemPrompt": "You are a helpful customer support agent.",
            "temperature": 0.2,
            "safetyGuardrails": {"contentFiltering": ["pii", "profanity"], "maxTokens": 1500},
            "version": "1.0.0",
            "trafficDistribution": {"defaultVersion": "1.0.0"},
        },
    )
    assert r.status_code == 201, r.text
    p = r.json()
    assert {"id", "version", "status"} <= set(p) and "templateId" not in p
    url = f"{P}/{p['id']}"
    r = await api("PUT", url, json={"systemPrompt": "You help, briefly.", "version": "1.1.0"})
    assert r.status_code == 200 and r.json()["version"] == "1.1.0"
    split = {
        "versions": [{"version": "1.0.0", "weight": 0.8}, {"version": "1.1.0", "weight": 0.2}],
        "splitStrategy": "random",
    }
    r = await api("PUT", url, json={"trafficDistribution": split})
    assert r.status_code == 200 and r.json()["trafficDistribution"] == split
    served = {(await _invoke(api, p["id"], f"s{i}")).json()["version"] for i in range(40)}
    assert served == {"1.0.0", "1.1.0"}
    # a label the prompt never carried is refused, naming the ones it did
    r = await api("PUT", url, json={"trafficDistribution": {"defaultVersion": "2.0.0"}})
    body = assert_error(r, 400, "validation.failed")
    assert "1.0.0, 1.1.0" in body["message"]
    # a bound prompt's split still names its template's versions, not its own labels
    tid = (await api.template())["id"]
    await api.version(tid, "3.0.0")
    r = await api("PUT", url, json={"templateId": tid})
    assert_error(r, 400, "validation.failed")
    r = await api(
        "PUT", url, json={"templateId": tid, "trafficDistribution": {"defaultVersion": "3.0.0"}}
    )
    assert r.status_code == 200 and r.json()["templateId"] == tid
    # the labels survive a snapshot
    b = Api()
    b.app.emulator.restore(api.app.emulator.snapshot())
    r = await b("PUT", url, json={"templateId": None, "trafficDistribution": split})
    assert r.status_code == 200 and "templateId" not in r.json()


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


async def test_seed_004_go_zero_values_and_the_id_beside_index_id(api: Api) -> None:
    config = {  # seed 004's IndexConfig as Go marshals it: no omitempty, so "" when unset
        "indexId": "prod-embedding-index-v2",
        "dimensions": 1536,
        "similarityMetric": "cosine",
        "embeddingFormat": "float32",
        "autoIngestTrigger": False,
        "webhookSyncUrl": "",
    }
    r = await api("PUT", f"{IDX}/prod-embedding-index-v2", json=config)
    assert r.status_code == 201, r.text
    idx = r.json()
    assert idx["id"] == idx["indexId"] == "prod-embedding-index-v2"
    assert "webhookSyncUrl" not in idx  # the zero value is absent, not an invalid URL
    assert {"status", "updatedAt", "syncEventId", "retrievalPrecision"} <= set(idx)
    # the answer sent back as a body: server-managed id ignored, like the other server fields
    r = await api("PUT", f"{IDX}/prod-embedding-index-v2", json={**idx, "id": "whatever"})
    assert r.status_code == 200 and r.json()["id"] == "prod-embedding-index-v2"
    r = await api("PUT", f"{IDX}/prod-embedding-index-v2", json={**config, "webhookSyncUrl": " "})
    assert_error(r, 422, "validation.failed")


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


async def _kinds(api: Api) -> dict[str, tuple[str, str, dict[str, Any], str, int]]:
    """One object of each kind: (path, current tag, body of a no-op write, stale tag, status)."""
    t = await api.template()
    p = await api.prompt(t["id"])
    idx = (await api("PUT", f"{IDX}/i", json=INDEX)).json()
    return {
        "template": (f"{T}/{t['id']}", "version=1", template(), "version=9", 412),
        "prompt": (f"{P}/{p['id']}", p["etag"].strip('"'), {}, "0" * 20, 412),
        "index": (f"{IDX}/i", idx["etag"].strip('"'), INDEX, "0" * 20, 409),
    }


@pytest.mark.parametrize("kind", ["template", "prompt", "index"])
@pytest.mark.parametrize(
    "form",
    ['"{tag}"', 'W/"{tag}"', "w/{tag}", '"{stale}", W/"{tag}"', "*", ' "{stale}" ,"{tag}" '],
)
async def test_if_match_forms_are_read_the_same_for_every_kind(
    api: Api, kind: str, form: str
) -> None:
    path, tag, body, stale, refused = (await _kinds(api))[kind]
    r = await api("PUT", path, json=body, headers={"If-Match": form.format(tag=tag, stale=stale)})
    assert r.status_code == 200, r.text
    for bad in (f'"{stale}"', f'W/"{stale}", "{stale}x"', "", ","):
        r = await api("PUT", path, json=body, headers={"If-Match": bad})
        assert_error(r, refused, "precondition.failed")


async def test_template_tag_forms_name_the_version(api: Api) -> None:
    t = await api.template()
    url = f"{T}/{t['id']}"
    for n, form in enumerate(("1", "version=2", 'W/"version=3"', '"version=2", "4"'), start=1):
        r = await api("PUT", url, json=template(), headers={"If-Match": form})
        assert r.status_code == 200 and r.json()["version"] == n + 1, (form, r.text)
    body = assert_error(
        await api("DELETE", url, headers={"If-Match": "version=4"}), 412, "precondition.failed"
    )
    assert "version=5" in body["message"]


async def test_if_none_match_on_an_index_reads_tags_too(api: Api) -> None:
    tag = (await api("PUT", f"{IDX}/i", json=INDEX)).json()["etag"]
    for form in ("*", tag, f'W/{tag}, "other"'):
        r = await api("PUT", f"{IDX}/i", json=INDEX, headers={"If-None-Match": form})
        assert_error(r, 409, "precondition.failed")
    r = await api("PUT", f"{IDX}/i", json=INDEX, headers={"If-None-Match": '"other"'})
    assert r.status_code == 200


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


async def test_seed_000_version_created_withdrawn(api: Api) -> None:
    # accepted: an org rebuilt from git recreates its withdrawn versions too
    tid = (await api.template())["id"]
    v = await api.version(tid, "2.1.0", rollbackDirective=True)
    assert v["status"] == "WITHDRAWN" and v["rollbackDirective"] is True
    # what seed 000 calls "promoting a version with an active rollback flag" stays a 409
    r = await api("POST", P, json=prompt(tid, trafficDistribution={"defaultVersion": "2.1.0"}))
    assert_error(r, 409, "version.withdrawn")


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


async def test_seed_000_version_request_as_the_tutorial_sends_it(api: Api) -> None:
    tid = (await api.template())["id"]
    body = {
        "templateId": tid,
        "version": "2.1.0",
        "content": "You are a support agent. Analyze the customer issue: {{customer_issue}}. "
        "Provide a resolution using {{tone_preference}}. Reference policy: {{policy_doc}}.",
        "variables": {
            "customer_issue": "string",
            "tone_preference": "string",
            "policy_doc": "string",
        },
        "rollbackDirective": False,
        "abTestingTrigger": {"enabled": True, "trafficPercent": 0.2, "variantId": "v2_1_0_beta"},
        "metadata": {"author": "automation-pipeline", "purpose": "escalation-routing"},
    }
    headers = {HEADERS.ab_test: "variant=v2_1_0_beta,traffic=20"}
    r = await api("POST", V(tid), json=body, headers=headers)
    assert r.status_code == 201, r.text
    assert r.json()["abTestingTrigger"] == body["abTestingTrigger"]
