"""schemathesis, a tool nobody here wrote, fuzzes the in-process emulator against the OpenAPI
document the emulator itself serves (``GET /api/v2/docs/openapi.json``, read through its ASGI
support: no sockets).

Covers, for every operation of the document: positive and negative requests (wrong types in
every field, missing and extra fields, non-object bodies, bounds, query parameters of the wrong
type, odd strings in path parameters and headers), and that every answer is documented: no 5xx,
a documented status, the documented content type, body schema and headers (correlation id, rate
headers, ETag, Retry-After), 401 without a token (ignored_auth), 405 with a truthful Allow for
undeclared methods, schema-violating requests refused. positive_data_acceptance is left out: the
cross-field rules (placeholders, model list, split sums, existing versions) refuse schema-valid
requests by design, and the document says so per operation.

Each case runs against the same seeded org (a template with two versions, a bound and an unbound
prompt, an active and an ingesting index), restored before the case; positive cases use its ids
for three quarters of their path parameters and id-valued body fields, so validation past the
404 is reached too. The test-only admin endpoints are fuzzed the same way on an ``--admin``
emulator of their own (whose document has them), so faults they set never reach the API cases.
The run is bounded and deterministic: ``MAX_EXAMPLES`` per operation,
derandomized, no deadline, no example database, an injected clock. Bugs it found are kept as
fixed examples in ``test_emulator_robustness.py`` and the section's ``test_emulator_*.py``.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import positive_data_acceptance

from reconciler.emulator.app import create_app
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.openapi import OPENAPI_PATH
from reconciler.emulator.state import STORE_ID
from reconciler.endpoints import HEADERS, PATHS

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 15
NOW = 1_800_000_000.0
BASIC = "Basic " + base64.b64encode(b"emulator-client:emulator-secret").decode()

APP = create_app(
    EmulatorConfig(rate_limit=0, token_rate_limit=0, seed=12, ingest_delay=30.0),
    clock=lambda: NOW,
)
EMULATOR = APP.emulator
GATEWAY = APP.gateway


def _seed() -> dict[str, Any]:
    """The org every case starts from, and the ids its positive cases aim at."""
    base = "http://testserver"
    t = GATEWAY.create_template(
        {"name": "fuzz-template", "user_template": "Q: {{q}}", "variables": ["q"]},
        base + PATHS.templates,
    ).body
    for v in ("1.0.0", "1.1.0"):
        GATEWAY.create_version(t["id"], {"version": v, "content": "A {{a}}", "variables": {"a": 1}})
    bound = GATEWAY.create_prompt(
        {
            "name": "fuzz-bound",
            "templateId": t["id"],
            "modelEndpointRef": "model-gen-4",
            "systemPrompt": "You help.",
            "trafficDistribution": {"defaultVersion": "1.0.0"},
        },
        base + PATHS.prompts,
    ).body
    unbound = GATEWAY.create_prompt(
        {
            "name": "fuzz-unbound",
            "modelEndpointRef": "model-fallback-3",
            "systemPrompt": "You help.",
            "version": "2.0.0",
        },
        base + PATHS.prompts,
    ).body
    index = {"dimensions": 8, "similarityMetric": "cosine", "embeddingFormat": "int8"}
    GATEWAY.put_index(STORE_ID, "fuzz-active", index, None, None)
    GATEWAY.put_index(STORE_ID, "fuzz-ingesting", {**index, "autoIngestTrigger": True}, None, None)
    return {
        "templateId": [t["id"]],
        "version": ["1.0.0", "1.1.0"],
        "promptId": [bound["id"], unbound["id"]],
        "vectorStoreId": [STORE_ID],
        "indexId": ["fuzz-active", "fuzz-ingesting"],
        "modelEndpointRef": ["model-gen-4", "model-fallback-3"],
        "modelId": ["anthropic/claude-3-sonnet"],
    }


IDS = _seed()
ORG = EMULATOR.snapshot()
SCHEMA = schemathesis.openapi.from_asgi(OPENAPI_PATH, APP)
# One client for the run, schemathesis's own ASGI client; not reading proxy settings from the
# environment on every request halves the run's time.
SESSION = asgi.get_client(APP)
SESSION.trust_env = False
_token = SESSION.post(
    PATHS.token,
    data={"grant_type": "client_credentials"},
    auth=("emulator-client", "emulator-secret"),
)
assert _token.status_code == 200, _token.text
TOKEN = _token.json()["access_token"]  # the clock stands still: it never expires
_dirty = [True]  # whether the last case may have changed the org (then it is restored)


def _draw(case: Any, salt: str) -> int:
    """A number the case's values determine (the run is derandomized: so is this; an absent
    body is named by its type, never by its object's address)."""
    parts = [case.operation.label, salt, case.path_parameters, case.headers, case.body]
    text = json.dumps(parts, sort_keys=True, default=lambda o: type(o).__name__)
    return zlib.crc32(text.encode())


