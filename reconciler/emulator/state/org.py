"""The data one emulated org holds, in wire form, and where new ids and entity tags come from.

Every section of the state machine reads and replaces objects here; keeping the data in one
place (not spread over the sections) is what lets a snapshot be restored on a scratch org and
swapped in at once (``adopt``), and lets a section read another's objects (a template's delete
asks whether a prompt binds it) without owning them.

Invariant: a stored object is never edited in place; every change stores a new dict. So
handlers answer the stored objects themselves, and the HTTP layer may cache an object's JSON
by identity (``app._Encoder``). Code that changes an object must replace it instead. (The
collections holding the objects, the dicts and lists below, do change.)

What this module must not do: decide whether a request is valid (the sections do), read the
wall clock (``now`` is injected), or do I/O.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from reconciler.emulator.state.ledger import DEFAULT_CAP, Ledger
from reconciler.endpoints import FIELDS

STORE_ID = "6d1f2c1e-0b7a-4a55-9d1e-3f3f8a2b9c10"
MF, SF = FIELDS.model, FIELDS.store
MODELS: tuple[dict[str, Any], ...] = (
    {
        MF.id: "anthropic/claude-3-sonnet",
        MF.provider: "anthropic",
        MF.context_window: 200000,
        MF.max_output_tokens: 4096,
    },
    {
        MF.id: "model-gen-4",
        MF.provider: "genesys",
        MF.context_window: 128000,
        MF.max_output_tokens: 4096,
    },
    {
        MF.id: "model-fallback-3",
        MF.provider: "genesys",
        MF.context_window: 16000,
        MF.max_output_tokens: 2048,
    },
)
MODELS_BY_ID: Mapping[str, dict[str, Any]] = {m[MF.id]: m for m in MODELS}
MODEL_IDS = frozenset(MODELS_BY_ID)
STORES: tuple[dict[str, Any], ...] = ({SF.id: STORE_ID, SF.name: "default-knowledge-store"},)

Obj = dict[str, Any]


class Org:
    """Everything one org holds, and the seeded generators of its ids and entity tags.

    ``now`` is the injected clock (``base_now``; the org's clock, ``now()``, is that plus
    ``clock_offset``, which only moves forward: ``traffic`` advances it), ``ingest_delay`` how
    long an index ingests, ``seed`` the seed of the random generators (traffic splits, invented
    latencies, simulated traffic, ids), so a test gets the same answers twice; ``max_rows`` the
    telemetry rows kept (the newest)."""

    # Everything ``reset`` sets: what ``adopt`` takes from another org.
    DATA: ClassVar[tuple[str, ...]] = (
        "rng",
        "ids",
        "templates",
        "template_names",
        "versions",
        "prompts",
        "prompt_names",
        "prompt_labels",
        "indexes",
        "ready_at",
        "telemetry",
        "audit_logs",
        "traffic",
        "traffic_next",
        "traffic_until",
        "failing_models",
        "refusing_models",
    )

    def __init__(
        self,
        *,
        now: Callable[[], float],
        ingest_delay: float = 2.0,
        seed: int | None = None,
        max_rows: int = DEFAULT_CAP,
    ) -> None:
        self.base_now = now
        self.clock_offset = 0.0  # seconds the clock was advanced (never reset: time goes on)
        self.ingest_delay = ingest_delay
        self.seed = seed
        self.max_rows = max_rows
        self.reset()

    def now(self) -> float:
        """The org's clock: the injected one, advanced by ``clock_offset``."""
        return self.base_now() + self.clock_offset

    def reset(self) -> None:
        """Back to the seeded org: models and one vector store, nothing else."""
        self.rng = random.Random(self.seed)  # traffic splits and invented latencies
        self.ids = random.Random(None if self.seed is None else f"ids-{self.seed}")
        self.templates: dict[str, Obj] = {}
        self.template_names: dict[str, str] = {}  # name -> id, for uniqueness in O(1)
        self.versions: dict[str, dict[str, Obj]] = {}  # template id -> version -> object
        self.prompts: dict[str, Obj] = {}
        self.prompt_names: dict[str, str] = {}
        self.prompt_labels: dict[str, tuple[str, ...]] = {}  # id -> release labels carried
        self.indexes: dict[str, dict[str, Obj]] = {s[SF.id]: {} for s in STORES}
        self.ready_at: dict[str, float] = {}  # "store/index" -> when PROCESSING ends
        self.telemetry = Ledger(self.max_rows)  # invocations, real and simulated
        self.audit_logs: list[Obj] = []
        self.traffic: dict[str, Obj] = {}  # prompt name -> simulated traffic (``traffic``)
        self.traffic_next: dict[str, float] = {}  # prompt name -> its next simulated invocation
        self.traffic_until: float | None = None  # traffic is simulated up to here
        self.failing_models: set[str] = set()  # answer 5xx (a test hook for fallbacks)
        self.refusing_models: set[str] = set()  # refuse by policy (idem)

    def adopt(self, other: Org) -> None:
        """Take ``other``'s data at once (a restored snapshot), keeping this org's settings."""
        for name in self.DATA:
            setattr(self, name, getattr(other, name))

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.ids.getrandbits(128), version=4))

    def new_etag(self) -> str:
        return f'"{self.ids.getrandbits(80):020x}"'
