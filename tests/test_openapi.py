"""The OpenAPI 3.1 document of the contract (``reconciler/emulator/openapi.py``).

Covers: the emulator serves it at ``/api/v2/docs/openapi.json`` without a token, never delayed or
faulted, 405 for another method, with the test-only admin endpoints only when run with
``--admin`` (an admin endpoint without a description is an error); the checked-in
``docs/openapi.json`` equals the generated document; it is a valid OpenAPI 3.1 document (the
specification's own schema, as schemathesis ships it) whose schemas are valid JSON Schema
2020-12; its paths and methods are exactly the emulator's endpoint table plus the token endpoint
and itself, each with the table's scope; a route without a description, or a description without
a route, is an error when it is built; every operation documents the answers any operation can
give (401, 403, 429, 500, 503; 413 with a body) and the headers of every answer; header, field
and paging names come from the endpoint table; the seeded emulator's real answers validate
against the answer schemas.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from schemathesis.specs.openapi.definitions import OPENAPI_31

from reconciler.emulator import openapi
from reconciler.emulator.app import ADMIN_METHODS, ENDPOINTS
from reconciler.endpoints import HEADERS, PATHS, SCOPES
from tests.emulator_api import IDX, INDEX, Api, P, T, template

REPO = Path(__file__).resolve().parent.parent
DOC = openapi.document(ENDPOINTS)
METHODS = {"get", "put", "post", "delete", "patch"}


def _operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): op
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS
    }


async def test_served_without_a_token_and_never_faulted() -> None:
    a = Api(latency_ms=1000)  # an --admin emulator: its document has the admin endpoints too
    await a.faults(rates={"503": 1.0, "drop-before": 1.0})
    r = await a.http.get(openapi.OPENAPI_PATH)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == json.loads(json.dumps(openapi.document(ENDPOINTS, ADMIN_METHODS)))
    assert not a.sleeps
    plain = Api(admin=False, fault_rates={"503": 1.0})
    assert (await plain.http.get(openapi.OPENAPI_PATH)).json() == json.loads(json.dumps(DOC))
    assert r.headers[HEADERS.correlation_id]
    r = await a.http.post(openapi.OPENAPI_PATH)
    assert r.status_code == 405 and r.headers["Allow"] == "GET"
    assert r.json()["code"] == "method.not.allowed"


def test_the_checked_in_copy_is_the_generated_document() -> None:
    copy = (REPO / "docs" / "openapi.json").read_text(encoding="utf-8")
    assert copy == openapi.dumps(DOC), (
        "docs/openapi.json is stale: python -m reconciler.emulator.openapi > docs/openapi.json"
    )


def test_a_valid_openapi_3_1_document() -> None:
    jsonschema.Draft202012Validator(OPENAPI_31).validate(DOC)
    for schema in DOC["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    assert DOC["openapi"] == "3.1.0"


def test_paths_methods_and_scopes_are_the_endpoint_table() -> None:
    ops = _operations(DOC)
    table = {(e.method, e.path): e.scope for e in ENDPOINTS}
    assert set(ops) == set(table) | {("POST", PATHS.token), ("GET", openapi.OPENAPI_PATH)}
    for key, scope in table.items():
        assert ops[key]["security"] == [{"oauth2": [scope]}, {"bearer": []}], key
        assert ops[key]["x-scope"] == scope
    assert ops[("GET", openapi.OPENAPI_PATH)]["security"] == []
    flows = DOC["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"]
    assert flows["tokenUrl"] == PATHS.token and set(flows["scopes"]) == set(SCOPES.all)
    ids = [op["operationId"] for op in ops.values()]
    assert len(ids) == len(set(ids))


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    scope: str


def test_routes_and_descriptions_cannot_drift() -> None:
    with pytest.raises(KeyError, match="GET /api/v2/ai/new-thing has no description"):
        openapi.document([*ENDPOINTS, Route("GET", "/api/v2/ai/new-thing", SCOPES.prompt_read)])
    with pytest.raises(KeyError, match="describes routes the emulator lacks"):
        openapi.document(ENDPOINTS[1:])


def test_admin_endpoints_only_in_an_admin_emulators_document() -> None:
    assert not [p for p in DOC["paths"] if p.startswith("/__emulator/")]
    assert "emulator admin" not in {t["name"] for t in DOC["tags"]}
    admin = openapi.document(ENDPOINTS, ADMIN_METHODS)
    ops = {k: op for k, op in _operations(admin).items() if k[1].startswith("/__emulator/")}
    assert {(m, p.removeprefix("/__emulator/")) for m, p in ops} == {
        (m, name) for name, methods in ADMIN_METHODS.items() for m in methods
    }
    assert all(op["security"] == [] and op["tags"] == ["emulator admin"] for op in ops.values())
    jsonschema.Draft202012Validator(OPENAPI_31).validate(admin)
    with pytest.raises(KeyError, match="clock"):
        openapi.document(ENDPOINTS, {**ADMIN_METHODS, "clock": ("GET",)})
    with pytest.raises(KeyError, match="methods"):
        openapi.document(ENDPOINTS, {**ADMIN_METHODS, "reset": ("POST", "DELETE")})


def test_every_operation_documents_the_answers_any_can_give() -> None:
    for (method, path), op in _operations(DOC).items():
        statuses = set(op["responses"])
        if path == openapi.OPENAPI_PATH:
            assert statuses == {"200"}
            continue
        if path == PATHS.token:
            assert statuses == {"200", "400", "401", "413"}
            continue
        assert {"401", "403", "429", "500", "503"} <= statuses, (method, path)
        assert ("413" in statuses) == ("requestBody" in op), (method, path)
        assert any(s.startswith("2") for s in statuses)
        for status, answer in op["responses"].items():
            answer = _resolve(answer)
            headers = {h.lower() for h in answer["headers"]}
            assert {HEADERS.correlation_id, HEADERS.rate_allowed, HEADERS.rate_count} <= headers
            assert HEADERS.rate_reset in headers
            if status == "429":
                assert _resolve(answer["headers"][HEADERS.retry_after])["required"] is True
            if status.startswith("4") or status.startswith("5"):
                schema = answer["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        _, _, section, name = node["$ref"].split("/")
        node = DOC["components"][section][name]
    return node


def test_names_come_from_the_endpoint_table() -> None:
    names = {getattr(HEADERS, f) for f in HEADERS.__dataclass_fields__}
    documented = set()
    for op in _operations(DOC).values():
        for answer in op["responses"].values():
            documented |= set(_resolve(answer).get("headers", {}))
        for p in op.get("parameters", []):
            p = _resolve(p)
            if p["in"] == "header":
                documented.add(p["name"])
    standard = {"WWW-Authenticate", "Cache-Control"}
    assert documented - standard <= names
    assert {HEADERS.if_match, HEADERS.if_none_match, HEADERS.request_id, HEADERS.ab_test} <= (
        documented
    )
    assert {HEADERS.etag, HEADERS.retry_after} <= documented


def _validator(name: str) -> jsonschema.Draft202012Validator:
    """A validator of ``#/components/schemas/name`` that resolves the document's refs."""
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{name}", **DOC})