def _pick(case: Any, name: str, salt: str) -> str | None:
    """For three cases in four, a seeded id for ``name``."""
    h = _draw(case, salt)
    if h % 4 == 0 or name not in IDS:
        return None
    return IDS[name][(h >> 2) % len(IDS[name])]


def _current_tag(case: Any) -> str | None:
    """The If-Match value that holds for the object the case aims at, if it is a seeded one."""
    params = case.path_parameters or {}
    if "version" in params or "templateId" in params:
        return "version=1" if params.get("templateId") in IDS["templateId"] else None
    if "promptId" in params:
        p = ORG["prompts"].get(params["promptId"])
        return p["etag"] if p else None
    if "indexId" in params:
        idx = ORG["indexes"][STORE_ID].get(params["indexId"])
        return idx["etag"] if idx else None
    return None


def _aim(case: Any) -> None:
    """Point a positive case at the seeded org (a negative one keeps its invalid parts)."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    for name in list(case.path_parameters or {}):
        chosen = _pick(case, name, "path")
        if chosen is not None:
            case.path_parameters[name] = chosen
    if isinstance(case.body, dict):
        for name in ("templateId", "promptId", "modelEndpointRef", "modelId"):
            if name in case.body and isinstance(case.body[name], str):
                chosen = _pick(case, name, "body")
                if chosen is not None:
                    case.body[name] = chosen
    headers = case.headers if case.headers is not None else {}
    for name in (HEADERS.if_match, HEADERS.if_none_match):
        if name in headers:
            h = _draw(case, name) % 3  # dropped, the current tag, or as generated
            tag = _current_tag(case) if name == HEADERS.if_match else None
            if h == 0 or (h == 1 and tag is None):
                del headers[name]
            elif h == 1 and tag is not None:
                headers[name] = tag


def _before(case: Any) -> dict[str, str]:
    if _dirty[0]:  # the same org for every case: deterministic, independent cases
        EMULATOR.restore(ORG)
    _dirty[0] = case.method != "GET"
    _aim(case)
    if case.operation.path == PATHS.token:
        return {"Authorization": BASIC} if _draw(case, "basic") % 4 else {}
    return {"Authorization": f"Bearer {TOKEN}"}


# The test-only endpoints, on an emulator of their own (--admin): the document it serves has
# them; faults set here never reach the API cases above.
ADMIN_APP = create_app(
    EmulatorConfig(rate_limit=0, seed=12, ingest_delay=30.0, admin=True), clock=lambda: NOW
)
ADMIN_SCHEMA = schemathesis.openapi.from_asgi(OPENAPI_PATH, ADMIN_APP).include(
    path_regex="^/__emulator/"
)
ADMIN_SESSION = asgi.get_client(ADMIN_APP)
ADMIN_SESSION.trust_env = False


@SCHEMA.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_is_documented(case: Any) -> None:
    headers = _before(case)
    response = case.call_and_validate(
        headers=headers, session=SESSION, excluded_checks=[positive_data_acceptance]
    )
    assert response.status_code < 500, response.text  # injected faults are off
    assert HEADERS.correlation_id in response.headers


@ADMIN_SCHEMA.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_admin_answer_is_documented(case: Any) -> None:
    emulator = ADMIN_APP.emulator
    emulator.restore(ORG)
    emulator.reset_runtime()
    response = case.call_and_validate(
        session=ADMIN_SESSION, excluded_checks=[positive_data_acceptance]
    )
    assert response.status_code < 500, response.text
