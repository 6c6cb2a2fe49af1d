"""Reading the live org cheaply: every collection by listing, never one GET per object.

Each kind reads its own objects (``Resource.read``) through the reader, after the kinds it
needs (``reads_after``: versions and prompts need the templates' ids and names), the others at
the same time. Versions are read only for the templates the manifests name or refer to, or that
carry the management label (every template for export), at most ``window`` listings at a time.
So a read of T templates, P prompts and I indexes costs about T/100 + (templates with versions)
+ P/100 + I/100 + 2 requests. Uses only the read half of the gateway API, so it works with read
scopes alone.

Nothing read is trusted: each entity is checked by its kind's normaliser, and two entities with
one identity in one listing are a ``ProtocolError``: a plan over them would be ambiguous. It
never writes and never decides what to change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from reconciler import kinds
from reconciler.aio import gather
from reconciler.kinds.base import Reader, ReadScope
from reconciler.objects import LiveState, Obj


async def read_live(
    reader: Reader,
    desired: Iterable[Obj] = (),
    *,
    all_versions: bool = False,
    stores: Iterable[str] | None = None,
    targeted: bool = False,
) -> LiveState:
    """The normalised live state, for ``desired`` (everything with ``all_versions``: export;
    ``targeted``: only what ``desired`` needs, not the children of every managed object)."""
    refs: set[tuple[str, str]] = set()
    for o in desired:
        refs.add((o.kind, o.key))
        refs.update(kinds.resource(o.kind).refers(o))
        if o.renames is not None:  # the name the org still gives it (renames.view)
            refs.add((o.kind, o.renames))
    scope = ReadScope(
        frozenset(refs),
        everything=all_versions,
        stores=frozenset(stores) if stores is not None else None,
        targeted=targeted,
    )
    state = LiveState()
    done = {r.kind: asyncio.Event() for r in kinds.REGISTRY}

    async def read(resource: kinds.Resource) -> None:
        for kind in resource.reads_after:
            await done[kind].wait()
        await resource.read(reader, state, scope)
        done[resource.kind].set()

    await gather(*(read(r) for r in kinds.REGISTRY))
    return state
