"""Vector stores and their indexes (seed 004): create-or-replace by PUT, 004's 409 for a failed
precondition, immutable dimensions, metric and format, and ingestion (an index that
auto-ingests is PROCESSING for the ingest delay, then ACTIVE, computed lazily from the
injected clock; it cannot be replaced meanwhile).

The vector stores are seeded (``org.STORES``) and never change.

What this module must not do: read the wall clock (``org.now`` only), touch any other kind,
or edit a stored index in place (turning ACTIVE stores a new object too).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from reconciler import urls
from reconciler.emulator.state import persistence as snap
from reconciler.emulator.state.common import (
    LABELS,
    Answer,
    ApiError,
    clean,
    etag_matches,
    invalid,
    is_int,
    is_num,
    iso,
    name_problems,
    not_found,
    page,
    refuse_unknown,
    require_object,
    string_map,
)
from reconciler.emulator.state.org import STORES, Obj, Org
from reconciler.emulator.state.persistence import Step
from reconciler.endpoints import CODES, FIELDS, HEADERS, STATUSES

XF = FIELDS.index

# Server-managed names the endpoint table does not carry (only the emulator's).
UPDATED_AT = "updatedAt"
SYNC_EVENT_ID = "syncEventId"
RETRIEVAL_PRECISION = "retrievalPrecision"
INDEX_OBJECT_ID = XF.id  # seed 004 reads the index's id as "id": answered beside indexId

METRICS = ("cosine", "euclidean", "dot_product")
FORMATS = ("float32", "int8", "binary")
DIMENSIONS_MIN, DIMENSIONS_MAX = 1, 4096
PRECISION = {"float32": 0.97, "int8": 0.93, "binary": 0.85}  # an invented retrieval precision

FIELDS_WRITTEN = frozenset(
    {XF.index_id, XF.dimensions, XF.metric, XF.format, XF.auto_ingest, XF.webhook, LABELS}
)
SERVER_FIELDS = frozenset(
    {INDEX_OBJECT_ID, XF.status, XF.etag, UPDATED_AT, SYNC_EVENT_ID, RETRIEVAL_PRECISION}
)
IMMUTABLE = (XF.dimensions, XF.metric, XF.format)
STATUSES_STORED = (STATUSES.processing, STATUSES.active)


def _key(sid: str, iid: str) -> str:
    """An index's key in ``ready_at``."""
    return f"{sid}/{iid}"


