"""Normalisation: the desired side of a diff, in the shape live objects normalise to.

Each kind (``reconciler/kinds/``) turns a valid document into its desired ``Obj``: fields in the
manifest's shape (camelCase, references by name, a prompt's rendered system prompt) with the
documented defaults filled, sets sorted, numbers that are floats by nature made floats, and the
management label among the labels; its live normaliser turns a listing's entity into the same
shape, so an unchanged object never shows a diff. This module builds the whole desired state
through the registry. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from reconciler import kinds
from reconciler.model import Document
from reconciler.objects import Obj


def desired_object(doc: Document) -> Obj:
    """The normalised desired object of a valid document."""
    return kinds.resource(doc.kind).desired(doc)


def desired_state(docs: Iterable[Document]) -> dict[str, Obj]:
    """``ref -> Obj`` for every document (which must have passed validation)."""
    return {o.ref: o for o in (desired_object(d) for d in docs)}


__all__ = ["desired_object", "desired_state"]
