"""The contract as an OpenAPI 3.1 document, generated from the emulator's endpoint table.

``docs/contract.md`` says in prose what the gateway answers; this module says it in the form that
tools read (schemathesis fuzzes the emulator against it in the test suite; a user can point a
client generator or a proxy at it). Paths, methods and scopes come from the endpoint table the
emulator routes by (``app.ENDPOINTS``, passed in), field, header and paging names from
``reconciler.endpoints``, limits and enumerations from ``state``: a route without a description
here is an error when the document is built, so the document cannot drift from the routes.
``docs/openapi.json`` is a checked-in copy (``python -m reconciler.emulator.openapi`` writes it;
a test proves it equal), and the emulator serves the document at ``OPENAPI_PATH`` without a
token, as real platforms serve their specs.

The request schemas are exactly as strict as the emulator for every rule about one field (type,
range, length, enumeration, pattern): whatever they forbid, the emulator refuses. Rules across
fields or against the org (a placeholder missing from the variable matrix, split weights summing
to 1, a model in the models list, a name already taken) are not JSON Schema's to say; each
operation's 400/409 description names them.

Pure data: no HTTP, no I/O (the ``__main__`` block aside). What it must not do: define a route,
or a rule the state machine does not apply.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from reconciler import textrules as tr
from reconciler.emulator import body as bodies
from reconciler.emulator.config import (
    ADMIN_PREFIX,
    FAULT_KINDS,
    MAX_INGEST_DELAY,
    MAX_LATENCY_MS,
    MAX_REQUEST_ID,
)
from reconciler.emulator.state.common import (
    DATE_CREATED,
    DATE_MODIFIED,
    DEFAULT_PAGE_SIZE,
    LABELS,
    MAX_PAGE_NUMBER,
    NAME_MAX_CHARS,
    NAME_MIN_CHARS,
    SELF_URI,
)
from reconciler.emulator.state.indexes import (
    DIMENSIONS_MAX,
    DIMENSIONS_MIN,
    FORMATS,
    INDEX_OBJECT_ID,
    METRICS,
    RETRIEVAL_PRECISION,
    SYNC_EVENT_ID,
    UPDATED_AT,
)
from reconciler.emulator.state.persistence import SNAPSHOT_FORMAT
from reconciler.emulator.state.prompts import (
    CATEGORIES,
    CONTENT_FILTERS,
    DEFAULTS,
    GUARD_MAX_TOKENS_DEFAULT,
    SPLIT_VERSION,
    SPLIT_WEIGHT,
    STRATEGIES,
)
from reconciler.emulator.state.runtime import (
    ANALYTICS_FLOAT_METRICS,
    ANALYTICS_GROUPS,
    ANALYTICS_METRICS,
    AUDIT_FIELDS,
    DISPATCH_FIELDS,
    MAX_FILTER_CHARS,
    MAX_FILTER_VERSIONS,
    SNAP_BLOCKED,
    SNAP_FALLBACK,
)
from reconciler.emulator.state.templates import (
    MAX_TOKENS_DEFAULT,
    MAX_TOKENS_MAX,
    MAX_TOKENS_MIN,
)
from reconciler.emulator.state.traffic import (
    BEHAVIOUR,
    MAX_ADVANCE_SECONDS,
    MAX_OFFSET_SECONDS,
    MAX_OUTPUT_TOKENS,
    MAX_PER_MINUTE,
    MAX_PROMPTS,
    MAX_VERSION_CHARS,
    MAX_VERSIONS,
    RATES,
)
from reconciler.emulator.state.traffic import MAX_LATENCY_MS as TRAFFIC_LATENCY_MS
from reconciler.emulator.state.traffic import TF as TRF
from reconciler.emulator.state.versions import AB_HEADER, AB_KEYS, CONTENT_HASH, MATRIX_TYPES
from reconciler.endpoints import (
    CODES,
    ERROR_BODY,
    FIELDS,
    HEADERS,
    OAUTH,
    PAGING,
    PARAMS,
    PATHS,
    REGIONS,
    RUNTIME,
    SCOPES,
    STATUSES,
)

OPENAPI_PATH = PATHS.openapi
TITLE = "Genesys Cloud LLM Gateway (as llmgw's contract and emulator read it)"
VERSION = "2026.11"

TF, VF, PF, XF = FIELDS.template, FIELDS.version, FIELDS.prompt, FIELDS.index
MF, SF = FIELDS.model, FIELDS.store
INV, DSP, TEL = RUNTIME.invocation, RUNTIME.dispatch, RUNTIME.telemetry
ANA, AUD = RUNTIME.analytics, RUNTIME.audit
H, P, E = HEADERS, PARAMS, ERROR_BODY
WEBHOOK = r"^(https?://\S+)?$"  # state.put_index: http(s) URL; "" is absent (seed 004)


class EndpointLike(Protocol):
    """What the document needs of a route of the emulator's endpoint table."""

    @property
    def method(self) -> str: ...

    @property
    def path(self) -> str: ...

    @property
    def scope(self) -> str: ...


