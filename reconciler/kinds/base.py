"""The Resource protocol: one manifest kind, and everything llmgw knows about it, in one place.

A kind is a module in ``reconciler/kinds/`` holding one ``Resource`` subclass, listed once in the
registry (``kinds/__init__.py``, in rank order). The generic core never names a kind: it loops
over the registry and asks each one, as pre-commit's core asks each ``Language`` and Terraform's
asks each resource's provider. What a kind says about itself:

- **facts** (class attributes): its name, its JSON Schema file, its dependency rank, the phase
  its creates and updates run in and the one its deletes run in, its immutable fields and what
  changing them means (an error, or a replacement), the kind that owns its remote object (a
  TrafficSplit lives inside its Prompt), the fields that are identities, and the requests each
  action sends (method and path template: the executor sends nothing else);
- **manifests**: its identity, its semantic checks of one document and across documents, the
  desired object of a document;
- **the live org**: how to read its objects, by listing (``read``), and whether the absence of
  one of its objects is known;
- **planning**: the operations that make live equal desired (built with ``PlanContext``, which
  holds the one decision function and builds every ``Operation``), and its deletes;
- **applying**: the path of its object, the ``If-Match`` form of its precondition, and what a
  write's answer records (ids, the new precondition);
- **export**: the manifest documents of its live objects;
- **renames**: whether its objects can be renamed (``llmgw.io/renamed-from``), and why not,
  and how its live objects follow a rename (``follow_rename``: the renamed object itself, the
  parts it owns, the objects that name it).

Defaults do the common thing, so a kind overrides only what differs. What a kind must not do:
I/O beyond its ``read`` (through the reader it is given), printing, or knowing another kind's
fields (it may name another kind it references, as a version names its template).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from reconciler.diffing import DiffItem, diff, parse_path
from reconciler.endpoints import HEADERS
from reconciler.model import Document, Path, Problem, format_path
from reconciler.objects import NAME_PATH, LiveState, Obj, Ref, labels_of, renaming
from reconciler.operations import NOOP_REASON, Operation, OpType, Phase, Request
from reconciler.textrules import Finding

Writes = Mapping[OpType, tuple[tuple[str, str], ...]]
EDITS = (OpType.UPDATE, OpType.ADOPT)


# -- manifests -----------------------------------------------------------------------------------
class Emit:
    """Collects the problems of one document; ``emit(path, message, fix, rule=...)``."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.problems: list[Problem] = []

    def __call__(
        self,
        path: Path,
        message: str,
        fix: str = "",
        *,
        line: int | None = None,
        severity: str = "error",
        rule: str = "",
    ) -> None:
        self.problems.append(
            doc_problem(self.doc, path, message, fix, line=line, severity=severity, rule=rule)
        )

    def finding(
        self, path: Path, f: Finding, *, line: int | None = None, severity: str = "error"
    ) -> None:
        """A textrules finding about the string at ``path`` (its offset gives the line)."""
        if line is None:
            line = self.doc.locations.text_line(path, f.offset) if f.offset >= 0 else None
        self(path, f.message, f.fix, line=line, severity=severity, rule=f.rule)


@dataclass
class DocIndex:
    """The documents of a run, for checks across them: the first document of each identity."""

    docs: list[Document]
    first: dict[tuple[str, str], Document] = field(default_factory=dict)

    def get(self, kind: str, key: str) -> Document | None:
        return self.first.get((kind, key))

    def keys(self, kind: str) -> set[str]:
        return {k for (kd, k) in self.first if kd == kind}

    def of_kind(self, kind: str) -> list[Document]:
        return [d for d in self.docs if d.kind == kind]


def doc_problem(
    doc: Document,
    path: Path,
    message: str,
    fix: str = "",
    *,
    line: int | None = None,
    severity: str = "error",
    rule: str = "",
) -> Problem:
    """A problem of ``doc`` at ``path`` (at the line ``path`` came from, unless given)."""
    where = line if line is not None else doc.line_of(path)
    return Problem(
        doc.file, where, severity, doc.kind, doc.name, format_path(path), message, fix, rule
    )


