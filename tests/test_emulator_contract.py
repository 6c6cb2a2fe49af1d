"""The emulator against the contract, in-process (the ASGI app under an httpx transport).

Covers, per endpoint, success and failure answers: OAuth (Basic and form credentials, scope
intersection, bad credentials, the token endpoint's own 400 rate limit), scopes (403 naming the
scope), Genesys-style error bodies and correlation ids, rate-limit headers and 429 with
Retry-After, idempotency (a repeated request id replays the first answer and changes nothing,
also after a dropped answer; injected faults are not remembered), templates (If-Match version,
name.exists, placeholders, template.bound), versions (version.exists, size and token limits,
matrix both ways, PATCH only mutable fields, withdrawal rules), prompts (modelId alias, defaults,
merge-PUT with ETag, model and limit checks, split checks), indexes (If-None-Match, ETag,
immutable fields, 400 vs 422, PROCESSING -> ACTIVE), paging (both styles), models and stores
seeded and nothing else, invocations by split (sticky), routed dispatch with fallbacks,
telemetry, analytics, audit records, admin endpoints only with --admin, state snapshot.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from reconciler.emulator.app import create_app
from reconciler.emulator.config import (
    ClientSpec,
    EmulatorConfig,
    parse_client_spec,
    parse_fault_rate,
)
from reconciler.emulator.state import STORE_ID
from reconciler.emulator.transport import in_process_transport
from reconciler.endpoints import SCOPES

T = "/api/v2/llm-gateway/prompt-templates"
P = "/api/v2/ai/llm/gateway/prompts"
IDX = f"/api/v2/ai/vectorstores/{STORE_ID}/indexes"


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


class Api:
    def __init__(self, **config: Any) -> None:
        self.clock = Clock()
        config.setdefault("ingest_delay", 5.0)
        config.setdefault("admin", True)
        self.app = create_app(EmulatorConfig(**config), clock=self.clock)
        self.http = httpx.AsyncClient(
            transport=in_process_transport(self.app), base_url="http://127.0.0.1:8787"
        )
        self.token = ""

    async def login(
        self, cid: str = "emulator-client", secret: str = "emulator-secret", **data: str
    ) -> httpx.Response:
        r = await self.http.post(
            "/oauth/token", data={"grant_type": "client_credentials", **data}, auth=(cid, secret)
        )
        if r.status_code == 200:
            self.token = r.json()["access_token"]
        return r

    async def __call__(self, method: str, path: str, **kw: Any) -> httpx.Response:
        if not self.token:
            await self.login()
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return await self.http.request(method, path, headers=headers, **kw)


def template(name: str = "support-ticket-classifier", **kw: Any) -> dict[str, Any]:
    return {"name": name, "user_template": "Msg: {{m}}", "variables": ["m"], **kw}


def prompt(tid: str, name: str = "support-agent", **kw: Any) -> dict[str, Any]:
    return {
        "name": name,
        "templateId": tid,
        "modelEndpointRef": "model-gen-4",
        "systemPrompt": "You help.",
        **kw,
    }


def version(v: str, **kw: Any) -> dict[str, Any]:
    return {"version": v, "content": "Hello {{m}}", "variables": {"m": "string"}, **kw}


@pytest.fixture
async def api() -> Any:
    a = Api()
    yield a
    await a.http.aclose()


async def test_oauth_basic_form_scopes_and_token_limit() -> None:
    a = Api(clients=[ClientSpec("c", "secret-1", frozenset(SCOPES.read))])
    r = await a.http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "c",
            "client_secret": "secret-1",
            "scope": "ai:prompt:read ai:prompt:write",
        },
    )
    assert r.status_code == 200 and r.json()["token_type"] == "bearer"
    assert r.json()["scope"] == "ai:prompt:read"  # intersection, not an error
    assert (await a.login("c", "wrong")).status_code == 401
    for _ in range(59):
        assert (await a.login("c", "secret-1")).status_code == 200
    r = await a.login("c", "secret-1")
    assert r.status_code == 400 and r.json() == {
        "error": "invalid_request",
        "description": "rate limit exceeded",
    }
    a.clock.t += 61
    assert (await a.login("c", "secret-1")).status_code == 200
    r = await a("POST", T, json=template())
    assert r.status_code == 403 and r.json()["code"] == "missing.scope"
    assert "llm-gateway:prompt-template:manage" in r.json()["message"]
    assert r.headers["inin-correlation-id"] == r.json()["contextId"]
    r = await a.http.get(T, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and "inin-correlation-id" in r.headers


async def test_rate_limit_headers_and_429() -> None:
    a = Api(rate_limit=3)
    for n in (1, 2, 3):
        r = await a("GET", T)
        assert r.headers["inin-ratelimit-allowed"] == "3"
        assert r.headers["inin-ratelimit-count"] == str(n)
        assert r.headers["inin-ratelimit-reset"] == "60"
    r = await a("GET", T)
    assert r.status_code == 429 and r.json()["code"] == "rate.limited"
    assert r.headers["Retry-After"] == "60"
    a.clock.t += 60
    assert (await a("GET", T)).status_code == 200


async def test_idempotency_replays_and_changes_nothing(api: Api) -> None:
    key = {"X-Genesys-Request-Id": "11111111-1111-1111-1111-111111111111"}
    first = await api("POST", T, json=template(), headers=key)
    again = await api("POST", T, json=template(), headers=key)
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    assert (await api("GET", T)).json()["total"] == 1
    refused = await api("POST", T, json=template(), headers={"X-Genesys-Request-Id": "r2"})
    assert refused.status_code == 409 and refused.json()["code"] == "name.exists"
    replay = await api(
        "POST", T, json=template("other-name"), headers={"X-Genesys-Request-Id": "r2"}
    )
    assert replay.status_code == 409  # the first answer, even with another body
    # drop-after: committed, answer lost; the repeat gets the committed answer
    await api.http.put("/__emulator/faults", json={"rates": {"drop-after": 1.0}})
    with pytest.raises(httpx.RemoteProtocolError):
        await api("POST", T, json=template("third-one"), headers={"X-Genesys-Request-Id": "r3"})
    await api.http.put("/__emulator/faults", json={"rates": {}})
    r = await api("POST", T, json=template("third-one"), headers={"X-Genesys-Request-Id": "r3"})
    assert r.status_code == 201 and (await api("GET", T)).json()["total"] == 2
    # an injected 503 is not remembered
    await api.http.put("/__emulator/faults", json={"rates": {"503": 1.0}})
    assert (
        await api("POST", T, json=template("fourth"), headers={"X-Genesys-Request-Id": "r4"})
    ).status_code == 503
    await api.http.put("/__emulator/faults", json={"rates": {}})
    assert (
        await api("POST", T, json=template("fourth"), headers={"X-Genesys-Request-Id": "r4"})
    ).status_code == 201


async def test_templates(api: Api) -> None:
    r = await api("POST", T, json=template(user_template="Hi {{who}}", variables=[]))
    assert r.status_code == 400 and "who" in r.json()["message"]
    assert (await api("POST", T, json=template(max_tokens=100))).status_code == 400
    assert (await api("POST", T, json=template(surprise=1))).json()["code"] == "validation.failed"
    t = (await api("POST", T, json=template(id="ignored", version=99))).json()
    assert t["version"] == 1 and t["max_tokens"] == 4096 and t["id"] != "ignored"
    assert t["safety_guardrails"] == {
        "jailbreak_detection": True,
        "output_moderation": True,
        "pii_filter": True,
    }
    r = await api(
        "PUT", f"{T}/{t['id']}", json=template(description="d"), headers={"If-Match": "version=1"}
    )
    assert r.status_code == 200 and r.json()["version"] == 2
    r = await api("PUT", f"{T}/{t['id']}", json=template(), headers={"If-Match": "version=1"})
    assert r.status_code == 412 and r.json()["code"] == "precondition.failed"
    await api("POST", f"/api/v2/ai/prompt-templates/{t['id']}/versions", json=version("1.0.0"))
    await api("POST", P, json=prompt(t["id"]))
    r = await api("DELETE", f"{T}/{t['id']}")
    assert r.status_code == 409 and r.json()["code"] == "template.bound"
    assert (await api("GET", f"{T}/nope")).status_code == 404


async def test_versions(api: Api) -> None:
    tid = (await api("POST", T, json=template())).json()["id"]
    V = f"/api/v2/ai/prompt-templates/{tid}/versions"
    r = await api(
        "POST", V, json=version("1.0.0"), headers={"X-Genesys-AB-Test": "variant=a,traffic=20"}
    )
    assert r.status_code == 201 and r.json()["status"] == "ACTIVE" and r.json()["contentHash"]
    assert (await api("POST", V, json=version("1.0.0"))).json()["code"] == "version.exists"
    assert (
        await api("POST", V, json=version("1.1.0", content="Hi {{m}} {{x}}"))
    ).status_code == 400
    r = await api("POST", V, json=version("1.1.0", variables={"m": "string", "z": "number"}))
    assert r.status_code == 400 and "not used in the content: z" in r.json()["message"]
    assert (
        await api("POST", V, json=version("1.1.0", content="é" * 2049 + "{{m}}"))
    ).status_code == 400
    r = await api("PATCH", f"{V}/1.0.0", json={"content": "changed {{m}}"})
    assert r.status_code == 422 and r.json()["code"] == "immutable.field"
    r = await api("PATCH", f"{V}/1.0.0", json={"metadata": {"owner": "x"}})
    assert r.status_code == 200 and r.json()["metadata"] == {"owner": "x"}
    await api("POST", P, json=prompt(tid, trafficDistribution={"defaultVersion": "1.0.0"}))
    r = await api("PATCH", f"{V}/1.0.0", json={"rollbackDirective": True})
    assert r.status_code == 409 and r.json()["code"] == "version.routed"
    assert (await api("DELETE", f"{V}/1.0.0")).json()["code"] == "version.routed"
    await api("POST", V, json=version("2.0.0", rollbackDirective=True))
    pid = (await api("GET", P)).json()["entities"][0]["id"]
    r = await api("PUT", f"{P}/{pid}", json={"trafficDistribution": {"defaultVersion": "2.0.0"}})
    assert r.status_code == 409 and r.json()["code"] == "version.withdrawn"
    assert (await api("DELETE", f"{V}/2.0.0")).status_code == 204


async def test_prompts(api: Api) -> None:
    tid = (await api("POST", T, json=template())).json()["id"]
    for v in ("1.0.0", "1.1.0"):
        await api("POST", f"/api/v2/ai/prompt-templates/{tid}/versions", json=version(v))
    body = prompt(tid)
    del body["modelEndpointRef"]
    r = await api("POST", P, json={**body, "modelId": "anthropic/claude-3-sonnet"})
    assert r.status_code == 201
    p = r.json()
    assert p["modelEndpointRef"] == "anthropic/claude-3-sonnet" and "modelId" not in p
    assert (p["temperature"], p["topP"], p["maxTokens"], p["fallbackModels"]) == (
        0.7,
        0.95,
        2048,
        [],
    )
    assert "version" not in p and "trafficDistribution" not in p
    assert r.headers["ETag"] == p["etag"]
    r = await api(
        "PUT", f"{P}/{p['id']}", json={"temperature": 1.1}, headers={"If-Match": p["etag"]}
    )
    assert (
        r.status_code == 200
        and r.json()["systemPrompt"] == "You help."
        and r.json()["temperature"] == 1.1
    )
    r = await api(
        "PUT", f"{P}/{p['id']}", json={"temperature": 1.2}, headers={"If-Match": p["etag"]}
    )
    assert r.status_code == 412
    for bad in (
        {"temperature": 2.5},
        {"fallbackModels": ["gpt-x"]},
        {"maxTokens": 999999},
        {"systemPrompt": "x" * 8001},
        {
            "safetyGuardrails": {"maxTokens": 10, "contentFiltering": [], "blockedCategories": []},
            "systemPrompt": "y" * 100,
        },
        {"safetyGuardrails": {"contentFiltering": ["nsfw"]}},
        {"trafficDistribution": {"versions": [{"version": "1.0.0", "weight": 0.5}]}},
        {"trafficDistribution": {"versions": [{"version": "9.9.9", "weight": 1.0}]}},
    ):
        r = await api("PUT", f"{P}/{p['id']}", json=bad)
        assert r.status_code == 400 and r.json()["code"] == "validation.failed", bad
    split = {
        "versions": [{"version": "1.0.0", "weight": 0.8}, {"version": "1.1.0", "weight": 0.2}],
        "splitStrategy": "sticky",
    }
    assert (
        await api("PUT", f"{P}/{p['id']}", json={"trafficDistribution": split})
    ).status_code == 200
    assert (await api("POST", P, json=prompt(tid))).json()["code"] == "name.exists"
    assert (await api("POST", P, json=prompt("no-such-template", "other"))).status_code == 400
    # invocations follow the split; sticky by session
    served = set()
    for _ in range(5):
        r = await api(
            "POST",
            "/api/v2/ai/llm/gateway/invocations",
            json={"promptId": p["id"], "userInput": "hi", "sessionId": "s-1"},
        )
        served.add(r.json()["version"])
    assert len(served) == 1
    tele = await api(
        "GET", "/api/v2/ai/llm/gateway/telemetry", params={"promptId": p["id"], "pageSize": 2}
    )
    assert len(tele.json()["entities"]) == 2 and tele.json()["nextPageCursor"]
    rows = (
        await api(
            "POST",
            "/api/v2/analytics/llm-gateway/details/query",
            json={"groupBy": ["version"], "metrics": ["totalTokens"]},
        )
    ).json()["data"]
    assert sum(r["count"] for r in rows) == 5
    assert (await api("DELETE", f"{P}/{p['id']}")).status_code == 204


async def test_dispatch_falls_back_in_order(api: Api) -> None:
    await api.http.put("/__emulator/faults", json={"failingModels": ["model-gen-4"]})
    r = await api(
        "POST",
        "/api/v2/ai/gateway/prompts",
        json={
            "modelId": "model-gen-4",
            "prompt": "hi",
            "fallbackModels": ["model-fallback-3", "anthropic/claude-3-sonnet"],
        },
    )
    assert r.status_code == 200 and r.json()["model"] == "model-fallback-3"
    assert [a["model"] for a in r.json()["attempts"]] == ["model-gen-4", "model-fallback-3"]


async def test_indexes(api: Api) -> None:
    spec = {
        "dimensions": 1536,
        "similarityMetric": "cosine",
        "embeddingFormat": "float32",
        "autoIngestTrigger": True,
    }
    r = await api("PUT", f"{IDX}/idx-1", json=spec, headers={"If-None-Match": "*"})
    assert r.status_code == 201 and r.json()["status"] == "PROCESSING"
    etag = r.headers["ETag"]
    r = await api("PUT", f"{IDX}/idx-1", json=spec, headers={"If-None-Match": "*"})
    assert r.status_code == 409 and r.json()["code"] == "precondition.failed"
    r = await api("PUT", f"{IDX}/idx-1", json=spec, headers={"If-Match": etag})
    assert r.status_code == 409 and r.json()["code"] == "index.processing"
    api.clock.t += 5
    assert (await api("GET", f"{IDX}/idx-1")).json()["status"] == "ACTIVE"
    r = await api(
        "PUT", f"{IDX}/idx-1", json={**spec, "dimensions": 768}, headers={"If-Match": etag}
    )
    assert r.status_code == 422 and r.json()["code"] == "immutable.field"
    r = await api(
        "PUT",
        f"{IDX}/idx-1",
        json={**spec, "autoIngestTrigger": False},
        headers={"If-Match": '"stale"'},
    )
    assert r.status_code == 409 and r.json()["code"] == "precondition.failed"
    r = await api(
        "PUT", f"{IDX}/idx-1", json={**spec, "autoIngestTrigger": False}, headers={"If-Match": etag}
    )
    assert r.status_code == 200 and r.json()["status"] == "ACTIVE" and r.json()["etag"] != etag
    assert (await api("PUT", f"{IDX}/idx-2", json={**spec, "dimensions": 5000})).status_code == 400
    assert (
        await api("PUT", f"{IDX}/idx-2", json={**spec, "similarityMetric": "l7"})
    ).status_code == 422
    assert (
        await api("PUT", "/api/v2/ai/vectorstores/nope/indexes/x", json=spec)
    ).status_code == 404
    listing = (await api("GET", IDX)).json()
    assert listing["total"] == 1 and listing["entities"][0]["etag"]
    assert (await api("DELETE", f"{IDX}/idx-1")).status_code == 204


async def test_seeded_data_and_paging(api: Api) -> None:
    models = (await api("GET", "/api/v2/ai/models")).json()["entities"]
    assert {(m["id"], m["contextWindow"], m["maxOutputTokens"]) for m in models} == {
        ("anthropic/claude-3-sonnet", 200000, 4096),
        ("model-gen-4", 128000, 4096),
        ("model-fallback-3", 16000, 2048),
    }
    assert [s["id"] for s in (await api("GET", "/api/v2/ai/vectorstores")).json()["entities"]] == [
        STORE_ID
    ]
    assert (await api("GET", T)).json()["total"] == 0 and (await api("GET", P)).json()["total"] == 0
    for i in range(30):
        await api("POST", T, json=template(f"template-{i:02d}"))
    page = (await api("GET", T, params={"pageSize": 25, "pageNumber": 2})).json()
    assert len(page["entities"]) == 5 and page["pageCount"] == page["numPages"] == 2
    assert page["total"] == 30
    assert (await api("GET", T, params={"pageSize": 101})).status_code == 400


async def test_admin_only_with_flag_and_audit_records() -> None:
    a = Api(admin=False)
    assert (await a.http.get("/__emulator/requests")).status_code == 404
    r = await a(
        "POST",
        "/api/v2/ai/llm/gateway/audit-logs",
        json={
            "promptId": "p",
            "action": "update",
            "timestamp": "t",
            "complianceStatus": "APPROVED",
            "details": {},
        },
    )
    assert r.status_code == 201
    b = Api()
    await b("GET", T)
    log = (await b.http.get("/__emulator/requests")).json()["requests"]
    assert log[-1]["method"] == "GET" and log[-1]["status"] == 200
    assert (await b.http.post("/__emulator/reset")).json() == {"reset": True}


def test_state_snapshot_round_trip() -> None:
    from reconciler.emulator.state import Gateway

    g = Gateway(now=lambda: 1.0)
    t = g.create_template(template(), "/t").body
    g.create_version(t["id"], version("1.0.0"))
    h = Gateway(now=lambda: 1.0)
    h.restore(g.snapshot())
    assert h.snapshot() == g.snapshot()


@pytest.mark.parametrize(
    ("spec", "ok"),
    [
        ("a:b", True),
        ("a:b:ai:prompt:read", True),
        ("a:b:ai:prompt:read,nope:x", False),
        ("a", False),
    ],
)
def test_client_spec_parsing(spec: str, ok: bool) -> None:
    if ok:
        assert parse_client_spec(spec).id == "a"
    else:
        with pytest.raises(ValueError):
            parse_client_spec(spec)


def test_fault_rate_parsing() -> None:
    assert parse_fault_rate("drop-after=0.5") == ("drop-after", 0.5)
    for bad in ("404=0.1", "503=2", "503"):
        with pytest.raises(ValueError):
            parse_fault_rate(bad)