# -- schema helpers ----------------------------------------------------------------------------


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``null`` means absent (the contract): an optional field also takes null."""
    if "type" in schema and isinstance(schema["type"], str):
        return {**schema, "type": [schema["type"], "null"]}
    return {"anyOf": [dict(schema), {"type": "null"}]}


def obj(
    props: Mapping[str, Any],
    required: Iterable[str] = (),
    *,
    closed: bool = True,
    description: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": dict(props)}
    req = list(required)
    if req:
        out["required"] = req
    if closed:
        out["additionalProperties"] = False
    if description:
        out["description"] = description
    return out


STRING: dict[str, Any] = {"type": "string"}
BOOL: dict[str, Any] = {"type": "boolean"}
INT: dict[str, Any] = {"type": "integer"}
STAMP: dict[str, Any] = {"type": "string", "description": "ISO 8601 UTC, milliseconds"}
ANY: dict[str, Any] = {"description": "any value: server-managed, ignored in a write"}
STRING_MAP: dict[str, Any] = {"type": "object", "additionalProperties": STRING}
# the ECMA-262 form (`$` is the very end there), the string the manifest schemas carry too
SEMVER_STRING: dict[str, Any] = {
    "type": "string",
    "pattern": tr.SEMVER_PATTERN,
    "maxLength": tr.SEMVER_MAX,
}


def names(values: Iterable[str]) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string", "enum": list(values)}}


def server_fields(*fields: str) -> dict[str, Any]:
    return {f: ANY for f in fields}


# -- object schemas ----------------------------------------------------------------------------


def _schemas() -> dict[str, Any]:
    guards_t = obj({k: BOOL for k in (TF.pii_filter, TF.jailbreak_detection, TF.output_moderation)})
    template_fields = {
        TF.name: {"type": "string", "minLength": NAME_MIN_CHARS, "maxLength": NAME_MAX_CHARS},
        TF.description: nullable(STRING),
        TF.system_instruction: nullable(STRING),
        TF.user_template: nullable(STRING),
        TF.variables: nullable({"type": "array", "items": STRING}),
        TF.max_tokens: nullable(
            {
                **INT,
                "minimum": MAX_TOKENS_MIN,
                "maximum": MAX_TOKENS_MAX,
                "default": MAX_TOKENS_DEFAULT,
            }
        ),
        TF.guardrails: nullable(guards_t),
        LABELS: nullable(STRING_MAP),
    }
    template_server = (TF.id, TF.version, DATE_CREATED, DATE_MODIFIED, SELF_URI)
    template = obj(
        {
            TF.id: STRING,
            TF.name: template_fields[TF.name],
            TF.description: STRING,
            TF.system_instruction: STRING,
            TF.user_template: STRING,
            TF.variables: {"type": "array", "items": STRING},
            TF.max_tokens: {**INT, "minimum": MAX_TOKENS_MIN, "maximum": MAX_TOKENS_MAX},
            TF.guardrails: obj(guards_t["properties"], guards_t["properties"]),
            LABELS: STRING_MAP,
            TF.version: {**INT, "minimum": 1, "description": "+1 on each change (If-Match)"},
            DATE_CREATED: STAMP,
            DATE_MODIFIED: STAMP,
            SELF_URI: STRING,
        },
        [
            TF.id,
            TF.name,
            TF.max_tokens,
            TF.guardrails,
            LABELS,
            TF.version,
            DATE_CREATED,
            DATE_MODIFIED,
            SELF_URI,
        ],
    )
    ab_props = {
        "enabled": BOOL,
        "trafficPercent": nullable({"type": "number", "minimum": 0, "maximum": 1}),
        "variantId": STRING,
    }
    assert tuple(ab_props) == AB_KEYS
    ab = obj(ab_props)
    matrix = {
        "type": "object",
        "description": "placeholder name -> " + "|".join(MATRIX_TYPES) + ", or a default value",
        "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
    }
    version_fields = {
        VF.template_id: nullable({**STRING, "description": "the path's templateId"}),
        VF.version: SEMVER_STRING,
        VF.content: {
            "type": "string",
            "minLength": 1,
            "maxLength": tr.VERSION_MAX_BYTES,
            "description": f"at most {tr.VERSION_MAX_BYTES} bytes of UTF-8 and about "
            f"{tr.VERSION_MAX_TOKENS} tokens (characters / 4)",
        },
        VF.variables: nullable(matrix),
        VF.rollback: nullable(BOOL),
        VF.ab_test: nullable(ab),
        VF.metadata: nullable(STRING_MAP),
        LABELS: nullable(STRING_MAP),
    }
    version_server = (VF.status, DATE_CREATED, CONTENT_HASH)
    version = obj(
        {
            VF.template_id: STRING,
            VF.version: STRING,
            VF.content: STRING,
            VF.variables: matrix,
            VF.rollback: BOOL,
            VF.ab_test: ab,
            VF.metadata: STRING_MAP,
            LABELS: STRING_MAP,
            VF.status: {"type": "string", "enum": [STATUSES.active, STATUSES.withdrawn]},
            DATE_CREATED: STAMP,
            CONTENT_HASH: {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
        },
        [
            VF.template_id,
            VF.version,
            VF.content,
            VF.rollback,
            LABELS,
            VF.status,
            DATE_CREATED,
            CONTENT_HASH,
        ],
    )
    version_patch = obj(
        {
            **{
                f: {**version_fields[f], "description": "immutable: only the current value"}
                for f in (VF.template_id, VF.version, VF.content, VF.variables, VF.ab_test)
            },
            VF.rollback: nullable(BOOL),
            VF.metadata: nullable(STRING_MAP),
            LABELS: nullable(STRING_MAP),
            **server_fields(*version_server),
        },
        description="changes rollbackDirective, metadata and labels; another field whose value "
        f"differs from the version's is 422 {CODES.immutable_field}",
    )
    guards_p = obj(
        {
            PF.content_filtering: nullable(names(CONTENT_FILTERS)),
            PF.guard_max_tokens: nullable(
                {**INT, "minimum": 1, "default": GUARD_MAX_TOKENS_DEFAULT}
            ),
            PF.blocked_categories: nullable(names(CATEGORIES)),
        }
    )
    split_entry = obj(
        {
            SPLIT_VERSION: STRING,
            SPLIT_WEIGHT: {"type": "number", "minimum": 0, "maximum": 1},
        },
        [SPLIT_VERSION, SPLIT_WEIGHT],
    )
    traffic = {
        "oneOf": [
            obj({PF.td_default: STRING}, [PF.td_default]),
            obj(
                {
                    PF.td_versions: {"type": "array", "items": split_entry, "minItems": 1},
                    PF.td_strategy: {"type": "string", "enum": list(STRATEGIES)},
                },
                [PF.td_versions],
            ),
        ],
        "description": "a bound prompt's split names its template's versions, an unbound "
        "prompt's the version labels it has carried; weights sum to 1.0 within "
        f"{tr.WEIGHT_TOLERANCE}",
    }
    prompt_fields = {
        PF.name: {"type": "string", "minLength": NAME_MIN_CHARS, "maxLength": NAME_MAX_CHARS},
        PF.template_id: nullable(STRING),
        PF.model: nullable({**STRING, "description": "a model of GET /api/v2/ai/models"}),
        PF.model_alias: nullable({**STRING, "description": f"seed 001's name for {PF.model}"}),
        PF.fallbacks: nullable({"type": "array", "items": STRING}),
        PF.system_prompt: {"type": "string", "maxLength": tr.PROMPT_MAX_CHARS},
        PF.version: nullable(SEMVER_STRING),
        PF.temperature: nullable(
            {"type": "number", "minimum": 0, "maximum": 2, "default": DEFAULTS[PF.temperature]}
        ),
        PF.top_p: nullable(
            {"type": "number", "minimum": 0, "maximum": 1, "default": DEFAULTS[PF.top_p]}
        ),
        PF.max_tokens: nullable({**INT, "minimum": 1, "default": DEFAULTS[PF.max_tokens]}),
        PF.guardrails: nullable(guards_p),
        PF.traffic: nullable(traffic),
        LABELS: nullable(STRING_MAP),
    }
    prompt_server = (PF.id, PF.status, PF.etag, DATE_CREATED, DATE_MODIFIED, SELF_URI)
    prompt = obj(
        {
            PF.id: STRING,
            PF.name: prompt_fields[PF.name],
            PF.template_id: STRING,
            PF.model: STRING,
            PF.fallbacks: {"type": "array", "items": STRING},
            PF.system_prompt: prompt_fields[PF.system_prompt],
            PF.version: STRING,
            PF.temperature: {"type": "number", "minimum": 0, "maximum": 2},
            PF.top_p: {"type": "number", "minimum": 0, "maximum": 1},
            PF.max_tokens: {**INT, "minimum": 1},
            PF.guardrails: obj(
                {
                    PF.content_filtering: names(CONTENT_FILTERS),
                    PF.guard_max_tokens: {**INT, "minimum": 1},
                    PF.blocked_categories: names(CATEGORIES),
                },
                [PF.content_filtering, PF.guard_max_tokens, PF.blocked_categories],
            ),
            PF.traffic: traffic,
            LABELS: STRING_MAP,
            PF.status: STRING,
            PF.etag: {**STRING, "description": "the ETag header's value"},
            DATE_CREATED: STAMP,
            DATE_MODIFIED: STAMP,
            SELF_URI: STRING,
        },
        [
            PF.id,
            PF.name,
            PF.model,
            PF.fallbacks,
            PF.system_prompt,
            PF.temperature,
            PF.top_p,
            PF.max_tokens,
            PF.guardrails,
            LABELS,
            PF.status,
            PF.etag,
            DATE_CREATED,
            DATE_MODIFIED,
            SELF_URI,
        ],
    )
    index_fields = {
        XF.index_id: nullable({**STRING, "description": "the path's indexId"}),
        XF.dimensions: {**INT, "minimum": DIMENSIONS_MIN, "maximum": DIMENSIONS_MAX},
        XF.metric: {"type": "string", "enum": list(METRICS)},
        XF.format: {"type": "string", "enum": list(FORMATS)},
        XF.auto_ingest: nullable({**BOOL, "default": False}),
        XF.webhook: nullable({"type": "string", "pattern": WEBHOOK, "description": '"" = absent'}),
        LABELS: nullable(STRING_MAP),
    }
    index_server = (
        INDEX_OBJECT_ID,
        XF.status,
        XF.etag,
        UPDATED_AT,
        SYNC_EVENT_ID,
        RETRIEVAL_PRECISION,
    )
    index = obj(
        {
            XF.index_id: STRING,
            INDEX_OBJECT_ID: {**STRING, "description": f"equal to {XF.index_id} (seed 004)"},
            XF.dimensions: index_fields[XF.dimensions],
            XF.metric: index_fields[XF.metric],
            XF.format: index_fields[XF.format],
            XF.auto_ingest: BOOL,
            XF.webhook: {"type": "string", "pattern": r"^https?://\S+$"},
            LABELS: STRING_MAP,
            XF.status: {"type": "string", "enum": [STATUSES.processing, STATUSES.active]},
            UPDATED_AT: STAMP,
            SYNC_EVENT_ID: STRING,
            RETRIEVAL_PRECISION: {"type": "number", "minimum": 0, "maximum": 1},
            XF.etag: STRING,
        },
        [
            XF.index_id,
            INDEX_OBJECT_ID,
            XF.dimensions,
            XF.metric,
            XF.format,
            XF.auto_ingest,
            LABELS,
            XF.status,
            UPDATED_AT,
            SYNC_EVENT_ID,
            RETRIEVAL_PRECISION,
            XF.etag,
        ],
    )
    model = obj(
        {
            MF.id: STRING,
            MF.provider: STRING,
            MF.context_window: {**INT, "minimum": 1},
            MF.max_output_tokens: {**INT, "minimum": 1},
        },
        [MF.id, MF.provider, MF.context_window, MF.max_output_tokens],
    )
    store = obj({SF.id: STRING, SF.name: STRING}, [SF.id, SF.name])
    telemetry = obj(
        {
            TEL.timestamp: STAMP,
            TEL.prompt_id: STRING,
            TEL.version: nullable(STRING),
            TEL.model_id: nullable(STRING),
            TEL.latency_ms: {"type": "number", "minimum": 0},
            TEL.input_tokens: {**INT, "minimum": 0},
            TEL.output_tokens: {**INT, "minimum": 0},
            TEL.error: nullable(STRING),
            TEL.simulated: BOOL,
        },
        [
            TEL.timestamp,
            TEL.prompt_id,
            TEL.latency_ms,
            TEL.input_tokens,
            TEL.output_tokens,
            TEL.error,
            TEL.simulated,
        ],
    )
    attempt = obj(
        {DSP.model_id: STRING, DSP.status: INT, DSP.outcome: STRING},
        [DSP.model_id, DSP.status, DSP.outcome],
    )
    dispatch_props = {
        DSP.model_id: STRING,
        DSP.prompt: {"type": "string", "minLength": 1, "maxLength": tr.PROMPT_MAX_CHARS},
        DSP.parameters: nullable(
            obj(
                {DSP.temperature: nullable({"type": "number", "minimum": 0, "maximum": 2})},
                closed=False,
            )
        ),
        DSP.fallbacks: nullable({"type": "array", "items": STRING}),
        DSP.safety_filters: nullable(names(CONTENT_FILTERS)),
        DSP.metadata: nullable(STRING_MAP),
    }
    assert tuple(dispatch_props) == DISPATCH_FIELDS
    audit_props = {
        AUD.prompt_id: nullable(STRING),
        AUD.action: {"type": "string", "minLength": 1},
        AUD.timestamp: nullable(STRING),
        AUD.details: nullable({"type": "object"}),
        AUD.compliance_status: nullable(STRING),
        AUD.metadata: nullable({"type": "object"}),
    }
    assert set(audit_props) == AUDIT_FIELDS
    group = {g: nullable(STRING) for g in ANALYTICS_GROUPS}
    metric_types = {
        m: {"type": "number", "minimum": 0}
        if m in ANALYTICS_FLOAT_METRICS
        else {**INT, "minimum": 0}
        for m in ANALYTICS_METRICS
    }
    filter_text = {"type": "string", "minLength": 1, "maxLength": MAX_FILTER_CHARS}
    analytics_filter = obj(
        {
            ANA.prompt_id: nullable(filter_text),
            ANA.filter_versions: nullable(
                {"type": "array", "items": filter_text, "maxItems": MAX_FILTER_VERSIONS}
            ),
        },
        description="assumed: only the rows of this prompt, of these versions",
    )
    return {
        "Error": obj(
            {
                E.message: STRING,
                E.code: {**STRING, "description": "tells apart cases that share a status"},
                E.status: INT,
                E.context_id: {**STRING, "description": f"equal to the {H.correlation_id} header"},
                E.details: {"type": "array", "items": STRING},
            },
            [E.message, E.code, E.status, E.context_id, E.details],
        ),
        "OAuthError": obj(
            {
                OAUTH.error: {
                    "type": "string",
                    "enum": [
                        OAUTH.invalid_request,
                        OAUTH.invalid_client,
                        OAUTH.unsupported_grant_type,
                    ],
                },
                OAUTH.error_description: {**STRING, "description": "RFC 6749 section 5.2"},
                OAUTH.description: {**STRING, "description": "the same text (the platform's name)"},
            },
            [OAUTH.error, OAUTH.error_description, OAUTH.description],
        ),
        "TokenRequest": obj(
            {
                OAUTH.grant_type: {"type": "string", "enum": [OAUTH.client_credentials]},
                OAUTH.scope: {
                    **STRING,
                    "description": "space separated; granted: the intersection",
                },
                OAUTH.client_id: {**STRING, "description": "instead of Basic auth (seed 002)"},
                OAUTH.client_secret: STRING,
            },
            [OAUTH.grant_type],
            closed=False,
        ),
        "Token": obj(
            {
                OAUTH.access_token: STRING,
                OAUTH.token_type: {"type": "string", "enum": [OAUTH.bearer]},
                OAUTH.expires_in: {**INT, "minimum": 0},
                OAUTH.scope: STRING,
            },
            [OAUTH.access_token, OAUTH.token_type, OAUTH.expires_in, OAUTH.scope],
        ),
        "Labels": STRING_MAP,
        "TemplateWrite": obj(
            {**template_fields, **server_fields(*template_server)},
            [TF.name],
            description=f"400 when {TF.user_template} uses a {{{{placeholder}}}} not in "
            f"{TF.variables}",
        ),
        "Template": template,
        "VersionCreate": obj(
            {**version_fields, **server_fields(*version_server)},
            [VF.version, VF.content],
            description="400 when a {{placeholder}} of content is not in variables, a variable "
            f"is unused, content exceeds {tr.VERSION_MAX_BYTES} bytes or about "
            f"{tr.VERSION_MAX_TOKENS} tokens",
        ),
        "VersionPatch": version_patch,
        "Version": version,
        "PromptCreate": {
            **obj(
                {**prompt_fields, **server_fields(*prompt_server)},
                [PF.name, PF.system_prompt],
                description=f"{PF.model} or {PF.model_alias} is required too (a string)",
            ),
            "anyOf": [
                {"required": [f], "properties": {f: STRING}} for f in (PF.model, PF.model_alias)
            ],
        },
        "PromptUpdate": obj(
            {**prompt_fields, **server_fields(*prompt_server)},
            description="changes the top-level fields present; null resets a field to its "
            "default (or removes it)",
        ),
        "Prompt": prompt,
        "TrafficDistribution": traffic,
        "IndexPut": obj(
            {**index_fields, **server_fields(*index_server)},
            [XF.dimensions, XF.metric, XF.format],
        ),
        "Index": index,
        "Model": model,
        "VectorStore": store,
        "Invocation": obj(
            {
                INV.prompt_id: STRING,
                INV.user_input: nullable(STRING),
                INV.session_id: nullable({**STRING, "description": "sticky splits route by it"}),
                INV.options: nullable({"type": "object"}),
            },
            [INV.prompt_id],
        ),
        "InvocationAnswer": obj(
            {
                INV.response_id: STRING,
                INV.output: STRING,
                INV.version: nullable(STRING),
                INV.model_id: STRING,
                INV.token_usage: obj(
                    {INV.usage_prompt: INT, INV.usage_completion: INT},
                    [INV.usage_prompt, INV.usage_completion],
                ),
            },
            [INV.response_id, INV.output, INV.version, INV.model_id, INV.token_usage],
        ),
        "Dispatch": obj(dispatch_props, [DSP.model_id, DSP.prompt]),
        "DispatchAnswer": obj(
            {
                DSP.response_id: STRING,
                DSP.model_id: STRING,
                DSP.output: STRING,
                DSP.fallback_used: BOOL,
                DSP.attempts: {"type": "array", "items": attempt},
                DSP.metadata: STRING_MAP,
            },
            [DSP.response_id, DSP.model_id, DSP.output, DSP.fallback_used, DSP.attempts],
        ),
        "TelemetryEntry": telemetry,
        "AnalyticsQuery": obj(
            {
                ANA.date_from: nullable({**STRING, "description": "ISO 8601"}),
                ANA.date_to: nullable({**STRING, "description": "ISO 8601"}),
                ANA.group_by: nullable(names(ANALYTICS_GROUPS)),
                ANA.metrics: nullable(
                    {**names(ANALYTICS_METRICS), "description": "none asked: all of them"}
                ),
                ANA.filter: nullable(analytics_filter),
            },
            description=f"the window is half-open: [{ANA.date_from}, {ANA.date_to})",
        ),
        "AnalyticsAnswer": obj(
            {ANA.data: {"type": "array", "items": obj({**group, **metric_types})}}, [ANA.data]
        ),
        "AuditRecord": obj(audit_props, [AUD.action]),
        "AuditRecordAnswer": obj(
            {AUD.id: STRING, **audit_props, AUD.received_at: STAMP},
            [AUD.id, AUD.action, AUD.received_at],
        ),
    }


def _page(item: str) -> dict[str, Any]:
    n = {**INT, "minimum": 0}
    return obj(
        {
            PAGING.entities: {"type": "array", "items": ref(item)},
            PAGING.page_size: {**INT, "minimum": 1, "maximum": PAGING.max_page_size},
            PAGING.page_number: {**INT, "minimum": 1},
            PAGING.total: n,
            PAGING.page_count: n,
            PAGING.num_pages: {**n, "description": f"seed 002's name for {PAGING.page_count}"},
        },
        [
            PAGING.entities,
            PAGING.page_size,
            PAGING.page_number,
            PAGING.total,
            PAGING.page_count,
            PAGING.num_pages,
        ],
    )


def _cursor_page(item: str) -> dict[str, Any]:
    return obj(
        {
            PAGING.entities: {"type": "array", "items": ref(item)},
            PAGING.next_cursor: {**STRING, "description": "absent on the last page"},
        },
        [PAGING.entities],
    )


# -- parameters and headers --------------------------------------------------------------------


def _parameters() -> dict[str, Any]:
    def query(name: str, schema: Mapping[str, Any], description: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "schema": dict(schema), "description": description}

    def path(name: str, description: str) -> dict[str, Any]:
        schema = {"type": "string", "minLength": 1}
        return {"name": name, "in": "path", "required": True, "schema": schema, **_d(description)}

    def header(name: str, schema: Mapping[str, Any], description: str) -> dict[str, Any]:
        return {"name": name, "in": "header", "schema": dict(schema), "description": description}

    size = {**INT, "minimum": 1, "maximum": PAGING.max_page_size, "default": DEFAULT_PAGE_SIZE}
    return {
        PAGING.page_size: query(PAGING.page_size, size, "entities per page"),
        PAGING.page_number: query(
            PAGING.page_number,
            {**INT, "minimum": 1, "maximum": MAX_PAGE_NUMBER, "default": 1},
            "1-based; past the last page the entities are empty",
        ),
        PAGING.cursor: query(PAGING.cursor, STRING, f"a {PAGING.next_cursor} this server gave"),
        "promptIdFilter": query(TEL.prompt_id, STRING, "only this prompt's entries"),
        TEL.start_time: query(TEL.start_time, STRING, "ISO 8601 date-time, inclusive"),
        TEL.end_time: query(TEL.end_time, STRING, "ISO 8601 date-time, inclusive"),
        P.template_id: path(P.template_id, "a prompt template's id"),
        P.version: path(P.version, "a template version (semver)"),
        P.prompt_id: path(P.prompt_id, "a gateway prompt's id"),
        P.store_id: path(P.store_id, "a vector store's id"),
        P.index_id: path(P.index_id, "the index's name, chosen by the client"),
        "requestId": header(
            H.request_id,
            {"type": "string", "maxLength": MAX_REQUEST_ID},
            "a UUID that makes the write idempotent: a repeat (per client, 24 h) answers the "
            "first answer again; echoed on the answer",
        ),
        "ifMatchVersion": header(
            H.if_match,
            STRING,
            "version=N (or N), quoted or not, weak or not, or a list of them, or *: 412 "
            f"{CODES.precondition_failed} when none is the template's current version",
        ),
        "ifMatchEtag": header(
            H.if_match,
            STRING,
            "the ETag, quoted or not, weak or not, or a list of them, or *: 412 "
            f"{CODES.precondition_failed} when none is current",
        ),
        "ifMatchIndex": header(
            H.if_match,
            STRING,
            f"the ETag (forms as for prompts): 409 {CODES.precondition_failed} when stale "
            "(seed 004)",
        ),
        "ifNoneMatch": header(
            H.if_none_match,
            STRING,
            f"* (create only) or ETags: 409 {CODES.precondition_failed} when the index exists "
            "(matches)",
        ),
        "abTest": header(
            H.ab_test,
            {"type": "string", "pattern": AB_HEADER.pattern},
            "variant={variantId},traffic={trafficPercent x 100} for an enabled trigger (000)",
        ),
    }


def _d(description: str) -> dict[str, str]:
    return {"description": description}


def _headers() -> dict[str, Any]:
    def header(schema: Mapping[str, Any], description: str, required: bool) -> dict[str, Any]:
        return {"schema": dict(schema), "description": description, "required": required}

    count = {**INT, "minimum": 0}
    retry = {**INT, "minimum": 1}
    return {
        "CorrelationId": header(STRING, "equal to an error body's contextId", True),
        "RateAllowed": header(count, "requests a rate window allows (0: unlimited)", True),
        "RateCount": header(count, "requests used in this window", True),
        "RateReset": header(count, "seconds until the window resets", True),
        H.date: header(STRING, "the server's clock (RFC 9110 IMF-fixdate)", True),
        "RetryAfter": header(retry, "seconds to wait before retrying", True),
        "RetryAfterOptional": header(retry, "seconds to wait before retrying", False),
        H.etag: header({"type": "string", "pattern": '^"[^"]*"$'}, "send back as If-Match", True),
        "RequestId": header(STRING, f"the request's {H.request_id}, echoed", False),
        "WWWAuthenticate": header(STRING, "RFC 6750 (bearer) or RFC 6749 (Basic) challenge", True),
        "CacheControl": header(STRING, "no-store", True),
    }


def _h(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/headers/{name}"}


def _header_refs(*, etag: bool = False, retry: bool | None = None) -> dict[str, Any]:
    """Every answer's headers; ``retry`` True: Retry-After required, False: optional."""
    out: dict[str, Any] = {
        H.date: _h(H.date),
        H.correlation_id: _h("CorrelationId"),
        H.rate_allowed: _h("RateAllowed"),
        H.rate_count: _h("RateCount"),
        H.rate_reset: _h("RateReset"),
        H.request_id: _h("RequestId"),
    }
    if etag:
        out[H.etag] = _h(H.etag)
    if retry is not None:
        out[H.retry_after] = _h("RetryAfter" if retry else "RetryAfterOptional")
    return out