def reference_warning(doc: Document, path: Path, what: str, rule: str) -> Problem:
    """A reference the manifests do not define: ``plan`` checks the live org."""
    message = f"{what} is not in the manifests; plan checks the live org"
    return doc_problem(doc, path, message, severity="warning", rule=rule)


# -- the live org --------------------------------------------------------------------------------
class Reader(Protocol):
    """The read half of the gateway, as a kind's ``read`` uses it: every collection by listing
    (page-number paging), at most ``window`` listings of one kind at a time."""

    @property
    def window(self) -> int: ...

    async def list(self, path: str) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class ReadScope:
    """What a read is for: the objects the manifests name and refer to (``refs``: a kind may
    read only what they need, as versions are read only for the templates named or referred
    to), or everything (``everything``: export)."""

    refs: frozenset[tuple[str, str]] = frozenset()  # (kind, key)
    everything: bool = False
    stores: frozenset[str] | None = None  # limit the vector stores read (None: all)
    targeted: bool = False  # only ``refs``: not the managed objects' children too (orphans)

    def wanted(self, kind: str) -> set[str]:
        """Keys of ``kind`` the manifests name or refer to."""
        return {k for (kd, k) in self.refs if kd == kind}


# -- planning ------------------------------------------------------------------------------------
class PlanContext:
    """One plan in the making: the desired objects (ignored fields already set to live), the
    live state, and the operations and problems so far. It holds the one decision function
    (``decide``) and builds every ``Operation`` (``operation``), so the kinds say only what a
    change sends and why. Pure: no I/O, no clock."""

    def __init__(self, desired: Mapping[str, Obj], live: LiveState, prune: bool) -> None:
        self.desired = desired
        self.live = live
        self.prune = prune
        self.ops: list[Operation] = []
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.creating = {ref for ref in desired if ref not in live.objects}

    def of_kind(self, kind: str) -> list[Obj]:
        return sorted((o for o in self.desired.values() if o.kind == kind), key=lambda o: o.key)

    def exists(self, ref: str) -> bool:
        return ref in self.desired or ref in self.live.objects

    def remote_id(self, kind: str, key: str) -> Any:
        """The live id of ``kind/key``, or a ``Ref`` resolved at apply time when this plan
        creates it first."""
        ref = f"{kind}/{key}"
        have = self.live.get(ref)
        if have is not None and ref not in self.creating:
            return have.remote_id
        return Ref(kind, key)

    def problem(
        self, obj: Obj | None, path: str, message: str, fix: str = "", *, rule: str = "plan"
    ) -> None:
        self.problems.append(_plan_problem("error", obj, path, message, fix, rule))

    def warning(self, obj: Obj | None, path: str, message: str, fix: str, *, rule: str) -> None:
        """A finding the plan shows with its warnings: nothing stops it."""
        self.warnings.append(_plan_problem("warning", obj, path, message, fix, rule))

    def decide(
        self,
        resource: Resource,
        want: Obj,
        have: Obj | None,
        changes: Sequence[DiffItem],
        *,
        adopt: bool = True,
    ) -> OpType | None:
        """The one decision: what to do with ``want`` given ``have`` and their differences.
        Create when absent; nothing when equal and managed; replace or refuse (a problem, and
        None) when an immutable field changed; else update, or adopt an unlabelled object
        (``adopt=False``: an owned part alone updates its owner without adopting it)."""
        if have is None:
            return OpType.CREATE
        if have.managed and not changes:
            return OpType.NOOP
        frozen = [c for c in changes if parse_path(c.path)[0] in resource.immutable]
        if frozen:
            if not resource.replace_on_immutable:
                for c in frozen:
                    self.problem(want, f"spec.{c.path}", *resource.immutable_problem(want, c))
                return None
            if not have.managed:  # replacing it would destroy what llmgw never owned
                self.problem(
                    want,
                    f"spec.{frozen[0].path}",
                    *resource.unmanaged_replace_problem(want, frozen),
                )
                return None
            return OpType.REPLACE
        return OpType.UPDATE if have.managed or not adopt else OpType.ADOPT

    def create(self, resource: Resource, want: Obj, *requests: Request) -> Operation:
        """The create of an object absent from the org: every field added."""
        return self.operation(
            resource, OpType.CREATE, want.key, requests=requests, changes=created(want), want=want
        )

    def compare(
        self, resource: Resource, want: Obj, have: Obj, noop_reason: str = ""
    ) -> tuple[OpType, tuple[DiffItem, ...]] | None:
        """Diff an object present in the org and ``decide``: the action and the changes a
        request must send, or None when nothing more is to be planned (equal: the no-op is
        recorded here; refused: the problem is)."""
        changes = renaming(have) + tuple(diff(have.fields, want.fields))
        action = self.decide(resource, want, have, changes)
        if action is None:
            return None
        if action == OpType.NOOP:
            self.operation(resource, action, want.key, have=have, want=want, reason=noop_reason)
            return None
        return action, changes

    def operation(
        self,
        resource: Resource,
        action: OpType,
        key: str,
        *,
        reason: str = "",
        requests: Sequence[Request] = (),
        changes: Sequence[DiffItem] = (),
        have: Obj | None = None,
        want: Obj | None = None,
        phase: Phase | None = None,
        covers: Sequence[str] | None = None,
        kind: str | None = None,
    ) -> Operation:
        """Build and record the operation: its phase from the kind (a delete's from its delete
        phase), what it observed and its id from ``have``, its source from ``want``, the
        standard reason for its action unless one is given."""
        kind = kind or resource.kind
        if phase is None:
            phase = resource.delete_phase if action == OpType.DELETE else resource.phase
            assert phase is not None, f"{resource.kind} has no delete phase"
        destructive = action in (OpType.REPLACE, OpType.DELETE)
        if not reason:
            reason = _reason(action, key, changes, have, want, self.live)
        op = Operation(
            action,
            kind,
            key,
            reason,
            int(phase),
            tuple(changes),
            tuple(requests),
            have.precondition if have is not None else None,
            have.remote_id if have is not None else None,
            destructive=destructive,
            allowed=(want.allow_replace if want is not None else True)
            if action == OpType.REPLACE
            else True,
            covers=tuple(covers) if covers is not None else (f"{kind}/{key}",),
            source=want.source if want is not None else "",
        )
        self.ops.append(op)
        return op


