"""The kinds of the registry keep their own word: what a kind plans is what it says it sends.

Covers, for every kind (parametrised over the registry, so a new kind is covered by adding an
example manifest): identities of the example documents; the requests of a create, an update
and a delete (``--prune``) pass the executor's invariants, i.e. each kind's requests use the
methods and path templates its ``writes`` names, to the path its ``own_path`` gives, with only
the headers llmgw sets; owned kinds (a TrafficSplit) are planned, read and exported by their
owner; every kind's schema file names the kind.
"""

from __future__ import annotations

import pytest

from reconciler import kinds
from reconciler.executor import Permissions, check_plan
from reconciler.objects import LiveState
from reconciler.operations import OpType
from reconciler.planner import plan
from tests.test_planner import MODELS, STORE, desired, live_copy

RESOURCES = list(kinds.REGISTRY)


@pytest.mark.parametrize("resource", RESOURCES, ids=[r.kind for r in RESOURCES])
def test_examples_have_identities(resource: kinds.Resource) -> None:
    want = desired()
    keys = [o.key for o in want.values() if o.kind == resource.kind]
    assert keys, f"manifests/ has no {resource.kind}"
    assert all(keys)


def _kinds_of(p: object, action: OpType) -> set[str]:
    return {o.kind for o in p.changes if o.action == action}  # type: ignore[attr-defined]


def test_creates_updates_and_deletes_keep_the_invariants() -> None:
    want = desired()
    empty = LiveState(models=dict(MODELS), stores={STORE})
    creates = plan(want, empty)
    assert check_plan(creates, empty, Permissions()) == []
    owned = {r.kind for r in RESOURCES if r.owner is not None}
    assert _kinds_of(creates, OpType.CREATE) == set(kinds.KINDS) - owned

    live = live_copy(want)
    for obj in want.values():  # one change of every object: a label the org lacks
        obj.fields.setdefault("labels", {})["touched"] = "yes"
    updates = plan(want, live)
    assert check_plan(updates, live, Permissions()) == []
    assert _kinds_of(updates, OpType.UPDATE) == set(kinds.KINDS) - owned

    gone = plan({}, live, prune=True)
    assert check_plan(gone, live, Permissions(prune=True)) == []
    deletable = {r.kind for r in RESOURCES if r.delete_phase is not None}
    assert _kinds_of(gone, OpType.DELETE) == deletable
    last = max(r.delete_phase for r in RESOURCES if r.delete_phase is not None)
    assert gone.waves()[-1][0].phase == last


@pytest.mark.parametrize("resource", RESOURCES, ids=[r.kind for r in RESOURCES])
def test_an_owned_kind_goes_with_its_owner(resource: kinds.Resource) -> None:
    if resource.owner is None:
        assert resource.delete_phase is not None, f"{resource.kind} can never be pruned"
        return
    owner = kinds.resource(resource.owner)
    assert owner.owner is None and resource.delete_phase is None and not resource.labelled
    assert resource.shown_under, "a plan must say where the part's fields show"
