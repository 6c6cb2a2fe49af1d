"""Drift detection: how the live org differs from git, per object. Pure: no I/O, no clock.

States: **modified** (live differs from the manifests: which fields, old -> new), **missing**
(in git, not live), **orphaned** (labelled as managed by llmgw, no longer in git) and
**unmanaged** (live, unlabelled, in no manifest: information only, never drift), and
**rollout** (a split a rollout holds, in progress, paused or aborted, or a version it withdrew:
information only, never drift of the weights). Ignored fields (the ignore file's active
entries) are not compared. A rename the manifests ask for and the org has not had yet is the
renamed object's **modified** ``metadata.name`` (``renames.view``), never a missing object and
an orphan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler import kinds, renames
from reconciler.diffing import DiffItem, diff
from reconciler.objects import LiveState, Obj, renaming, with_ignores

MODIFIED, MISSING, ORPHANED, UNMANAGED = "modified", "missing", "orphaned", "unmanaged"
ROLLOUT = "rollout"  # held by a rollout (in progress, paused, aborted; a version it withdrew)
DRIFT_STATES = (MODIFIED, MISSING, ORPHANED)
STATES = (MODIFIED, MISSING, ORPHANED, UNMANAGED, ROLLOUT)


@dataclass(frozen=True)
class Finding:
    state: str
    kind: str
    key: str
    diff: tuple[DiffItem, ...] = ()
    source: str = ""
    note: str = ""  # a rollout's: what holds the object

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.key}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "kind": self.kind,
            "identity": self.key,
            "source": self.source,
            "fields": [d.as_dict() for d in self.diff],
            "note": self.note,
        }


@dataclass
class DriftReport:
    findings: list[Finding] = field(default_factory=list)
    checked: int = 0
    checked_by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def drifted(self) -> list[Finding]:
        return [f for f in self.findings if f.state in DRIFT_STATES]

    @property
    def in_sync(self) -> bool:
        return not self.drifted

    def count(self, state: str) -> int:
        return sum(1 for f in self.findings if f.state == state)


def detect(
    desired: Mapping[str, Obj], live: LiveState, ignores: Mapping[str, Iterable[str]] | None = None
) -> DriftReport:
    ignores = ignores or {}
    live = renames.view(desired, live)
    report = DriftReport()
    for ref in sorted(desired):
        want = desired[ref]
        have = live.get(ref)
        report.checked += 1
        report.checked_by_kind[want.kind] = report.checked_by_kind.get(want.kind, 0) + 1
        if have is None:
            wanted = kinds.resource(want.kind)
            if wanted.owner is not None and live.get(f"{wanted.owner}/{want.key}"):
                # an owned part (a split) of an object the org has: its fields are missing
                report.findings.append(
                    Finding(MODIFIED, want.kind, want.key, diff({}, want.fields), want.source)
                )
            elif not wanted.absence_known(want.key, live):
                continue  # its listing was not read: unknown, not missing
            else:
                report.findings.append(Finding(MISSING, want.kind, want.key, (), want.source))
            continue
        want = with_ignores(want, have, ignores.get(ref, ()))
        want, note = kinds.resource(want.kind).held(want, have)
        changes = renaming(have) + diff(have.fields, want.fields)
        if not changes and note:
            report.findings.append(Finding(ROLLOUT, want.kind, want.key, (), want.source, note))
        elif changes:
            # shown as git -> live: "old" is what git says, "new" what the org holds
            flipped = tuple(DiffItem(_flip(c.op), c.path, c.new, c.old) for c in changes)
            report.findings.append(Finding(MODIFIED, want.kind, want.key, flipped, want.source))
    for _, have in sorted(live.objects.items()):
        what = kinds.leftover(have, desired)  # "orphaned" or "unmanaged": ORPHANED, UNMANAGED
        if what is not None:
            report.findings.append(Finding(what, have.kind, have.key))
    return report


def _flip(op: str) -> str:
    return {"add": "remove", "remove": "add"}.get(op, op)