# -- operations --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """How one route of the endpoint table reads and answers."""

    id: str
    summary: str
    success: Mapping[int, str | None]  # status -> answer schema (None: no body)
    errors: Mapping[int, str] = field(default_factory=dict)  # status -> when (codes)
    body: str | None = None
    params: tuple[str, ...] = ()  # components.parameters
    etag: bool = False  # success answers carry an ETag


PAGED = (PAGING.page_size, PAGING.page_number)
BAD_PAGE = (
    f"{CODES.validation_failed}: {PAGING.page_size} (1..{PAGING.max_page_size}) or "
    f"{PAGING.page_number} is not an integer in range"
)
NOT_FOUND = f"{CODES.not_found}: no such {{what}}"
REQ = ("requestId",)

OPERATIONS: dict[tuple[str, str], Op] = {
    ("GET", PATHS.templates): Op(
        "listPromptTemplates",
        "List prompt templates (by name), page-number paging (seed 002)",
        {200: "TemplatePage"},
        {400: BAD_PAGE},
        params=PAGED,
    ),
    ("POST", PATHS.templates): Op(
        "createPromptTemplate",
        "Create a prompt template (seed 002)",
        {201: "Template"},
        {
            400: f"{CODES.validation_failed}: a field's type or limit, unknown fields, or a "
            "{{placeholder}} in user_template missing from variables",
            409: f"{CODES.name_exists}: a template has that name",
        },
        body="TemplateWrite",
        params=REQ,
    ),
    ("GET", PATHS.template): Op(
        "getPromptTemplate",
        "Get a prompt template",
        {200: "Template"},
        {404: NOT_FOUND.format(what="template")},
        params=(P.template_id,),
    ),
    ("PUT", PATHS.template): Op(
        "replacePromptTemplate",
        "Replace a prompt template; version +1 (seed 002)",
        {200: "Template"},
        {
            400: f"{CODES.validation_failed}: as on create",
            404: NOT_FOUND.format(what="template"),
            409: f"{CODES.name_exists}: another template has that name",
            412: f"{CODES.precondition_failed}: If-Match is not the current version",
        },
        body="TemplateWrite",
        params=(P.template_id, "ifMatchVersion", "requestId"),
    ),
    ("DELETE", PATHS.template): Op(
        "deletePromptTemplate",
        "Delete a prompt template and its versions",
        {204: None},
        {
            404: NOT_FOUND.format(what="template"),
            409: f"{CODES.template_bound}: a gateway prompt binds it",
            412: f"{CODES.precondition_failed}: If-Match is not the current version",
        },
        params=(P.template_id, "ifMatchVersion", "requestId"),
    ),
    ("GET", PATHS.versions): Op(
        "listTemplateVersions",
        "List a template's versions (by semver), page-number paging (seed 000)",
        {200: "VersionPage"},
        {400: BAD_PAGE, 404: NOT_FOUND.format(what="template")},
        params=(P.template_id, *PAGED),
    ),
    ("POST", PATHS.versions): Op(
        "createTemplateVersion",
        "Publish a version, atomically (seed 000)",
        {201: "Version"},
        {
            400: f"{CODES.validation_failed}: a field's type or limit, unknown fields, "
            "templateId not the path's, a placeholder missing from the variable matrix or a "
            f"variable unused, content over {tr.VERSION_MAX_BYTES} bytes or "
            f"{tr.VERSION_MAX_TOKENS} tokens, an X-Genesys-AB-Test "
            "header that does not read variant=...,traffic=0..100 or disagrees with "
            "abTestingTrigger",
            404: NOT_FOUND.format(what="template"),
            409: f"{CODES.version_exists}: the template has that version",
        },
        body="VersionCreate",
        params=(P.template_id, "abTest", "requestId"),
    ),
    ("GET", PATHS.version): Op(
        "getTemplateVersion",
        "Get a template version",
        {200: "Version"},
        {404: NOT_FOUND.format(what="template or version")},
        params=(P.template_id, P.version),
    ),
    ("PATCH", PATHS.version): Op(
        "updateTemplateVersion",
        "Withdraw or restore a version, change its metadata or labels",
        {200: "Version"},
        {
            400: f"{CODES.validation_failed}: unknown fields, rollbackDirective not a boolean, "
            "metadata or labels not string maps",
            404: NOT_FOUND.format(what="template or version"),
            409: f"{CODES.version_routed}: withdrawing a version traffic still routes to",
            422: f"{CODES.immutable_field}: content, variables, abTestingTrigger (or templateId, "
            "version) differ from the version's",
        },
        body="VersionPatch",
        params=(P.template_id, P.version, "requestId"),
    ),
    ("DELETE", PATHS.version): Op(
        "deleteTemplateVersion",
        "Delete a template version",
        {204: None},
        {
            404: NOT_FOUND.format(what="template or version"),
            409: f"{CODES.version_routed}: a traffic split routes to it",
        },
        params=(P.template_id, P.version, "requestId"),
    ),
    ("GET", PATHS.prompts): Op(
        "listGatewayPrompts",
        "List gateway prompts (by name), page-number paging (seed 003)",
        {200: "PromptPage"},
        {400: BAD_PAGE},
        params=PAGED,
    ),
    ("POST", PATHS.prompts): Op(
        "createGatewayPrompt",
        "Create a gateway prompt (seeds 003, 001)",
        {201: "Prompt"},
        {
            400: f"{CODES.validation_failed}: a field's type or limit, unknown fields, a model or "
            "fallback model not in the models list, maxTokens over the model's "
            "maxOutputTokens, systemPrompt over safetyGuardrails.maxTokens (characters / 4), "
            "templateId not a template, split weights not summing to 1.0 or naming a version "
            "that does not exist",
            409: f"{CODES.name_exists}: a prompt has that name; {CODES.version_withdrawn}: "
            "the split routes to a withdrawn version",
        },
        body="PromptCreate",
        params=REQ,
        etag=True,
    ),
    ("GET", PATHS.prompt): Op(
        "getGatewayPrompt",
        "Get a gateway prompt",
        {200: "Prompt"},
        {404: NOT_FOUND.format(what="prompt")},
        params=(P.prompt_id,),
        etag=True,
    ),
    ("PUT", PATHS.prompt): Op(
        "updateGatewayPrompt",
        "Change the top-level fields present in the body (seed 003)",
        {200: "Prompt"},
        {
            400: f"{CODES.validation_failed}: as on create, for the prompt the change gives",
            404: NOT_FOUND.format(what="prompt"),
            409: f"{CODES.name_exists} or {CODES.version_withdrawn}, as on create",
            412: f"{CODES.precondition_failed}: If-Match is not the current ETag",
        },
        body="PromptUpdate",
        params=(P.prompt_id, "ifMatchEtag", "requestId"),
        etag=True,
    ),
    ("DELETE", PATHS.prompt): Op(
        "deleteGatewayPrompt",
        "Delete a gateway prompt",
        {204: None},
        {
            404: NOT_FOUND.format(what="prompt"),
            412: f"{CODES.precondition_failed}: If-Match is not the current ETag",
        },
        params=(P.prompt_id, "ifMatchEtag", "requestId"),
    ),
    ("GET", PATHS.models): Op(
        "listModels",
        "List the models prompts may use (seed 001)",
        {200: "ModelPage"},
        {400: BAD_PAGE},
        params=PAGED,
    ),
    ("GET", PATHS.vector_stores): Op(
        "listVectorStores",
        "List vector stores",
        {200: "VectorStorePage"},
        {400: BAD_PAGE},
        params=PAGED,
    ),
    ("GET", PATHS.indexes): Op(
        "listIndexes",
        "List a vector store's indexes (by name), page-number paging",
        {200: "IndexPage"},
        {400: BAD_PAGE, 404: NOT_FOUND.format(what="vector store")},
        params=(P.store_id, *PAGED),
    ),
    ("GET", PATHS.index): Op(
        "getIndex",
        "Get an index (seed 004)",
        {200: "Index"},
        {404: NOT_FOUND.format(what="vector store or index")},
        params=(P.store_id, P.index_id),
        etag=True,
    ),
    ("PUT", PATHS.index): Op(
        "putIndex",
        "Create (201) or replace (200) an index, atomically (seed 004)",
        {200: "Index", 201: "Index"},
        {
            400: f"{CODES.validation_failed}: {XF.dimensions} not an integer from "
            f"{DIMENSIONS_MIN} to {DIMENSIONS_MAX}",
            404: NOT_FOUND.format(what="vector store"),
            409: f"{CODES.precondition_failed}: If-Match stale (or the index absent), or "
            f"If-None-Match matched; {CODES.index_processing}: the index is still ingesting",
            422: f"{CODES.validation_failed}: the body not an object, unknown fields, indexId "
            f"not the path's, a field's type or enumeration; {CODES.immutable_field}: dimensions, "
            "similarityMetric or embeddingFormat differ from the index's",
        },
        body="IndexPut",
        params=(P.store_id, P.index_id, "ifMatchIndex", "ifNoneMatch", "requestId"),
        etag=True,
    ),
    ("DELETE", PATHS.index): Op(
        "deleteIndex",
        "Delete an index (its vectors are lost)",
        {204: None},
        {
            404: NOT_FOUND.format(what="vector store or index"),
            409: f"{CODES.precondition_failed}: If-Match stale",
        },
        params=(P.store_id, P.index_id, "ifMatchIndex", "requestId"),
    ),
    ("POST", PATHS.invocations): Op(
        "invokeGatewayPrompt",
        "Invoke a prompt; the version served follows its split (seed 003)",
        {200: "InvocationAnswer"},
        {
            400: f"{CODES.validation_failed}: a field's type, unknown fields",
            404: NOT_FOUND.format(what="prompt"),
            503: f"{CODES.models_unavailable}: the model and every fallback failed",
        },
        body="Invocation",
        params=REQ,
    ),
    ("POST", PATHS.dispatch): Op(
        "dispatchPrompt",
        "Routed dispatch: the model, then its fallbacks in order (seed 001)",
        {200: "DispatchAnswer"},
        {
            400: f"{CODES.validation_failed}: a field's type or limit, unknown fields, a model "
            "not in the models list",
            503: f"{CODES.models_unavailable}: the model and every fallback failed",
        },
        body="Dispatch",
        params=REQ,
    ),
    ("GET", PATHS.telemetry): Op(
        "listTelemetry",
        "Invocation telemetry, cursor paging (seed 003)",
        {200: "TelemetryPage"},
        {
            400: f"{CODES.validation_failed}: pageSize, a cursor this server did not give, "
            "a date-time"
        },
        params=("promptIdFilter", TEL.start_time, TEL.end_time, PAGING.page_size, PAGING.cursor),
    ),
    ("POST", PATHS.analytics): Op(
        "queryAnalytics",
        "Usage rows grouped by the keys asked (seed 002)",
        {200: "AnalyticsAnswer"},
        {
            400: f"{CODES.validation_failed}: a field's type or enumeration, a date-time, "
            "unknown fields"
        },
        body="AnalyticsQuery",
        params=REQ,
    ),
    ("POST", PATHS.audit_logs): Op(
        "createAuditRecord",
        "Keep a compliance record (seed 003)",
        {201: "AuditRecordAnswer"},
        {400: f"{CODES.validation_failed}: action missing, a field's type, unknown fields"},
        body="AuditRecord",
        params=REQ,
    ),
}

