"""Normalisation: both sides of a diff in one shape, so an unchanged object never shows a diff.

Desired objects come from manifests, live objects from the gateway's list endpoints; both become
``Obj`` records whose ``fields`` are in the manifest's shape (camelCase, references by name, a
prompt's rendered system prompt), with the documented defaults filled, server-managed fields
stripped, sets sorted, split versions keyed by version, and numbers that are floats by nature
made floats. The management label is part of the desired labels. Also the inverse: the remote
request bodies for desired objects. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from reconciler.diffing import parse_path
from reconciler.endpoints import FIELDS
from reconciler.fewshot import render_system_prompt
from reconciler.model import (
    ALLOW_REPLACE_ANNOTATION,
    MANAGED_LABEL,
    MANAGED_VALUE,
    Document,
    Kind,
)
from reconciler.schema import with_defaults

T, V, P, S, X = (
    Kind.PROMPT_TEMPLATE.value,
    Kind.PROMPT_VERSION.value,
    Kind.PROMPT.value,
    Kind.TRAFFIC_SPLIT.value,
    Kind.VECTOR_INDEX.value,
)


@dataclass(frozen=True)
class Ref:
    """A reference to another object's remote id, resolved at apply time (it may not exist yet)."""

    kind: str
    key: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.key}"


@dataclass
class Obj:
    """One object in the manifest's shape. ``fields`` excludes identity fields."""

    kind: str
    key: str
    fields: dict[str, Any]
    # live side
    remote_id: str | None = None
    precondition: int | str | None = None  # template version, or ETag
    managed: bool = False
    status: str | None = None
    # desired side
    source: str = ""
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.key}"

    @property
    def labels(self) -> dict[str, str]:
        labels = self.fields.get("labels")
        return labels if isinstance(labels, dict) else {}

    @property
    def allow_replace(self) -> bool:
        return self.annotations.get(ALLOW_REPLACE_ANNOTATION) == "true"


def fingerprint(value: Any) -> str:
    """A stable hash of a JSON-like value (for preconditions of objects with no ETag, and audit)."""
    data = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(data.encode("utf-8")).hexdigest()[:32]


def _floats(d: dict[str, Any], *names: str) -> None:
    for n in names:
        v = d.get(n)
        if isinstance(v, int | float) and not isinstance(v, bool):
            d[n] = float(v)


def _labels(raw: Any, managed: bool) -> dict[str, str]:
    labels = {str(k): str(v) for k, v in (raw or {}).items()} if isinstance(raw, dict) else {}
    if managed:
        labels[MANAGED_LABEL] = MANAGED_VALUE
    return dict(sorted(labels.items()))


# ---------------------------------------------------------------------------------------------
# Desired side: manifests -> Obj


def _template_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    s = with_defaults(T, dict(spec))
    return {
        "description": s.get("description", ""),
        "systemInstruction": s["systemInstruction"],
        "userTemplate": s["userTemplate"],
        "variables": sorted(set(s.get("variables") or [])),
        "maxTokens": s["maxTokens"],
        "safetyGuardrails": dict(sorted(s["safetyGuardrails"].items())),
    }


def _version_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    s = with_defaults(V, dict(spec))
    out: dict[str, Any] = {
        "content": s["content"],
        "variables": dict(sorted(s["variables"].items())),
        "rollbackDirective": bool(s.get("rollbackDirective", False)),
        "metadata": dict(sorted((s.get("metadata") or {}).items())),
    }
    if s.get("abTest") is not None:
        ab = dict(s["abTest"])
        _floats(ab, "trafficPercent")
        out["abTest"] = dict(sorted(ab.items()))
    return out


def _prompt_fields(spec: Mapping[str, Any], system_prompt: str) -> dict[str, Any]:
    s = with_defaults(P, dict(spec))
    g = s["safetyGuardrails"]
    out: dict[str, Any] = {
        "template": s["template"],
        "model": s["model"],
        "fallbackModels": list(s.get("fallbackModels") or []),
        "systemPrompt": system_prompt,
        "temperature": s["temperature"],
        "topP": s["topP"],
        "maxTokens": s["maxTokens"],
        "safetyGuardrails": {
            "blockedCategories": sorted(set(g.get("blockedCategories") or [])),
            "contentFiltering": sorted(set(g.get("contentFiltering") or [])),
            "maxTokens": g.get("maxTokens", 4096),
        },
    }
    if s.get("version") is not None:
        out["version"] = s["version"]
    _floats(out, "temperature", "topP")
    return out


