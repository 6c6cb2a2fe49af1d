"""The emulator's state machine: the gateway's objects and every rule of the contract.

Pure: no HTTP, no I/O, an injected clock and random generator. Each handler takes the parsed
request (path parameters, query, JSON body, a few headers) and returns an ``Answer`` or raises
``ApiError`` (status, contract error code, message). Field names come from the endpoint table.
``snapshot()``/``restore()`` give a JSON form for ``--state``.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeGuard

from reconciler.endpoints import FIELDS, PAGING

TF, VF, PF, XF = FIELDS.template, FIELDS.version, FIELDS.prompt, FIELDS.index
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
STORE_ID = "6d1f2c1e-0b7a-4a55-9d1e-3f3f8a2b9c10"
MODELS: tuple[dict[str, Any], ...] = (
    {
        "id": "anthropic/claude-3-sonnet",
        "provider": "anthropic",
        "contextWindow": 200000,
        "maxOutputTokens": 4096,
    },
    {"id": "model-gen-4", "provider": "genesys", "contextWindow": 128000, "maxOutputTokens": 4096},
    {
        "id": "model-fallback-3",
        "provider": "genesys",
        "contextWindow": 16000,
        "maxOutputTokens": 2048,
    },
)
STORES: tuple[dict[str, Any], ...] = ({"id": STORE_ID, "name": "prod-knowledge-store"},)
CONTENT_FILTERS = ("pii", "profanity", "toxicity", "jailbreak")
CATEGORIES = ("violence", "hate_speech", "self_harm", "sexual", "harassment")
METRICS = ("cosine", "euclidean", "dot_product")
FORMATS = ("float32", "int8", "binary")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: list[str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or []


def invalid(message: str, status: int = 400, details: list[str] | None = None) -> ApiError:
    return ApiError(status, "validation.failed", message, details)


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _etag() -> str:
    return f'"{uuid.uuid4().hex[:20]}"'


def _labels(value: Any, where: str = "labels") -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise invalid(f"{where} must be a map of strings")
    return dict(value)


def _unknown(body: Mapping[str, Any], allowed: frozenset[str], server: frozenset[str]) -> None:
    extra = sorted(set(body) - allowed - server)
    if extra:
        raise invalid("unknown field(s): " + ", ".join(extra))


def _clean(body: Mapping[str, Any], server: frozenset[str]) -> dict[str, Any]:
    """Server-managed fields are ignored; ``null`` means absent."""
    return {k: v for k, v in body.items() if k not in server and v is not None}


def _is_num(v: Any) -> TypeGuard[float]:
    return isinstance(v, int | float) and not isinstance(v, bool)


def page(items: list[Any], query: Mapping[str, str]) -> dict[str, Any]:
    try:
        size = int(query.get(PAGING.page_size, 25))
        number = int(query.get(PAGING.page_number, 1))
    except ValueError:
        raise invalid("pageSize and pageNumber must be integers") from None
    if not 1 <= size <= PAGING.max_page_size:
        raise invalid(f"pageSize must be between 1 and {PAGING.max_page_size}")
    if number < 1:
        raise invalid("pageNumber must be 1 or more")
    total = len(items)
    pages = max(1, -(-total // size))
    return {
        PAGING.entities: items[(number - 1) * size : number * size],
        PAGING.page_size: size,
        PAGING.page_number: number,
        PAGING.total: total,
        PAGING.page_count: pages,
        PAGING.num_pages: pages,
    }


class Gateway:
    """Everything the org holds. Objects are stored as their wire form."""

    def __init__(
        self,
        *,
        now: Callable[[], float],
        ingest_delay: float = 2.0,
        seed: int | None = None,
    ) -> None:
        self.now = now
        self.ingest_delay = ingest_delay
        self.rng = random.Random(seed)
        self.reset()

    def reset(self) -> None:
        self.templates: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, dict[str, dict[str, Any]]] = {}
        self.prompts: dict[str, dict[str, Any]] = {}
        self.indexes: dict[str, dict[str, dict[str, Any]]] = {s["id"]: {} for s in STORES}
        self.ready_at: dict[str, float] = {}  # "store/index" -> when PROCESSING ends
        self.telemetry: list[dict[str, Any]] = []
        self.audit_logs: list[dict[str, Any]] = []
        self.failing_models: set[str] = set()

    # -- persistence --
    def snapshot(self) -> dict[str, Any]:
        return {
            "templates": self.templates,
            "versions": self.versions,
            "prompts": self.prompts,
            "indexes": self.indexes,
            "readyAt": self.ready_at,
            "telemetry": self.telemetry[-10000:],
            "auditLogs": self.audit_logs[-10000:],
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        self.reset()
        self.templates = dict(data.get("templates") or {})
        self.versions = {k: dict(v) for k, v in (data.get("versions") or {}).items()}
        self.prompts = dict(data.get("prompts") or {})
        for store, idx in (data.get("indexes") or {}).items():
            self.indexes[store] = dict(idx)
        self.ready_at = dict(data.get("readyAt") or {})
        self.telemetry = list(data.get("telemetry") or [])
        self.audit_logs = list(data.get("auditLogs") or [])

    # -- templates (seed 002) --
    _T_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            TF.name,
            TF.description,
            TF.system_instruction,
            TF.user_template,
            TF.variables,
            TF.max_tokens,
            TF.guardrails,
            "labels",
        }
    )
    _T_SERVER: ClassVar[frozenset[str]] = frozenset(
        {TF.id, TF.version, "dateCreated", "dateModified", "selfUri"}
    )

    def _template_from(self, body: Any, current_id: str | None) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise invalid("the body must be a JSON object")
        _unknown(body, self._T_FIELDS, self._T_SERVER)
        b = _clean(body, self._T_SERVER)
        problems = []
        name = b.get(TF.name)
        if not isinstance(name, str) or not 3 <= len(name) <= 128:
            problems.append(f"{TF.name} must be a string of 3 to 128 characters")
        for f in (TF.description, TF.system_instruction, TF.user_template):
            if f in b and not isinstance(b[f], str):
                problems.append(f"{f} must be a string")
        variables = b.get(TF.variables, [])
        if not isinstance(variables, list) or not all(isinstance(v, str) for v in variables):
            problems.append(f"{TF.variables} must be a list of names")
            variables = []
        mt = b.get(TF.max_tokens, 4096)
        if not isinstance(mt, int) or isinstance(mt, bool) or not 256 <= mt <= 128000:
            problems.append(f"{TF.max_tokens} must be an integer from 256 to 128000")
        g = b.get(TF.guardrails) or {}
        keys = {TF.pii_filter, TF.jailbreak_detection, TF.output_moderation}
        if (
            not isinstance(g, dict)
            or set(g) - keys
            or not all(isinstance(v, bool) for v in g.values())
        ):
            problems.append(f"{TF.guardrails} allows only the booleans {', '.join(sorted(keys))}")
            g = {}
        text = str(b[TF.user_template]) if isinstance(b.get(TF.user_template), str) else ""
        missing = sorted(set(PLACEHOLDER.findall(text)) - set(variables))
        if missing:
            problems.append(
                f"{TF.user_template} uses placeholder(s) not in {TF.variables}: "
                + ", ".join(missing)
            )
        if problems:
            raise invalid("; ".join(problems), details=problems)
        if any(t[TF.name] == name and tid != current_id for tid, t in self.templates.items()):
            raise ApiError(409, "name.exists", f"a prompt template named {name!r} exists")
        out = {
            TF.name: name,
            TF.variables: variables,
            TF.max_tokens: mt,
            TF.guardrails: {k: g.get(k, True) for k in sorted(keys)},
            "labels": _labels(b.get("labels")),
        }
        for f in (TF.description, TF.system_instruction, TF.user_template):
            if f in b:
                out[f] = b[f]
        return out

    def _template(self, tid: str) -> dict[str, Any]:
        t = self.templates.get(tid)
        if t is None:
            raise ApiError(404, "not.found", f"prompt template {tid} not found")
        return t

    def create_template(self, body: Any, base: str) -> Answer:
        obj = self._template_from(body, None)
        tid = str(uuid.uuid4())
        stamp = _iso(self.now())
        obj.update(
            {
                TF.id: tid,
                TF.version: 1,
                "dateCreated": stamp,
                "dateModified": stamp,
                "selfUri": f"{base}/{tid}",
            }
        )
        self.templates[tid] = obj
        self.versions.setdefault(tid, {})
        return Answer(201, obj)

    def replace_template(self, tid: str, body: Any, if_match: str | None) -> Answer:
        cur = self._template(tid)
        if if_match is not None:
            want = if_match.strip().strip('"').removeprefix("version=")
            if want != str(cur[TF.version]):
                raise ApiError(
                    412,
                    "precondition.failed",
                    f"template {tid} is at version {cur[TF.version]}, not {want}",
                )
        obj = self._template_from(body, tid)
        obj.update({k: cur[k] for k in (TF.id, "dateCreated", "selfUri")})
        obj[TF.version] = cur[TF.version] + 1
        obj["dateModified"] = _iso(self.now())
        self.templates[tid] = obj
        return Answer(200, obj)

    def delete_template(self, tid: str) -> Answer:
        self._template(tid)
        bound = sorted(p[PF.name] for p in self.prompts.values() if p.get(PF.template_id) == tid)
        if bound:
            raise ApiError(
                409, "template.bound", f"template {tid} is bound by prompt(s) " + ", ".join(bound)
            )
        del self.templates[tid]
        self.versions.pop(tid, None)
        return Answer(204)

    def list_templates(self, query: Mapping[str, str]) -> Answer:
        items = sorted(self.templates.values(), key=lambda t: t[TF.name])
        return Answer(200, page(items, query))

    def get_template(self, tid: str) -> Answer:
        return Answer(200, self._template(tid))

    # -- versions (seed 000) --
    _V_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            VF.template_id,
            VF.version,
            VF.content,
            VF.variables,
            VF.rollback,
            VF.ab_test,
            VF.metadata,
            "labels",
        }
    )
    _V_SERVER: ClassVar[frozenset[str]] = frozenset({VF.status, "dateCreated", "contentHash"})
    _V_MUTABLE: ClassVar[frozenset[str]] = frozenset({VF.rollback, VF.metadata, "labels"})

    def _routed(self, tid: str, version: str) -> list[str]:
        out = []
        for p in self.prompts.values():
            if p.get(PF.template_id) != tid:
                continue
            td = p.get(PF.traffic) or {}
            listed = {str(e.get("version")) for e in td.get(PF.td_versions) or []}
            if td.get(PF.td_default) == version or version in listed:
                out.append(p[PF.name])
        return sorted(out)

    def create_version(self, tid: str, body: Any) -> Answer:
        self._template(tid)
        if not isinstance(body, dict):
            raise invalid("the body must be a JSON object")
        _unknown(body, self._V_FIELDS, self._V_SERVER)
        b = _clean(body, self._V_SERVER)
        problems = []
        if b.get(VF.template_id) not in (None, tid):
            problems.append(f"{VF.template_id} does not match the path")
        version = b.get(VF.version)
        if not isinstance(version, str) or not SEMVER.match(version):
            problems.append(f'{VF.version} must be a semantic version string such as "2.1.0"')
        content = b.get(VF.content)
        if not isinstance(content, str) or not content:
            problems.append(f"{VF.content} is required")
            content = ""
        matrix = b.get(VF.variables, {})
        if not isinstance(matrix, dict):
            problems.append(f"{VF.variables} must map placeholder names to a type or default")
            matrix = {}
        for k, v in matrix.items():
            if not (
                v in ("string", "number", "boolean") or isinstance(v, str | int | float | bool)
            ):
                problems.append(f"{VF.variables}.{k} must be string, number, boolean or a default")
        if len(content.encode("utf-8")) > 4096:
            problems.append(f"{VF.content} is {len(content.encode('utf-8'))} bytes; at most 4096")
        if len(content) / 4 > 3800:
            problems.append(f"{VF.content} is about {len(content) // 4} tokens; at most 3800")
        used = set(PLACEHOLDER.findall(content))
        if used - set(matrix):
            problems.append(
                "placeholder(s) missing from the variable matrix: "
                + ", ".join(sorted(used - set(matrix)))
            )
        if set(matrix) - used:
            problems.append(
                "variable(s) not used in the content: " + ", ".join(sorted(set(matrix) - used))
            )
        if VF.rollback in b and not isinstance(b[VF.rollback], bool):
            problems.append(f"{VF.rollback} must be a boolean")
        ab = b.get(VF.ab_test)
        if ab is not None:
            if not isinstance(ab, dict) or set(ab) - {"enabled", "trafficPercent", "variantId"}:
                problems.append(f"{VF.ab_test} allows enabled, trafficPercent, variantId")
            elif "trafficPercent" in ab and not (
                _is_num(ab["trafficPercent"]) and 0 <= ab["trafficPercent"] <= 1
            ):
                problems.append(f"{VF.ab_test}.trafficPercent must be between 0 and 1")
        try:
            metadata = _labels(b.get(VF.metadata), VF.metadata)
            labels = _labels(b.get("labels"))
        except ApiError as exc:
            problems.append(exc.message)
            metadata, labels = {}, {}
        if problems:
            raise invalid("; ".join(problems), details=problems)
        assert isinstance(version, str)
        if version in self.versions.setdefault(tid, {}):
            raise ApiError(409, "version.exists", f"version {version} of template {tid} exists")
        obj: dict[str, Any] = {
            VF.template_id: tid,
            VF.version: version,
            VF.content: content,
            VF.variables: matrix,
            VF.rollback: bool(b.get(VF.rollback, False)),
            VF.metadata: metadata,
            "labels": labels,
            VF.status: "WITHDRAWN" if b.get(VF.rollback) else "ACTIVE",
            "dateCreated": _iso(self.now()),
            "contentHash": "sha256:" + hashlib.sha256(content.encode("utf-8")).hexdigest(),
        }
        if ab is not None:
            obj[VF.ab_test] = ab
        self.versions[tid][version] = obj
        return Answer(201, obj)

    def _version(self, tid: str, version: str) -> dict[str, Any]:
        self._template(tid)
        v = self.versions.get(tid, {}).get(version)
        if v is None:
            raise ApiError(404, "not.found", f"version {version} of template {tid} not found")
        return v

    def patch_version(self, tid: str, version: str, body: Any) -> Answer:
        cur = self._version(tid, version)
        if not isinstance(body, dict):
            raise invalid("the body must be a JSON object")
        _unknown(body, self._V_FIELDS, self._V_SERVER)
        b = _clean(body, self._V_SERVER)
        for k in (VF.template_id, VF.version):
            if k in b and b[k] != cur[k]:
                raise ApiError(422, "immutable.field", f"{k} cannot change")
            b.pop(k, None)
        frozen = sorted(k for k in b if k not in self._V_MUTABLE and b[k] != cur.get(k))
        if frozen:
            raise ApiError(
                422,
                "immutable.field",
                "versions are immutable in " + ", ".join(frozen) + "; create a new version instead",
            )
        if VF.rollback in b and not isinstance(b[VF.rollback], bool):
            raise invalid(f"{VF.rollback} must be a boolean")
        if b.get(VF.rollback) and not cur[VF.rollback]:
            routed = self._routed(tid, version)
            if routed:
                raise ApiError(
                    409,
                    "version.routed",
                    f"version {version} still receives traffic from " + ", ".join(routed),
                )
        new = dict(cur)
        if VF.rollback in b:
            new[VF.rollback] = b[VF.rollback]
            new[VF.status] = "WITHDRAWN" if b[VF.rollback] else "ACTIVE"
        if VF.metadata in b:
            new[VF.metadata] = _labels(b[VF.metadata], VF.metadata)
        if "labels" in b:
            new["labels"] = _labels(b["labels"])
        self.versions[tid][version] = new
        return Answer(200, new)

    def delete_version(self, tid: str, version: str) -> Answer:
        self._version(tid, version)
        routed = self._routed(tid, version)
        if routed:
            raise ApiError(
                409,
                "version.routed",
                f"version {version} still receives traffic from " + ", ".join(routed),
            )
        del self.versions[tid][version]
        return Answer(204)

    def list_versions(self, tid: str, query: Mapping[str, str]) -> Answer:
        self._template(tid)
        items = sorted(self.versions.get(tid, {}).values(), key=lambda v: v[VF.version])
        return Answer(200, page(items, query))

    def get_version(self, tid: str, version: str) -> Answer:
        return Answer(200, self._version(tid, version))

    # -- gateway prompts (seeds 003, 001) --
    _P_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            PF.name,
            PF.template_id,
            PF.model,
            PF.model_alias,
            PF.fallbacks,
            PF.system_prompt,
            PF.version,
            PF.temperature,
            PF.top_p,
            PF.max_tokens,
            PF.guardrails,
            PF.traffic,
            "labels",
        }
    )
    _P_SERVER: ClassVar[frozenset[str]] = frozenset(
        {PF.id, PF.status, PF.etag, "dateCreated", "dateModified", "selfUri"}
    )
    _P_DEFAULTS: ClassVar[dict[str, Any]] = {
        PF.fallbacks: [],
        PF.temperature: 0.7,
        PF.top_p: 0.95,
        PF.max_tokens: 2048,
    }

    def _check_prompt(self, p: dict[str, Any], pid: str | None) -> None:
        problems = []
        name = p.get(PF.name)
        if not isinstance(name, str) or not 3 <= len(name) <= 128:
            problems.append(f"{PF.name} must be a string of 3 to 128 characters")
        if p.get(PF.template_id) not in self.templates:
            problems.append(f"{PF.template_id} {p.get(PF.template_id)!r} is not a template")
        models = {m["id"]: m for m in MODELS}
        model = p.get(PF.model)
        if model not in models:
            problems.append(f"model {model!r} is not in the models list")
        fb = p.get(PF.fallbacks)
        if not isinstance(fb, list) or not all(isinstance(m, str) for m in fb):
            problems.append(f"{PF.fallbacks} must be a list of model ids")
        else:
            problems += [
                f"fallback model {m!r} is not in the models list" for m in fb if m not in models
            ]
        sp = p.get(PF.system_prompt)
        if not isinstance(sp, str) or not sp:
            problems.append(f"{PF.system_prompt} is required")
            sp = ""
        if len(sp) > 8000:
            problems.append(f"{PF.system_prompt} is {len(sp)} characters; at most 8000")
        t = p.get(PF.temperature)
        if not _is_num(t) or not 0.0 <= t <= 2.0:
            problems.append(f"{PF.temperature} must be between 0.0 and 2.0")
        tp = p.get(PF.top_p)
        if not _is_num(tp) or not 0.0 <= tp <= 1.0:
            problems.append(f"{PF.top_p} must be between 0 and 1")
        mt = p.get(PF.max_tokens)
        if not isinstance(mt, int) or isinstance(mt, bool) or mt < 1:
            problems.append(f"{PF.max_tokens} must be a positive integer")
        elif model in models and mt > models[model]["maxOutputTokens"]:
            problems.append(
                f"{PF.max_tokens} {mt} exceeds the model's maxOutputTokens "
                f"{models[model]['maxOutputTokens']}"
            )
        if PF.version in p and not (isinstance(p[PF.version], str) and SEMVER.match(p[PF.version])):
            problems.append(f"{PF.version} must be a semantic version string")
        g = p.get(PF.guardrails)
        if not isinstance(g, dict) or set(g) - {
            PF.content_filtering,
            PF.guard_max_tokens,
            PF.blocked_categories,
        }:
            problems.append(
                f"{PF.guardrails} allows {PF.content_filtering}, "
                f"{PF.guard_max_tokens}, {PF.blocked_categories}"
            )
        else:
            cf = g.get(PF.content_filtering, [])
            bc = g.get(PF.blocked_categories, [])
            if not isinstance(cf, list) or set(cf) - set(CONTENT_FILTERS):
                problems.append(f"{PF.content_filtering} allows {', '.join(CONTENT_FILTERS)}")
            if not isinstance(bc, list) or set(bc) - set(CATEGORIES):
                problems.append(f"{PF.blocked_categories} allows {', '.join(CATEGORIES)}")
            gmt = g.get(PF.guard_max_tokens)
            if not isinstance(gmt, int) or isinstance(gmt, bool) or gmt < 1:
                problems.append(f"{PF.guardrails}.{PF.guard_max_tokens} must be a positive integer")
            elif len(sp) / 4 > gmt:
                problems.append(
                    f"{PF.system_prompt} is about {len(sp) // 4} tokens "
                    f"(characters / 4), over {PF.guardrails}.{PF.guard_max_tokens} {gmt}"
                )
        td = p.get(PF.traffic)
        withdrawn: list[str] = []
        if td is not None:
            problems += self._check_traffic(td, str(p.get(PF.template_id)), withdrawn)
        try:
            _labels(p.get("labels"))
        except ApiError as exc:
            problems.append(exc.message)
        if problems:
            raise invalid("; ".join(problems), details=problems)
        if withdrawn:
            raise ApiError(
                409,
                "version.withdrawn",
                "traffic routed to withdrawn version(s) " + ", ".join(withdrawn),
            )
        if any(o[PF.name] == name and oid != pid for oid, o in self.prompts.items()):
            raise ApiError(409, "name.exists", f"a gateway prompt named {name!r} exists")

    def _check_traffic(self, td: Any, tid: str, withdrawn: list[str]) -> list[str]:
        if not isinstance(td, dict):
            return [f"{PF.traffic} must be an object"]
        versions = self.versions.get(tid, {})
        if PF.td_default in td:
            if set(td) - {PF.td_default}:
                return [f"{PF.traffic} takes either {PF.td_default} or {PF.td_versions}"]
            v = td[PF.td_default]
            if v not in versions:
                return [f"{PF.td_default} {v!r} is not a version of the bound template"]
            if versions[v][VF.rollback]:
                withdrawn.append(str(v))
            return []
        if set(td) - {PF.td_versions, PF.td_strategy}:
            return [
                f"{PF.traffic} allows {PF.td_default}, or {PF.td_versions} and {PF.td_strategy}"
            ]
        entries = td.get(PF.td_versions)
        if not isinstance(entries, list) or not entries:
            return [f"{PF.traffic}.{PF.td_versions} must be a non-empty list"]
        if td.get(PF.td_strategy, "random") not in ("random", "sticky"):
            return [f"{PF.td_strategy} must be random or sticky"]
        problems = []
        total = 0.0
        for e in entries:
            if (
                not isinstance(e, dict)
                or set(e) != {"version", "weight"}
                or not _is_num(e["weight"])
            ):
                problems.append("each split entry is {version, weight}")
                continue
            total += e["weight"]
            if e["version"] not in versions:
                problems.append(
                    f"split version {e['version']!r} is not a version of the bound template"
                )
            elif versions[e["version"]][VF.rollback]:
                withdrawn.append(str(e["version"]))
        if not problems and abs(total - 1.0) > 0.01:
            problems.append(f"split weights sum to {round(total, 4)}, not 1.0")
        return problems

    def _prompt(self, pid: str) -> dict[str, Any]:
        p = self.prompts.get(pid)
        if p is None:
            raise ApiError(404, "not.found", f"gateway prompt {pid} not found")
        return p

    def _prompt_body(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise invalid("the body must be a JSON object")
        _unknown(body, self._P_FIELDS, self._P_SERVER)
        b = dict(body)
        for k in self._P_SERVER:
            b.pop(k, None)
        if PF.model_alias in b:
            alias = b.pop(PF.model_alias)
            if alias is not None and b.get(PF.model) is None:
                b[PF.model] = alias
        return b

    def create_prompt(self, body: Any, base: str) -> Answer:
        b = {k: v for k, v in self._prompt_body(body).items() if v is not None}
        for req in (PF.name, PF.template_id, PF.model, PF.system_prompt):
            if req not in b:
                raise invalid(
                    f"{req} is required" + (f" (or {PF.model_alias})" if req == PF.model else "")
                )
        p = {**self._P_DEFAULTS, **b}
        p[PF.guardrails] = {
            PF.content_filtering: [],
            PF.guard_max_tokens: 4096,
            PF.blocked_categories: [],
            **(b.get(PF.guardrails) or {}),
        }
        p.setdefault("labels", {})
        self._check_prompt(p, None)
        pid = str(uuid.uuid4())
        stamp = _iso(self.now())
        p.update(
            {
                PF.id: pid,
                PF.status: "ACTIVE",
                PF.etag: _etag(),
                "dateCreated": stamp,
                "dateModified": stamp,
                "selfUri": f"{base}/{pid}",
            }
        )
        self.prompts[pid] = p
        return Answer(201, p, {"ETag": p[PF.etag]})

    def update_prompt(self, pid: str, body: Any, if_match: str | None) -> Answer:
        cur = self._prompt(pid)
        if if_match is not None and if_match.strip() not in (cur[PF.etag], "*"):
            raise ApiError(412, "precondition.failed", f"gateway prompt {pid} changed (ETag)")
        b = self._prompt_body(body)
        new = dict(cur)
        for k, v in b.items():  # merge: top-level fields present; null resets to absent/default
            if v is None:
                new.pop(k, None)
                if k in self._P_DEFAULTS:
                    new[k] = self._P_DEFAULTS[k]
            else:
                new[k] = v
        if PF.guardrails in b:
            new[PF.guardrails] = {
                PF.content_filtering: [],
                PF.guard_max_tokens: 4096,
                PF.blocked_categories: [],
                **(b.get(PF.guardrails) or {}),
            }
        new.setdefault("labels", {})
        self._check_prompt(new, pid)
        new[PF.etag] = _etag()
        new["dateModified"] = _iso(self.now())
        self.prompts[pid] = new
        return Answer(200, new, {"ETag": new[PF.etag]})

    def delete_prompt(self, pid: str, if_match: str | None) -> Answer:
        cur = self._prompt(pid)
        if if_match is not None and if_match.strip() not in (cur[PF.etag], "*"):
            raise ApiError(412, "precondition.failed", f"gateway prompt {pid} changed (ETag)")
        del self.prompts[pid]
        return Answer(204)

    def list_prompts(self, query: Mapping[str, str]) -> Answer:
        return Answer(200, page(sorted(self.prompts.values(), key=lambda p: p[PF.name]), query))

    def get_prompt(self, pid: str) -> Answer:
        p = self._prompt(pid)
        return Answer(200, p, {"ETag": p[PF.etag]})

    def list_models(self, query: Mapping[str, str]) -> Answer:
        return Answer(200, page([dict(m) for m in MODELS], query))

    # -- vector stores and indexes (seed 004) --
    _X_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            XF.index_id,
            XF.dimensions,
            XF.metric,
            XF.format,
            XF.auto_ingest,
            XF.webhook,
            "labels",
        }
    )
    _X_SERVER: ClassVar[frozenset[str]] = frozenset(
        {XF.status, XF.etag, "updatedAt", "syncEventId", "retrievalPrecision"}
    )
    _X_IMMUTABLE = (XF.dimensions, XF.metric, XF.format)

    def _store(self, sid: str) -> dict[str, dict[str, Any]]:
        if sid not in self.indexes:
            raise ApiError(404, "not.found", f"vector store {sid} not found")
        return self.indexes[sid]

    def _settle(self, sid: str, iid: str) -> dict[str, Any] | None:
        idx = self.indexes.get(sid, {}).get(iid)
        if (
            idx is not None
            and idx[XF.status] == "PROCESSING"
            and self.now() >= self.ready_at.get(f"{sid}/{iid}", 0)
        ):
            idx[XF.status] = "ACTIVE"
            self.ready_at.pop(f"{sid}/{iid}", None)
        return idx

    def put_index(
        self, sid: str, iid: str, body: Any, if_match: str | None, if_none_match: str | None
    ) -> Answer:
        store = self._store(sid)
        cur = self._settle(sid, iid)
        if if_none_match is not None and if_none_match.strip() == "*" and cur is not None:
            raise ApiError(409, "precondition.failed", f"index {iid} already exists")
        if if_match is not None and (cur is None or if_match.strip() not in (cur[XF.etag], "*")):
            raise ApiError(409, "precondition.failed", f"index {iid} changed (ETag) or is absent")
        if cur is not None and cur[XF.status] == "PROCESSING":
            raise ApiError(
                409, "index.processing", f"index {iid} is still ingesting; retry when it is ACTIVE"
            )
        if not isinstance(body, dict):
            raise invalid("the body must be a JSON object", 422)
        extra = sorted(set(body) - self._X_FIELDS - self._X_SERVER)
        if extra:
            raise invalid("unknown field(s): " + ", ".join(extra), 422)
        b = _clean(body, self._X_SERVER)
        if b.get(XF.index_id) not in (None, iid):
            raise invalid(f"{XF.index_id} does not match the path", 422)
        dims = b.get(XF.dimensions)
        if not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= 4096:
            raise invalid(f"{XF.dimensions} must be an integer from 1 to 4096", 400)
        problems = []
        if b.get(XF.metric) not in METRICS:
            problems.append(f"{XF.metric} must be one of {', '.join(METRICS)}")
        if b.get(XF.format) not in FORMATS:
            problems.append(f"{XF.format} must be one of {', '.join(FORMATS)}")
        if XF.auto_ingest in b and not isinstance(b[XF.auto_ingest], bool):
            problems.append(f"{XF.auto_ingest} must be a boolean")
        hook = b.get(XF.webhook)
        if hook is not None and not (isinstance(hook, str) and re.match(r"^https?://\S+$", hook)):
            problems.append(f"{XF.webhook} must be an http(s) URL")
        try:
            labels = _labels(b.get("labels"))
        except ApiError as exc:
            problems.append(exc.message)
            labels = {}
        if problems:
            raise invalid("; ".join(problems), 422, problems)
        if cur is not None:
            changed = [f for f in self._X_IMMUTABLE if b.get(f) != cur.get(f)]
            if changed:
                raise ApiError(
                    422,
                    "immutable.field",
                    ", ".join(changed) + " cannot change on "
                    "an existing index (delete and recreate it)",
                )
        ingest = bool(b.get(XF.auto_ingest, False))
        now = self.now()
        obj: dict[str, Any] = {
            XF.index_id: iid,
            XF.dimensions: dims,
            XF.metric: b[XF.metric],
            XF.format: b[XF.format],
            XF.auto_ingest: ingest,
            "labels": labels,
            XF.status: "PROCESSING" if ingest and self.ingest_delay > 0 else "ACTIVE",
            "updatedAt": _iso(now),
            "syncEventId": str(uuid.uuid4()),
            "retrievalPrecision": 0.92 if b[XF.format] == "float32" else 0.87,
            XF.etag: _etag(),
        }
        if hook is not None:
            obj[XF.webhook] = hook
        if obj[XF.status] == "PROCESSING":
            self.ready_at[f"{sid}/{iid}"] = now + self.ingest_delay
        store[iid] = obj
        return Answer(201 if cur is None else 200, obj, {"ETag": obj[XF.etag]})

    def get_index(self, sid: str, iid: str) -> Answer:
        self._store(sid)
        idx = self._settle(sid, iid)
        if idx is None:
            raise ApiError(404, "not.found", f"index {iid} not found in vector store {sid}")
        return Answer(200, idx, {"ETag": idx[XF.etag]})

    def delete_index(self, sid: str, iid: str, if_match: str | None) -> Answer:
        store = self._store(sid)
        idx = self._settle(sid, iid)
        if idx is None:
            raise ApiError(404, "not.found", f"index {iid} not found in vector store {sid}")
        if if_match is not None and if_match.strip() not in (idx[XF.etag], "*"):
            raise ApiError(409, "precondition.failed", f"index {iid} changed (ETag)")
        del store[iid]
        self.ready_at.pop(f"{sid}/{iid}", None)
        return Answer(204)

    def list_indexes(self, sid: str, query: Mapping[str, str]) -> Answer:
        store = self._store(sid)
        items = [self._settle(sid, i) for i in sorted(store)]
        return Answer(200, page(items, query))

    def list_stores(self, query: Mapping[str, str]) -> Answer:
        return Answer(200, page([dict(s) for s in STORES], query))

    # -- runtime, telemetry, analytics, audit --
    def _pick_version(self, p: dict[str, Any], session: str | None) -> str | None:
        td = p.get(PF.traffic) or {}
        if td.get(PF.td_default):
            return str(td[PF.td_default])
        entries = td.get(PF.td_versions) or []
        if not entries:
            return p.get(PF.version)
        if td.get(PF.td_strategy) == "sticky" and session:
            x = int(hashlib.sha256(f"{p[PF.id]}:{session}".encode()).hexdigest()[:8], 16) / 2**32
        else:
            x = self.rng.random()
        acc = 0.0
        for e in entries:
            acc += float(e["weight"])
            if x < acc:
                return str(e["version"])
        return str(entries[-1]["version"])

    def invoke(self, body: Any) -> Answer:
        if not isinstance(body, dict) or not isinstance(body.get("promptId"), str):
            raise invalid("promptId is required")
        p = self._prompt(body["promptId"])
        text = str(body.get("userInput") or "")
        version = self._pick_version(p, body.get("sessionId"))
        prompt_tokens = max(1, (len(p[PF.system_prompt]) + len(text)) // 4)
        output = f"[{p[PF.model]}] reply to: {text[:200]}"
        completion = max(1, len(output) // 4)
        latency = round(40 + self.rng.random() * 160, 1)
        self.telemetry.append(
            {
                "timestamp": _iso(self.now()),
                "promptId": p[PF.id],
                "version": version,
                "latencyMs": latency,
                "inputTokens": prompt_tokens,
                "outputTokens": completion,
                "error": None,
            }
        )
        return Answer(
            200,
            {
                "responseId": str(uuid.uuid4()),
                "output": output,
                "version": version,
                "tokenUsage": {"prompt": prompt_tokens, "completion": completion},
            },
        )

    def dispatch(self, body: Any) -> Answer:
        if not isinstance(body, dict) or not isinstance(body.get("modelId"), str):
            raise invalid("modelId is required")
        models = {m["id"] for m in MODELS}
        chain = [
            body["modelId"],
            *[m for m in body.get("fallbackModels") or [] if isinstance(m, str)],
        ]
        unknown = [m for m in chain if m not in models]
        if unknown:
            raise invalid("unknown model(s): " + ", ".join(unknown))
        attempts = []
        for model in chain:
            if model in self.failing_models:
                attempts.append({"model": model, "status": 503})
                continue
            attempts.append({"model": model, "status": 200})
            return Answer(
                200,
                {
                    "model": model,
                    "output": f"[{model}] {str(body.get('prompt'))[:200]}",
                    "attempts": attempts,
                },
            )
        raise ApiError(
            503,
            "models.unavailable",
            "every model in the chain failed",
            [f"{a['model']}: {a['status']}" for a in attempts],
        )

    def telemetry_page(self, query: Mapping[str, str]) -> Answer:
        rows = [
            t
            for t in self.telemetry
            if (not query.get("promptId") or t["promptId"] == query["promptId"])
            and (not query.get("startTime") or t["timestamp"] >= query["startTime"])
            and (not query.get("endTime") or t["timestamp"] <= query["endTime"])
        ]
        try:
            size = int(query.get(PAGING.page_size, 25))
            start = int(query.get(PAGING.cursor) or 0)
        except ValueError:
            raise invalid("pageSize and cursor must be integers") from None
        if not 1 <= size <= PAGING.max_page_size:
            raise invalid(f"pageSize must be between 1 and {PAGING.max_page_size}")
        out: dict[str, Any] = {PAGING.entities: rows[start : start + size]}
        if start + size < len(rows):
            out[PAGING.next_cursor] = str(start + size)
        return Answer(200, out)

    def analytics(self, body: Any) -> Answer:
        if not isinstance(body, dict):
            raise invalid("the body must be a JSON object")
        group_by = body.get("groupBy") or []
        if not isinstance(group_by, list) or set(group_by) - {"promptId", "version"}:
            raise invalid("groupBy allows promptId and version")
        rows: dict[tuple[Any, ...], dict[str, Any]] = {}
        for t in self.telemetry:
            if body.get("dateFrom") and t["timestamp"] < body["dateFrom"]:
                continue
            if body.get("dateTo") and t["timestamp"] > body["dateTo"]:
                continue
            key = tuple(t[g] for g in group_by)
            r = rows.setdefault(
                key,
                {
                    **dict(zip(group_by, key, strict=True)),
                    "inputTokens": 0,
                    "outputTokens": 0,
                    "totalTokens": 0,
                    "latencyMs": 0.0,
                    "errorCount": 0,
                    "count": 0,
                },
            )
            r["inputTokens"] += t["inputTokens"]
            r["outputTokens"] += t["outputTokens"]
            r["totalTokens"] += t["inputTokens"] + t["outputTokens"]
            r["latencyMs"] += t["latencyMs"]
            r["errorCount"] += 1 if t["error"] else 0
            r["count"] += 1
        for r in rows.values():
            r["latencyMs"] = round(r["latencyMs"] / max(1, r["count"]), 1)
        return Answer(200, {"data": list(rows.values())})

    def audit_log(self, body: Any) -> Answer:
        if not isinstance(body, dict) or not body.get("action"):
            raise invalid("action is required")
        extra = set(body) - {"promptId", "action", "timestamp", "details", "complianceStatus"}
        if extra:
            raise invalid("unknown field(s): " + ", ".join(sorted(extra)))
        rec = {"id": str(uuid.uuid4()), **body, "received": _iso(self.now())}
        self.audit_logs.append(rec)
        return Answer(201, rec)


def dumps(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))
