"""Remote field names of each kind, in one place (manifest name -> remote name).

Part of the endpoint table: with the paths in ``endpoints``, this is where to adapt llmgw to an
org whose gateway names fields differently. Plain constants, no logic.
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
    dimensions: str = "dimensions"
    metric: str = "similarityMetric"
    format: str = "embeddingFormat"
    auto_ingest: str = "autoIngestTrigger"
    webhook: str = "webhookSyncUrl"
    status: str = "status"
    etag: str = "etag"


@dataclass(frozen=True)
class Fields:
    template: TemplateFields = TemplateFields()
    version: VersionFields = VersionFields()
    prompt: PromptFields = PromptFields()
    index: IndexFields = IndexFields()


FIELDS = Fields()


@dataclass(frozen=True)
class Paths:
    """Write paths, as templates over the path parameters the plan records."""

    templates: str = "/api/v2/llm-gateway/prompt-templates"
    template: str = "/api/v2/llm-gateway/prompt-templates/{templateId}"
    versions: str = "/api/v2/ai/prompt-templates/{templateId}/versions"
    version: str = "/api/v2/ai/prompt-templates/{templateId}/versions/{version}"
    prompts: str = "/api/v2/ai/llm/gateway/prompts"
    prompt: str = "/api/v2/ai/llm/gateway/prompts/{promptId}"
    index: str = "/api/v2/ai/vectorstores/{vectorStoreId}/indexes/{indexId}"


PATHS = Paths()