def _split_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    if spec.get("defaultVersion") is not None:
        return {"defaultVersion": spec["defaultVersion"]}
    versions = {str(e["version"]): float(e["weight"]) for e in spec.get("versions") or []}
    return {
        "strategy": spec.get("strategy") or "random",
        "versions": dict(sorted(versions.items())),
    }


def _index_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    s = with_defaults(X, dict(spec))
    out: dict[str, Any] = {
        "dimensions": s["dimensions"],
        "similarityMetric": s["similarityMetric"],
        "embeddingFormat": s["embeddingFormat"],
        "autoIngest": bool(s.get("autoIngest", False)),
    }
    if s.get("webhookSyncUrl") is not None:
        out["webhookSyncUrl"] = s["webhookSyncUrl"]
    return out


def desired_object(doc: Document) -> Obj:
    """The normalised desired object of a valid document."""
    kind, spec = doc.kind, doc.spec
    if kind == T:
        fields = _template_fields(spec)
    elif kind == V:
        fields = _version_fields(spec)
    elif kind == P:
        fields = _prompt_fields(spec, render_system_prompt(spec).text)
    elif kind == S:
        fields = _split_fields(spec)
    elif kind == X:
        fields = _index_fields(spec)
    else:  # pragma: no cover - validation refuses unknown kinds
        raise ValueError(kind)
    if kind != S:  # a split has no labels of its own: the Prompt owns the remote object's labels
        fields["labels"] = _labels(doc.labels, managed=True)
    annotations = {str(k): str(v) for k, v in doc.annotations.items()}
    return Obj(
        kind, doc.key or doc.name, fields, source=f"{doc.file}:{doc.line}", annotations=annotations
    )


def desired_state(docs: Iterable[Document]) -> dict[str, Obj]:
    """``ref -> Obj`` for every document (which must have passed validation)."""
    return {o.ref: o for o in (desired_object(d) for d in docs)}


# ---------------------------------------------------------------------------------------------
# Live side: remote objects -> Obj (field names from the endpoint table)

F = FIELDS


def _managed(raw: Mapping[str, Any]) -> bool:
    labels = raw.get("labels")
    return isinstance(labels, dict) and labels.get(MANAGED_LABEL) == MANAGED_VALUE


def live_template(raw: Mapping[str, Any]) -> Obj:
    f = F.template
    g = raw.get(f.guardrails) or {}
    spec = {
        "description": raw.get(f.description) or "",
        "systemInstruction": raw.get(f.system_instruction) or "",
        "userTemplate": raw.get(f.user_template) or "",
        "variables": list(raw.get(f.variables) or []),
        "maxTokens": raw.get(f.max_tokens) if raw.get(f.max_tokens) is not None else 4096,
        "safetyGuardrails": {
            "piiFilter": g.get(f.pii_filter, True) is not False,
            "jailbreakDetection": g.get(f.jailbreak_detection, True) is not False,
            "outputModeration": g.get(f.output_moderation, True) is not False,
        },
    }
    fields = _template_fields(spec)
    fields["labels"] = _labels(raw.get("labels"), managed=False)
    return Obj(
        T,
        str(raw[f.name]),
        fields,
        remote_id=str(raw[f.id]),
        precondition=raw.get(f.version),
        managed=_managed(raw),
    )


def live_version(raw: Mapping[str, Any], template_name: str) -> Obj:
    f = F.version
    spec: dict[str, Any] = {
        "content": raw.get(f.content) or "",
        "variables": dict(raw.get(f.variables) or {}),
        "rollbackDirective": bool(raw.get(f.rollback)),
        "metadata": dict(raw.get(f.metadata) or {}),
    }
    if raw.get(f.ab_test) is not None:
        spec["abTest"] = dict(raw[f.ab_test])
    fields = _version_fields(spec)
    fields["labels"] = _labels(raw.get("labels"), managed=False)
    version = str(raw[f.version])
    # Versions have no concurrency token of their own: the fingerprint of their mutable part
    # stands in, so apply can still tell that a version moved since the plan.
    return Obj(
        V,
        f"{template_name}@{version}",
        fields,
        remote_id=version,
        precondition=fingerprint(fields),
        managed=_managed(raw),
        status=raw.get(f.status),
    )