async def test_real_answers_validate_against_the_answer_schemas(api: Api) -> None:
    t = (await api("POST", T, json=template(description="d"))).json()
    _validator("Template").validate(t)
    v = await api.version(
        t["id"], "1.0.0", metadata={"a": "b"}, abTestingTrigger={"enabled": False}
    )
    _validator("Version").validate(v)
    p = await api.prompt(t["id"], version="1.0.0", trafficDistribution={"defaultVersion": "1.0.0"})
    _validator("Prompt").validate(p)
    idx = (await api("PUT", f"{IDX}/i", json={**INDEX, "webhookSyncUrl": "https://h/x"})).json()
    _validator("Index").validate(idx)
    for path, page in ((T, "TemplatePage"), (P, "PromptPage"), (IDX, "IndexPage")):
        _validator(page).validate((await api("GET", path)).json())
    inv = await api("POST", PATHS.invocations, json={"promptId": p["id"], "userInput": "hi"})
    _validator("InvocationAnswer").validate(inv.json())
    _validator("TelemetryPage").validate((await api("GET", PATHS.telemetry)).json())
    rows = await api("POST", PATHS.analytics, json={"groupBy": ["version", "promptId"]})
    _validator("AnalyticsAnswer").validate(rows.json())
    err = await api("POST", T, json={**template(), "surprise": 1})
    _validator("Error").validate(err.json())
    tok = await api.login()
    _validator("Token").validate(tok.json())
    bad = await api.login(secret="wrong")
    _validator("OAuthError").validate(bad.json())


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    a = Api()
    yield a
    await a.http.aclose()