class Indexes:
    """The vector-store and index handlers of one org."""

    def __init__(self, org: Org) -> None:
        self.org = org

    def _store(self, sid: str) -> dict[str, Obj]:
        if sid not in self.org.indexes:
            raise not_found(f"vector store {sid}")
        return self.org.indexes[sid]

    def _settle(self, sid: str, iid: str) -> Obj | None:
        """The index, ACTIVE once its ingest delay has passed (computed lazily from the clock)."""
        idx = self.org.indexes.get(sid, {}).get(iid)
        if idx is not None and idx.get(XF.status) == STATUSES.processing:
            key = _key(sid, iid)
            if self.org.now() >= self.org.ready_at.get(key, 0.0):
                idx = {**idx, XF.status: STATUSES.active}
                self.org.indexes[sid][iid] = idx
                self.org.ready_at.pop(key, None)
        return idx

    def put_index(
        self, sid: str, iid: str, body: Any, if_match: str | None, if_none_match: str | None
    ) -> Answer:
        """Create (201) or replace (200) atomically; 004 answers a failed precondition 409."""
        store = self._store(sid)
        cur = self._settle(sid, iid)
        if (
            cur is not None
            and if_none_match is not None
            and etag_matches(if_none_match, cur[XF.etag])
        ):
            raise ApiError(409, CODES.precondition_failed, f"index {iid} already exists")
        if if_match is not None and (cur is None or not etag_matches(if_match, cur[XF.etag])):
            raise ApiError(
                409,
                CODES.precondition_failed,
                f"index {iid} "
                + ("does not exist" if cur is None else f"changed (ETag now {cur[XF.etag]})"),
            )
        if cur is not None and cur[XF.status] == STATUSES.processing:
            raise ApiError(
                409,
                CODES.index_processing,
                f"index {iid} is still ingesting; retry once it is {STATUSES.active}",
            )
        body = require_object(body, 422)
        refuse_unknown(body, FIELDS_WRITTEN | SERVER_FIELDS, 422)
        b = clean(body, SERVER_FIELDS)
        if b.get(XF.index_id) not in (None, iid):
            raise invalid(f"{XF.index_id} {b[XF.index_id]!r} does not match the path", 422)
        dims = b.get(XF.dimensions)
        if not is_int(dims) or not DIMENSIONS_MIN <= dims <= DIMENSIONS_MAX:
            raise invalid(
                f"{XF.dimensions} must be an integer from {DIMENSIONS_MIN} to {DIMENSIONS_MAX}", 400
            )
        problems: list[str] = name_problems(XF.index_id, iid)
        if b.get(XF.metric) not in METRICS:
            problems.append(f"{XF.metric} must be one of {', '.join(METRICS)}")
        if b.get(XF.format) not in FORMATS:
            problems.append(f"{XF.format} must be one of {', '.join(FORMATS)}")
        if XF.auto_ingest in b and not isinstance(b[XF.auto_ingest], bool):
            problems.append(f"{XF.auto_ingest} must be a boolean")
        hook = b.get(XF.webhook)
        if hook == "":  # Go's zero value for an unset string (seed 004): absent
            hook = None
        if hook is not None:
            try:  # one reading of a URL's host for the gateway and validation alike
                urls.parse(hook, what=XF.webhook)
            except urls.UrlProblem as exc:
                problems.append(f"{XF.webhook} must be an http(s) URL: it {exc}")
        labels: dict[str, str] = {}
        try:
            labels = string_map(b.get(LABELS, {}), LABELS)
        except ApiError as exc:
            problems.append(exc.message)
        if problems:
            raise invalid("; ".join(problems), 422, problems)
        if cur is not None:
            changed = [f for f in IMMUTABLE if b.get(f) != cur.get(f)]
            if changed:
                raise ApiError(
                    422,
                    CODES.immutable_field,
                    f"{', '.join(changed)} cannot change on an existing index: stored vectors "
                    "would be invalid (delete and recreate it)",
                    changed,
                )
        ingest = bool(b.get(XF.auto_ingest, False))
        now = self.org.now()
        processing = ingest and self.org.ingest_delay > 0
        obj: Obj = {
            XF.index_id: iid,
            INDEX_OBJECT_ID: iid,
            XF.dimensions: dims,
            XF.metric: b[XF.metric],
            XF.format: b[XF.format],
            XF.auto_ingest: ingest,
        }
        if hook is not None:
            obj[XF.webhook] = hook
        obj[LABELS] = labels
        obj[XF.status] = STATUSES.processing if processing else STATUSES.active
        obj[UPDATED_AT] = iso(now)
        obj[SYNC_EVENT_ID] = self.org.new_id()
        obj[RETRIEVAL_PRECISION] = PRECISION[b[XF.format]]
        obj[XF.etag] = self.org.new_etag()
        if processing:
            self.org.ready_at[_key(sid, iid)] = now + self.org.ingest_delay
        store[iid] = obj
        return Answer(201 if cur is None else 200, obj, {HEADERS.etag: obj[XF.etag]})

    def get_index(self, sid: str, iid: str) -> Answer:
        self._store(sid)
        idx = self._settle(sid, iid)
        if idx is None:
            raise not_found(f"index {iid} in vector store {sid}")
        return Answer(200, idx, {HEADERS.etag: idx[XF.etag]})

    def delete_index(self, sid: str, iid: str, if_match: str | None = None) -> Answer:
        store = self._store(sid)
        idx = self._settle(sid, iid)
        if idx is None:
            raise not_found(f"index {iid} in vector store {sid}")
        if if_match is not None and not etag_matches(if_match, idx[XF.etag]):
            raise ApiError(
                409, CODES.precondition_failed, f"index {iid} changed (ETag {idx[XF.etag]})"
            )
        del store[iid]
        self.org.ready_at.pop(_key(sid, iid), None)
        return Answer(204)

    def list_indexes(self, sid: str, query: Mapping[str, str]) -> Answer:
        store = self._store(sid)
        items = [self._settle(sid, i) for i in sorted(store)]
        return Answer(200, page(items, query))

    def list_stores(self, query: Mapping[str, str]) -> Answer:
        return Answer(200, page(list(STORES), query))

    # -- persistence ----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {"indexes": self.org.indexes, "readyAt": self.org.ready_at}

    def replay(self, data: Mapping[str, Any]) -> Iterable[Step]:
        ready = snap.mapping(data.get("readyAt"), "readyAt")
        for key, at in ready.items():
            yield f"readyAt.{key}", partial(snap.finite_number, at)
        for sid, idx in snap.mapping(data.get("indexes"), "indexes").items():
            for iid, obj in snap.entry(idx, f"indexes.{sid}").items():
                yield f"indexes.{sid}.{iid}", partial(self._restore, sid, iid, obj, ready)

    def _restore(self, sid: str, iid: str, idx: Any, ready: Mapping[str, Any]) -> None:
        idx = snap.entry(idx, "index")
        self.put_index(
            sid, iid, {k: x for k, x in idx.items() if k not in SERVER_FIELDS}, None, None
        )
        status = idx.get(XF.status)
        if status not in STATUSES_STORED:
            raise ValueError(f"{XF.status} must be {' or '.join(STATUSES_STORED)}")
        precision = idx.get(RETRIEVAL_PRECISION)
        if not (is_num(precision) and 0 <= precision <= 1):
            raise ValueError(f"{RETRIEVAL_PRECISION} must be a number from 0 to 1")
        key = _key(sid, iid)
        self.org.ready_at.pop(key, None)
        if key in ready:
            self.org.ready_at[key] = snap.finite_number(ready[key])
        self.org.indexes[sid][iid] = {
            **self.org.indexes[sid][iid],
            XF.status: status,
            UPDATED_AT: snap.text(idx, UPDATED_AT),
            SYNC_EVENT_ID: snap.text(idx, SYNC_EVENT_ID),
            RETRIEVAL_PRECISION: precision,
            XF.etag: snap.text(idx, XF.etag),
        }
