"""The endpoint table: every remote path, field name, header and scope llmgw uses, in one place.

The LLM Gateway endpoints follow the five published tutorials (``docs/contract.md``); they are
not in the public Genesys Cloud SDKs. An org whose gateway names a path or a field differently is
adapted here and nowhere else: the client, the planner, the normaliser and the emulator all read
these constants. Plain constants, no logic, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TemplateFields:  # seed 002: snake_case
    id: str = "id"
    name: str = "name"
    description: str = "description"
    system_instruction: str = "system_instruction"
    user_template: str = "user_template"
    variables: str = "variables"
    max_tokens: str = "max_tokens"
    guardrails: str = "safety_guardrails"
    pii_filter: str = "pii_filter"
    jailbreak_detection: str = "jailbreak_detection"
    output_moderation: str = "output_moderation"
    version: str = "version"  # integer concurrency token, sent back as If-Match: version=N


@dataclass(frozen=True)
class VersionFields:  # seed 000
    template_id: str = "templateId"
    version: str = "version"
    content: str = "content"
    variables: str = "variables"
    rollback: str = "rollbackDirective"
    ab_test: str = "abTestingTrigger"
    metadata: str = "metadata"
    status: str = "status"


@dataclass(frozen=True)
class PromptFields:  # seeds 003, 001
    id: str = "id"
    name: str = "name"
    template_id: str = "templateId"
    model: str = "modelEndpointRef"
    model_alias: str = "modelId"
    fallbacks: str = "fallbackModels"
    system_prompt: str = "systemPrompt"
    version: str = "version"
    temperature: str = "temperature"
    top_p: str = "topP"
    max_tokens: str = "maxTokens"
    guardrails: str = "safetyGuardrails"
    content_filtering: str = "contentFiltering"
    guard_max_tokens: str = "maxTokens"
    blocked_categories: str = "blockedCategories"
    traffic: str = "trafficDistribution"
    td_default: str = "defaultVersion"
    td_versions: str = "versions"
    td_strategy: str = "splitStrategy"
    status: str = "status"
    etag: str = "etag"  # assumed: the ETag header's value, also in the body of list entities


@dataclass(frozen=True)
class IndexFields:  # seed 004
    index_id: str = "indexId"
    id: str = "id"  # seed 004 reads an index's id as `id`: answered beside indexId
    dimensions: str = "dimensions"
    metric: str = "similarityMetric"
    format: str = "embeddingFormat"
    auto_ingest: str = "autoIngestTrigger"
    webhook: str = "webhookSyncUrl"
    status: str = "status"
    etag: str = "etag"


@dataclass(frozen=True)
class ModelFields:  # seed 001: the models list
    id: str = "id"
    provider: str = "provider"
    context_window: str = "contextWindow"
    max_output_tokens: str = "maxOutputTokens"


@dataclass(frozen=True)
class StoreFields:  # assumed: the vector stores list
    id: str = "id"
    name: str = "name"


@dataclass(frozen=True)
class Fields:
    labels: str = "labels"  # assumed: every object's string map (the seeds' `metadata` maps)
    id: str = "id"  # an entity's id, as an error message names the entity
    template: TemplateFields = TemplateFields()
    version: VersionFields = VersionFields()
    prompt: PromptFields = PromptFields()
    index: IndexFields = IndexFields()
    model: ModelFields = ModelFields()
    store: StoreFields = StoreFields()


FIELDS = Fields()


@dataclass(frozen=True)
class InvocationFields:  # seed 003: an invocation's body and its answer
    prompt_id: str = "promptId"
    user_input: str = "userInput"
    session_id: str = "sessionId"  # a sticky split routes by it
    options: str = "options"
    response_id: str = "responseId"
    output: str = "output"
    version: str = "version"  # the version served
    model_id: str = "modelId"  # the model served
    token_usage: str = "tokenUsage"
    usage_prompt: str = "prompt"  # tokenUsage's two counts
    usage_completion: str = "completion"


@dataclass(frozen=True)
class DispatchFields:  # seed 001: a routed dispatch's body and its answer
    model_id: str = "modelId"  # the primary model; in the answer, the model served
    prompt: str = "prompt"
    parameters: str = "parameters"
    temperature: str = "temperature"  # of parameters
    fallbacks: str = "fallbackModels"
    safety_filters: str = "safetyFilters"
    metadata: str = "metadata"  # echoed on the answer
    response_id: str = "responseId"
    output: str = "output"
    fallback_used: str = "fallbackUsed"
    attempts: str = "attempts"  # each a model_id, a status and an outcome
    status: str = "status"
    outcome: str = "outcome"


@dataclass(frozen=True)
class TelemetryFields:  # seed 003: a telemetry entry, and the query filtering them
    timestamp: str = "timestamp"
    prompt_id: str = "promptId"  # also the query's filter
    version: str = "version"
    model_id: str = "modelId"
    latency_ms: str = "latencyMs"
    input_tokens: str = "inputTokens"
    output_tokens: str = "outputTokens"
    error: str = "error"
    simulated: str = "simulated"
    start_time: str = "startTime"  # query parameters
    end_time: str = "endTime"


@dataclass(frozen=True)
class AnalyticsFields:  # seed 002: the usage query and its answer's rows
    date_from: str = "dateFrom"
    date_to: str = "dateTo"
    group_by: str = "groupBy"
    metrics: str = "metrics"
    data: str = "data"  # the answer's rows
    total_tokens: str = "totalTokens"  # the metrics
    input_tokens: str = "inputTokens"
    output_tokens: str = "outputTokens"
    latency_ms: str = "latencyMs"
    error_count: str = "errorCount"
    invocations: str = "invocations"  # the richer row (assumed): counts, percentiles, sums
    latency_p50_ms: str = "latencyP50Ms"
    latency_p95_ms: str = "latencyP95Ms"
    latency_p99_ms: str = "latencyP99Ms"
    guardrail_blocks: str = "guardrailBlocks"
    fallback_count: str = "fallbackCount"
    filter: str = "filter"  # assumed: {"promptId": ..., "versions": [...]}
    filter_versions: str = "versions"
    prompt_id: str = "promptId"  # the group keys
    version: str = "version"
    model_id: str = "modelId"
    gateway_id: str = "llmGatewayId"  # seed 002


@dataclass(frozen=True)
class AuditFields:  # seed 003: a compliance audit record, as sent and as answered
    id: str = "id"
    prompt_id: str = "promptId"
    action: str = "action"
    timestamp: str = "timestamp"
    details: str = "details"
    compliance_status: str = "complianceStatus"
    metadata: str = "metadata"
    received_at: str = "receivedAt"


@dataclass(frozen=True)
class RuntimeFields:
    """The run-time endpoints' bodies and answers: invocations, routed dispatch, telemetry,
    analytics and audit records.

    Beside ``FIELDS``, not in it: several of these names (``action``, ``timestamp``,
    ``details``, ``error``, ``outcome``, ``latencyMs``) are also words llmgw's own formats use
    (the plan file, the audit lines, the JSON outputs), which the wire-name rule reads as wire
    names only under ``FIELDS``."""

    invocation: InvocationFields = InvocationFields()
    dispatch: DispatchFields = DispatchFields()
    telemetry: TelemetryFields = TelemetryFields()
    analytics: AnalyticsFields = AnalyticsFields()
    audit: AuditFields = AuditFields()


RUNTIME = RuntimeFields()


@dataclass(frozen=True)
class ErrorFields:
    """The Genesys error body every refusal carries (contract)."""

    message: str = "message"
    code: str = "code"  # a value of ``CODES``
    status: str = "status"
    context_id: str = "contextId"  # equal to the inin-correlation-id header
    details: str = "details"


ERROR_BODY = ErrorFields()


@dataclass(frozen=True)
class OAuth:
    """The login host's token endpoint (``PATHS.token``): RFC 6749's client credentials grant,
    its form fields, its answer and its error body (names and the values they take)."""

    grant_type: str = "grant_type"
    client_credentials: str = "client_credentials"  # the one grant_type
    client_id: str = "client_id"  # the form's credentials, instead of Basic auth
    client_secret: str = "client_secret"
    scope: str = "scope"  # space separated, asked and granted
    access_token: str = "access_token"
    token_type: str = "token_type"
    bearer: str = "bearer"  # the one token_type
    expires_in: str = "expires_in"
    error: str = "error"
    error_description: str = "error_description"  # RFC 6749 section 5.2
    description: str = "description"  # the same text, as the platform's login service names it
    invalid_request: str = "invalid_request"  # the values of error
    invalid_client: str = "invalid_client"
    unsupported_grant_type: str = "unsupported_grant_type"


OAUTH = OAuth()


@dataclass(frozen=True)
class Paths:
    """Paths, as templates over the path parameters the plan records."""

    token: str = "/oauth/token"  # on the login host
    templates: str = "/api/v2/llm-gateway/prompt-templates"
    template: str = "/api/v2/llm-gateway/prompt-templates/{templateId}"
    versions: str = "/api/v2/ai/prompt-templates/{templateId}/versions"
    version: str = "/api/v2/ai/prompt-templates/{templateId}/versions/{version}"
    prompts: str = "/api/v2/ai/llm/gateway/prompts"
    prompt: str = "/api/v2/ai/llm/gateway/prompts/{promptId}"
    models: str = "/api/v2/ai/models"
    vector_stores: str = "/api/v2/ai/vectorstores"
    indexes: str = "/api/v2/ai/vectorstores/{vectorStoreId}/indexes"
    index: str = "/api/v2/ai/vectorstores/{vectorStoreId}/indexes/{indexId}"
    invocations: str = "/api/v2/ai/llm/gateway/invocations"
    dispatch: str = "/api/v2/ai/gateway/prompts"
    telemetry: str = "/api/v2/ai/llm/gateway/telemetry"
    analytics: str = "/api/v2/analytics/llm-gateway/details/query"
    audit_logs: str = "/api/v2/ai/llm/gateway/audit-logs"
    openapi: str = "/api/v2/docs/openapi.json"  # the contract as OpenAPI 3.1 (no token needed)


PATHS = Paths()


@dataclass(frozen=True)
class Params:
    """The path parameters of ``Paths``' templates, as a request's ``params`` name them."""

    template_id: str = "templateId"
    version: str = "version"
    prompt_id: str = "promptId"
    store_id: str = "vectorStoreId"
    index_id: str = "indexId"


PARAMS = Params()


@dataclass(frozen=True)
class Write:
    """One write endpoint and the answers that mean "done" (``docs/contract.md``).

    ``success`` are the only statuses the client accepts as applied: anything else, a 1xx, a
    3xx or another 2xx included, is a failure. ``identity`` names the field of the answer's
    object that identifies it (None: the answer need not be an object); ``param`` names the
    path parameter that field must equal (a PUT to one id answered with another is refused)."""

    method: str
    path: str
    success: tuple[int, ...]
    identity: str | None = None
    param: str | None = None


# DELETE also accepts 200: RFC 9110 9.3.5 lets a server answer an enacted DELETE with 200 and a
# representation of the outcome (as some Genesys Cloud platform endpoints do) or 204; 202 means
# accepted but not yet enacted, which llmgw cannot verify, so it is a failure.
_DELETED = (204, 200)

WRITES: tuple[Write, ...] = (
    Write("POST", PATHS.templates, (201,), FIELDS.template.id),
    Write("PUT", PATHS.template, (200,), FIELDS.template.id, PARAMS.template_id),
    Write("DELETE", PATHS.template, _DELETED),
    Write("POST", PATHS.versions, (201,), FIELDS.version.version),
    Write("PATCH", PATHS.version, (200,), FIELDS.version.version, PARAMS.version),
    Write("DELETE", PATHS.version, _DELETED),
    Write("POST", PATHS.prompts, (201,), FIELDS.prompt.id),
    Write("PUT", PATHS.prompt, (200,), FIELDS.prompt.id, PARAMS.prompt_id),
    Write("DELETE", PATHS.prompt, _DELETED),
    Write("PUT", PATHS.index, (200, 201), FIELDS.index.index_id, PARAMS.index_id),
    Write("DELETE", PATHS.index, _DELETED),
    Write("POST", PATHS.audit_logs, (201,)),
    Write("POST", PATHS.invocations, (200,)),
    Write("POST", PATHS.dispatch, (200,)),
    Write("POST", PATHS.analytics, (200,)),  # a query sent as POST: its answer is the result
)
"""Every write llmgw sends. A write to a path outside this table (a library caller's own) is
held to the statuses any of them documents."""

QUERIES = frozenset({("POST", PATHS.analytics)})
"""POSTs that change nothing (a query's body is its question): a read-only run may send them,
and they are retried like a GET."""

READ_SUCCESS = (200,)
"""A GET succeeds with 200 only."""


@dataclass(frozen=True)
class Paging:
    page_size: str = "pageSize"
    page_number: str = "pageNumber"
    cursor: str = "cursor"
    entities: str = "entities"
    total: str = "total"
    page_count: str = "pageCount"
    num_pages: str = "numPages"  # seed 002's name for pageCount: read either
    next_cursor: str = "nextPageCursor"
    max_page_size: int = 100


PAGING = Paging()


@dataclass(frozen=True)
class Headers:
    request_id: str = "X-Genesys-Request-Id"
    correlation_id: str = "inin-correlation-id"
    rate_allowed: str = "inin-ratelimit-allowed"
    rate_count: str = "inin-ratelimit-count"
    rate_reset: str = "inin-ratelimit-reset"
    retry_after: str = "Retry-After"
    date: str = "Date"  # the server's clock (RFC 9110 IMF-fixdate), on every answer
    ab_test: str = "X-Genesys-AB-Test"
    if_match: str = "If-Match"
    if_none_match: str = "If-None-Match"
    etag: str = "ETag"
    # HTTP's own, as the client sends and reads them
    authorization: str = "Authorization"
    user_agent: str = "User-Agent"
    accept: str = "Accept"
    accept_encoding: str = "Accept-Encoding"
    content_length: str = "Content-Length"
    content_encoding: str = "Content-Encoding"
    location: str = "Location"


HEADERS = Headers()


@dataclass(frozen=True)
class Scopes:
    template_read: str = "llm-gateway:prompt-template:view"
    template_write: str = "llm-gateway:prompt-template:manage"
    version_read: str = "ai:prompt-template:read"
    version_write: str = "ai:prompt-template:write"
    prompt_read: str = "ai:prompt:read"
    prompt_write: str = "ai:prompt:write"
    store_read: str = "ai:vectorstore:read"
    store_write: str = "ai:vectorstore:write"
    execute: str = "ai:prompt:execute"
    telemetry_read: str = "ai:telemetry:read"
    analytics_read: str = "analytics:llm-gateway:view"
    audit_write: str = "ai:gateway:write"

    @property
    def read(self) -> tuple[str, ...]:
        """What plan, drift and export need."""
        return (self.template_read, self.version_read, self.prompt_read, self.store_read)

    @property
    def write(self) -> tuple[str, ...]:
        return (self.template_write, self.version_write, self.prompt_write, self.store_write)

    @property
    def all(self) -> tuple[str, ...]:
        return (
            *self.read,
            *self.write,
            self.execute,
            self.telemetry_read,
            self.analytics_read,
            self.audit_write,
        )


SCOPES = Scopes()

REGIONS = (
    "mypurecloud.com",
    "usw2.pure.cloud",
    "use2.us-gov-pure.cloud",
    "cac1.pure.cloud",
    "mypurecloud.ie",
    "euw2.pure.cloud",
    "mypurecloud.de",
    "euc2.pure.cloud",
    "aps1.pure.cloud",
    "apne2.pure.cloud",
    "apne3.pure.cloud",
    "mypurecloud.jp",
    "mypurecloud.com.au",
    "apse1.pure.cloud",
    "sae1.pure.cloud",
    "mec1.pure.cloud",
    "mxc1.pure.cloud",
)
"""Region domains (real): API ``https://api.{domain}``, login ``https://login.{domain}``."""


@dataclass(frozen=True)
class Codes:
    """The error body's ``code``: tells apart answers that share a status (contract)."""

    name_exists: str = "name.exists"
    version_exists: str = "version.exists"
    precondition_failed: str = "precondition.failed"
    index_processing: str = "index.processing"
    immutable_field: str = "immutable.field"
    version_withdrawn: str = "version.withdrawn"
    version_routed: str = "version.routed"
    template_bound: str = "template.bound"
    validation_failed: str = "validation.failed"
    missing_scope: str = "missing.scope"
    rate_limited: str = "rate.limited"
    request_too_large: str = "request.too.large"
    not_found: str = "not.found"
    bad_credentials: str = "bad.credentials"
    method_not_allowed: str = "method.not.allowed"
    service_unavailable: str = "service.unavailable"
    internal_server_error: str = "internal.server.error"
    models_unavailable: str = "models.unavailable"

    @property
    def all(self) -> tuple[str, ...]:
        return tuple(getattr(self, f) for f in self.__dataclass_fields__)


CODES = Codes()


@dataclass(frozen=True)
class Statuses:
    """Server-managed ``status`` values the reconciler reads (an index ingesting, a version
    withdrawn)."""

    processing: str = "PROCESSING"
    active: str = "ACTIVE"
    withdrawn: str = "WITHDRAWN"
    approved: str = "APPROVED"  # an audit record's complianceStatus, as llmgw's mirror sends it


STATUSES = Statuses()