PAGES = ("Template", "Version", "Prompt", "Model", "VectorStore", "Index")

SHARED_ERRORS: dict[int, str] = {
    401: f"{CODES.bad_credentials}: the bearer token is missing, unknown or expired",
    403: f"{CODES.missing_scope}: the token lacks the operation's scope (named in the message)",
    413: f"{CODES.request_too_large}: the body is over {bodies.MAX_BODY_BYTES} bytes",
    429: f"{CODES.rate_limited}: the token's rate window is spent (Retry-After)",
    500: f"{CODES.internal_server_error}: an injected fault (--fault-rate 500) or a bug; retryable",
    503: f"{CODES.service_unavailable}: the gateway is briefly unavailable (Retry-After); "
    "retryable",
}
"""Answers any authenticated operation can give (413: any with a body): components.responses."""
SHARED_ERRORS_NAMES = {
    401: "Unauthorized",
    403: "MissingScope",
    413: "TooLarge",
    429: "RateLimited",
    500: "ServerError",
    503: "Unavailable",
}
BODY_400 = (
    f"{CODES.validation_failed}: the body is not UTF-8 JSON, has NaN/Infinity or a number out of "
    f"range, or nests deeper than {bodies.MAX_DEPTH} levels"
)


def _shared_responses() -> dict[str, Any]:
    return {
        SHARED_ERRORS_NAMES[status]: _error(
            text,
            retry=True if status == 429 else (False if status == 503 else None),
            auth=status == 401,
        )
        for status, text in SHARED_ERRORS.items()
    }


