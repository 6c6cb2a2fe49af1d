"""The registry of manifest kinds, in rank order: the only list of kinds in llmgw.

Each kind is one module here implementing the ``Resource`` protocol (``kinds/base.py``). The
generic core (validation, normalisation, the live read, the planner, drift, export, the
executor's invariants) loops over ``REGISTRY`` and never names a kind. Adding a kind is: a
module here with its ``Resource``, a line below, its JSON Schema in ``reconciler/schemas/``
(referenced from ``manifest.schema.json``), and its section in the emulator.
"""

from __future__ import annotations

from reconciler.kinds import index, prompt, template, version
from reconciler.kinds.base import Resource

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


__all__ = ["BY_KIND", "KINDS", "REGISTRY", "Resource", "get", "rank", "resource"]
