"""Normalisation: both sides of a diff in one shape, so an unchanged object never shows a diff.

Desired objects come from manifests, live objects from the gateway's list endpoints; both become
``Obj`` records whose ``fields`` are in the manifest's shape (camelCase, references by name, a
prompt's rendered system prompt), with the documented defaults filled, server-managed fields
stripped, sets sorted, split versions keyed by version, and numbers that are floats by nature
made floats. The management label is part of the desired labels. Also the inverse: the remote
request bodies for desired objects. Pure: no I/O.

The live side trusts no server: every field it reads is checked first (ids and names strings,
ids fit to be path segments, labels a string map, numbers numbers, lists lists), so a wrong
shape is a ``ProtocolError`` naming the listing and the entity, never a KeyError or TypeError.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from reconciler.diffing import parse_path
from reconciler.endpoints import FIELDS, PATHS
from reconciler.errors import ProtocolError
from reconciler.fewshot import render_system_prompt
from reconciler.model import (
    ALLOW_REPLACE_ANNOTATION,
    MANAGED_LABEL,
    MANAGED_VALUE,
    Document,
    Kind,
)
from reconciler.redact import clip
from reconciler.schema import with_defaults
from reconciler.text import kind_of, shown
from reconciler.urls import segment_problem

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
#
# A server's entity is checked for every field these functions read before it is read, so a
# hostile or buggy server cannot raise KeyError/TypeError inside them (a bug, exit 3): each
# wrong shape is a ProtocolError naming the listing and the entity, its value quoted with
# text.shown and the message clipped through the redactor.

F = FIELDS
TRIM = 300
_SCALARS = (str, int, float, bool)


class _Entity:
    """One remote entity being read: typed access to its fields, and the error that names it."""

    def __init__(self, raw: Any, endpoint: str, what: str, ident: str, prefix: str = "") -> None:
        self.endpoint = endpoint
        self.prefix = prefix
        if prefix:
            self.label = what
        else:
            if not isinstance(raw, Mapping):
                self.label = f"a {what}"
                raise self.fail("", f"is {kind_of(raw)}, not an object")
            name, rid = raw.get(ident), raw.get("id")
            if isinstance(name, str):
                self.label = f"{what} {shown(name)}"
            elif isinstance(rid, str):
                self.label = f"a {what} with id {shown(rid)}"
            else:
                self.label = f"a {what}"
        self.raw: Mapping[str, Any] = raw

    def fail(self, field: str, problem: str) -> ProtocolError:
        where = f"{self.prefix}{field} " if field else ""
        return ProtocolError(
            "GET", self.endpoint, None, None, clip(f"{self.label}: {where}{problem}", TRIM)
        )

    def _get(self, field: str, types: tuple[type, ...], expected: str) -> Any:
        value = self.raw.get(field)
        if value is None:
            return None
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise self.fail(field, f"is {shown(value)}, not {expected}")
        return value

    def required(self, field: str, value: Any) -> Any:
        if value is None:
            raise self.fail(
                field,
                "is missing (if this gateway names it otherwise, see reconciler/endpoints.py)",
            )
        return value

    def string(self, field: str) -> str | None:
        value: str | None = self._get(field, (str,), "a string")
        return value

    def identity(self, field: str) -> str:
        """A required id that a later request will put in its path."""
        value = self.required(field, self.string(field))
        problem = segment_problem(value)
        if problem:
            raise self.fail(field, f"{shown(value)} {problem}, so it cannot be part of a path")
        return str(value)

    def etag(self, field: str) -> str | None:
        value = self.string(field)
        if value is not None and (
            len(value) > 1024 or not all("\x21" <= ch <= "\x7e" for ch in value)
        ):
            raise self.fail(field, f"is {shown(value)}, not an entity tag (visible ASCII)")
        return value

    def boolean(self, field: str) -> bool | None:
        value: bool | None = self._get(field, (bool,), "true or false")
        return value

    def integer(self, field: str) -> int | None:
        value: int | None = self._get(field, (int,), "an integer")
        return value

    def number(self, field: str) -> int | float | None:
        value: int | float | None = self._get(field, (int, float), "a number")
        return value

    def strings(self, field: str) -> list[str] | None:
        value: list[Any] | None = self._get(field, (list,), "a list of strings")
        for i, item in enumerate(value or ()):
            if not isinstance(item, str):
                raise self.fail(f"{field}[{i}]", f"is {shown(item)}, not a string")
        return value

    def items(self, field: str) -> list[Any] | None:
        value: list[Any] | None = self._get(field, (list,), "a list")
        return value

    def mapping(self, field: str) -> Mapping[str, Any] | None:
        value: Mapping[str, Any] | None = self._get(field, (dict,), "an object")
        return value

    def string_map(self, field: str) -> dict[str, str] | None:
        value = self.mapping(field)
        for k, v in (value or {}).items():
            if not isinstance(v, str):
                raise self.fail(f"{field}.{k}", f"is {shown(v)}, not a string")
        return dict(value) if value is not None else None

    def sub(self, field: str) -> _Entity | None:
        """A nested object, checked the same way (messages name ``field.inner``)."""
        value = self.mapping(field)
        if value is None:
            return None
        return _Entity(value, self.endpoint, self.label, "", f"{self.prefix}{field}.")

    def labels(self) -> dict[str, str]:
        return _labels(self.string_map("labels"), managed=False)

    def managed(self) -> bool:
        labels = self.string_map("labels") or {}
        return labels.get(MANAGED_LABEL) == MANAGED_VALUE


def live_template(raw: Mapping[str, Any], *, endpoint: str = PATHS.templates) -> Obj:
    f = F.template
    e = _Entity(raw, endpoint, "template", f.name)
    name = e.required(f.name, e.string(f.name))
    tid = e.identity(f.id)
    g = e.sub(f.guardrails)
    max_tokens = e.integer(f.max_tokens)
    spec = {
        "description": e.string(f.description) or "",
        "systemInstruction": e.string(f.system_instruction) or "",
        "userTemplate": e.string(f.user_template) or "",
        "variables": list(e.strings(f.variables) or []),
        "maxTokens": max_tokens if max_tokens is not None else 4096,
        "safetyGuardrails": {
            "piiFilter": g is None or g.boolean(f.pii_filter) is not False,
            "jailbreakDetection": g is None or g.boolean(f.jailbreak_detection) is not False,
            "outputModeration": g is None or g.boolean(f.output_moderation) is not False,
        },
    }
    fields = _template_fields(spec)
    fields["labels"] = e.labels()
    return Obj(
        T,
        name,
        fields,
        remote_id=tid,
        precondition=e.integer(f.version),
        managed=e.managed(),
    )


def live_version(
    raw: Mapping[str, Any],
    template_name: str,
    *,
    endpoint: str = PATHS.versions,
    template_id: str | None = None,
) -> Obj:
    f = F.version
    e = _Entity(raw, endpoint, "version", f.version)
    version = e.identity(f.version)
    tid = e.string(f.template_id)
    if template_id is not None and tid is not None and tid != template_id:
        raise e.fail(f.template_id, f"is {shown(tid)}, not the {shown(template_id)} listed")
    variables = e.mapping(f.variables)
    for k, v in (variables or {}).items():
        if not isinstance(v, _SCALARS):
            raise e.fail(f"{f.variables}.{k}", f"is {shown(v)}, not a type name or a default")
    spec: dict[str, Any] = {
        "content": e.string(f.content) or "",
        "variables": dict(variables or {}),
        "rollbackDirective": bool(e.boolean(f.rollback)),
        "metadata": dict(e.string_map(f.metadata) or {}),
    }
    ab = e.sub(f.ab_test)
    if ab is not None:
        ab.boolean("enabled")
        ab.number("trafficPercent")
        ab.string("variantId")
        spec["abTest"] = dict(ab.raw)
    fields = _version_fields(spec)
    fields["labels"] = e.labels()
    # Versions have no concurrency token of their own: the fingerprint of their mutable part
    # stands in, so apply can still tell that a version moved since the plan.
    return Obj(
        V,
        f"{template_name}@{version}",
        fields,
        remote_id=version,
        precondition=fingerprint(fields),
        managed=e.managed(),
        status=e.string(f.status),
    )


def live_prompt(
    raw: Mapping[str, Any],
    template_names: Mapping[str, str],
    *,
    endpoint: str = PATHS.prompts,
) -> tuple[Obj, Obj | None]:
    """The Prompt, and its TrafficSplit when the remote object has a traffic distribution."""
    f = F.prompt
    e = _Entity(raw, endpoint, "prompt", f.name)
    name = e.required(f.name, e.string(f.name))
    pid = e.identity(f.id)
    g = e.sub(f.guardrails)
    tid = e.string(f.template_id) or ""
    spec: dict[str, Any] = {
        # an unbound prompt (seed 003 creates one) has no template: "" shows as the change
        "template": template_names.get(tid, f"id:{tid}") if tid else "",
        "model": e.string(f.model) or e.string(f.model_alias) or "",
        "fallbackModels": list(e.strings(f.fallbacks) or []),
        "systemPrompt": e.string(f.system_prompt) or "",
        "temperature": e.number(f.temperature),
        "topP": e.number(f.top_p),
        "maxTokens": e.integer(f.max_tokens),
        "version": e.string(f.version),
        "safetyGuardrails": {
            k: v
            for k, v in {
                "contentFiltering": g.strings(f.content_filtering) if g else None,
                "maxTokens": g.integer(f.guard_max_tokens) if g else None,
                "blockedCategories": g.strings(f.blocked_categories) if g else None,
            }.items()
            if v is not None
        },
    }
    spec = {k: v for k, v in spec.items() if v is not None}
    fields = _prompt_fields(spec, spec["systemPrompt"])
    fields["labels"] = e.labels()
    etag = e.etag(f.etag)
    prompt = Obj(
        P,
        name,
        fields,
        remote_id=pid,
        precondition=etag,
        managed=e.managed(),
        status=e.string(f.status),
    )
    td = e.sub(f.traffic)
    split = None
    if td is not None and td.raw:
        default = td.string(f.td_default)
        if default is not None:
            sf: dict[str, Any] = {"defaultVersion": default}
        else:
            entries = td.items(f.td_versions) or []
            versions: list[dict[str, Any]] = []
            for i, entry in enumerate(entries):
                item = _Entity(entry, endpoint, e.label, "", f"{td.prefix}{f.td_versions}[{i}].")
                if not isinstance(entry, Mapping):
                    raise item.fail("", f"is {shown(entry)}, not an object")
                version = item.required("version", item.string("version"))
                weight = item.required("weight", item.number("weight"))
                if any(v["version"] == version for v in versions):
                    raise item.fail("version", f"{shown(version)} is listed twice")
                versions.append({"version": version, "weight": weight})
            sf = _split_fields(
                {"strategy": td.string(f.td_strategy) or "random", "versions": versions}
            )
        split = Obj(S, name, sf, remote_id=pid, precondition=etag, managed=prompt.managed)
    return prompt, split


def live_index(raw: Mapping[str, Any], store_id: str, *, endpoint: str = PATHS.indexes) -> Obj:
    f = F.index
    e = _Entity(raw, endpoint, "index", f.index_id)
    name = e.identity(f.index_id)
    spec: dict[str, Any] = {
        "dimensions": e.required(f.dimensions, e.integer(f.dimensions)),
        "similarityMetric": e.required(f.metric, e.string(f.metric)),
        "embeddingFormat": e.required(f.format, e.string(f.format)),
        "autoIngest": bool(e.boolean(f.auto_ingest)),
    }
    webhook = e.string(f.webhook)
    if webhook is not None:
        spec["webhookSyncUrl"] = webhook
    fields = _index_fields(spec)
    fields["labels"] = e.labels()
    return Obj(
        X,
        f"{store_id}/{name}",
        fields,
        remote_id=name,
        precondition=e.etag(f.etag),
        managed=e.managed(),
        status=e.string(f.status),
    )


def live_model(raw: Mapping[str, Any], *, endpoint: str = PATHS.models) -> dict[str, Any]:
    """A model record as the planner reads it: ``id`` a string, the token limits integers."""
    e = _Entity(raw, endpoint, "model", "id")
    e.required("id", e.string("id"))
    e.string("provider")
    e.integer("contextWindow")
    e.integer("maxOutputTokens")
    return dict(raw)


def live_store(raw: Mapping[str, Any], *, endpoint: str = PATHS.vector_stores) -> str:
    """A vector store's id (it becomes part of the indexes' paths)."""
    e = _Entity(raw, endpoint, "vector store", "name")
    e.string("name")
    return e.identity("id")


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