REASONS = {
    OpType.CREATE: "not in the org",
    OpType.UPDATE: "differs from the manifests",
    OpType.ADOPT: "exists without the management label",
    OpType.NOOP: NOOP_REASON,
    OpType.DELETE: "managed by llmgw and in no manifest (--prune)",
    OpType.REPLACE: "",
}


def _reason(
    action: OpType,
    key: str,
    changes: Sequence[DiffItem],
    have: Obj | None,
    want: Obj | None,
    live: LiveState,
) -> str:
    """The standard reason of an action; a rename says so (``rename OLD -> NEW``, and what else
    differs), a create whose manifest renames an object the org lacks says that too."""
    if action in EDITS and have is not None and have.renamed_from is not None:
        rest = "; differs from the manifests" if any(c.path != NAME_PATH for c in changes) else ""
        return f"rename {have.renamed_from} -> {key}{rest}"
    old = want.renames if want is not None and action == OpType.CREATE else None
    if want is not None and old not in (None, key) and live.get(f"{want.kind}/{old}") is None:
        return f"not in the org, nor is {old}, which it is renamed from"
    return REASONS[action]


def _plan_problem(
    severity: str, obj: Obj | None, path: str, message: str, fix: str, rule: str
) -> Problem:
    file, line = "", 0
    if obj is not None and obj.source:
        file, _, ln = obj.source.rpartition(":")
        line = int(ln) if ln.isdigit() else 0
    kind, key = (obj.kind, obj.key) if obj else ("", "")
    return Problem(file, line, severity, kind, key, path, message, fix, rule)


def created(want: Obj) -> tuple[DiffItem, ...]:
    """A create's diff: every field added."""
    return diff({}, want.fields)


# -- applying ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recorded:
    """What a write's answer tells the rest of the run: ids of objects by ref (to resolve the
    ``Ref``s of later requests) and the object's new precondition (``None``: none known)."""

    ids: Mapping[str, str] = field(default_factory=dict)
    precondition: int | str | None = None


