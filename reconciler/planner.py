"""The planner: ``plan(desired, live) -> Plan``, a purely computational function.

No I/O, no logging, no clock, no randomness: given the normalised desired objects and the
normalised live state, it returns the typed operations that make live equal desired, each with
its reason, its field diff, the exact requests it will make (with references to ids that may
only exist once an earlier operation ran), and the precondition it observed. Problems that no
plan can solve (an immutable field changed, a reference the org lacks) raise ``PlanError``.

Order, by phase: templates and indexes; versions; prompts with their splits; withdrawals of
versions (after splits stopped routing to them); then deletions in reverse (prompts, versions,
templates). Operations in one phase are independent and may run concurrently.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from reconciler.diffing import DiffItem, diff, parse_path, top_fields
from reconciler.endpoints import FIELDS, PATHS
from reconciler.errors import PlanError
from reconciler.model import KIND_RANK, Kind, Problem
from reconciler.normalize import (
    LiveState,
    Obj,
    Ref,
    index_body,
    prompt_body,
    template_body,
    traffic_body,
    version_body,
    version_patch_body,
    with_ignores,
)

T, V, P, S, X = (
    Kind.PROMPT_TEMPLATE.value,
    Kind.PROMPT_VERSION.value,
    Kind.PROMPT.value,
    Kind.TRAFFIC_SPLIT.value,
    Kind.VECTOR_INDEX.value,
)
IMMUTABLE = {
    V: ("content", "variables", "abTest"),
    X: ("dimensions", "similarityMetric", "embeddingFormat"),
}


class OpType(str, Enum):
    CREATE = "create"
    UPDATE = "update"
    ADOPT = "adopt"
    REPLACE = "replace"
    DELETE = "delete"
    NOOP = "noop"

    def __str__(self) -> str:
        return self.value


class Phase(int, Enum):
    BASE = 0  # templates, indexes
    VERSIONS = 1
    PROMPTS = 2  # prompts and their traffic splits
    WITHDRAW = 3  # versions withdrawn once no split routes to them
    DELETE_PROMPTS = 4
    DELETE_VERSIONS = 5
    DELETE_TEMPLATES = 6


@dataclass(frozen=True)
class Request:
    """One HTTP request. ``path`` is a template over ``params``; params and body may hold
    ``Ref``s to ids that exist only once an earlier operation has run."""

    method: str
    path: str
    params: Mapping[str, Any] = field(default_factory=dict)
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    precondition: str | None = None  # if-match | if-none-match | None

    @property
    def is_write(self) -> bool:
        return self.method != "GET"


@dataclass(frozen=True)
class Operation:
    action: OpType
    kind: str
    key: str
    reason: str
    phase: int
    diff: tuple[DiffItem, ...] = ()
    requests: tuple[Request, ...] = ()
    observed: int | str | None = None  # template version / ETag / fingerprint; None = absent
    remote_id: str | None = None
    destructive: bool = False
    allowed: bool = True  # False: destructive and not permitted by annotation (apply decides)
    covers: tuple[str, ...] = ()  # refs this operation realises (a Prompt and its split)
    source: str = ""

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.key}"

    @property
    def sort_key(self) -> tuple[int, int, str, str]:
        return (self.phase, KIND_RANK[Kind(self.kind)], self.kind, self.key)


@dataclass(frozen=True)
class Plan:
    operations: tuple[Operation, ...]
    orphaned: tuple[str, ...] = ()  # labelled as managed, in no manifest (deleted with --prune)
    unmanaged: tuple[str, ...] = ()  # unlabelled, in no manifest: left alone
    warnings: tuple[Problem, ...] = ()
    prune: bool = False

    @property
    def changes(self) -> list[Operation]:
        return [o for o in self.operations if o.action != OpType.NOOP]

    def counts(self) -> dict[str, int]:
        out = {a.value: 0 for a in OpType}
        for o in self.operations:
            out[o.action.value] += 1
        return out

    def summary(self) -> str:
        c = self.counts()
        return (
            f"Plan: {c['create']} to create, {c['update']} to update, {c['adopt']} to adopt, "
            f"{c['replace']} to replace, {c['delete']} to delete"
        )

    def waves(self) -> list[list[Operation]]:
        """Changes grouped by phase, in order; operations of one wave are independent."""
        waves: dict[int, list[Operation]] = {}
        for o in self.changes:
            waves.setdefault(o.phase, []).append(o)
        return [waves[p] for p in sorted(waves)]


def _problem(obj: Obj | None, path: str, message: str, fix: str = "") -> Problem:
    file, line = "", 0
    if obj is not None and obj.source:
        file, _, ln = obj.source.rpartition(":")
        line = int(ln) if ln.isdigit() else 0
    kind, key = (obj.kind, obj.key) if obj else ("", "")
    return Problem(file, line, "error", kind, key, path, message, fix, "plan")


class _Planner:
    def __init__(
        self,
        desired: Mapping[str, Obj],
        live: LiveState,
        prune: bool,
        ignores: Mapping[str, Iterable[str]],
    ) -> None:
        self.live = live
        self.prune = prune
        self.desired = {
            ref: with_ignores(o, live.get(ref), ignores.get(ref, ())) for ref, o in desired.items()
        }
        self.ops: list[Operation] = []
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self._creating = {o.ref for o in self.desired.values() if o.ref not in live.objects}

    # -- helpers --------------------------------------------------------------------------
    def _d(self, kind: str) -> list[Obj]:
        return sorted((o for o in self.desired.values() if o.kind == kind), key=lambda o: o.key)

    def _exists(self, ref: str) -> bool:
        return ref in self.desired or ref in self.live.objects

    def _template_id(self, name: str) -> Any:
        live = self.live.get(f"{T}/{name}")
        return (
            live.remote_id
            if live is not None and f"{T}/{name}" not in self._creating
            else Ref(T, name)
        )

    def _withdrawn(self, template: str, version: str) -> bool:
        ref = f"{V}/{template}@{version}"
        obj = self.desired.get(ref) or self.live.get(ref)
        return bool(obj and obj.fields.get("rollbackDirective"))

    # -- per kind -------------------------------------------------------------------------
    def run(self) -> Plan:
        for o in self._d(T):
            self._template(o)
        for o in self._d(V):
            self._version(o)
        names = sorted({o.key for o in self._d(P)} | {o.key for o in self._d(S)})
        for name in names:
            self._prompt(name)
        for o in self._d(X):
            self._index(o)
        orphaned, unmanaged = self._leftovers()
        if self.problems:
            raise PlanError(sorted(set(self.problems)))
        ops = tuple(sorted(self.ops, key=lambda o: o.sort_key))
        return Plan(ops, tuple(orphaned), tuple(unmanaged), tuple(self.warnings), self.prune)

    def _noop(self, d: Obj, live: Obj, phase: int) -> None:
        self.ops.append(
            Operation(
                OpType.NOOP,
                d.kind,
                d.key,
                "live matches the manifests",
                phase,
                observed=live.precondition,
                remote_id=live.remote_id,
                covers=(d.ref,),
                source=d.source,
            )
        )

    def _template(self, d: Obj) -> None:
        live = self.live.get(d.ref)
        body = template_body(d.key, d.fields)
        if live is None:
            self.ops.append(
                Operation(
                    OpType.CREATE,
                    T,
                    d.key,
                    "not in the org",
                    Phase.BASE,
                    diff(_empty(d), d.fields),
                    (Request("POST", PATHS.templates, body=body),),
                    covers=(d.ref,),
                    source=d.source,
                )
            )
            return
        changes = diff(live.fields, d.fields)
        if live.managed and not changes:
            return self._noop(d, live, Phase.BASE)
        action = OpType.UPDATE if live.managed else OpType.ADOPT
        req = Request(
            "PUT",
            PATHS.template,
            {"templateId": live.remote_id},
            body,
            {"If-Match": f"version={live.precondition}"},
            "if-match",
        )
        reason = (
            "differs from the manifests" if live.managed else "exists without the management label"
        )
        self.ops.append(
            Operation(
                action,
                T,
                d.key,
                reason,
                Phase.BASE,
                changes,
                (req,),
                live.precondition,
                live.remote_id,
                covers=(d.ref,),
                source=d.source,
            )
        )

    def _version(self, d: Obj) -> None:
        template, _, version = d.key.rpartition("@")
        if not self._exists(f"{T}/{template}"):
            self.problems.append(
                _problem(
                    d,
                    "spec.template",
                    f"PromptTemplate {template} is neither in the manifests nor in the org",
                    "add the template's manifest",
                )
            )
            return
        live = self.live.get(d.ref)
        tid = self._template_id(template)
        if live is None:
            body = version_body(template, version, d.fields)
            body[FIELDS.version.template_id] = tid
            headers = {}
            ab = d.fields.get("abTest")
            if isinstance(ab, dict) and ab.get("enabled"):
                pct = round(float(ab.get("trafficPercent", 0)) * 100)
                headers["X-Genesys-AB-Test"] = f"variant={ab.get('variantId', '')},traffic={pct}"
            self.ops.append(
                Operation(
                    OpType.CREATE,
                    V,
                    d.key,
                    "not in the org",
                    Phase.VERSIONS,
                    diff(_empty(d), d.fields),
                    (Request("POST", PATHS.versions, {"templateId": tid}, body, headers),),
                    covers=(d.ref,),
                    source=d.source,
                )
            )
            return
        changes = diff(live.fields, d.fields)
        frozen = [c for c in changes if parse_path(c.path)[0] in IMMUTABLE[V]]
        for c in frozen:
            self.problems.append(
                _problem(
                    d,
                    f"spec.{c.path}",
                    f"{c.path} of a published version is immutable "
                    f"({template}@{version} exists in the org with other {c.path})",
                    "publish a new version (e.g. bump the patch number) and move traffic to it",
                )
            )
        if frozen:
            return
        if live.managed and not changes:
            return self._noop(d, live, Phase.VERSIONS)
        withdrawing = d.fields["rollbackDirective"] and not live.fields.get("rollbackDirective")
        phase = Phase.WITHDRAW if withdrawing else Phase.VERSIONS
        action = OpType.UPDATE if live.managed else OpType.ADOPT
        reason = (
            "withdrawn (rollbackDirective: true)"
            if withdrawing
            else "differs from the manifests"
            if live.managed
            else "exists without the management label"
        )
        req = Request(
            "PATCH",
            PATHS.version,
            {"templateId": tid, "version": version},
            version_patch_body(d.fields),
        )
        self.ops.append(
            Operation(
                action,
                V,
                d.key,
                reason,
                phase,
                changes,
                (req,),
                live.precondition,
                live.remote_id,
                covers=(d.ref,),
                source=d.source,
            )
        )

    def _check_prompt_refs(self, d: Obj) -> None:
        f = d.fields
        if not self._exists(f"{T}/{f['template']}"):
            self.problems.append(
                _problem(
                    d,
                    "spec.template",
                    f"PromptTemplate {f['template']} is neither in the manifests nor in the org",
                    "add the template's manifest",
                )
            )
        if not self.live.models:
            return
        model = self.live.models.get(f["model"])
        if model is None:
            self.problems.append(
                _problem(
                    d,
                    "spec.model",
                    f"model {f['model']} is not in the org's model list",
                    "use one of: " + ", ".join(sorted(self.live.models)),
                )
            )
        else:
            limit = model.get("maxOutputTokens")
            if isinstance(limit, int) and f["maxTokens"] > limit:
                self.problems.append(
                    _problem(
                        d,
                        "spec.maxTokens",
                        f"{f['maxTokens']} exceeds the model's maxOutputTokens {limit}",
                        f"set maxTokens to at most {limit}",
                    )
                )
        for i, fb in enumerate(f["fallbackModels"]):
            if fb not in self.live.models:
                self.problems.append(
                    _problem(
                        d,
                        f"spec.fallbackModels[{i}]",
                        f"fallback model {fb} is not in the org's model list",
                        "use one of: " + ", ".join(sorted(self.live.models)),
                    )
                )

    def _check_split_refs(self, s: Obj, template: str | None) -> None:
        if template is None:
            return
        versions = (
            [s.fields["defaultVersion"]]
            if "defaultVersion" in s.fields
            else list(s.fields["versions"])
        )
        for v in versions:
            ref = f"{V}/{template}@{v}"
            if not self._exists(ref) and (
                template in self.live.versions_read or f"{T}/{template}" in self._creating
            ):
                self.problems.append(
                    _problem(
                        s,
                        "spec.versions",
                        f"version {v} of {template} is neither in the manifests nor in the org",
                        "add its PromptVersion manifest",
                    )
                )
            elif self._withdrawn(template, v):
                self.problems.append(
                    _problem(
                        s,
                        "spec.versions",
                        f"routes traffic to {template}@{v}, "
                        "which is withdrawn (rollbackDirective: true)",
                        "move its traffic to another version",
                    )
                )

    def _prompt(self, name: str) -> None:
        dp, ds = self.desired.get(f"{P}/{name}"), self.desired.get(f"{S}/{name}")
        lp, ls = self.live.get(f"{P}/{name}"), self.live.get(f"{S}/{name}")
        if dp is not None:
            self._check_prompt_refs(dp)
        template = dp.fields["template"] if dp else lp.fields["template"] if lp else None
        if ds is not None:
            self._check_split_refs(ds, template)
        if lp is None:
            if dp is None:
                assert ds is not None
                self.problems.append(
                    _problem(
                        ds,
                        "spec.prompt",
                        f"Prompt {name} is neither in the manifests nor in the org",
                        "add the Prompt manifest",
                    )
                )
                return
            body: dict[str, Any] = prompt_body(dp.fields)
            body[FIELDS.prompt.name] = name
            changes = diff(_empty(dp), dp.fields)
            covers: tuple[str, ...] = (dp.ref,)
            if ds is not None:
                body[FIELDS.prompt.traffic] = traffic_body(ds.fields)
                changes += tuple(_prefixed(diff({}, ds.fields), "trafficDistribution"))
                covers += (ds.ref,)
            body = _resolve_template(body, self._template_id(dp.fields["template"]))
            self.ops.append(
                Operation(
                    OpType.CREATE,
                    P,
                    name,
                    "not in the org",
                    Phase.PROMPTS,
                    changes,
                    (Request("POST", PATHS.prompts, body=body),),
                    covers=covers,
                    source=dp.source,
                )
            )
            return
        p_changes = diff(lp.fields, dp.fields) if dp is not None else ()
        s_changes = diff(ls.fields if ls else {}, ds.fields) if ds is not None else ()
        adopt = dp is not None and not lp.managed
        if not p_changes and not s_changes:
            for d in (dp, ds):
                if d is not None:
                    self._noop(d, lp, Phase.PROMPTS)
            return
        body = {}
        if p_changes and dp is not None:
            body = prompt_body(dp.fields, only=top_fields(p_changes))
            if FIELDS.prompt.template_id in body:
                body = _resolve_template(body, self._template_id(dp.fields["template"]))
        if s_changes and ds is not None:
            body[FIELDS.prompt.traffic] = traffic_body(ds.fields)
        changes = p_changes + tuple(_prefixed(s_changes, "trafficDistribution"))
        covers = tuple(d.ref for d, c in ((dp, p_changes), (ds, s_changes)) if d is not None and c)
        kind = P if p_changes else S
        main = dp if p_changes else ds
        assert main is not None
        action = OpType.ADOPT if adopt else OpType.UPDATE
        reason = (
            "exists without the management label"
            if adopt
            else "traffic split differs"
            if kind == S
            else "differs from the manifests"
        )
        req = Request(
            "PUT",
            PATHS.prompt,
            {"promptId": lp.remote_id},
            body,
            {"If-Match": str(lp.precondition)},
            "if-match",
        )
        self.ops.append(
            Operation(
                action,
                kind,
                name,
                reason,
                Phase.PROMPTS,
                changes,
                (req,),
                lp.precondition,
                lp.remote_id,
                covers=covers,
                source=main.source,
            )
        )
        if p_changes and ds is not None and not s_changes:
            self._noop(ds, lp, Phase.PROMPTS)

    def _index(self, d: Obj) -> None:
        store, _, name = d.key.partition("/")
        if self.live.stores and store not in self.live.stores:
            self.problems.append(
                _problem(
                    d,
                    "spec.vectorStore",
                    f"vector store {store} is not in the org",
                    "use one of: " + ", ".join(sorted(self.live.stores)),
                )
            )
            return
        live = self.live.get(d.ref)
        body = index_body(name, d.fields)
        params = {"vectorStoreId": store, "indexId": name}
        create = Request("PUT", PATHS.index, params, body, {"If-None-Match": "*"}, "if-none-match")
        if live is None:
            self.ops.append(
                Operation(
                    OpType.CREATE,
                    X,
                    d.key,
                    "not in the org",
                    Phase.BASE,
                    diff(_empty(d), d.fields),
                    (create,),
                    covers=(d.ref,),
                    source=d.source,
                )
            )
            return
        changes = diff(live.fields, d.fields)
        if live.managed and not changes:
            return self._noop(d, live, Phase.BASE)
        frozen = [c.path for c in changes if parse_path(c.path)[0] in IMMUTABLE[X]]
        if frozen and not live.managed:
            # adopting it by replacement would delete vectors llmgw never owned
            self.problems.append(
                _problem(
                    d,
                    f"spec.{frozen[0]}",
                    f"index {name} exists in the org without the label managed-by: llmgw, with "
                    f"other {', '.join(frozen)}; replacing it would delete stored vectors "
                    "llmgw never owned",
                    f"set {', '.join(frozen)} to the org's values so llmgw adopts the index as "
                    "it is (and change them in a later apply), or give the manifest another "
                    "index name",
                )
            )
            return
        if frozen:
            delete = Request(
                "DELETE",
                PATHS.index,
                params,
                None,
                {"If-Match": str(live.precondition)},
                "if-match",
            )
            self.ops.append(
                Operation(
                    OpType.REPLACE,
                    X,
                    d.key,
                    f"{', '.join(frozen)} cannot change on an existing index: "
                    "delete and recreate, destroying its stored vectors",
                    Phase.BASE,
                    changes,
                    (delete, create),
                    live.precondition,
                    live.remote_id,
                    destructive=True,
                    allowed=d.allow_replace,
                    covers=(d.ref,),
                    source=d.source,
                )
            )
            return
        action = OpType.UPDATE if live.managed else OpType.ADOPT
        reason = (
            "differs from the manifests" if live.managed else "exists without the management label"
        )
        req = Request(
            "PUT", PATHS.index, params, body, {"If-Match": str(live.precondition)}, "if-match"
        )
        self.ops.append(
            Operation(
                action,
                X,
                d.key,
                reason,
                Phase.BASE,
                changes,
                (req,),
                live.precondition,
                live.remote_id,
                covers=(d.ref,),
                source=d.source,
            )
        )

    def _leftovers(self) -> tuple[list[str], list[str]]:
        orphaned: list[str] = []
        unmanaged: list[str] = []
        split_prompts = {o.key for o in self._d(S)}
        for ref, live in sorted(self.live.objects.items()):
            if ref in self.desired or live.kind == S:
                continue
            if not live.managed:
                unmanaged.append(ref)
                continue
            if live.kind == P and live.key in split_prompts:
                continue  # its traffic split is still managed from git
            orphaned.append(ref)
            if self.prune:
                self._delete(live)
        return orphaned, unmanaged

    def _delete(self, live: Obj) -> None:
        if live.kind == T:
            req = Request(
                "DELETE",
                PATHS.template,
                {"templateId": live.remote_id},
                None,
                {"If-Match": f"version={live.precondition}"},
                "if-match",
            )
            phase = Phase.DELETE_TEMPLATES
        elif live.kind == V:
            template, _, version = live.key.rpartition("@")
            tid = self.live.get(f"{T}/{template}")
            if tid is None or tid.remote_id is None:
                return
            req = Request(
                "DELETE", PATHS.version, {"templateId": tid.remote_id, "version": version}
            )
            phase = Phase.DELETE_VERSIONS
        elif live.kind == P:
            req = Request(
                "DELETE",
                PATHS.prompt,
                {"promptId": live.remote_id},
                None,
                {"If-Match": str(live.precondition)},
                "if-match",
            )
            phase = Phase.DELETE_PROMPTS
        elif live.kind == X:
            store, _, name = live.key.partition("/")
            req = Request(
                "DELETE",
                PATHS.index,
                {"vectorStoreId": store, "indexId": name},
                None,
                {"If-Match": str(live.precondition)},
                "if-match",
            )
            phase = Phase.BASE
        else:
            return
        self.ops.append(
            Operation(
                OpType.DELETE,
                live.kind,
                live.key,
                "managed by llmgw and in no manifest (--prune)",
                phase,
                diff(live.fields, {}),
                (req,),
                live.precondition,
                live.remote_id,
                destructive=True,
                covers=(live.ref,),
            )
        )


def _empty(d: Obj) -> dict[str, Any]:
    return {}


def _prefixed(items: Iterable[DiffItem], prefix: str) -> list[DiffItem]:
    return [DiffItem(i.op, f"{prefix}.{i.path}" if i.path else prefix, i.old, i.new) for i in items]


def _resolve_template(body: dict[str, Any], template_id: Any) -> dict[str, Any]:
    out = dict(body)
    if FIELDS.prompt.template_id in out:
        out[FIELDS.prompt.template_id] = template_id
    return out


def plan(
    desired: Mapping[str, Obj],
    live: LiveState,
    *,
    prune: bool = False,
    ignores: Mapping[str, Iterable[str]] | None = None,
) -> Plan:
    """The operations that make ``live`` equal ``desired``. Pure; raises PlanError."""
    return _Planner(desired, live, prune, ignores or {}).run()
