"""Renames: a manifest's ``metadata.annotations: {llmgw.io/renamed-from: OLD}`` moves the live
object named OLD to the manifest's name, keeping its id (and so what hangs off it).

``view(desired, live)`` is the live state as the manifests name it: every live object a manifest
renames appears under its new name, marked with the name the org still gives it
(``Obj.renamed_from``), and the objects that follow it move with it (a template's versions, the
prompts bound to it, a prompt's split: each kind says how, ``Resource.follow_rename``). The
planner then plans the rename as the object's update (its diff shows ``metadata.name``), drift
reports it, apply sends it to the same ids, and ``--prune`` never sees OLD as an orphan. A live
object is renamed only when its kind may be renamed, OLD is live and labelled
``managed-by: llmgw``, and nothing live has the new name yet; ``check`` reports every other case
to the plan: both names live (an error saying which to delete), OLD without the management label
(refused, as llmgw changes only what it manages), OLD nowhere (a warning: the object is created).
Once applied, OLD is gone and NEW is live: the annotation is then planned as nothing.

Pure: no I/O, no clock; ``view`` returns a new state (``live`` is never changed) and is
idempotent, so it may be applied to a state already viewed. Names no kind.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from reconciler import kinds
from reconciler.kinds.base import PlanContext
from reconciler.model import RENAMED_FROM_ANNOTATION
from reconciler.objects import LiveState, Obj

RULE = "rename"
ANNOTATION_PATH = f"metadata.annotations.{RENAMED_FROM_ANNOTATION}"


def _renames(desired: Iterable[Obj]) -> list[tuple[Obj, str]]:
    """The desired objects of renamable kinds that rename another name, by ref."""
    out = []
    for want in sorted(desired, key=lambda o: o.ref):
        old = want.renames
        resource = kinds.get(want.kind)
        if old is not None and old != want.key and resource is not None and resource.renamable:
            out.append((want, old))
    return out


def _follow(state: LiveState, kind: str, old: str, new: str) -> None:
    for resource in kinds.REGISTRY:
        resource.follow_rename(state, kind, old, new)


def _copy(live: LiveState) -> LiveState:
    return dataclasses.replace(
        live,
        objects=dict(live.objects),
        listed={k: set(v) for k, v in live.listed.items()},
    )


def view(desired: Mapping[str, Obj], live: LiveState) -> LiveState:
    """``live`` with every rename the manifests ask for and the org allows followed (``live``
    itself when there is none)."""
    state: LiveState | None = None
    for want, old in _renames(desired.values()):
        current = state or live
        have = current.get(f"{want.kind}/{old}")
        if (
            have is None
            or not have.managed
            or current.get(want.ref) is not None
            or f"{want.kind}/{old}" in desired
        ):
            continue  # check() says why, or there is nothing to rename
        state = state or _copy(live)
        _follow(state, want.kind, old, want.key)
    return state or live


def moved(desired: Mapping[str, Obj], refs: Iterable[str]) -> dict[str, str]:
    """Where each of ``refs`` goes when the manifests' renames are followed (``old ref -> new
    ref``, for those that move): a targeted plan's removed documents that were renamed, not
    removed."""
    state = LiveState()
    for ref in refs:
        kind, _, key = ref.partition("/")
        state.objects[ref] = Obj(kind, key, {}, remote_id=ref)
    for want, old in _renames(desired.values()):
        _follow(state, want.kind, old, want.key)
    after = {str(o.remote_id): o.ref for o in state.objects.values()}
    return {ref: new for ref, new in after.items() if new != ref}


def check(ctx: PlanContext) -> None:
    """The renames ``view`` did not follow, as the plan's problems and warnings (``ctx.live``
    is the viewed state)."""
    for want, old in _renames(ctx.desired.values()):
        have = ctx.live.get(want.ref)
        other = ctx.live.get(f"{want.kind}/{old}")
        if (have is not None and have.renamed_from == old) or f"{want.kind}/{old}" in ctx.desired:
            continue  # the rename is planned (or validation refused the manifests)
        if have is not None and other is not None:
            ctx.problem(
                want,
                ANNOTATION_PATH,
                f"the org has both {old}, which this manifest renames, and {want.key} (ids "
                f"{other.remote_id} and {have.remote_id}): a rename cannot take a name in use",
                f"delete {want.kind} {want.key} from the org to rename {old} into it, or remove "
                f"the annotation to keep {want.key} (and leave {old} alone)",
                rule=RULE,
            )
        elif have is None and other is not None:
            ctx.problem(
                want,
                ANNOTATION_PATH,
                f"{want.kind} {old}, which this manifest renames, exists in the org without the "
                "label managed-by: llmgw; llmgw renames only what it manages",
                f"adopt it first (apply a manifest named {old}), then rename it; or remove the "
                f"annotation to create {want.key} beside it",
                rule=RULE,
            )
        elif have is None:
            ctx.warning(
                want,
                ANNOTATION_PATH,
                f"{want.kind} {old}, which this manifest renames, is not in the org: "
                f"{want.key} is created as a new object",
                "check the old name, or remove the annotation",
                rule=RULE,
            )


__all__ = ["check", "moved", "view"]