def _error(description: str, *, retry: bool | None = None, auth: bool = False) -> dict[str, Any]:
    headers = _header_refs(retry=retry)
    if auth:
        headers["WWW-Authenticate"] = _h("WWWAuthenticate")
    return {
        "description": description,
        "headers": headers,
        "content": {"application/json": {"schema": ref("Error")}},
    }


def _operation(endpoint: EndpointLike, op: Op) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, schema in sorted(op.success.items()):
        answer: dict[str, Any] = {"description": "success", "headers": _header_refs(etag=op.etag)}
        if schema is not None:
            answer["content"] = {"application/json": {"schema": ref(schema)}}
        else:
            answer["description"] = "done; no body"
        responses[str(status)] = answer
    errors = dict(op.errors)
    if op.body is not None:
        errors[400] = f"{errors[400]}; {BODY_400}" if 400 in errors else BODY_400
    if "requestId" in op.params and 400 not in errors:
        errors[400] = f"{CODES.validation_failed}: {H.request_id} over {MAX_REQUEST_ID} characters"
    for status, text in sorted(errors.items()):
        if status in SHARED_ERRORS:
            text = f"{SHARED_ERRORS[status]}; {text}"
        retry = True if status == 429 else (False if status == 503 else None)
        responses[str(status)] = _error(text, retry=retry, auth=status == 401)
    shared = [e for e in SHARED_ERRORS if e != 413 or op.body is not None]
    for status in shared:
        if str(status) not in responses:
            responses[str(status)] = {
                "$ref": f"#/components/responses/{SHARED_ERRORS_NAMES[status]}"
            }
    responses = dict(sorted(responses.items()))
    out: dict[str, Any] = {
        "operationId": op.id,
        "summary": op.summary,
        "tags": [_tag(endpoint.path)],
        "security": [{"oauth2": [endpoint.scope]}, {"bearer": []}],
        "x-scope": endpoint.scope,
        "parameters": [
            {"$ref": f"#/components/parameters/{p}"}
            for p in op.params
            if p not in _path_params(endpoint.path)
        ],
        "responses": responses,
    }
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(op.body)}},
        }
    return out


