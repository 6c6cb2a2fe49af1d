"""The emulator's state machine: the gateway's objects and every rule of ``docs/contract.md``.

Pure: no HTTP, no sockets, no files, no wall clock. The clock is injected (``now``), and so is the
seed of the random generators (traffic splits, invented latencies, ids), so a test can move time
(an index's ingest delay) and get the same answers twice. Each handler takes the parsed request
(path parameters, query, JSON body, the few headers that matter) and returns an ``Answer``
``(status, body, headers)``, or raises ``ApiError`` (status, contract error code, message); the
HTTP layer (``app``) turns that into the Genesys error body. Field names, error codes and
statuses come from the endpoint table, so an org that names them differently is adapted in
``reconciler/endpoints.py`` only. ``snapshot()``/``restore()`` give the JSON form that
``--state`` persists.

One module per section of the contract, each holding its rules, its handlers and how its
objects are persisted; ``Gateway`` here is the one facade the HTTP layer calls:

- ``org``: the stored data (and the invariant that no stored object is edited in place), ids,
  entity tags, the seeded models and vector store;
- ``common``: ``Answer``, ``ApiError`` and the helpers every section reads requests with;
- ``persistence``: the snapshot format and the all-or-nothing restore;
- ``templates`` (seed 002), ``versions`` (000), ``prompts`` with their traffic splits (003,
  001), ``indexes`` (004), ``runtime`` (invocations, dispatch, telemetry, analytics, audit);
- ``ledger``: the invocations, real and simulated, in compact time-ordered columns;
- ``traffic``: simulated traffic and the clock's offset (test-only: the admin endpoints). The
  HTTP layer calls ``simulate`` before every request, so traffic is made up to the clock
  before anything else happens (a split changed at T routes the traffic after T).

A new kind is one more section module: a field of ``Sections`` (its place in a snapshot), built
in ``Gateway.__init__``, its handlers added to ``Gateway`` by name.

The gateway's rules for text (the placeholder grammar, the injection patterns refused at write
time, semver, identity characters, the size and token limits) come from
``reconciler/textrules.py``, which validation runs too: a manifest that validates is accepted
here. Each such refusal's detail starts with the shared rule id (``injection: ...``), so a test
can hold both sides to naming the same rule.

What this package must not do: authenticate, rate-limit, remember idempotency keys or inject
faults (all of that is the HTTP layer's), print, or import the reconciler's core (only
``endpoints``, ``textrules`` and ``urls``): its independence is what catches a misreading of the
contract on either side.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from reconciler.emulator.state import persistence
from reconciler.emulator.state.common import Answer, ApiError
from reconciler.emulator.state.indexes import Indexes
from reconciler.emulator.state.ledger import DEFAULT_CAP
from reconciler.emulator.state.org import MODELS, STORE_ID, STORES, Org
from reconciler.emulator.state.prompts import Prompts
from reconciler.emulator.state.runtime import Runtime
from reconciler.emulator.state.templates import Templates
from reconciler.emulator.state.traffic import Traffic
from reconciler.emulator.state.versions import Versions

__all__ = ["MODELS", "STORES", "STORE_ID", "Answer", "ApiError", "Gateway", "Sections"]


class Sections(NamedTuple):
    """One org's sections, in the order a snapshot writes and replays them (a version needs
    its template, a prompt's split the versions it routes to)."""

    templates: Templates
    versions: Versions
    prompts: Prompts
    indexes: Indexes
    runtime: Runtime
    traffic: Traffic


