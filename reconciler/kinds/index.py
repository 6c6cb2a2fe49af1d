"""VectorIndex (seed 004): an index of a vector store: dimensions, similarity metric and embedding
format (all three immutable), auto-ingest and a sync webhook. Identity: ``vectorStore/name``,
the remote ``indexId`` under its store.

A change of an immutable field is a **replacement** (delete, then create, in one operation):
it destroys the stored vectors, so apply permits it only with ``--allow-replace`` or the
manifest's ``llmgw/allow-replace`` annotation, and never for an index llmgw does not manage.
``PUT`` creates (``If-None-Match: *``) and replaces (``If-Match: <etag>``). Indexes depend on
nothing: created in the first wave; deleted with the templates, in the last, after everything
else was tried. After an apply its status (``PROCESSING`` while ingesting) is reported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import quote

from reconciler.defaults import fill_defaults
from reconciler.diffing import DiffItem
from reconciler.endpoints import FIELDS, HEADERS, PARAMS, PATHS, STATUSES
from reconciler.kinds import common
from reconciler.kinds.base import (
    EDITS,
    Emit,
    ExportDocs,
    PlanContext,
    Reader,
    ReadScope,
    Recorded,
    Resource,
    Writes,
    read_all,
)
from reconciler.model import Document
from reconciler.objects import Entity, LiveState, Obj, Unique
from reconciler.operations import Operation, OpType, Phase, Request
from reconciler.urls import problem as url_problem

F = FIELDS.index
KIND = "VectorIndex"


def split_key(key: str) -> tuple[str, str]:
    """``store/name`` -> (store, name)."""
    store, _, name = key.partition("/")
    return store, name


def indexes_path(store_id: str) -> str:
    """The indexes listing of a vector store, its id percent-encoded as one path segment."""
    return PATHS.indexes.format(**{PARAMS.store_id: quote(store_id, safe="")})


class Index(Resource):
    kind: ClassVar[str] = KIND
    precondition_word: ClassVar[str] = HEADERS.etag
    schema_file: ClassVar[str] = "vector-index.schema.json"
    rank: ClassVar[int] = 4  # depends on nothing; the rank only orders it last in listings
    phase: ClassVar[Phase] = Phase.BASE
    delete_phase: ClassVar[Phase | None] = Phase.DELETE_TEMPLATES
    immutable: ClassVar[tuple[str, ...]] = ("dimensions", "similarityMetric", "embeddingFormat")
    replace_on_immutable: ClassVar[bool] = True
    replace_loses: ClassVar[str] = "its stored vectors"
    identity_fields = (("metadata", "name"), ("spec", "vectorStore"))
    reports_health: ClassVar[bool] = True
    rename_refusal: ClassVar[tuple[str, str]] = (
        "an index's identity (its indexId in its vector store) is immutable, so it cannot be "
        "renamed",
        "create the index under the new name and delete the old one (its stored vectors go "
        "with it; re-ingest them into the new one)",
    )
    writes: ClassVar[Writes] = {
        **{a: (("PUT", PATHS.index),) for a in (OpType.CREATE, *EDITS)},
        OpType.REPLACE: (("DELETE", PATHS.index), ("PUT", PATHS.index)),
        OpType.DELETE: (("DELETE", PATHS.index),),
    }

    # -- manifests --
    def identity(self, name: str, spec: Mapping[str, Any]) -> str | None:
        s = common.s(spec.get("vectorStore"))
        return f"{s}/{name}" if s and name else None

    def check(self, doc: Document, emit: Emit) -> None:
        url = doc.spec.get("webhookSyncUrl")
        if isinstance(url, str):
            problem = url_problem(url)
            if problem:
                emit(
                    ("spec", "webhookSyncUrl"),
                    problem,
                    "use an absolute https:// URL (http:// only to a loopback address)",
                    rule=common.URL,
                )

    def fields(self, doc: Document) -> dict[str, Any]:
        return self.normal(doc.spec)

    def normal(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        s = fill_defaults(self.schema_file, dict(spec))
        out: dict[str, Any] = {
            "dimensions": s["dimensions"],
            "similarityMetric": s["similarityMetric"],
            "embeddingFormat": s["embeddingFormat"],
            "autoIngest": bool(s["autoIngest"]),
        }
        if s.get("webhookSyncUrl") is not None:
            out["webhookSyncUrl"] = s["webhookSyncUrl"]
        return out

    def body(self, name: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            F.index_id: name,
            F.dimensions: fields["dimensions"],
            F.metric: fields["similarityMetric"],
            F.format: fields["embeddingFormat"],
            F.auto_ingest: fields["autoIngest"],
            FIELDS.labels: dict(fields["labels"]),
        }
        if "webhookSyncUrl" in fields:
            body[F.webhook] = fields["webhookSyncUrl"]
        return body

    # -- the live org --
    def live(self, raw: Mapping[str, Any], store_id: str, *, endpoint: str = PATHS.indexes) -> Obj:
        e = Entity(raw, endpoint, "index", F.index_id)
        name = e.identity(F.index_id)
        spec: dict[str, Any] = {
            "dimensions": e.required(F.dimensions, e.integer(F.dimensions)),
            "similarityMetric": e.required(F.metric, e.string(F.metric)),
            "embeddingFormat": e.required(F.format, e.string(F.format)),
            "autoIngest": bool(e.boolean(F.auto_ingest)),
        }
        webhook = e.string(F.webhook)
        if webhook is not None:
            spec["webhookSyncUrl"] = webhook
        fields = self.normal(spec)
        fields["labels"] = e.labels()
        return Obj(
            KIND,
            f"{store_id}/{name}",
            fields,
            remote_id=name,
            precondition=e.etag(F.etag),
            managed=e.managed(),
            state_labels=e.state_labels(),
            status=e.string(F.status),
        )

    async def read(self, reader: Reader, state: LiveState, scope: ReadScope) -> None:
        seen = Unique(PATHS.vector_stores, "vector stores")
        for raw in await reader.list(PATHS.vector_stores):
            sid = live_store(raw)
            seen.add(FIELDS.store.id, sid)
            state.stores.add(sid)
        stores = sorted(state.stores if scope.stores is None else scope.stores & state.stores)
        listings = await read_all(reader, lambda s: reader.list(indexes_path(s)), stores)
        for store, indexes in zip(stores, listings, strict=True):
            endpoint = indexes_path(store)
            seen = Unique(endpoint, "indexes")
            for raw in indexes:
                obj = self.live(raw, store, endpoint=endpoint)
                seen.add(F.index_id, str(obj.remote_id))
                state.objects[obj.ref] = obj

    # -- planning --
    def plan(self, ctx: PlanContext) -> None:
        for want in ctx.of_kind(KIND):
            self._plan(ctx, want)

    def _plan(self, ctx: PlanContext, want: Obj) -> None:
        store, name = split_key(want.key)
        if ctx.live.stores and store not in ctx.live.stores:
            ctx.problem(
                want,
                "spec.vectorStore",
                f"vector store {store} is not in the org",
                "use one of: " + ", ".join(sorted(ctx.live.stores)),
            )
            return
        have = ctx.live.get(want.ref)
        body = self.body(name, want.fields)
        params = {PARAMS.store_id: store, PARAMS.index_id: name}
        create = Request(
            "PUT", PATHS.index, params, body, {HEADERS.if_none_match: "*"}, "if-none-match"
        )
        if have is None:
            ctx.create(self, want, create)
            return
        decided = ctx.compare(self, want, have)
        if decided is None:
            return
        action, changes = decided
        if action == OpType.REPLACE:
            frozen = [c.path for c in changes if c.path in self.immutable]
            delete = self.guarded("DELETE", PATHS.index, params, have)
            ctx.operation(
                self,
                action,
                want.key,
                reason=f"{', '.join(frozen)} cannot change on an existing index: "
                "delete and recreate, destroying its stored vectors",
                requests=(delete, create),
                changes=changes,
                have=have,
                want=want,
            )
            return
        update = self.guarded("PUT", PATHS.index, params, have, body)
        ctx.operation(
            self, action, want.key, requests=(update,), changes=changes, have=have, want=want
        )

    def unmanaged_replace_problem(self, want: Obj, frozen: Sequence[DiffItem]) -> tuple[str, str]:
        paths = ", ".join(c.path for c in frozen)
        return (
            f"index {split_key(want.key)[1]} exists in the org without the label managed-by: "
            f"llmgw, with other {paths}; replacing it would delete stored vectors llmgw never "
            "owned",
            f"set {paths} to the org's values so llmgw adopts the index as it is (and change "
            "them in a later apply), or give the manifest another index name",
        )

    def delete(self, have: Obj, ctx: PlanContext) -> tuple[Request, ...] | None:
        store, name = split_key(have.key)
        params = {PARAMS.store_id: store, PARAMS.index_id: name}
        return (self.guarded("DELETE", PATHS.index, params, have),)

    # -- applying --
    def own_path(self, key: str, method: str, ids: Mapping[str, str]) -> str | None:
        store, name = split_key(key)
        return PATHS.index.format(**{PARAMS.store_id: store, PARAMS.index_id: name})

    def record(self, op: Operation, body: Mapping[str, Any], etag: str | None) -> Recorded:
        index_id = str(body.get(F.index_id) or split_key(op.key)[1])
        return Recorded({op.ref: index_id}, etag or body.get(F.etag))

    def busy(self, body: Mapping[str, Any]) -> bool:
        return body.get(F.status) == STATUSES.processing

    # -- export --
    def export(self, live: LiveState, keep: Callable[[Obj], bool]) -> list[ExportDocs]:
        by_store: dict[str, list[Obj]] = {}
        for idx in live.of_kind(KIND):
            if keep(idx):
                by_store.setdefault(split_key(idx.key)[0], []).append(idx)
        out = []
        for store, indexes in sorted(by_store.items()):
            ordered = sorted(indexes, key=lambda o: o.key)
            docs = tuple(
                common.document(
                    KIND, split_key(i.key)[1], i, {"vectorStore": store, **common.spec_of(i.fields)}
                )
                for i in ordered
            )
            out.append(
                ExportDocs(
                    f"indexes/{common.filename(store)}.yaml", docs, tuple(i.ref for i in ordered)
                )
            )
        return out


def live_store(raw: Mapping[str, Any], *, endpoint: str = PATHS.vector_stores) -> str:
    """A vector store's id (it becomes part of the indexes' paths)."""
    f = FIELDS.store
    e = Entity(raw, endpoint, "vector store", f.name)
    e.string(f.name)
    return e.identity(f.id)


RESOURCE = Index()