TAGS = {
    "prompt templates": "seed 002",
    "template versions": "seed 000",
    "gateway prompts": "seeds 003, 001: prompts, their traffic splits, the models list",
    "vector stores": "seed 004",
    "runtime": "invocations, routed dispatch, telemetry, analytics, audit records",
    "oauth": "the login host's token endpoint",
    "docs": "this document",
    "emulator admin": "the emulator's test-only endpoints (llmgw emulator serve --admin)",
}
_TAG_OF = {
    PATHS.templates: "prompt templates",
    PATHS.template: "prompt templates",
    PATHS.versions: "template versions",
    PATHS.version: "template versions",
    PATHS.prompts: "gateway prompts",
    PATHS.prompt: "gateway prompts",
    PATHS.models: "gateway prompts",
    PATHS.vector_stores: "vector stores",
    PATHS.indexes: "vector stores",
    PATHS.index: "vector stores",
}


def _tag(path: str) -> str:
    return _TAG_OF.get(path, "runtime")


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _token_operation() -> dict[str, Any]:
    def oauth(description: str, **headers: Any) -> dict[str, Any]:
        return {
            "description": description,
            "headers": {**_header_refs(), **headers},
            "content": {"application/json": {"schema": ref("OAuthError")}},
        }

    retry = {H.retry_after: _h("RetryAfterOptional")}
    challenge = {"WWW-Authenticate": _h("WWWAuthenticate")}
    return {
        "operationId": "requestToken",
        "summary": "Client credentials grant (seeds 002, 003, 004; the login host)",
        "description": "Credentials as HTTP Basic auth or as the form fields client_id and "
        "client_secret. 60 token requests a minute per client.",
        "tags": ["oauth"],
        "servers": [{"url": "/"}, {"url": "https://login.{domain}", "variables": _domain()}],
        "security": [{"clientBasic": []}, {}],
        "requestBody": {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": ref("TokenRequest")}},
        },
        "responses": {
            "200": {
                "description": "a bearer token; scope: the intersection of asked and held",
                "headers": {**_header_refs(), "Cache-Control": _h("CacheControl")},
                "content": {"application/json": {"schema": ref("Token")}},
            },
            "400": oauth(
                "invalid_request: no grant_type (the body is a form, not JSON), or the "
                "token endpoint's own rate limit (with Retry-After; not 429); "
                "unsupported_grant_type: a grant other than client_credentials",
                **retry,
            ),
            "401": oauth("invalid_client: unknown client or wrong secret", **challenge),
            "413": oauth(f"invalid_request: the form is over {bodies.MAX_BODY_BYTES} bytes"),
        },
    }


