"""The registry of manifest kinds, in rank order: the only list of kinds in llmgw.

Each kind is one module here implementing the ``Resource`` protocol (``kinds/base.py``). The
generic core (validation, normalisation, the live read, the planner, drift, export, the
executor's invariants) loops over ``REGISTRY`` and never names a kind. Adding a kind is: a
module here with its ``Resource``, a line below, its JSON Schema in ``reconciler/schemas/``
(referenced from ``manifest.schema.json``), and its section in the emulator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from reconciler.kinds import index, prompt, template, version
from reconciler.kinds.base import Resource
from reconciler.objects import Obj

REGISTRY: tuple[Resource, ...] = (
    template.RESOURCE,
    version.RESOURCE,
    prompt.RESOURCE,
    prompt.SPLIT_RESOURCE,
    index.RESOURCE,
)
assert [r.rank for r in REGISTRY] == sorted(r.rank for r in REGISTRY), "rank order"

BY_KIND: dict[str, Resource] = {r.kind: r for r in REGISTRY}
KINDS: tuple[str, ...] = tuple(BY_KIND)


def get(kind: str) -> Resource | None:
    """The resource of ``kind``, or None for a kind llmgw does not know."""
    return BY_KIND.get(kind)


def resource(kind: str) -> Resource:
    """The resource of a known ``kind`` (KeyError otherwise)."""
    return BY_KIND[kind]


def rank(kind: str) -> int:
    r = BY_KIND.get(kind)
    return r.rank if r is not None else len(REGISTRY)


def leftover(have: Obj, desired: Mapping[str, Obj]) -> Literal["orphaned", "unmanaged"] | None:
    """What a live object is when no manifest names it: "unmanaged" (no management label:
    left alone), "orphaned" (labelled: ``--prune`` deletes it), or None: it is desired, of a
    kind llmgw does not know, an owned part (it goes with its owner), or an owner still
    managed from git through a part it owns."""
    resource = BY_KIND.get(have.kind)
    if have.ref in desired or resource is None or resource.owner is not None:
        return None
    if not have.managed:
        return "unmanaged"
    return "orphaned" if resource.orphan(have, desired) else None


__all__ = ["BY_KIND", "KINDS", "REGISTRY", "Resource", "get", "leftover", "rank", "resource"]