# -- export --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportDocs:
    """One file of an export: its path under the output folder, its documents (plain data,
    written as YAML by ``export``), and the refs they describe."""

    path: str
    docs: tuple[dict[str, Any], ...]
    refs: tuple[str, ...]


# -- the protocol --------------------------------------------------------------------------------
class Resource:
    """One manifest kind. Subclasses set the facts and override what differs."""

    kind: ClassVar[str]
    schema_file: ClassVar[str]
    rank: ClassVar[int]
    phase: ClassVar[Phase]
    delete_phase: ClassVar[Phase | None] = None  # None: never deleted on its own
    immutable: ClassVar[tuple[str, ...]] = ()
    replace_on_immutable: ClassVar[bool] = False  # else a change of an immutable field is an error
    replace_loses: ClassVar[str] = "what it holds"  # what a replace destroys, for its refusal
    owner: ClassVar[str | None] = None  # the kind whose remote object holds this one's fields
    shown_under: ClassVar[str | None] = None  # the owner's field a plan shows its fields under
    identity_fields: ClassVar[tuple[Path, ...]] = (("metadata", "name"),)
    writes: ClassVar[Writes] = {}
    precondition_word: ClassVar[str] = "state"  # how a stale message names a moved precondition
    # (a template says "version", an ETag-guarded kind "ETag")
    reports_health: ClassVar[bool] = False  # apply reports its live status afterwards
    mirrored: ClassVar[bool] = False  # apply --mirror-audit records its changes in the gateway
    labelled: ClassVar[bool] = True  # its desired fields carry the labels (not an owned kind)
    text_fields: ClassVar[frozenset[str]] = frozenset()  # prose: plans show a line diff
    renamable: ClassVar[bool] = False  # a manifest may rename its live object (renamed-from)
    # why not, when it may not: the message and the fix of validate's error
    rename_refusal: ClassVar[tuple[str, str]] = (
        "its identity is immutable, so it cannot be renamed",
        "delete it and create the new one",
    )

    # -- manifests --
    def identity(self, name: str, spec: Mapping[str, Any]) -> str | None:
        """The identity within the kind, as a string; None when it cannot be determined."""
        return name or None

    def check(self, doc: Document, emit: Emit) -> None:
        """Semantic checks of one document (also one that failed its schema: check types)."""

    def check_set(self, index: DocIndex) -> list[Problem]:
        """Checks across documents (references, ...)."""
        return []

    def refers(self, obj: Obj) -> tuple[tuple[str, str], ...]:
        """The (kind, key) of the objects a desired object refers to (a version its template):
        what a read must cover besides the object itself."""
        return ()

    def fields(self, doc: Document) -> dict[str, Any]:
        """The desired fields of a valid document, in the shape live objects normalise to."""
        raise NotImplementedError

    def desired(self, doc: Document) -> Obj:
        fields = self.fields(doc)
        if self.labelled:
            fields["labels"] = labels_of(doc.labels, managed=True)
        annotations = {str(k): str(v) for k, v in doc.annotations.items()}
        key = self.identity(doc.name, doc.spec) or doc.name
        return Obj(self.kind, key, fields, source=f"{doc.file}:{doc.line}", annotations=annotations)

    # -- the live org --
    reads_after: ClassVar[tuple[str, ...]] = ()  # kinds whose live objects ``read`` needs first

    async def read(self, reader: Reader, state: LiveState, scope: ReadScope) -> None:
        """Add this kind's live objects to ``state`` (an owned kind is read by its owner)."""

    def absence_known(self, key: str, live: LiveState) -> bool:
        """Whether ``key`` missing from ``live`` means absent (not merely unread)."""
        return True

    def held(self, want: Obj, have: Obj) -> tuple[Obj, str]:
        """What drift compares ``have`` with, and why it differs from ``want`` when something
        other than git holds the object (a rollout): ``(want, "")`` when nothing does."""
        return want, ""

    # -- planning --
    def plan(self, ctx: PlanContext) -> None:
        """Operations for every desired object of this kind (and of the kinds it owns)."""
        raise NotImplementedError

    def orphan(self, have: Obj, desired: Mapping[str, Obj]) -> bool:
        """Whether a managed live object no manifest names is an orphan (``--prune`` deletes
        it); an owner whose owned part is still desired is not."""
        return True

    def delete(self, have: Obj, ctx: PlanContext) -> tuple[Request, ...] | None:
        """The requests deleting ``have``; None when it cannot be deleted now."""
        return None

    # -- applying --
    def own_path(self, key: str, method: str, ids: Mapping[str, str]) -> str | None:
        """The concrete path of object ``key`` (its collection for a create), or None while an
        id it needs is not known."""
        return None

    def if_match(self, precondition: int | str | None) -> str:
        """The ``If-Match`` value for a precondition this kind observed or was answered."""
        return str(precondition)

    def guarded(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any],
        have: Obj,
        body: dict[str, Any] | None = None,
    ) -> Request:
        """A write to an object the plan read, sent only while it is still what was read
        (``If-Match`` its observed precondition; a 412 means someone else changed it)."""
        headers = {HEADERS.if_match: self.if_match(have.precondition)}
        return Request(method, path, dict(params), body, headers, "if-match")

    def record(self, op: Operation, body: Mapping[str, Any], etag: str | None) -> Recorded:
        """What a successful write's answer tells the run (``body`` is the answered object)."""
        return Recorded()

    def busy(self, body: Mapping[str, Any]) -> bool:
        """Whether the object a GET answered is still busy with a write (an index ingesting):
        apply waits, then sends again. Only a kind the gateway answers "processing" for."""
        return False

    # -- export --
    def export(self, live: LiveState, keep: Callable[[Obj], bool]) -> list[ExportDocs]:
        """The manifest files of its live objects (an owned kind is exported by its owner)."""
        return []

    def unexportable(self, live: LiveState) -> list[str]:
        """Refs of live objects no manifest of this kind can describe (left out, named)."""
        return []

    # -- renames --
    def follow_rename(self, state: LiveState, kind: str, old: str, new: str) -> None:
        """Update this kind's objects in ``state`` (a copy the rename view owns) as the live
        object ``kind/old`` takes the name ``new``: by default the object itself (marked with
        the name it had, so its plan renames it) and, for an owned kind, its part of it. A kind
        whose objects name another kind's (a version its template) follows that kind too."""
        if kind in (self.kind, self.owner):
            rekey(state, f"{self.kind}/{old}", new, renamed=kind == self.kind)

    # -- helpers for subclasses --
    def unmanaged_replace_problem(self, want: Obj, frozen: Sequence[DiffItem]) -> tuple[str, str]:
        """The message and fix when replacing ``want`` would delete an unlabelled object."""
        paths = ", ".join(c.path for c in frozen)
        return (
            f"{want.key} exists in the org without the label managed-by: llmgw, with other "
            f"{paths}; replacing it would delete what llmgw never owned",
            f"set {paths} to the org's values so llmgw adopts it as it is",
        )

    def immutable_problem(self, want: Obj, change: DiffItem) -> tuple[str, str]:
        """The message and fix when an immutable field of ``want`` changed."""
        return (
            f"{change.path} of an existing {self.kind} cannot change",
            "create a new object instead",
        )


def rekey(state: LiveState, ref: str, key: str, *, renamed: bool = False) -> None:
    """Move the live object ``ref`` to ``key`` in ``state`` (``renamed``: remember the name it
    had, which its plan changes); nothing when ``state`` lacks it."""
    obj = state.objects.pop(ref, None)
    if obj is not None:
        was = obj.key if renamed else None
        moved = dataclasses.replace(obj, key=key, renamed_from=was)
        state.objects[moved.ref] = moved


def sorted_live(live: LiveState, kind: str) -> list[Obj]:
    return sorted(live.of_kind(kind), key=lambda o: o.key)


async def read_all(
    reader: Reader,
    fn: Callable[[str], Awaitable[list[dict[str, Any]]]],
    items: Iterable[str],
) -> list[list[dict[str, Any]]]:
    """``fn`` over ``items`` (listings by parent), at most ``reader.window`` at a time."""
    from reconciler.aio import bounded

    return await bounded(fn, list(items), int(getattr(reader, "window", 8)))