def _docs_operation() -> dict[str, Any]:
    return {
        "operationId": "getOpenApiDocument",
        "summary": "This document (no token needed)",
        "tags": ["docs"],
        "security": [],
        "responses": {
            "200": {
                "description": "the OpenAPI 3.1 document of the contract",
                "headers": _header_refs(),
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    }


def _traffic_schemas() -> dict[str, Any]:
    """The simulated traffic and the clock (``state.traffic``): strict, no null anywhere."""

    def number(most: float, *, integer: bool = False) -> dict[str, Any]:
        return {"type": "integer" if integer else "number", "minimum": 0, "maximum": most}

    behaviour = obj(
        {
            f: number(
                1
                if f in RATES
                else MAX_OUTPUT_TOKENS
                if f == TRF.output_tokens
                else TRAFFIC_LATENCY_MS,
                integer=f == TRF.output_tokens,
            )
            for f in BEHAVIOUR
        },
        description="unset: " + ", ".join(f"{f} {v:g}" for f, v in BEHAVIOUR.items()),
    )
    prompt = obj(
        {
            TRF.per_minute: number(MAX_PER_MINUTE),
            TRF.versions: {
                "type": "object",
                "maxProperties": MAX_VERSIONS,
                "propertyNames": {"minLength": 1, "maxLength": MAX_VERSION_CHARS},
                "additionalProperties": behaviour,
                "description": "a version not listed behaves like the first one listed",
            },
        },
        [TRF.per_minute],
    )
    prompts = {
        "type": "object",
        "maxProperties": MAX_PROMPTS,
        "propertyNames": {"minLength": NAME_MIN_CHARS, "maxLength": NAME_MAX_CHARS},
        "additionalProperties": prompt,
        "description": "prompt name -> its traffic (a name no prompt has makes none yet); "
        "{} stops the traffic",
    }
    return {
        "TrafficWrite": obj({TRF.prompts: prompts}, [TRF.prompts]),
        "Traffic": obj({TRF.prompts: prompts}, [TRF.prompts]),
        "ClockAdvance": obj(
            {TRF.advance: number(MAX_ADVANCE_SECONDS)},
            [TRF.advance],
            description=f"the clock moves {MAX_OFFSET_SECONDS // 86400} days ahead at most in all",
        ),
        "Clock": obj({TRF.now: STAMP}, [TRF.now]),
    }


def _admin_schemas(telemetry: Mapping[str, Any]) -> dict[str, Any]:
    """The admin endpoints' schemas; ``telemetry``: the telemetry entity's, which a snapshot's
    rows extend."""
    number = {"type": "number", "minimum": 0}
    models = nullable({"type": "array", "items": STRING})
    rates = obj({k: {"type": "number", "minimum": 0, "maximum": 1} for k in FAULT_KINDS})
    loose = {"type": "object"}
    return {
        **_traffic_schemas(),
        "FaultsWrite": obj(
            {
                "rates": nullable({**rates, "description": "replaces every rate"}),
                "latencyMs": {**number, "maximum": MAX_LATENCY_MS},
                "jitterMs": {**number, "maximum": MAX_LATENCY_MS},
                "ingestDelay": {**number, "maximum": int(MAX_INGEST_DELAY)},
                "failingModels": models,
                "refusingModels": models,
                "seed": nullable(INT),
            },
            description="each key present changes its own setting; all are checked first",
        ),
        "Faults": obj(
            {
                "rates": obj(rates["properties"], FAULT_KINDS),
                "latencyMs": {**INT, "minimum": 0},
                "jitterMs": {**INT, "minimum": 0},
                "ingestDelay": number,
                "failingModels": {"type": "array", "items": STRING},
                "refusingModels": {"type": "array", "items": STRING},
            },
            ["rates", "latencyMs", "jitterMs", "ingestDelay", "failingModels", "refusingModels"],
        ),
        "RequestLog": obj(
            {"requests": {"type": "array", "items": {"type": "object"}}}, ["requests"]
        ),
        "Reset": obj({"reset": {"const": True}}, ["reset"]),
        "Restored": obj({"restored": {"const": True}}, ["restored"]),
        "Snapshot": obj(
            {
                "format": {"const": SNAPSHOT_FORMAT},
                "templates": {"type": "object", "additionalProperties": ref("Template")},
                "versions": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "additionalProperties": ref("Version"),
                    },
                },
                "prompts": {"type": "object", "additionalProperties": ref("Prompt")},
                "promptLabels": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": STRING},
                },
                "indexes": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "additionalProperties": ref("Index"),
                    },
                },
                "readyAt": {"type": "object", "additionalProperties": {"type": "number"}},
                "telemetry": {
                    "type": "array",
                    "items": {
                        **telemetry,
                        "properties": {
                            **telemetry["properties"],
                            SNAP_BLOCKED: {"const": True},
                            SNAP_FALLBACK: {"const": True},
                        },
                    },
                    "description": "the newest rows (a row also says when a guardrail blocked "
                    "it or a fallback served it)",
                },
                "auditLogs": {"type": "array", "items": ref("AuditRecordAnswer")},
                "idempotency": {"type": "array", "items": loose},
                "traffic": loose,
                "clock": obj({"offsetSeconds": number}, closed=False),
            },
            ["format", "templates", "versions", "prompts", "indexes", "readyAt"],
            closed=False,
        ),
        "SnapshotWrite": obj(
            {
                "format": {"const": SNAPSHOT_FORMAT},
                "templates": nullable({"type": "object", "additionalProperties": loose}),
                "versions": nullable(
                    {
                        "type": "object",
                        "additionalProperties": {"type": "object", "additionalProperties": loose},
                    }
                ),
                "prompts": nullable({"type": "object", "additionalProperties": loose}),
                "promptLabels": nullable(
                    {"type": "object", "additionalProperties": {"type": "array", "items": STRING}}
                ),
                "indexes": nullable(
                    {
                        "type": "object",
                        "additionalProperties": {"type": "object", "additionalProperties": loose},
                    }
                ),
                "readyAt": nullable({"type": "object", "additionalProperties": {"type": "number"}}),
                "telemetry": nullable({"type": "array", "items": loose}),
                "auditLogs": nullable({"type": "array", "items": loose}),
                "idempotency": nullable({"type": "array", "items": loose}),
                "traffic": nullable(loose),
                "clock": nullable(loose),
            },
            closed=False,
            description="every object is replayed through the checks a client's write goes "
            "through (400 naming the first that fails); nothing changes unless all pass; a "
            "part left out or null is empty",
        ),
    }