def live_prompt(
    raw: Mapping[str, Any], template_names: Mapping[str, str]
) -> tuple[Obj, Obj | None]:
    """The Prompt, and its TrafficSplit when the remote object has a traffic distribution."""
    f = F.prompt
    g = raw.get(f.guardrails) or {}
    tid = str(raw.get(f.template_id) or "")
    spec: dict[str, Any] = {
        "template": template_names.get(tid, f"id:{tid}"),
        "model": raw.get(f.model) or raw.get(f.model_alias) or "",
        "fallbackModels": list(raw.get(f.fallbacks) or []),
        "systemPrompt": raw.get(f.system_prompt) or "",
        "temperature": raw.get(f.temperature),
        "topP": raw.get(f.top_p),
        "maxTokens": raw.get(f.max_tokens),
        "version": raw.get(f.version),
        "safetyGuardrails": {
            k: v
            for k, v in {
                "contentFiltering": g.get(f.content_filtering),
                "maxTokens": g.get(f.guard_max_tokens),
                "blockedCategories": g.get(f.blocked_categories),
            }.items()
            if v is not None
        },
    }
    spec = {k: v for k, v in spec.items() if v is not None}
    fields = _prompt_fields(spec, spec["systemPrompt"])
    fields["labels"] = _labels(raw.get("labels"), managed=False)
    name = str(raw[f.name])
    etag = raw.get(f.etag)
    prompt = Obj(
        P,
        name,
        fields,
        remote_id=str(raw[f.id]),
        precondition=etag,
        managed=_managed(raw),
        status=raw.get(f.status),
    )
    td = raw.get(f.traffic)
    split = None
    if isinstance(td, dict) and td:
        if td.get(f.td_default) is not None:
            sf: dict[str, Any] = {"defaultVersion": str(td[f.td_default])}
        else:
            entries = td.get(f.td_versions) or []
            sf = _split_fields(
                {
                    "strategy": td.get(f.td_strategy) or "random",
                    "versions": [
                        {"version": e.get("version"), "weight": e.get("weight")}
                        for e in entries
                        if isinstance(e, dict)
                    ],
                }
            )
        split = Obj(
            S, name, sf, remote_id=str(raw[f.id]), precondition=etag, managed=prompt.managed
        )
    return prompt, split


def live_index(raw: Mapping[str, Any], store_id: str) -> Obj:
    f = F.index
    spec: dict[str, Any] = {
        "dimensions": raw.get(f.dimensions),
        "similarityMetric": raw.get(f.metric),
        "embeddingFormat": raw.get(f.format),
        "autoIngest": bool(raw.get(f.auto_ingest)),
    }
    if raw.get(f.webhook) is not None:
        spec["webhookSyncUrl"] = raw[f.webhook]
    fields = _index_fields(spec)
    fields["labels"] = _labels(raw.get("labels"), managed=False)
    name = str(raw[f.index_id])
    return Obj(
        X,
        f"{store_id}/{name}",
        fields,
        remote_id=name,
        precondition=raw.get(f.etag),
        managed=_managed(raw),
        status=raw.get(f.status),
    )


# ---------------------------------------------------------------------------------------------
# Desired -> remote request bodies


