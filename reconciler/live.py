"""Reading the live org cheaply: every collection by listing, never one GET per object.

Templates, prompts, models and vector stores are listed at once (page-number paging, 100 a page,
later pages through a bounded window); then versions only for templates the manifests name or
that carry the management label, and indexes per vector store, at most ``window`` listings at a
time (never one coroutine per template a server claims). So a read of T templates, P prompts and
I indexes costs about T/100 + (templates with versions) + P/100 + I/100 + 2 requests. Uses only
the read half of the gateway API, so it works with read scopes alone.

Nothing read is trusted: each entity is checked by its normaliser (``normalize.live_*``), and two
entities with one identity in one listing (two templates named alike, two versions of one
version, ...) are a ``ProtocolError``: a plan over them would be ambiguous. It never writes and
never decides what to change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Protocol
from urllib.parse import quote

from reconciler.aio import bounded
from reconciler.endpoints import PATHS
from reconciler.errors import ProtocolError
from reconciler.model import Kind
from reconciler.normalize import (
    LiveState,
    Obj,
    live_index,
    live_model,
    live_prompt,
    live_store,
    live_template,
    live_version,
)
from reconciler.redact import clip
from reconciler.text import shown

WINDOW = 8  # listings at a time, when the reader does not say (``Reader.window``)


class Reader(Protocol):
    async def list_templates(self) -> list[dict[str, Any]]: ...
    async def list_versions(self, template_id: str) -> list[dict[str, Any]]: ...
    async def list_prompts(self) -> list[dict[str, Any]]: ...
    async def list_models(self) -> list[dict[str, Any]]: ...
    async def list_vector_stores(self) -> list[dict[str, Any]]: ...
    async def list_indexes(self, store_id: str) -> list[dict[str, Any]]: ...


def versions_path(template_id: str) -> str:
    """The versions listing of a template, its id percent-encoded as one path segment."""
    return PATHS.versions.format(templateId=quote(template_id, safe=""))


def indexes_path(store_id: str) -> str:
    """The indexes listing of a vector store, its id percent-encoded as one path segment."""
    return PATHS.indexes.format(vectorStoreId=quote(store_id, safe=""))


class _Unique:
    """Identities seen in one listing; a second entity with one of them is an error."""

    def __init__(self, endpoint: str, what: str) -> None:
        self.endpoint = endpoint
        self.what = what
        self.seen: dict[tuple[str, str], str] = {}

    def add(self, field: str, value: str, rid: str | None = None) -> None:
        """Note ``value`` of ``field``; ``rid``, the entity's id, is named in the error."""
        key = (field, value)
        other = shown(rid) if rid is not None else ""
        if key in self.seen:
            both = f" (ids {self.seen[key]} and {other})" if other else ""
            raise ProtocolError(
                "GET",
                self.endpoint,
                None,
                None,
                clip(
                    f"two {self.what} have the {field} {shown(value)}{both}: a plan over them "
                    "would be ambiguous",
                    300,
                ),
            )
        self.seen[key] = other


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
    window = int(getattr(reader, "window", WINDOW))
    templates, prompts, models, store_list = await asyncio.gather(
        reader.list_templates(),
        reader.list_prompts(),
        reader.list_models(),
        reader.list_vector_stores(),
    )
    state = LiveState()
    seen = _Unique(PATHS.models, "models")
    for raw in models:
        model = live_model(raw)
        seen.add("id", model["id"])
        state.models[model["id"]] = model
    seen = _Unique(PATHS.vector_stores, "vector stores")
    for raw in store_list:
        sid = live_store(raw)
        seen.add("id", sid)
        state.stores.add(sid)
    names: dict[str, str] = {}
    seen = _Unique(PATHS.templates, "templates")
    for raw in templates:
        obj = live_template(raw)
        seen.add("name", obj.key, obj.remote_id)
        seen.add("id", str(obj.remote_id))
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
    seen = _Unique(PATHS.prompts, "prompts")
    for raw in prompts:
        prompt, split = live_prompt(raw, names)
        seen.add("name", prompt.key, prompt.remote_id)
        seen.add("id", str(prompt.remote_id))
        state.objects[prompt.ref] = prompt
        if split is not None:
            state.objects[split.ref] = split
    index_stores = sorted(state.stores if stores is None else set(stores) & state.stores)
    version_lists, index_lists = await asyncio.gather(
        bounded(reader.list_versions, [str(t.remote_id) for t in to_read], window),
        bounded(reader.list_indexes, index_stores, window),
    )
    for template, versions in zip(to_read, version_lists, strict=True):
        state.versions_read.add(template.key)
        endpoint = versions_path(str(template.remote_id))
        seen = _Unique(endpoint, "versions")
        for raw in versions:
            obj = live_version(
                raw, template.key, endpoint=endpoint, template_id=str(template.remote_id)
            )
            seen.add("version", str(obj.remote_id))
            state.objects[obj.ref] = obj
    for store, indexes in zip(index_stores, index_lists, strict=True):
        endpoint = indexes_path(store)
        seen = _Unique(endpoint, "indexes")
        for raw in indexes:
            obj = live_index(raw, store, endpoint=endpoint)
            seen.add("indexId", str(obj.remote_id))
            state.objects[obj.ref] = obj
    return state