class Gateway(Org):
    """Everything one org holds (``Org``: stored in wire form, never edited in place) and the
    handlers of every section, by the names the HTTP layer's endpoint table calls.

    The sections share this object's data and ask each other only what another owns: a
    template's delete and a version's withdrawal ask ``Prompts`` what binds or routes to them,
    a version and an invocation look their template or prompt up through its section."""

    def __init__(
        self,
        *,
        now: Callable[[], float],
        ingest_delay: float = 2.0,
        seed: int | None = None,
        max_rows: int = DEFAULT_CAP,
    ) -> None:
        super().__init__(now=now, ingest_delay=ingest_delay, seed=seed, max_rows=max_rows)
        prompts = Prompts(self)
        templates = Templates(self, prompts)
        self.sections = Sections(
            templates=templates,
            versions=Versions(self, templates, prompts),
            prompts=prompts,
            indexes=Indexes(self),
            runtime=Runtime(self, prompts),
            traffic=Traffic(self),
        )

    # -- persistence ----------------------------------------------------------------------------
    def snapshot(self, *, copy: bool = True) -> dict[str, Any]:
        """A JSON-serialisable deep copy of the org (without runtime test hooks); with
        ``copy=False`` one holding the stored objects themselves, to be serialised at once and
        never changed (``persistence.collect``)."""
        if not copy:
            return persistence.collect(self.sections)
        return persistence.snapshot(self.sections)

    def restore(self, data: Mapping[str, Any]) -> None:
        """Replace the org with a snapshot, or change nothing: ``ValueError`` naming the first
        part that is not one.

        Every object is replayed through the same checks a client's write goes through (so a
        snapshot cannot hold an object the gateway would refuse, nor one that would break a
        later answer), then gets back the server-managed fields the snapshot recorded, each
        checked for its type. The replay runs on a scratch org; only a complete success
        replaces this one (the test hooks included: a restored org fails no model). The clock
        takes the snapshot's offset only if that moves it forward: it never goes back."""
        persistence.check_format(data)
        scratch = Gateway(
            now=self.base_now,
            ingest_delay=self.ingest_delay,
            seed=self.seed,
            max_rows=self.max_rows,
        )
        persistence.replay(data, scratch.sections)
        self.adopt(scratch)
        self.clock_offset = max(self.clock_offset, scratch.clock_offset)

    # -- prompt templates (seed 002) ------------------------------------------------------------
    def create_template(self, body: Any, base: str) -> Answer:
        """``base`` is the collection's absolute URL, for ``selfUri``."""
        return self.sections.templates.create_template(body, base)

    def replace_template(self, tid: str, body: Any, if_match: str | None) -> Answer:
        return self.sections.templates.replace_template(tid, body, if_match)

    def delete_template(self, tid: str, if_match: str | None = None) -> Answer:
        return self.sections.templates.delete_template(tid, if_match)

    def list_templates(self, query: Mapping[str, str]) -> Answer:
        return self.sections.templates.list_templates(query)

    def get_template(self, tid: str) -> Answer:
        return self.sections.templates.get_template(tid)

    # -- template versions (seed 000) -----------------------------------------------------------
    def create_version(self, tid: str, body: Any, ab_header: str | None = None) -> Answer:
        """``ab_header``: the ``X-Genesys-AB-Test`` header, checked against the trigger."""
        return self.sections.versions.create_version(tid, body, ab_header)

    def patch_version(self, tid: str, version: str, body: Any) -> Answer:
        return self.sections.versions.patch_version(tid, version, body)

    def delete_version(self, tid: str, version: str) -> Answer:
        return self.sections.versions.delete_version(tid, version)

    def list_versions(self, tid: str, query: Mapping[str, str]) -> Answer:
        return self.sections.versions.list_versions(tid, query)

    def get_version(self, tid: str, version: str) -> Answer:
        return self.sections.versions.get_version(tid, version)

    # -- gateway prompts and traffic splits (seeds 003, 001), the models list -------------------
    def create_prompt(self, body: Any, base: str) -> Answer:
        return self.sections.prompts.create_prompt(body, base)

    def update_prompt(self, pid: str, body: Any, if_match: str | None) -> Answer:
        """Merge-PUT (seed 003): only the top-level fields present change; null resets."""
        return self.sections.prompts.update_prompt(pid, body, if_match)

    def delete_prompt(self, pid: str, if_match: str | None = None) -> Answer:
        return self.sections.prompts.delete_prompt(pid, if_match)

    def list_prompts(self, query: Mapping[str, str]) -> Answer:
        return self.sections.prompts.list_prompts(query)

    def get_prompt(self, pid: str) -> Answer:
        return self.sections.prompts.get_prompt(pid)

    def list_models(self, query: Mapping[str, str]) -> Answer:
        return self.sections.prompts.list_models(query)

    # -- vector stores and indexes (seed 004) ---------------------------------------------------
    def put_index(
        self, sid: str, iid: str, body: Any, if_match: str | None, if_none_match: str | None
    ) -> Answer:
        """Create (201) or replace (200) atomically; 004 answers a failed precondition 409."""
        return self.sections.indexes.put_index(sid, iid, body, if_match, if_none_match)

    def get_index(self, sid: str, iid: str) -> Answer:
        return self.sections.indexes.get_index(sid, iid)

    def delete_index(self, sid: str, iid: str, if_match: str | None = None) -> Answer:
        return self.sections.indexes.delete_index(sid, iid, if_match)

    def list_indexes(self, sid: str, query: Mapping[str, str]) -> Answer:
        return self.sections.indexes.list_indexes(sid, query)

    def list_stores(self, query: Mapping[str, str]) -> Answer:
        return self.sections.indexes.list_stores(query)

    # -- runtime: invocations, routed dispatch, telemetry, analytics, audit ---------------------
    def invoke(self, body: Any) -> Answer:
        """Seed 003: the version served follows the split (sticky by sessionId when asked)."""
        return self.sections.runtime.invoke(body)

    def dispatch(self, body: Any) -> Answer:
        """Seed 001's routed dispatch: the primary model, then the fallbacks in order."""
        return self.sections.runtime.dispatch(body)

    def telemetry_page(self, query: Mapping[str, str]) -> Answer:
        """Cursor paging (seed 003); the cursor is opaque to clients."""
        return self.sections.runtime.telemetry_page(query)

    def analytics(self, body: Any) -> Answer:
        """Seed 002's usage query: rows grouped by the keys asked, with the metrics asked."""
        return self.sections.runtime.analytics(body)

    def audit_log(self, body: Any) -> Answer:
        """Seed 003's compliance records: kept, never changed."""
        return self.sections.runtime.audit_log(body)

    # -- simulated traffic and the clock (test-only: the admin endpoints) -----------------------
    def simulate(self) -> int:
        """Make the simulated invocations up to the clock (before every request); how many."""
        return self.sections.traffic.simulate()

    def get_traffic(self) -> Answer:
        return self.sections.traffic.get_traffic()

    def put_traffic(self, body: Any) -> Answer:
        return self.sections.traffic.put_traffic(body)

    def get_clock(self) -> Answer:
        return self.sections.traffic.get_clock()

    def advance_clock(self, body: Any) -> Answer:
        """Move the clock forward by ``advanceSeconds`` and make the traffic of the period."""
        return self.sections.traffic.advance_clock(body)