def template_body(name: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    f = F.template
    g = fields["safetyGuardrails"]
    return {
        f.name: name,
        f.description: fields["description"],
        f.system_instruction: fields["systemInstruction"],
        f.user_template: fields["userTemplate"],
        f.variables: list(fields["variables"]),
        f.max_tokens: fields["maxTokens"],
        f.guardrails: {
            f.pii_filter: g["piiFilter"],
            f.jailbreak_detection: g["jailbreakDetection"],
            f.output_moderation: g["outputModeration"],
        },
        "labels": dict(fields["labels"]),
    }


def version_body(template: str, version: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    f = F.version
    body: dict[str, Any] = {
        f.template_id: Ref(T, template),
        f.version: version,
        f.content: fields["content"],
        f.variables: dict(fields["variables"]),
        f.rollback: fields["rollbackDirective"],
        f.metadata: dict(fields["metadata"]),
        "labels": dict(fields["labels"]),
    }
    if "abTest" in fields:
        body[f.ab_test] = dict(fields["abTest"])
    return body


def version_patch_body(fields: Mapping[str, Any]) -> dict[str, Any]:
    f = F.version
    return {
        f.rollback: fields["rollbackDirective"],
        f.metadata: dict(fields["metadata"]),
        "labels": dict(fields["labels"]),
    }


def traffic_body(split: Mapping[str, Any]) -> dict[str, Any]:
    f = F.prompt
    if "defaultVersion" in split:
        return {f.td_default: split["defaultVersion"]}
    return {
        f.td_versions: [{"version": v, "weight": w} for v, w in split["versions"].items()],
        f.td_strategy: split["strategy"],
    }


def prompt_body(fields: Mapping[str, Any], only: Iterable[str] | None = None) -> dict[str, Any]:
    """The remote body of a prompt; ``only`` limits it to some manifest fields (a merge-PUT).
    A field the desired state lacks but ``only`` names is sent as null (removed remotely)."""
    f = F.prompt
    g = fields.get("safetyGuardrails") or {}
    full: dict[str, Any] = {
        "template": (f.template_id, Ref(T, fields["template"]) if "template" in fields else None),
        "model": (f.model, fields.get("model")),
        "fallbackModels": (f.fallbacks, list(fields.get("fallbackModels") or [])),
        "systemPrompt": (f.system_prompt, fields.get("systemPrompt")),
        "version": (f.version, fields.get("version")),
        "temperature": (f.temperature, fields.get("temperature")),
        "topP": (f.top_p, fields.get("topP")),
        "maxTokens": (f.max_tokens, fields.get("maxTokens")),
        "safetyGuardrails": (
            f.guardrails,
            {
                f.content_filtering: list(g.get("contentFiltering") or []),
                f.guard_max_tokens: g.get("maxTokens", 4096),
                f.blocked_categories: list(g.get("blockedCategories") or []),
            },
        ),
        "labels": ("labels", dict(fields.get("labels") or {})),
    }
    names = list(full) if only is None else [n for n in full if n in set(only)]
    body = {full[n][0]: full[n][1] for n in names}
    if only is None:
        body = {k: v for k, v in body.items() if v is not None}
    return body


def index_body(name: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    f = F.index
    body: dict[str, Any] = {
        f.index_id: name,
        f.dimensions: fields["dimensions"],
        f.metric: fields["similarityMetric"],
        f.format: fields["embeddingFormat"],
        f.auto_ingest: fields["autoIngest"],
        "labels": dict(fields["labels"]),
    }
    if "webhookSyncUrl" in fields:
        body[f.webhook] = fields["webhookSyncUrl"]
    return body


@dataclass
class LiveState:
    """What the org holds, normalised, keyed by ref (``Kind/key``). Pure data.

    ``versions_read`` names the templates whose versions were listed: versions of other templates
    are unknown, not absent. ``models`` maps a model id to its remote record; ``stores`` lists
    the vector store ids.
    """

    objects: dict[str, Obj] = field(default_factory=dict)
    versions_read: set[str] = field(default_factory=set)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    stores: set[str] = field(default_factory=set)
    requests: int = 0

    def get(self, ref: str) -> Obj | None:
        return self.objects.get(ref)

    def of_kind(self, kind: str) -> list[Obj]:
        return [o for o in self.objects.values() if o.kind == kind]


def with_ignores(desired: Obj, live: Obj | None, ignored: Iterable[str]) -> Obj:
    """Desired with each ignored field set to its live value: never shown, never reverted."""
    if live is None:
        return desired
    fields = deepcopy_json(desired.fields)
    for path in ignored:
        parts = parse_path(path)
        src: Any = live.fields
        dst: Any = fields
        for p in parts[:-1]:
            src = src.get(p) if isinstance(src, dict) else None
            if not isinstance(dst.get(p), dict):
                dst[p] = {}
            dst = dst[p]
        last = parts[-1] if parts else ""
        if isinstance(src, dict) and last in src:
            dst[last] = deepcopy_json(src[last])
        elif isinstance(dst, dict):
            dst.pop(last, None)
    return replace(desired, fields=fields)


def deepcopy_json(value: Any) -> Any:
    """A copy of a JSON-like value (dicts and lists copied, leaves shared)."""
    if isinstance(value, dict):
        return {k: deepcopy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [deepcopy_json(v) for v in value]
    return value