# name -> method -> (operationId, summary, request schema, answer schema)
ADMIN_OPERATIONS: dict[str, dict[str, tuple[str, str, str | None, str]]] = {
    "requests": {"GET": ("adminRequestLog", "The request log", None, "RequestLog")},
    "faults": {
        "GET": ("adminGetFaults", "The injected faults", None, "Faults"),
        "PUT": ("adminSetFaults", "Change the injected faults", "FaultsWrite", "Faults"),
        "POST": ("adminSetFaultsPost", "Change the injected faults", "FaultsWrite", "Faults"),
    },
    "reset": {"POST": ("adminReset", "Back to the seeded org", None, "Reset")},
    "state": {
        "GET": ("adminGetState", "The whole org as a snapshot", None, "Snapshot"),
        "PUT": ("adminPutState", "Replace the org with a snapshot", "SnapshotWrite", "Restored"),
    },
    "clock": {
        "GET": ("adminGetClock", "The emulator's clock", None, "Clock"),
        "POST": (
            "adminAdvanceClock",
            "Move the clock forward, making the simulated traffic of the period",
            "ClockAdvance",
            "Clock",
        ),
    },
    "traffic": {
        "GET": ("adminGetTraffic", "The simulated traffic", None, "Traffic"),
        "PUT": ("adminSetTraffic", "Replace the simulated traffic", "TrafficWrite", "Traffic"),
    },
}


def _admin_paths(admin: Mapping[str, Iterable[str]]) -> dict[str, Any]:
    """The test-only endpoints (``--admin``), from the emulator's admin table."""
    paths: dict[str, Any] = {}
    for name, methods in admin.items():
        described = ADMIN_OPERATIONS[name]  # KeyError: an admin endpoint without a description
        if set(methods) != set(described):
            raise KeyError(f"admin endpoint {name}: methods {sorted(methods)} are not described")
        item = paths.setdefault(f"{ADMIN_PREFIX}{name}", {})
        for method in methods:
            op_id, summary, body, answer = described[method]
            op: dict[str, Any] = {
                "operationId": op_id,
                "summary": f"{summary} (test-only, --admin; no token, never faulted)",
                "tags": ["emulator admin"],
                "security": [],
                "responses": {
                    "200": {
                        "description": "done",
                        "headers": _header_refs(),
                        "content": {"application/json": {"schema": ref(answer)}},
                    }
                },
            }
            if body is not None:
                op["requestBody"] = {
                    "required": False,
                    "content": {"application/json": {"schema": ref(body)}},
                }
                op["responses"]["400"] = _error(
                    f"{CODES.validation_failed}: {BODY_400}, or a value out of range"
                )
                mib = bodies.MAX_ADMIN_BODY_BYTES // 2**20
                op["responses"]["413"] = _error(f"{CODES.request_too_large}: over {mib} MiB")
            item[method.lower()] = op
    return paths


def _domain() -> dict[str, Any]:
    return {"domain": {"default": REGIONS[0], "enum": list(REGIONS)}}


SCOPE_TEXT = {
    SCOPES.template_read: "read prompt templates",
    SCOPES.template_write: "write prompt templates",
    SCOPES.version_read: "read template versions",
    SCOPES.version_write: "write template versions",
    SCOPES.prompt_read: "read gateway prompts and the models list",
    SCOPES.prompt_write: "write gateway prompts and their traffic splits",
    SCOPES.store_read: "read vector stores and indexes",
    SCOPES.store_write: "write indexes",
    SCOPES.execute: "invoke prompts and routed dispatch",
    SCOPES.telemetry_read: "read telemetry",
    SCOPES.analytics_read: "query analytics",
    SCOPES.audit_write: "write audit records",
}


def document(
    endpoints: Iterable[EndpointLike], admin: Mapping[str, Iterable[str]] | None = None
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``endpoints`` (the emulator's table), the token endpoint and
    this document's own path; with ``admin`` (the emulator's admin table, when it runs with
    ``--admin``) the test-only endpoints too. ``KeyError`` names a route this module does not
    describe."""
    paths: dict[str, dict[str, Any]] = {
        PATHS.token: {"post": _token_operation()},
        OPENAPI_PATH: {"get": _docs_operation()},
    }
    seen = set()
    for e in endpoints:
        key = (e.method, e.path)
        if key not in OPERATIONS:
            raise KeyError(f"{e.method} {e.path} has no description in emulator/openapi.py")
        seen.add(key)
        entry = paths.setdefault(e.path, {})
        params = _path_params(e.path)
        if params:
            entry["parameters"] = [{"$ref": f"#/components/parameters/{p}"} for p in params]
        entry[e.method.lower()] = _operation(e, OPERATIONS[key])
    stale = sorted(set(OPERATIONS) - seen)
    if stale:
        raise KeyError(f"emulator/openapi.py describes routes the emulator lacks: {stale}")
    schemas = _schemas()
    if admin is not None:
        paths.update(_admin_paths(admin))
        schemas.update(_admin_schemas(schemas["TelemetryEntry"]))
    for item in PAGES:
        schemas[f"{item}Page"] = _page(item)
    schemas["TelemetryPage"] = _cursor_page("TelemetryEntry")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": "Generated from llmgw's endpoint table (reconciler/emulator/"
            "openapi.py); docs/contract.md is the prose. Every answer carries "
            f"{H.correlation_id} and the {H.rate_allowed}/{H.rate_count}/{H.rate_reset} "
            f"headers. A method a path does not list answers 405 {CODES.method_not_allowed} "
            f"with an Allow header; a path the gateway does not have, 404 {CODES.not_found}. "
            "Server-managed fields in a write body are ignored; null means absent.",
        },
        "servers": [
            {
                "url": "/",
                "description": "the server that serves this document (the emulator serves the "
                "API and the login host on one origin)",
            },
            {"url": "https://api.{domain}", "variables": _domain()},
        ],
        "tags": [
            {"name": t, "description": d}
            for t, d in TAGS.items()
            if admin is not None or t != "emulator admin"
        ],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "parameters": _parameters(),
            "responses": _shared_responses(),
            "headers": _headers(),
            "securitySchemes": {
                "oauth2": {
                    "type": "oauth2",
                    "description": "client credentials; the scope an operation needs is its "
                    f"x-scope (a token without it: 403 {CODES.missing_scope})",
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": PATHS.token,
                            "scopes": {s: SCOPE_TEXT[s] for s in SCOPES.all},
                        }
                    },
                },
                "bearer": {"type": "http", "scheme": "bearer", "description": "the access_token"},
                "clientBasic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "the OAuth client's id and secret (token endpoint only)",
                },
            },
        },
    }


def dumps(doc: Mapping[str, Any]) -> str:
    """The checked-in form: indented, keys in document order, a final newline."""
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":  # python -m reconciler.emulator.openapi > docs/openapi.json
    from reconciler.emulator.app import ENDPOINTS

    sys.stdout.write(dumps(document(ENDPOINTS)))
