"""Reading the live org cheaply: every collection by listing, never one GET per object.

Templates, prompts, models and vector stores are listed at once (page-number paging, 100 a page,
later pages concurrently); then versions only for templates the manifests name or that carry the
management label, and indexes per vector store. So a read of T templates, P prompts and I indexes
costs about T/100 + (templates with versions) + P/100 + I/100 + 2 requests. Uses only the
read half of the gateway API, so it works with read scopes alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Protocol

from reconciler.model import Kind
from reconciler.normalize import (
    LiveState,
    Obj,
    live_index,
    live_prompt,
    live_template,
    live_version,
)


class Reader(Protocol):
    async def list_templates(self) -> list[dict[str, Any]]: ...
    async def list_versions(self, template_id: str) -> list[dict[str, Any]]: ...
    async def list_prompts(self) -> list[dict[str, Any]]: ...
    async def list_models(self) -> list[dict[str, Any]]: ...
    async def list_vector_stores(self) -> list[dict[str, Any]]: ...
    async def list_indexes(self, store_id: str) -> list[dict[str, Any]]: ...


async def read_live(
    reader: Reader,
    desired: Iterable[Obj] = (),
    *,
    all_versions: bool = False,
    stores: Iterable[str] | None = None,
) -> LiveState:
    """The normalised live state. Versions are read for templates named by ``desired`` or
    labelled as managed (all templates with ``all_versions``, for export)."""
    desired = list(desired)
    templates, prompts, models, store_list = await asyncio.gather(
        reader.list_templates(),
        reader.list_prompts(),
        reader.list_models(),
        reader.list_vector_stores(),
    )
    state = LiveState()
    state.models = {str(m.get("id")): m for m in models}
    state.stores = {str(s.get("id")) for s in store_list}
    names: dict[str, str] = {}
    for raw in templates:
        obj = live_template(raw)
        state.objects[obj.ref] = obj
        names[str(obj.remote_id)] = obj.key
    wanted = {o.key for o in desired if o.kind == Kind.PROMPT_TEMPLATE.value}
    wanted |= {o.key.rpartition("@")[0] for o in desired if o.kind == Kind.PROMPT_VERSION.value}
    wanted |= {str(o.fields.get("template")) for o in desired if o.kind == Kind.PROMPT.value}
    to_read = [
        t
        for t in state.of_kind(Kind.PROMPT_TEMPLATE.value)
        if all_versions or t.managed or t.key in wanted
    ]
    for raw in prompts:
        prompt, split = live_prompt(raw, names)
        state.objects[prompt.ref] = prompt
        if split is not None:
            state.objects[split.ref] = split
    index_stores = sorted(state.stores if stores is None else set(stores) & state.stores)
    version_lists, index_lists = await asyncio.gather(
        asyncio.gather(*(reader.list_versions(str(t.remote_id)) for t in to_read)),
        asyncio.gather(*(reader.list_indexes(s) for s in index_stores)),
    )
    for template, versions in zip(to_read, version_lists, strict=True):
        state.versions_read.add(template.key)
        for raw in versions:
            obj = live_version(raw, template.key)
            state.objects[obj.ref] = obj
    for store, indexes in zip(index_stores, index_lists, strict=True):
        for raw in indexes:
            obj = live_index(raw, store)
            state.objects[obj.ref] = obj
    return state
