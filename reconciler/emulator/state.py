"""The emulator's state machine: the gateway's objects and every rule of ``docs/contract.md``.

Pure: no HTTP, no sockets, no files, no wall clock. The clock is injected (``now``), and so is the
seed of the random generators (traffic splits, invented latencies, ids), so a test can move time
(an index's ingest delay) and get the same answers twice. Each handler takes the parsed request
(path parameters, query, JSON body, the few headers that matter) and returns an ``Answer``
``(status, body, headers)``, or raises ``ApiError`` (status, contract error code, message); the
HTTP layer (``app``) turns that into the Genesys error body. Field names come from the endpoint
table, so an org that names a field differently is adapted in ``reconciler/endpoints.py`` only.
``snapshot()``/``restore()`` give the JSON form that ``--state`` persists.

The gateway's rules for text (the placeholder grammar, the injection patterns refused at write
time, semver, identity characters, the size and token limits) come from
``reconciler/textrules.py``, which validation runs too: a manifest that validates is accepted
here. Each such refusal's detail starts with the shared rule id (``injection: ...``), so a test
can hold both sides to naming the same rule.

What this module must not do: authenticate, rate-limit, remember idempotency keys or inject
faults (all of that is the HTTP layer's), or print.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from functools import partial
from operator import itemgetter
from typing import Any, ClassVar, NamedTuple, TypeGuard

from reconciler import textrules as tr
from reconciler import urls
from reconciler.endpoints import FIELDS, HEADERS, PAGING

TF, VF, PF, XF = FIELDS.template, FIELDS.version, FIELDS.prompt, FIELDS.index

# Names the endpoint table does not carry (yet): common to every object, or only the emulator's.
LABELS = "labels"
DATE_CREATED = "dateCreated"
DATE_MODIFIED = "dateModified"
SELF_URI = "selfUri"
CONTENT_HASH = "contentHash"
UPDATED_AT = "updatedAt"
SYNC_EVENT_ID = "syncEventId"
RETRIEVAL_PRECISION = "retrievalPrecision"
INDEX_OBJECT_ID = XF.id  # seed 004 reads the index's id as "id": answered beside indexId
AB_KEYS = ("enabled", "trafficPercent", "variantId")  # abTestingTrigger (seed 000)
SPLIT_VERSION, SPLIT_WEIGHT = "version", "weight"  # trafficDistribution.versions[] entries
STRATEGIES = ("random", "sticky")

# The gateway's text rules (placeholder grammar, injection patterns, semver, identity
# characters, limits) are shared with validation: one definition, in reconciler/textrules.py.
AB_HEADER = re.compile(r"^\s*variant=([^,\s]+)\s*,\s*traffic=(\d{1,3})\s*$")

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
MODEL_IDS = frozenset(m["id"] for m in MODELS)
STORES: tuple[dict[str, Any], ...] = ({"id": STORE_ID, "name": "default-knowledge-store"},)
CONTENT_FILTERS = ("pii", "profanity", "toxicity", "jailbreak")
CATEGORIES = ("violence", "hate_speech", "self_harm", "sexual", "harassment")
METRICS = ("cosine", "euclidean", "dot_product")
FORMATS = ("float32", "int8", "binary")
MATRIX_TYPES = ("string", "number", "boolean")
ANALYTICS_METRICS = ("totalTokens", "inputTokens", "outputTokens", "latencyMs", "errorCount")
ANALYTICS_GROUPS = ("promptId", "version", "modelId", "llmGatewayId")  # llmGatewayId: seed 002
DISPATCH_FIELDS = ("modelId", "prompt", "parameters", "fallbackModels", "safetyFilters", "metadata")
AUDIT_FIELDS = frozenset(
    {"promptId", "action", "timestamp", "details", "complianceStatus", "metadata"}
)
SNAPSHOT_FORMAT = 1


class ApiError(Exception):
    """A refusal of the state machine: HTTP status, contract ``code``, message, details."""

    def __init__(
        self, status: int, code: str, message: str, details: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or []


def invalid(message: str, status: int = 400, details: list[str] | None = None) -> ApiError:
    return ApiError(status, "validation.failed", message, details or [message])


def not_found(what: str) -> ApiError:
    return ApiError(404, "not.found", f"{what} not found")


class Answer(NamedTuple):
    """What a handler answers: ``(status, body, headers)``; ``body`` None for 204."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = {}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(value: Any, name: str) -> float | None:
    """An RFC 3339 / ISO 8601 date-time (``Z``, ``z`` or an offset; no zone means UTC)."""
    if value in (None, ""):
        return None
    try:
        text = str(value)
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        dt = datetime.fromisoformat(text)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    except (ValueError, OverflowError):
        raise invalid(f"{name} must be an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z") from None


MAX_PAGE_NUMBER = 2**31 - 1  # the platform's int32 page numbers


def query_int(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter: ASCII digits (``int()`` would also take ``1_0``, `` 5`` and
    other scripts' digits), within ``low..high``; ``400 validation.failed`` otherwise."""
    raw = query.get(name)
    if raw is None:
        return default
    digits = raw[1:] if raw[:1] in ("-", "+") else raw
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 18):
        raise invalid(f"{name} must be an integer from {low} to {high}, not {raw[:40]!r}")
    value = int(raw)
    if not low <= value <= high:
        raise invalid(f"{name} must be an integer from {low} to {high}, not {value}")
    return value


def _is_num(v: Any) -> TypeGuard[float]:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    """A snapshot's map (absent: empty); ``ValueError`` naming ``where`` otherwise."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object")
    return value


def _entry(value: Any, where: str) -> dict[str, Any]:
    """One object of a snapshot: an object, never null."""
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list")
    return value


def _str(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value


def _same(value: Any, expected: str, name: str) -> None:
    if value != expected:
        raise ValueError(f"{name} {value!r:.60} is not its key {expected!r:.60}")


def _labels(history: Any, *, given: bool = False) -> tuple[str, ...]:
    """A prompt's release labels in a snapshot: a list of strings (absent: none; an entry
    ``given`` in the snapshot must be a list)."""
    if given and history is None:
        raise ValueError("promptLabels are lists of version labels, not null")
    history = _list(history, "promptLabels")
    if not all(isinstance(x, str) for x in history):
        raise ValueError("promptLabels are lists of version labels (strings)")
    return tuple(history)


def _finite_number(value: Any) -> float:
    if not (_is_num(value) and math.isfinite(value)):
        raise ValueError(f"{value!r:.40} is not a finite number")
    return float(value)


def _record(rec: Any) -> dict[str, Any]:
    return _entry(rec, "record")


def _telemetry_row(row: Any) -> dict[str, Any]:
    """A telemetry entity as telemetry paging and analytics read it."""
    row = _entry(row, "row")
    if _parse_time(row.get("timestamp"), "timestamp") is None:
        raise ValueError("timestamp is required")
    if not isinstance(row.get("promptId"), str):
        raise ValueError("promptId must be a string")
    for name in ("version", "modelId", "error"):
        if row.get(name) is not None and not isinstance(row[name], str):
            raise ValueError(f"{name} must be a string or null")
    if not (_is_num(row.get("latencyMs")) and math.isfinite(row["latencyMs"])):
        raise ValueError("latencyMs must be a finite number")
    for name in ("inputTokens", "outputTokens"):
        if not _is_int(row.get(name)):
            raise ValueError(f"{name} must be an integer")
    return row


def _names_in(value: Any, allowed: Iterable[str]) -> bool:
    """A list of strings, each one of ``allowed`` (never hashing what is not a string)."""
    return isinstance(value, list) and all(isinstance(v, str) and v in allowed for v in value)


def _string_map(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise invalid(f"{where} must be a map of strings to strings")
    return dict(value)


def _object(body: Any, status: int = 400) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid("the request body must be a JSON object", status)
    return body


def _unknown(body: Mapping[str, Any], allowed: Iterable[str], status: int = 400) -> None:
    extra = sorted(set(body) - set(allowed))
    if extra:
        raise invalid("unknown field(s): " + ", ".join(extra), status)


def _clean(body: Mapping[str, Any], server: Iterable[str]) -> dict[str, Any]:
    """Server-managed fields in a write are ignored; ``null`` means absent."""
    drop = set(server)
    return {k: v for k, v in body.items() if k not in drop and v is not None}


def _semver_key(version: str) -> tuple[Any, ...]:
    return tr.semver_key(version)


def _text_problems(field: str, text: Any) -> list[str]:
    """The gateway's write-time refusals of a text that reaches the model: the injection
    patterns of seed 002, each detail naming its rule."""
    if not isinstance(text, str):
        return []
    return [tr.detail(f.rule, f"{field} {f.message}") for f in tr.gateway_injection(text)]


def _name_problems(field: str, name: Any) -> list[str]:
    """Invisible characters, `..` or a dot segment in a name the gateway stores."""
    if not isinstance(name, str):
        return []
    return [
        tr.detail(f.rule, f"{field} {f.message}")
        for f in tr.identity_findings(name, ascii=False, what="a name")
    ]


def entity_tags(header: str) -> tuple[str, ...]:
    """The tags of an ``If-Match``/``If-None-Match`` value, read the same way for every kind.

    ``*``, or a comma-separated list of entity tags, each quoted or not and weak (``W/``) or not:
    ``W/"version=4"``, ``"version=3", "version=4"`` and ``version=4`` all carry ``version=4``.
    A weak tag compares like a strong one (proxies weaken ETags; the tag is what the client
    saw). A blank value carries no tag, so it matches nothing: a precondition the server cannot
    read fails, it is never dropped."""
    out = []
    for part in header.split(","):
        tag = part.strip()
        if tag[:2] in ("W/", "w/"):
            tag = tag[2:].lstrip()
        if len(tag) >= 2 and tag[0] == tag[-1] == '"':
            tag = tag[1:-1]
        if tag:
            out.append(tag)
    return tuple(out)


def _etag_matches(header: str, *current: str) -> bool:
    """Whether a precondition header names ``*`` or one of the object's ``current`` tags."""
    names = {c.strip('"') for c in current}
    return any(tag == "*" or tag in names for tag in entity_tags(header))


