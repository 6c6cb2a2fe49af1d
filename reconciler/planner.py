"""The planner: ``plan(desired, live) -> Plan``, a purely computational function.

No I/O, no logging, no clock, no randomness: given the normalised desired objects and the
normalised live state, it returns the typed operations that make live equal desired, each with
its reason, its field diff, the exact requests it will make (with references to ids that may
only exist once an earlier operation ran), and the precondition it observed. Problems that no
plan can solve (an immutable field changed, a reference the org lacks) raise ``PlanError``.

The planner is generic: each kind of the registry plans its own objects through a
``PlanContext`` (``kinds/base.py``), which holds the one decision function and builds every
``Operation``; the planner adds the leftovers (managed objects no manifest names: orphans,
deleted with ``--prune``; unmanaged ones, left alone) and orders everything. Order, by phase:
templates and indexes; versions; prompts with their splits; withdrawals of versions (after
splits stopped routing to them); then deletions in reverse rank (prompts, versions, then
templates and indexes). Operations in one phase are independent and may run concurrently.

Renames (``llmgw.io/renamed-from``) are planned on the live state as the manifests name it
(``renames.view``: the renamed object under its new name, with what follows it), so a rename is
the object's update and nothing is deleted or created for it; what cannot be renamed is a
problem or a warning (``renames.check``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from reconciler import kinds, renames
from reconciler.diffing import diff
from reconciler.errors import PlanError
from reconciler.kinds.base import PlanContext
from reconciler.objects import LiveState, Obj, with_ignores
from reconciler.operations import Operation, OpType, Phase, Plan, Request

__all__ = ["OpType", "Operation", "Phase", "Plan", "Request", "plan"]


def sort_key(op: Operation) -> tuple[int, int, str, str]:
    """Operations by phase, then dependency rank, kind and identity: deterministic."""
    return (op.phase, kinds.rank(op.kind), op.kind, op.key)


def _leftovers(ctx: PlanContext) -> tuple[list[str], list[str]]:
    """Live objects no manifest names: orphans (managed; deleted with ``--prune``) and the
    unmanaged (left alone). An owned kind goes with its owner."""
    orphaned: list[str] = []
    unmanaged: list[str] = []
    for ref, have in sorted(ctx.live.objects.items()):
        what = kinds.leftover(have, ctx.desired)
        if what == "unmanaged":
            unmanaged.append(ref)
        if what != "orphaned":
            continue
        orphaned.append(ref)
        resource = kinds.resource(have.kind)
        if ctx.prune and resource.delete_phase is not None:
            requests = resource.delete(have, ctx)
            if requests is not None:
                ctx.operation(
                    resource,
                    OpType.DELETE,
                    have.key,
                    requests=requests,
                    changes=diff(have.fields, {}),
                    have=have,
                )
    return orphaned, unmanaged


def plan(
    desired: Mapping[str, Obj],
    live: LiveState,
    *,
    prune: bool = False,
    ignores: Mapping[str, Iterable[str]] | None = None,
) -> Plan:
    """The operations that make ``live`` equal ``desired``. Pure; raises PlanError."""
    ignores = ignores or {}
    live = renames.view(desired, live)
    wanted = {
        ref: with_ignores(o, live.get(ref), ignores.get(ref, ())) for ref, o in desired.items()
    }
    ctx = PlanContext(wanted, live, prune)
    renames.check(ctx)
    for resource in kinds.REGISTRY:
        resource.plan(ctx)
    orphaned, unmanaged = _leftovers(ctx)
    if ctx.problems:
        raise PlanError(sorted(set(ctx.problems)))
    ops = tuple(sorted(ctx.ops, key=sort_key))
    return Plan(ops, tuple(orphaned), tuple(unmanaged), tuple(sorted(ctx.warnings)), prune)
