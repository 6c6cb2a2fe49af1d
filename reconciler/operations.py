"""The plan's value types: actions, phases, requests, operations and the plan itself.

Plain frozen data shared by the kinds (which say what requests a change makes), the planner
(which decides), saved plans, the executor and the views. No logic beyond grouping and counting;
no I/O; nothing here knows a particular kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from reconciler.diffing import DiffItem
from reconciler.model import Problem

NOOP_REASON = "live matches the manifests"


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
    """The waves of an apply, in order. Each kind names the phase its creates and updates run
    in and the phase its deletes run in (kinds/base.py): creates by dependency rank, deletes in
    reverse, so nothing is deleted before everything else was tried."""

    BASE = 0  # templates, indexes
    VERSIONS = 1
    PROMPTS = 2  # prompts and their traffic splits
    WITHDRAW = 3  # versions withdrawn once no split routes to them
    DELETE_PROMPTS = 4
    DELETE_VERSIONS = 5
    DELETE_TEMPLATES = 6  # templates and indexes


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

    @property
    def held(self) -> list[Operation]:
        """No-ops for another reason than "live matches": what something else holds (a
        rollout in progress or aborted, a version a rollout withdrew), shown with the plan."""
        return [o for o in self.operations if o.action == OpType.NOOP and o.reason != NOOP_REASON]

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