def page(items: list[Any], query: Mapping[str, str]) -> dict[str, Any]:
    """Page-number paging (seed 002): pageSize at most 100, default 25; both page-count names."""
    size = query_int(query, PAGING.page_size, 25, 1, PAGING.max_page_size)
    number = query_int(query, PAGING.page_number, 1, 1, MAX_PAGE_NUMBER)
    total = len(items)
    pages = -(-total // size)
    return {
        PAGING.entities: items[(number - 1) * size : number * size],
        PAGING.page_size: size,
        PAGING.page_number: number,
        PAGING.total: total,
        PAGING.page_count: pages,
        PAGING.num_pages: pages,
    }


class Gateway:
    """Everything one org holds, stored in wire form, and the rules for changing it.

    Invariant: a stored object is never edited in place; every change stores a new dict. So
    handlers answer the stored objects themselves, and the HTTP layer may cache an object's JSON
    by identity (``app._Encoder``). Code that edits an object must replace it instead.
    """

    def __init__(
        self,
        *,
        now: Callable[[], float],
        ingest_delay: float = 2.0,
        seed: int | None = None,
    ) -> None:
        self.now = now
        self.ingest_delay = ingest_delay
        self.seed = seed
        self.reset()

    def reset(self) -> None:
        """Back to the seeded org: models and one vector store, nothing else."""
        self.rng = random.Random(self.seed)  # traffic splits and invented latencies
        self._ids = random.Random(None if self.seed is None else f"ids-{self.seed}")
        self.templates: dict[str, dict[str, Any]] = {}
        self._template_names: dict[str, str] = {}  # name -> id, for uniqueness in O(1)
        self._prompt_names: dict[str, str] = {}
        self.versions: dict[str, dict[str, dict[str, Any]]] = {}
        self.prompts: dict[str, dict[str, Any]] = {}
        self.prompt_labels: dict[str, tuple[str, ...]] = {}  # id -> release labels carried
        self.indexes: dict[str, dict[str, dict[str, Any]]] = {s["id"]: {} for s in STORES}
        self.ready_at: dict[str, float] = {}  # "store/index" -> when PROCESSING ends
        self.telemetry: list[dict[str, Any]] = []
        self.audit_logs: list[dict[str, Any]] = []
        self.failing_models: set[str] = set()  # answer 5xx (a test hook for fallbacks)
        self.refusing_models: set[str] = set()  # refuse by policy (idem)

    def _new_id(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def _new_etag(self) -> str:
        return f'"{self._ids.getrandbits(80):020x}"'

    # -- persistence --------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """A JSON-serialisable deep copy of the org (without runtime test hooks)."""
        data = {
            "format": SNAPSHOT_FORMAT,
            "templates": self.templates,
            "versions": self.versions,
            "prompts": self.prompts,
            "promptLabels": self.prompt_labels,
            "indexes": self.indexes,
            "readyAt": self.ready_at,
            "telemetry": self.telemetry[-10000:],
            "auditLogs": self.audit_logs[-10000:],
        }
        copied: dict[str, Any] = json.loads(json.dumps(data))
        return copied

    def restore(self, data: Mapping[str, Any]) -> None:
        """Replace the org with a snapshot, or change nothing: ``ValueError`` naming the first
        part that is not one.

        Every object is replayed through the same checks a client's write goes through (so a
        snapshot cannot hold an object the gateway would refuse, nor one that would break a
        later answer), then gets back the server-managed fields the snapshot recorded, each
        checked for its type. The replay runs on a scratch org; only a complete success
        replaces this one."""
        if not isinstance(data, Mapping):
            raise ValueError("a state snapshot is a JSON object")
        fmt = data.get("format", SNAPSHOT_FORMAT)
        if isinstance(fmt, bool) or fmt != SNAPSHOT_FORMAT:  # True == 1 in Python, not in JSON
            raise ValueError(f"state format {fmt!r} is not {SNAPSHOT_FORMAT}")
        scratch = Gateway(now=self.now, ingest_delay=self.ingest_delay, seed=self.seed)
        where = "snapshot"
        try:
            copied = json.loads(json.dumps(dict(data), allow_nan=False))  # nothing shared
            for step_name, step in scratch._replay(copied):
                where = step_name
                step()
        except ApiError as exc:
            raise ValueError(f"not an emulator state snapshot: {where}: {exc.message}") from None
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            raise ValueError(f"not an emulator state snapshot: {where}: {exc!s:.200}") from None
        for name in (
            "rng",
            "_ids",
            "templates",
            "_template_names",
            "_prompt_names",
            "versions",
            "prompts",
            "prompt_labels",
            "indexes",
            "ready_at",
            "telemetry",
            "audit_logs",
            "failing_models",
            "refusing_models",
        ):
            setattr(self, name, getattr(scratch, name))

    def _replay(self, data: dict[str, Any]) -> Iterable[tuple[str, Callable[[], object]]]:
        """The steps that load a snapshot into this (fresh) org, each named for messages."""
        for tid, t in _mapping(data.get("templates"), "templates").items():
            yield f"templates.{tid}", partial(self._restore_template, tid, t)
        for tid, vs in _mapping(data.get("versions"), "versions").items():
            for v, obj in _entry(vs, f"versions.{tid}").items():
                yield f"versions.{tid}.{v}", partial(self._restore_version, tid, v, obj)
        labels = _mapping(data.get("promptLabels"), "promptLabels")
        for pid, history in labels.items():  # every entry, whether its prompt is there or not
            yield f"promptLabels.{pid}", partial(_labels, history, given=True)
        for pid, p in _mapping(data.get("prompts"), "prompts").items():
            yield f"prompts.{pid}", partial(self._restore_prompt, pid, p, labels.get(pid))
        ready = _mapping(data.get("readyAt"), "readyAt")
        for key, at in ready.items():
            yield f"readyAt.{key}", partial(_finite_number, at)
        for sid, idx in _mapping(data.get("indexes"), "indexes").items():
            for iid, obj in _entry(idx, f"indexes.{sid}").items():
                yield f"indexes.{sid}.{iid}", partial(self._restore_index, sid, iid, obj, ready)
        for n, row in enumerate(_list(data.get("telemetry"), "telemetry")):
            yield f"telemetry[{n}]", partial(self._restore_row, self.telemetry, _telemetry_row, row)
        for n, rec in enumerate(_list(data.get("auditLogs"), "auditLogs")):
            yield f"auditLogs[{n}]", partial(self._restore_row, self.audit_logs, _record, rec)

    @staticmethod
    def _restore_row(
        rows: list[dict[str, Any]], check: Callable[[Any], dict[str, Any]], row: Any
    ) -> None:
        rows.append(check(row))

    def _restore_template(self, tid: str, t: Any) -> None:
        t = _entry(t, "template")
        obj = self._template_from(t, tid)
        _same(t.get(TF.id), tid, TF.id)
        version = t.get(TF.version)
        if not _is_int(version) or version < 1:
            raise ValueError(f"{TF.version} must be an integer of 1 or more")
        self.templates[tid] = {
            TF.id: tid,
            **obj,
            TF.version: version,
            DATE_CREATED: _str(t, DATE_CREATED),
            DATE_MODIFIED: _str(t, DATE_MODIFIED),
            SELF_URI: _str(t, SELF_URI),
        }
        self._template_names[obj[TF.name]] = tid
        self.versions.setdefault(tid, {})

    def _restore_version(self, tid: str, version: str, v: Any) -> None:
        v = _entry(v, "version")
        _same(v.get(VF.version), version, VF.version)
        self.create_version(tid, {k: x for k, x in v.items() if k not in self._V_SERVER})
        stored = self.versions[tid][version]  # a new object, never edited in place
        self.versions[tid][version] = {**stored, DATE_CREATED: _str(v, DATE_CREATED)}

    def _restore_prompt(self, pid: str, p: Any, labels: Any) -> None:
        p = _entry(p, "prompt")
        _unknown(p, self._P_FIELDS | self._P_SERVER)
        if PF.model_alias in p:
            raise ValueError(f"a stored prompt has {PF.model}, never {PF.model_alias}")
        self.prompt_labels[pid] = _labels(labels)
        fields = {k: x for k, x in p.items() if k not in self._P_SERVER and x is not None}
        self._check_prompt(fields, pid)
        _same(p.get(PF.id), pid, PF.id)
        self.prompts[pid] = {
            PF.id: pid,
            **fields,
            **{f: _str(p, f) for f in (PF.status, PF.etag, DATE_CREATED, DATE_MODIFIED, SELF_URI)},
        }
        self._prompt_names[fields[PF.name]] = pid
        self.prompt_labels[pid] = self._own_labels(fields, pid)

    def _restore_index(self, sid: str, iid: str, idx: Any, ready: Mapping[str, Any]) -> None:
        idx = _entry(idx, "index")
        self.put_index(
            sid, iid, {k: x for k, x in idx.items() if k not in self._X_SERVER}, None, None
        )
        status = idx.get(XF.status)
        if status not in ("PROCESSING", "ACTIVE"):
            raise ValueError(f"{XF.status} must be PROCESSING or ACTIVE")
        precision = idx.get(RETRIEVAL_PRECISION)
        if not (_is_num(precision) and 0 <= precision <= 1):
            raise ValueError(f"{RETRIEVAL_PRECISION} must be a number from 0 to 1")
        key = f"{sid}/{iid}"
        self.ready_at.pop(key, None)
        if key in ready:
            self.ready_at[key] = _finite_number(ready[key])
        self.indexes[sid][iid] = {
            **self.indexes[sid][iid],
            XF.status: status,
            UPDATED_AT: _str(idx, UPDATED_AT),
            SYNC_EVENT_ID: _str(idx, SYNC_EVENT_ID),
            RETRIEVAL_PRECISION: precision,
            XF.etag: _str(idx, XF.etag),
        }

    # -- prompt templates (seed 002) ----------------------------------------------------------
    _T_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            TF.name,
            TF.description,
            TF.system_instruction,
            TF.user_template,
            TF.variables,
            TF.max_tokens,
            TF.guardrails,
            LABELS,
        }
    )
    _T_SERVER: ClassVar[frozenset[str]] = frozenset(
        {TF.id, TF.version, DATE_CREATED, DATE_MODIFIED, SELF_URI}
    )
    _T_GUARDS: ClassVar[tuple[str, ...]] = (
        TF.pii_filter,
        TF.jailbreak_detection,
        TF.output_moderation,
    )

    def _template_from(self, body: Any, current_id: str | None) -> dict[str, Any]:
        body = _object(body)
        _unknown(body, self._T_FIELDS | self._T_SERVER)
        b = _clean(body, self._T_SERVER)
        problems: list[str] = []
        name = b.get(TF.name)
        if not isinstance(name, str) or not 3 <= len(name) <= 128:
            problems.append(f"{TF.name} must be a string of 3 to 128 characters")
        for f in (TF.description, TF.system_instruction, TF.user_template):
            if f in b and not isinstance(b[f], str):
                problems.append(f"{f} must be a string")
        variables = b.get(TF.variables)
        if variables is not None and (
            not isinstance(variables, list) or not all(isinstance(v, str) for v in variables)
        ):
            problems.append(f"{TF.variables} must be a list of names")
            variables = None
        mt = b.get(TF.max_tokens, 4096)
        if not _is_int(mt) or not 256 <= mt <= 128000:
            problems.append(f"{TF.max_tokens} must be an integer from 256 to 128000")
        g = b.get(TF.guardrails, {})
        if (
            not isinstance(g, dict)
            or set(g) - set(self._T_GUARDS)
            or not all(isinstance(v, bool) for v in g.values())
        ):
            problems.append(f"{TF.guardrails} allows only the booleans {', '.join(self._T_GUARDS)}")
            g = {}
        problems += _name_problems(TF.name, name)
        text = b.get(TF.user_template)
        used = tr.placeholders(text) if isinstance(text, str) else {}
        missing = sorted(set(used) - set(variables or []))
        if missing:
            problems.append(
                tr.detail(
                    tr.PLACEHOLDER_UNDECLARED,
                    f"{TF.user_template} uses placeholder(s) not in {TF.variables}: "
                    + ", ".join(missing),
                )
            )
        for f in (TF.system_instruction, TF.user_template):
            problems += _text_problems(f, b.get(f))
        try:
            labels = _string_map(b.get(LABELS, {}), LABELS)
        except ApiError as exc:
            problems.append(exc.message)
            labels = {}
        if problems:
            raise invalid("; ".join(problems), details=problems)
        if self._template_names.get(str(name), current_id) != current_id:
            raise ApiError(409, "name.exists", f"a prompt template named {name!r} already exists")
        out: dict[str, Any] = {TF.name: name}
        for f in (TF.description, TF.system_instruction, TF.user_template):
            if f in b:
                out[f] = b[f]
        if variables is not None:
            out[TF.variables] = list(variables)
        out[TF.max_tokens] = mt
        out[TF.guardrails] = {k: g.get(k, True) for k in self._T_GUARDS}
        out[LABELS] = labels
        return out

    def _template(self, tid: str) -> dict[str, Any]:
        t = self.templates.get(tid)
        if t is None:
            raise not_found(f"prompt template {tid}")
        return t

    def _template_precondition(self, tid: str, cur: dict[str, Any], if_match: str | None) -> None:
        """A template's tag is ``version=N`` (seed 002); the bare ``N`` is accepted too."""
        n = cur[TF.version]
        if if_match is None or _etag_matches(if_match, f"version={n}", str(n)):
            return
        raise ApiError(
            412,
            "precondition.failed",
            f"prompt template {tid} is at version {n} (If-Match: version={n}), not {if_match!r}",
        )

    def create_template(self, body: Any, base: str) -> Answer:
        """``base`` is the collection's absolute URL, for ``selfUri``."""
        obj = self._template_from(body, None)
        tid = self._new_id()
        stamp = _iso(self.now())
        obj = {
            TF.id: tid,
            **obj,
            TF.version: 1,
            DATE_CREATED: stamp,
            DATE_MODIFIED: stamp,
            SELF_URI: f"{base}/{tid}",
        }
        self.templates[tid] = obj
        self._template_names[obj[TF.name]] = tid
        self.versions.setdefault(tid, {})
        return Answer(201, obj)

    def replace_template(self, tid: str, body: Any, if_match: str | None) -> Answer:
        cur = self._template(tid)
        self._template_precondition(tid, cur, if_match)
        obj = self._template_from(body, tid)
        obj = {
            TF.id: tid,
            **obj,
            TF.version: cur[TF.version] + 1,
            DATE_CREATED: cur[DATE_CREATED],
            DATE_MODIFIED: _iso(self.now()),
            SELF_URI: cur[SELF_URI],
        }
        self.templates[tid] = obj
        self._template_names.pop(cur[TF.name], None)
        self._template_names[obj[TF.name]] = tid
        return Answer(200, obj)

    def delete_template(self, tid: str, if_match: str | None = None) -> Answer:
        cur = self._template(tid)
        self._template_precondition(tid, cur, if_match)
        bound = sorted(p[PF.name] for p in self.prompts.values() if p.get(PF.template_id) == tid)
        if bound:
            raise ApiError(
                409,
                "template.bound",
                f"prompt template {tid} is bound by gateway prompt(s) {', '.join(bound)}; "
                "delete or rebind them first",
            )
        del self.templates[tid]
        self._template_names.pop(cur[TF.name], None)
        self.versions.pop(tid, None)
        return Answer(204)

    def list_templates(self, query: Mapping[str, str]) -> Answer:
        items = sorted(self.templates.values(), key=itemgetter(TF.name, TF.id))
        return Answer(200, page(items, query))

    def get_template(self, tid: str) -> Answer:
        return Answer(200, self._template(tid))

    # -- template versions (seed 000) ---------------------------------------------------------
    _V_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            VF.template_id,
            VF.version,
            VF.content,
            VF.variables,
            VF.rollback,
            VF.ab_test,
            VF.metadata,
            LABELS,
        }
    )
    _V_SERVER: ClassVar[frozenset[str]] = frozenset({VF.status, DATE_CREATED, CONTENT_HASH})
    _V_MUTABLE: ClassVar[frozenset[str]] = frozenset({VF.rollback, VF.metadata, LABELS})

    def _routed(self, tid: str, version: str) -> list[str]:
        """Names of the prompts whose traffic split sends traffic to this version."""
        out = []
        for p in self.prompts.values():
            if p.get(PF.template_id) != tid:
                continue
            td = p.get(PF.traffic) or {}
            listed = {
                str(e.get(SPLIT_VERSION))
                for e in td.get(PF.td_versions) or []
                if isinstance(e, dict) and (e.get(SPLIT_WEIGHT) or 0) > 0
            }
            if td.get(PF.td_default) == version or version in listed:
                out.append(p[PF.name])
        return sorted(out)

    @staticmethod
    def _check_ab(ab: Any, header: str | None) -> list[str]:
        problems: list[str] = []
        if ab is not None:
            if not isinstance(ab, dict) or set(ab) - set(AB_KEYS):
                return [f"{VF.ab_test} allows {', '.join(AB_KEYS)}"]
            if "enabled" in ab and not isinstance(ab["enabled"], bool):
                problems.append(f"{VF.ab_test}.enabled must be a boolean")
            tp = ab.get("trafficPercent")
            if tp is not None and not (_is_num(tp) and 0 <= tp <= 1):
                problems.append(f"{VF.ab_test}.trafficPercent must be between 0 and 1")
            if "variantId" in ab and not isinstance(ab["variantId"], str):
                problems.append(f"{VF.ab_test}.variantId must be a string")
        if header is not None and not problems:
            m = AB_HEADER.match(header)
            if not m or int(m.group(2)) > 100:
                problems.append(
                    f"{HEADERS.ab_test} must read variant={{variantId}},traffic={{0..100}}, "
                    f"not {header!r}"
                )
            elif isinstance(ab, dict) and ab.get("enabled"):
                variant, pct = m.group(1), int(m.group(2))
                if ab.get("variantId") is not None and variant != ab["variantId"]:
                    problems.append(
                        f"{HEADERS.ab_test} variant {variant} is not {VF.ab_test}.variantId "
                        f"{ab['variantId']}"
                    )
                tp = ab.get("trafficPercent")
                if _is_num(tp) and pct != round(tp * 100):
                    problems.append(
                        f"{HEADERS.ab_test} traffic {pct} is not {VF.ab_test}.trafficPercent "
                        f"{tp} x 100"
                    )
        return problems

    def create_version(self, tid: str, body: Any, ab_header: str | None = None) -> Answer:
        """``ab_header``: the ``X-Genesys-AB-Test`` header, checked against the trigger."""
        self._template(tid)
        body = _object(body)
        _unknown(body, self._V_FIELDS | self._V_SERVER)
        b = _clean(body, self._V_SERVER)
        problems: list[str] = []
        if b.get(VF.template_id) not in (None, tid):
            problems.append(f"{VF.template_id} does not match the path")
        version = b.get(VF.version)
        if not tr.is_semver(version):
            problems.append(f'{VF.version} must be a semantic version string such as "2.1.0"')
        content = b.get(VF.content)
        if not isinstance(content, str) or not content:
            problems.append(f"{VF.content} is required (a non-empty string)")
            content = ""
        matrix = b.get(VF.variables)
        if matrix is not None and not isinstance(matrix, dict):
            problems.append(f"{VF.variables} must map placeholder names to a type or a default")
            matrix = {}
        for k, v in (matrix or {}).items():
            if not (v is None or isinstance(v, str | int | float | bool)):
                problems.append(
                    f"{VF.variables}.{k} must be {'|'.join(MATRIX_TYPES)} or a default value"
                )
        size = len(content.encode("utf-8"))
        if size > tr.VERSION_MAX_BYTES:
            problems.append(
                tr.detail(
                    tr.CONTENT_SIZE,
                    f"{VF.content} is {size} bytes of UTF-8; at most {tr.VERSION_MAX_BYTES}",
                )
            )
        if tr.estimate_tokens(content) > tr.VERSION_MAX_TOKENS:
            problems.append(
                tr.detail(
                    tr.CONTENT_TOKENS,
                    f"{VF.content} is about {len(content) // 4} tokens; at most "
                    f"{tr.VERSION_MAX_TOKENS}",
                )
            )
        used = set(tr.placeholders(content))
        keys = set(matrix or {})
        if used - keys:
            problems.append(
                tr.detail(
                    tr.PLACEHOLDER_UNDECLARED,
                    "placeholder(s) missing from the variable matrix: "
                    + ", ".join(sorted(used - keys)),
                )
            )
        if keys - used:
            problems.append(
                tr.detail(
                    tr.PLACEHOLDER_UNUSED,
                    f"variable(s) not used in the content: {', '.join(sorted(keys - used))}",
                )
            )
        problems += _text_problems(VF.content, content)
        for k, v in (matrix or {}).items():
            if isinstance(v, str) and v not in MATRIX_TYPES:  # a default reaches the model
                problems += _text_problems(f"{VF.variables}.{k}", v)
        if VF.rollback in b and not isinstance(b[VF.rollback], bool):
            problems.append(f"{VF.rollback} must be a boolean")
        ab = b.get(VF.ab_test)
        problems += self._check_ab(ab, ab_header)
        metadata: dict[str, str] | None = None
        labels: dict[str, str] = {}
        try:
            if VF.metadata in b:
                metadata = _string_map(b[VF.metadata], VF.metadata)
            labels = _string_map(b.get(LABELS, {}), LABELS)
        except ApiError as exc:
            problems.append(exc.message)
        if problems:
            raise invalid("; ".join(problems), details=problems)
        assert isinstance(version, str)
        if version in self.versions.setdefault(tid, {}):
            raise ApiError(
                409, "version.exists", f"version {version} of prompt template {tid} exists"
            )
        withdrawn = bool(b.get(VF.rollback, False))
        obj: dict[str, Any] = {
            VF.template_id: tid,
            VF.version: version,
            VF.content: content,
        }
        if matrix is not None:
            obj[VF.variables] = dict(matrix)
        obj[VF.rollback] = withdrawn
        if ab is not None:
            obj[VF.ab_test] = dict(ab)
        if metadata is not None:
            obj[VF.metadata] = metadata
        obj[LABELS] = labels
        obj[VF.status] = "WITHDRAWN" if withdrawn else "ACTIVE"
        obj[DATE_CREATED] = _iso(self.now())
        obj[CONTENT_HASH] = "sha256:" + hashlib.sha256(content.encode("utf-8")).hexdigest()
        self.versions[tid][version] = obj
        return Answer(201, obj)

    def _version(self, tid: str, version: str) -> dict[str, Any]:
        self._template(tid)
        v = self.versions.get(tid, {}).get(version)
        if v is None:
            raise not_found(f"version {version} of prompt template {tid}")
        return v

    def patch_version(self, tid: str, version: str, body: Any) -> Answer:
        cur = self._version(tid, version)
        body = _object(body)
        _unknown(body, self._V_FIELDS | self._V_SERVER)
        b = {k: v for k, v in body.items() if k not in self._V_SERVER}
        frozen = sorted(k for k, v in b.items() if k not in self._V_MUTABLE and v != cur.get(k))
        if frozen:
            raise ApiError(
                422,
                "immutable.field",
                f"versions are immutable in {', '.join(frozen)}; create a new version instead",
                frozen,
            )
        rollback = b.get(VF.rollback, cur[VF.rollback])
        if rollback is None:
            rollback = False
        if not isinstance(rollback, bool):
            raise invalid(f"{VF.rollback} must be a boolean")
        new = dict(cur)
        if rollback and not cur[VF.rollback]:
            routed = self._routed(tid, version)
            if routed:
                raise ApiError(
                    409,
                    "version.routed",
                    f"version {version} still receives traffic from {', '.join(routed)}; "
                    "move the traffic before withdrawing it",
                )
        new[VF.rollback] = rollback
        new[VF.status] = "WITHDRAWN" if rollback else "ACTIVE"
        if VF.metadata in b:
            if b[VF.metadata] is None:
                new.pop(VF.metadata, None)
            else:
                new[VF.metadata] = _string_map(b[VF.metadata], VF.metadata)
        if LABELS in b:
            new[LABELS] = {} if b[LABELS] is None else _string_map(b[LABELS], LABELS)
        self.versions[tid][version] = new
        return Answer(200, new)

    def delete_version(self, tid: str, version: str) -> Answer:
        self._version(tid, version)
        routed = self._routed(tid, version)
        if routed:
            raise ApiError(
                409,
                "version.routed",
                f"version {version} still receives traffic from {', '.join(routed)}",
            )
        del self.versions[tid][version]
        return Answer(204)

    def list_versions(self, tid: str, query: Mapping[str, str]) -> Answer:
        self._template(tid)
        items = sorted(
            self.versions.get(tid, {}).values(), key=lambda v: _semver_key(v[VF.version])
        )
        return Answer(200, page(items, query))

    def get_version(self, tid: str, version: str) -> Answer:
        return Answer(200, self._version(tid, version))

    # -- gateway prompts and traffic splits (seeds 003, 001) ----------------------------------
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
            LABELS,
        }
    )
    _P_SERVER: ClassVar[frozenset[str]] = frozenset(
        {PF.id, PF.status, PF.etag, DATE_CREATED, DATE_MODIFIED, SELF_URI}
    )
    _P_DEFAULTS: ClassVar[dict[str, Any]] = {
        PF.fallbacks: [],
        PF.temperature: 0.7,
        PF.top_p: 0.95,
        PF.max_tokens: 2048,
    }
    # templateId is optional (seed 003 creates prompts without one): an unbound prompt's split
    # routes to the release labels the prompt itself has carried (its own ``version`` values).
    _P_REQUIRED: ClassVar[tuple[str, ...]] = (PF.name, PF.model, PF.system_prompt)

    @staticmethod
    def _guard_defaults(given: Any) -> Any:
        if not isinstance(given, dict):
            return given  # reported by the check
        return {
            PF.content_filtering: [],
            PF.guard_max_tokens: 4096,
            PF.blocked_categories: [],
            **{k: v for k, v in given.items() if v is not None},
        }

    def _check_prompt(self, p: dict[str, Any], pid: str | None) -> None:
        problems: list[str] = []
        missing = [f for f in self._P_REQUIRED if p.get(f) is None]
        for f in missing:
            problems.append(
                f"{f} is required" + (f" (or {PF.model_alias})" if f == PF.model else "")
            )
        name = p.get(PF.name)
        if name is not None and (not isinstance(name, str) or not 3 <= len(name) <= 128):
            problems.append(f"{PF.name} must be a string of 3 to 128 characters")
        tid = p.get(PF.template_id)
        if tid is not None and (not isinstance(tid, str) or tid not in self.templates):
            problems.append(f"{PF.template_id} {tid!r} is not a prompt template")
        models = {m["id"]: m for m in MODELS}
        model = p.get(PF.model)
        if model is not None and not isinstance(model, str):
            problems.append(f"{PF.model} must be a model id (a string)")
            model = None
        elif model is not None and model not in models:
            problems.append(
                f"model {model!r} is not in the models list ({', '.join(sorted(models))})"
            )
        fb = p.get(PF.fallbacks)
        if not isinstance(fb, list) or not all(isinstance(m, str) for m in fb):
            problems.append(f"{PF.fallbacks} must be a list of model ids")
        else:
            problems += [
                f"fallback model {m!r} is not in the models list" for m in fb if m not in models
            ]
        sp = p.get(PF.system_prompt)
        if sp is not None and not isinstance(sp, str):
            problems.append(f"{PF.system_prompt} must be a string")
        sp = sp if isinstance(sp, str) else ""
        if len(sp) > tr.PROMPT_MAX_CHARS:
            problems.append(
                tr.detail(
                    tr.PROMPT_LENGTH,
                    f"{PF.system_prompt} is {len(sp)} characters; at most {tr.PROMPT_MAX_CHARS}",
                )
            )
        problems += _text_problems(PF.system_prompt, sp)
        problems += _name_problems(PF.name, p.get(PF.name))
        t = p.get(PF.temperature)
        if not _is_num(t) or not 0.0 <= t <= 2.0:
            problems.append(f"{PF.temperature} must be a number from 0.0 to 2.0")
        tp = p.get(PF.top_p)
        if not _is_num(tp) or not 0.0 <= tp <= 1.0:
            problems.append(f"{PF.top_p} must be a number from 0 to 1")
        mt = p.get(PF.max_tokens)
        if not _is_int(mt) or mt < 1:
            problems.append(f"{PF.max_tokens} must be a positive integer")
        elif model in models and mt > models[model]["maxOutputTokens"]:
            problems.append(
                f"{PF.max_tokens} {mt} exceeds {model}'s maxOutputTokens "
                f"{models[model]['maxOutputTokens']}"
            )
        if PF.version in p and not tr.is_semver(p[PF.version]):
            problems.append(f'{PF.version} must be a semantic version string such as "1.2.0"')
        g = p.get(PF.guardrails)
        allowed = (PF.content_filtering, PF.guard_max_tokens, PF.blocked_categories)
        if not isinstance(g, dict) or set(g) - set(allowed):
            problems.append(f"{PF.guardrails} allows {', '.join(allowed)}")
        else:
            cf, bc = g.get(PF.content_filtering), g.get(PF.blocked_categories)
            if not _names_in(cf, CONTENT_FILTERS):
                problems.append(
                    f"{PF.guardrails}.{PF.content_filtering} allows {', '.join(CONTENT_FILTERS)}"
                )
            if not _names_in(bc, CATEGORIES):
                problems.append(
                    f"{PF.guardrails}.{PF.blocked_categories} allows {', '.join(CATEGORIES)}"
                )
            gmt = g.get(PF.guard_max_tokens)
            if not _is_int(gmt) or gmt < 1:
                problems.append(f"{PF.guardrails}.{PF.guard_max_tokens} must be a positive integer")
            elif tr.estimate_tokens(sp) > gmt:
                problems.append(
                    tr.detail(
                        tr.PROMPT_TOKENS,
                        f"{PF.system_prompt} is about {len(sp) // 4} tokens (characters / 4), "
                        f"over {PF.guardrails}.{PF.guard_max_tokens} {gmt}",
                    )
                )
        withdrawn: list[str] = []
        if p.get(PF.traffic) is not None and (tid is None or isinstance(tid, str)):
            problems += self._check_traffic(p[PF.traffic], tid, withdrawn, self._own_labels(p, pid))
        try:
            _string_map(p.get(LABELS, {}), LABELS)
        except ApiError as exc:
            problems.append(exc.message)
        if problems:
            raise invalid("; ".join(problems), details=problems)
        if withdrawn:
            raise ApiError(
                409,
                "version.withdrawn",
                "traffic would route to withdrawn version(s) " + ", ".join(withdrawn),
            )
        if self._prompt_names.get(str(name), pid) != pid:
            raise ApiError(409, "name.exists", f"a gateway prompt named {name!r} already exists")

    def _own_labels(self, p: Mapping[str, Any], pid: str | None) -> tuple[str, ...]:
        """The release labels a prompt has carried, its current ``version`` last (seed 003)."""
        labels = self.prompt_labels.get(pid, ()) if pid is not None else ()
        v = p.get(PF.version)
        return (*labels, v) if isinstance(v, str) and v not in labels else labels

    def _check_traffic(
        self, td: Any, tid: str | None, withdrawn: list[str], own: tuple[str, ...] = ()
    ) -> list[str]:
        """A bound prompt's split routes to its template's versions; an unbound prompt's split
        to its own release labels ``own`` (which are never withdrawn)."""
        if not isinstance(td, dict):
            return [f"{PF.traffic} must be an object"]
        if tid is None:
            versions: Mapping[str, Any] = {v: {VF.rollback: False} for v in own}
            whose = (
                "a release label of this prompt (it has carried: "
                + (", ".join(own) or "none; set version")
                + ")"
            )
        else:
            versions = self.versions.get(tid, {})
            whose = "a version of the bound template"
        if PF.td_default in td:
            if set(td) - {PF.td_default}:
                return [f"{PF.traffic} takes either {PF.td_default} or {PF.td_versions}"]
            v = td[PF.td_default]
            if not isinstance(v, str) or v not in versions:
                return [f"{PF.td_default} {v!r} is not {whose}"]
            if versions[v][VF.rollback]:
                withdrawn.append(v)
            return []
        if set(td) - {PF.td_versions, PF.td_strategy}:
            return [
                f"{PF.traffic} allows {PF.td_default}, or {PF.td_versions} and {PF.td_strategy}"
            ]
        entries = td.get(PF.td_versions)
        if not isinstance(entries, list) or not entries:
            return [f"{PF.traffic}.{PF.td_versions} must be a non-empty list"]
        if td.get(PF.td_strategy, "random") not in STRATEGIES:
            return [f"{PF.traffic}.{PF.td_strategy} must be one of {', '.join(STRATEGIES)}"]
        problems: list[str] = []
        total = 0.0
        seen: set[str] = set()
        for e in entries:
            if (
                not isinstance(e, dict)
                or set(e) != {SPLIT_VERSION, SPLIT_WEIGHT}
                or not isinstance(e[SPLIT_VERSION], str)
                or not _is_num(e[SPLIT_WEIGHT])
                or not 0 <= e[SPLIT_WEIGHT] <= 1
            ):
                problems.append(
                    f"each {PF.td_versions} entry is {{{SPLIT_VERSION}, {SPLIT_WEIGHT} 0..1}}"
                )
                continue
            v = e[SPLIT_VERSION]
            if v in seen:
                problems.append(f"split version {v!r} is listed twice")
            seen.add(v)
            total += e[SPLIT_WEIGHT]
            if v not in versions:
                problems.append(f"split version {v!r} is not {whose}")
            elif versions[v][VF.rollback] and e[SPLIT_WEIGHT] > 0:
                withdrawn.append(v)
        if not problems and abs(total - 1.0) > tr.WEIGHT_TOLERANCE:
            problems.append(
                tr.detail(
                    tr.SPLIT_WEIGHTS,
                    f"split weights sum to {round(total, 4)}, not 1.0 "
                    f"(within {tr.WEIGHT_TOLERANCE})",
                )
            )
        return problems

    def _prompt(self, pid: str) -> dict[str, Any]:
        p = self.prompts.get(pid)
        if p is None:
            raise not_found(f"gateway prompt {pid}")
        return p

    def _prompt_body(self, body: Any) -> dict[str, Any]:
        """The body with server fields dropped and ``modelId`` folded into ``modelEndpointRef``."""
        body = _object(body)
        _unknown(body, self._P_FIELDS | self._P_SERVER)
        b = {k: v for k, v in body.items() if k not in self._P_SERVER}
        if PF.model_alias in b:
            alias = b.pop(PF.model_alias)
            if b.get(PF.model) is None:  # both given: modelEndpointRef wins
                b[PF.model] = alias
        return b

    @staticmethod
    def _etag_check(what: str, cur: dict[str, Any], tag: str, if_match: str | None) -> None:
        if if_match is not None and not _etag_matches(if_match, cur[tag]):
            raise ApiError(
                412, "precondition.failed", f"{what} changed since {if_match} (now {cur[tag]})"
            )

    def create_prompt(self, body: Any, base: str) -> Answer:
        b = {k: v for k, v in self._prompt_body(body).items() if v is not None}
        p: dict[str, Any] = {**self._P_DEFAULTS, **b}
        p[PF.guardrails] = self._guard_defaults(b.get(PF.guardrails, {}))
        p.setdefault(LABELS, {})
        self._check_prompt(p, None)
        pid = self._new_id()
        stamp = _iso(self.now())
        p = {
            PF.id: pid,
            **p,
            PF.status: "ACTIVE",
            PF.etag: self._new_etag(),
            DATE_CREATED: stamp,
            DATE_MODIFIED: stamp,
            SELF_URI: f"{base}/{pid}",
        }
        self.prompts[pid] = p
        self._prompt_names[p[PF.name]] = pid
        self.prompt_labels[pid] = self._own_labels(p, None)
        return Answer(201, p, {HEADERS.etag: p[PF.etag]})

    def update_prompt(self, pid: str, body: Any, if_match: str | None) -> Answer:
        """Merge-PUT (seed 003): only the top-level fields present change; null resets."""
        cur = self._prompt(pid)
        self._etag_check(f"gateway prompt {pid}", cur, PF.etag, if_match)
        b = self._prompt_body(body)
        new = dict(cur)
        for k, v in b.items():
            if v is None:
                new.pop(k, None)
                if k in self._P_DEFAULTS:
                    new[k] = self._P_DEFAULTS[k]
            else:
                new[k] = v
        if PF.guardrails in b:
            given = b[PF.guardrails]
            new[PF.guardrails] = self._guard_defaults({} if given is None else given)
        if new.get(LABELS) is None:
            new[LABELS] = {}
        self._check_prompt(new, pid)
        new[PF.etag] = self._new_etag()
        new[DATE_MODIFIED] = _iso(self.now())
        self.prompts[pid] = new
        self._prompt_names.pop(cur[PF.name], None)
        self._prompt_names[new[PF.name]] = pid
        self.prompt_labels[pid] = self._own_labels(new, pid)
        return Answer(200, new, {HEADERS.etag: new[PF.etag]})

    def delete_prompt(self, pid: str, if_match: str | None = None) -> Answer:
        cur = self._prompt(pid)
        self._etag_check(f"gateway prompt {pid}", cur, PF.etag, if_match)
        del self.prompts[pid]
        self._prompt_names.pop(cur[PF.name], None)
        self.prompt_labels.pop(pid, None)
        return Answer(204)

    def list_prompts(self, query: Mapping[str, str]) -> Answer:
        items = sorted(self.prompts.values(), key=itemgetter(PF.name, PF.id))
        return Answer(200, page(items, query))

    def get_prompt(self, pid: str) -> Answer:
        p = self._prompt(pid)
        return Answer(200, p, {HEADERS.etag: p[PF.etag]})

    def list_models(self, query: Mapping[str, str]) -> Answer:
        return Answer(200, page(list(MODELS), query))

    # -- vector stores and indexes (seed 004) -------------------------------------------------
    _X_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {XF.index_id, XF.dimensions, XF.metric, XF.format, XF.auto_ingest, XF.webhook, LABELS}
    )
    _X_SERVER: ClassVar[frozenset[str]] = frozenset(
        {INDEX_OBJECT_ID, XF.status, XF.etag, UPDATED_AT, SYNC_EVENT_ID, RETRIEVAL_PRECISION}
    )
    _X_IMMUTABLE: ClassVar[tuple[str, ...]] = (XF.dimensions, XF.metric, XF.format)

    def _store(self, sid: str) -> dict[str, dict[str, Any]]:
        if sid not in self.indexes:
            raise not_found(f"vector store {sid}")
        return self.indexes[sid]

    def _settle(self, sid: str, iid: str) -> dict[str, Any] | None:
        """The index, ACTIVE once its ingest delay has passed (computed lazily from the clock)."""
        idx = self.indexes.get(sid, {}).get(iid)
        if idx is not None and idx.get(XF.status) == "PROCESSING":
            key = f"{sid}/{iid}"
            if self.now() >= self.ready_at.get(key, 0.0):
                idx = {**idx, XF.status: "ACTIVE"}
                self.indexes[sid][iid] = idx
                self.ready_at.pop(key, None)
        return idx

    def put_index(
        self, sid: str, iid: str, body: Any, if_match: str | None, if_none_match: str | None
    ) -> Answer:
        """Create (201) or replace (200) atomically; 004 answers a failed precondition 409."""
        store = self._store(sid)
        cur = self._settle(sid, iid)
        if (
            cur is not None
            and if_none_match is not None
            and _etag_matches(if_none_match, cur[XF.etag])
        ):
            raise ApiError(409, "precondition.failed", f"index {iid} already exists")
        if if_match is not None and (cur is None or not _etag_matches(if_match, cur[XF.etag])):
            raise ApiError(
                409,
                "precondition.failed",
                f"index {iid} "
                + ("does not exist" if cur is None else f"changed (ETag now {cur[XF.etag]})"),
            )
        if cur is not None and cur[XF.status] == "PROCESSING":
            raise ApiError(
                409, "index.processing", f"index {iid} is still ingesting; retry once it is ACTIVE"
            )
        body = _object(body, 422)
        _unknown(body, self._X_FIELDS | self._X_SERVER, 422)
        b = _clean(body, self._X_SERVER)
        if b.get(XF.index_id) not in (None, iid):
            raise invalid(f"{XF.index_id} {b[XF.index_id]!r} does not match the path", 422)
        dims = b.get(XF.dimensions)
        if not _is_int(dims) or not 1 <= dims <= 4096:
            raise invalid(f"{XF.dimensions} must be an integer from 1 to 4096", 400)
        problems: list[str] = _name_problems(XF.index_id, iid)
        if b.get(XF.metric) not in METRICS:
            problems.append(f"{XF.metric} must be one of {', '.join(METRICS)}")
        if b.get(XF.format) not in FORMATS:
            problems.append(f"{XF.format} must be one of {', '.join(FORMATS)}")
        if XF.auto_ingest in b and not isinstance(b[XF.auto_ingest], bool):
            problems.append(f"{XF.auto_ingest} must be a boolean")
        hook = b.get(XF.webhook)
        if hook == "":  # Go's zero value for an unset string (seed 004): absent
            hook = None
        if hook is not None:
            try:  # one reading of a URL's host for the gateway and validation alike
                urls.parse(hook, what=XF.webhook)
            except urls.UrlProblem as exc:
                problems.append(f"{XF.webhook} must be an http(s) URL: it {exc}")
        labels: dict[str, str] = {}
        try:
            labels = _string_map(b.get(LABELS, {}), LABELS)
        except ApiError as exc:
            problems.append(exc.message)
        if problems:
            raise invalid("; ".join(problems), 422, problems)
        if cur is not None:
            changed = [f for f in self._X_IMMUTABLE if b.get(f) != cur.get(f)]
            if changed:
                raise ApiError(
                    422,
                    "immutable.field",
                    f"{', '.join(changed)} cannot change on an existing index: stored vectors "
                    "would be invalid (delete and recreate it)",
                    changed,
                )
        ingest = bool(b.get(XF.auto_ingest, False))
        now = self.now()
        processing = ingest and self.ingest_delay > 0
        obj: dict[str, Any] = {
            XF.index_id: iid,
            INDEX_OBJECT_ID: iid,
            XF.dimensions: dims,
            XF.metric: b[XF.metric],
            XF.format: b[XF.format],
            XF.auto_ingest: ingest,
        }
        if hook is not None:
            obj[XF.webhook] = hook
        obj[LABELS] = labels
        obj[XF.status] = "PROCESSING" if processing else "ACTIVE"
        obj[UPDATED_AT] = _iso(now)
        obj[SYNC_EVENT_ID] = self._new_id()
        obj[RETRIEVAL_PRECISION] = {"float32": 0.97, "int8": 0.93, "binary": 0.85}[b[XF.format]]
        obj[XF.etag] = self._new_etag()
        if processing:
            self.ready_at[f"{sid}/{iid}"] = now + self.ingest_delay
        store[iid] = obj
        return Answer(201 if cur is None else 200, obj, {HEADERS.etag: obj[XF.etag]})

    def get_index(self, sid: str, iid: str) -> Answer:
        self._store(sid)
        idx = self._settle(sid, iid)
        if idx is None:
            raise not_found(f"index {iid} in vector store {sid}")
        return Answer(200, idx, {HEADERS.etag: idx[XF.etag]})

    def delete_index(self, sid: str, iid: str, if_match: str | None = None) -> Answer:
        store = self._store(sid)
        idx = self._settle(sid, iid)
        if idx is None:
            raise not_found(f"index {iid} in vector store {sid}")
        if if_match is not None and not _etag_matches(if_match, idx[XF.etag]):
            raise ApiError(409, "precondition.failed", f"index {iid} changed (ETag {idx[XF.etag]})")
        del store[iid]
        self.ready_at.pop(f"{sid}/{iid}", None)
        return Answer(204)

    def list_indexes(self, sid: str, query: Mapping[str, str]) -> Answer:
        store = self._store(sid)
        items = [self._settle(sid, i) for i in sorted(store)]
        return Answer(200, page(items, query))

    def list_stores(self, query: Mapping[str, str]) -> Answer:
        return Answer(200, page(list(STORES), query))

    # -- runtime: invocations, routed dispatch, telemetry, analytics, audit -------------------
    def _pick_version(self, p: dict[str, Any], session: str | None) -> str | None:
        td = p.get(PF.traffic) or {}
        if td.get(PF.td_default):
            return str(td[PF.td_default])
        entries = [e for e in td.get(PF.td_versions) or [] if e.get(SPLIT_WEIGHT, 0) > 0]
        if not entries:
            v = p.get(PF.version)
            return str(v) if v is not None else None
        if td.get(PF.td_strategy) == "sticky" and session:
            digest = hashlib.sha256(f"{p[PF.id]}:{session}".encode()).digest()
            x = int.from_bytes(digest[:8], "big") / 2**64
        else:
            x = self.rng.random()
        total = sum(float(e[SPLIT_WEIGHT]) for e in entries)
        acc = 0.0
        for e in entries:
            acc += float(e[SPLIT_WEIGHT]) / total
            if x < acc:
                return str(e[SPLIT_VERSION])
        return str(entries[-1][SPLIT_VERSION])

    def _serve(self, chain: list[str]) -> tuple[str | None, list[dict[str, Any]]]:
        """Try the models in order; a failing (5xx) or refusing model passes to the next."""
        attempts: list[dict[str, Any]] = []
        for model in chain:
            if model in self.failing_models:
                attempts.append({"modelId": model, "status": 503, "outcome": "unavailable"})
            elif model in self.refusing_models:
                attempts.append({"modelId": model, "status": 422, "outcome": "policy refusal"})
            else:
                attempts.append({"modelId": model, "status": 200, "outcome": "served"})
                return model, attempts
        return None, attempts

    def invoke(self, body: Any) -> Answer:
        """Seed 003: the version served follows the split (sticky by sessionId when asked)."""
        body = _object(body)
        _unknown(body, ("promptId", "userInput", "sessionId", "options"))
        body = _clean(body, ())
        if not isinstance(body.get("promptId"), str):
            raise invalid("promptId is required (a string)")
        if not isinstance(body.get("userInput", ""), str):
            raise invalid("userInput must be a string")
        session = body.get("sessionId")
        if session is not None and not isinstance(session, str):
            raise invalid("sessionId must be a string")
        if body.get("options") is not None and not isinstance(body["options"], dict):
            raise invalid("options must be an object")
        p = self._prompt(body["promptId"])
        text = str(body.get("userInput") or "")
        version = self._pick_version(p, session)
        served, attempts = self._serve([p[PF.model], *p.get(PF.fallbacks, [])])
        prompt_tokens = max(1, (len(p[PF.system_prompt]) + len(text)) // 4)
        latency = round(40 + self.rng.random() * 160, 1) * len(attempts)
        row: dict[str, Any] = {
            "timestamp": _iso(self.now()),
            "promptId": p[PF.id],
            "version": version,
            "modelId": served,
            "latencyMs": latency,
            "inputTokens": prompt_tokens,
            "outputTokens": 0,
            "error": None,
        }
        if served is None:
            row["error"] = "every model failed: " + ", ".join(a["modelId"] for a in attempts)
            self.telemetry.append(row)
            raise ApiError(503, "models.unavailable", row["error"])
        output = f"[{served}] reply to: {text[:200]}"
        completion = max(1, len(output) // 4)
        row["outputTokens"] = completion
        self.telemetry.append(row)
        return Answer(
            200,
            {
                "responseId": self._new_id(),
                "output": output,
                "version": version,
                "modelId": served,
                "tokenUsage": {"prompt": prompt_tokens, "completion": completion},
            },
        )

    def dispatch(self, body: Any) -> Answer:
        """Seed 001's routed dispatch: the primary model, then the fallbacks in order."""
        body = _object(body)
        _unknown(body, DISPATCH_FIELDS)
        body = _clean(body, ())
        problems: list[str] = []
        if not isinstance(body.get("modelId"), str):
            problems.append("modelId is required (a string)")
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            problems.append("prompt is required (a non-empty string)")
        elif len(prompt) > tr.PROMPT_MAX_CHARS:
            problems.append(
                f"prompt is {len(prompt)} characters; at most {tr.PROMPT_MAX_CHARS} (seed 001)"
            )
        fallbacks = body.get("fallbackModels", [])
        if not isinstance(fallbacks, list) or not all(isinstance(m, str) for m in fallbacks):
            problems.append("fallbackModels must be a list of model ids")
            fallbacks = []
        if not _names_in(body.get("safetyFilters", []), CONTENT_FILTERS):
            problems.append(f"safetyFilters allows {', '.join(CONTENT_FILTERS)}")
        params = body.get("parameters", {})
        if not isinstance(params, dict):
            problems.append("parameters must be an object")
            params = {}
        t = params.get("temperature")
        if t is not None and not (_is_num(t) and 0 <= t <= 2):
            problems.append("parameters.temperature must be a number from 0.0 to 2.0")
        metadata: dict[str, str] | None = None
        if "metadata" in body:
            try:
                metadata = _string_map(body["metadata"], "metadata")
            except ApiError as exc:
                problems.append(exc.message)
        if problems:
            raise invalid("; ".join(problems), details=problems)
        chain = [body["modelId"], *fallbacks]
        unknown = [m for m in chain if m not in MODEL_IDS]
        if unknown:
            raise invalid("model(s) not in the models list: " + ", ".join(map(repr, unknown)))
        served, attempts = self._serve(chain)
        if served is None:
            raise ApiError(
                503,
                "models.unavailable",
                "the primary model and every fallback failed",
                [f"{a['modelId']}: {a['outcome']}" for a in attempts],
            )
        answer: dict[str, Any] = {
            "responseId": self._new_id(),
            "modelId": served,
            "output": f"[{served}] {body['prompt'][:200]}",
            "fallbackUsed": served != body["modelId"],
            "attempts": attempts,
        }
        if metadata is not None:  # seed 001's routing metadata, echoed for its audit entries
            answer["metadata"] = metadata
        return Answer(200, answer)

    def telemetry_page(self, query: Mapping[str, str]) -> Answer:
        """Cursor paging (seed 003); the cursor is opaque to clients."""
        start_t = _parse_time(query.get("startTime"), "startTime")
        end_t = _parse_time(query.get("endTime"), "endTime")
        pid = query.get("promptId")
        rows = [
            t
            for t in self.telemetry
            if (not pid or t["promptId"] == pid)
            and (start_t is None or (_parse_time(t["timestamp"], "timestamp") or 0) >= start_t)
            and (end_t is None or (_parse_time(t["timestamp"], "timestamp") or 0) <= end_t)
        ]
        size = query_int(query, PAGING.page_size, 25, 1, PAGING.max_page_size)
        cursor = query.get(PAGING.cursor) or ""
        start = 0
        if cursor:
            m = re.fullmatch(r"c([0-9]{1,12})", cursor)
            if not m:
                raise invalid(f"{PAGING.cursor} {cursor!r} is not a cursor this server gave")
            start = int(m.group(1))
        out: dict[str, Any] = {PAGING.entities: rows[start : start + size]}
        if start + size < len(rows):
            out[PAGING.next_cursor] = f"c{start + size}"
        return Answer(200, out)

    def analytics(self, body: Any) -> Answer:
        """Seed 002's usage query: rows grouped by the keys asked, with the metrics asked."""
        body = _object(body)
        _unknown(body, ("dateFrom", "dateTo", "groupBy", "metrics"))
        body = _clean(body, ())
        group_by = body.get("groupBy", [])
        if not _names_in(group_by, ANALYTICS_GROUPS):
            raise invalid(f"groupBy is a list of {', '.join(ANALYTICS_GROUPS)}")
        metrics = body.get("metrics", [])
        if not _names_in(metrics, ANALYTICS_METRICS):
            raise invalid(f"metrics is a list of {', '.join(ANALYTICS_METRICS)}")
        metrics = metrics or list(ANALYTICS_METRICS)  # none asked: all of them
        for f in ("dateFrom", "dateTo"):
            if f in body and not isinstance(body[f], str):
                raise invalid(f"{f} must be an ISO 8601 date-time string")
        date_from = _parse_time(body.get("dateFrom"), "dateFrom")
        date_to = _parse_time(body.get("dateTo"), "dateTo")
        sums: dict[tuple[Any, ...], dict[str, float]] = {}
        for t in self.telemetry:
            ts = _parse_time(t["timestamp"], "timestamp") or 0.0
            if (date_from is not None and ts < date_from) or (date_to is not None and ts > date_to):
                continue
            key = tuple(t["promptId"] if g == "llmGatewayId" else t.get(g) for g in group_by)
            s = sums.setdefault(
                key,
                {"inputTokens": 0, "outputTokens": 0, "latencyMs": 0.0, "errorCount": 0, "n": 0},
            )
            s["inputTokens"] += t["inputTokens"]
            s["outputTokens"] += t["outputTokens"]
            s["latencyMs"] += t["latencyMs"]
            s["errorCount"] += 1 if t.get("error") else 0
            s["n"] += 1
        data = []
        for key, s in sums.items():
            all_metrics = {
                "totalTokens": int(s["inputTokens"] + s["outputTokens"]),
                "inputTokens": int(s["inputTokens"]),
                "outputTokens": int(s["outputTokens"]),
                "latencyMs": round(s["latencyMs"] / s["n"], 1),  # the mean
                "errorCount": int(s["errorCount"]),
            }
            data.append(
                {
                    **dict(zip(group_by, key, strict=True)),
                    **{m: all_metrics[m] for m in metrics},
                }
            )
        data.sort(key=lambda r: [str(r.get(g)) for g in group_by])
        return Answer(200, {"data": data})

    def audit_log(self, body: Any) -> Answer:
        """Seed 003's compliance records: kept, never changed."""
        body = _object(body)
        _unknown(body, AUDIT_FIELDS)
        body = _clean(body, ())
        problems = []
        if not isinstance(body.get("action"), str) or not body["action"]:
            problems.append("action is required (a string)")
        for f in ("promptId", "timestamp", "complianceStatus"):
            if body.get(f) is not None and not isinstance(body[f], str):
                problems.append(f"{f} must be a string")
        for f in ("details", "metadata"):
            if body.get(f) is not None and not isinstance(body[f], dict):
                problems.append(f"{f} must be an object")
        if problems:
            raise invalid("; ".join(problems), details=problems)
        rec = {"id": self._new_id(), **body, "receivedAt": _iso(self.now())}
        self.audit_logs.append(rec)
        return Answer(201, rec)
