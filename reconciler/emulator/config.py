"""The emulator's settings and the parsing of its command-line values.

Kept apart from the server so the CLI can validate ``--client`` and ``--fault-rate`` values (and
tests can build configurations) without importing starlette or uvicorn. No I/O, no click: a bad
value raises ``ValueError`` with a message that names the flag and what would fix it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reconciler.emulator.state.ledger import DEFAULT_CAP
from reconciler.endpoints import SCOPES

FAULT_KINDS = ("429", "500", "503", "drop-before", "drop-after")
"""Injectable faults: three error answers, and a connection closed before acting or after
committing (the answer is lost)."""

ADMIN_PREFIX = "/__emulator/"
"""Where the test-only endpoints live (``--admin``)."""

MAX_REQUEST_ID = 256  # characters of an X-Genesys-Request-Id (a UUID has 36)
MAX_LATENCY_MS = 3_600_000  # injected latency and jitter: at most an hour
MAX_INGEST_DELAY = 86_400.0  # seconds
"""Bounds the app enforces and the OpenAPI document states (here: openapi cannot import app)."""

ALL_SCOPES = frozenset(SCOPES.all)
DEFAULT_CLIENT_ID = "emulator-client"
DEFAULT_CLIENT_SECRET = "emulator-secret"


@dataclass(frozen=True)
class ClientSpec:
    """One OAuth client the emulator accepts. ``scopes`` defaults to every scope."""

    id: str
    secret: str = field(repr=False)
    scopes: frozenset[str] = ALL_SCOPES

    def __post_init__(self) -> None:
        # tolerate None or any iterable of names from hand-written configurations
        scopes: Any = self.scopes
        if scopes is None:
            object.__setattr__(self, "scopes", ALL_SCOPES)
        elif not isinstance(scopes, frozenset):
            object.__setattr__(self, "scopes", frozenset(str(s) for s in scopes))

    def granted(self) -> frozenset[str]:
        return self.scopes


def _default_clients() -> list[ClientSpec]:
    return [ClientSpec(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)]


@dataclass
class EmulatorConfig:
    """Everything ``llmgw emulator serve`` accepts (the README), plus test knobs."""

    host: str = "127.0.0.1"
    port: int = 8787
    clients: list[ClientSpec] = field(default_factory=_default_clients)
    state_file: str | None = None
    rate_limit: int = 300  # requests per 60 s window per token; 0 = unlimited
    latency_ms: int = 0
    jitter_ms: int = 0
    fault_rates: dict[str, float] = field(default_factory=dict)
    ingest_delay: float = 2.0  # seconds an ingesting index stays PROCESSING
    seed: int | None = None  # makes faults, splits, ids and simulated traffic reproducible
    admin: bool = False  # the test-only /__emulator/ endpoints
    token_lifetime: int = 86400
    token_rate_limit: int = 60  # token requests a minute per client; 0 = unlimited
    max_telemetry_rows: int = DEFAULT_CAP  # invocations kept (the newest), real and simulated


def parse_client_spec(value: str) -> ClientSpec:
    """``ID:SECRET[:SCOPES]``: split on the first two colons; SCOPES comma-separated.

    Left out, SCOPES means every scope; given, each must be a scope of the endpoint table (a typo
    would otherwise only show up as a puzzling 403 later)."""
    parts = value.split(":", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        shown = value.split(":", 1)[0]
        raise ValueError(f"--client {shown!r}: expected ID:SECRET[:SCOPES], e.g. ci:s3cret")
    if len(parts) == 2:
        return ClientSpec(parts[0], parts[1])
    scopes = frozenset(s.strip() for s in parts[2].split(",") if s.strip())
    unknown = sorted(scopes - ALL_SCOPES)
    if unknown:
        raise ValueError(
            f"--client {parts[0]}: unknown scope(s) {', '.join(unknown)}; known scopes: "
            + ", ".join(SCOPES.all)
        )
    return ClientSpec(parts[0], parts[1], scopes)


def parse_fault_rate(value: str) -> tuple[str, float]:
    """``KIND=P`` -> (kind, probability). KIND is one of ``FAULT_KINDS``; P is within 0..1."""
    kind, sep, rate = value.partition("=")
    kind = kind.strip()
    if not sep:
        raise ValueError(f"--fault-rate {value!r}: expected KIND=P, e.g. 503=0.1")
    if kind not in FAULT_KINDS:
        raise ValueError(
            f"--fault-rate: unknown kind {kind!r}; valid kinds: {', '.join(FAULT_KINDS)}"
        )
    try:
        p = float(rate)
    except ValueError:
        raise ValueError(f"--fault-rate {kind}: {rate!r} is not a number between 0 and 1") from None
    if not 0.0 <= p <= 1.0:  # also refuses nan
        raise ValueError(f"--fault-rate {kind}: {rate} is outside 0..1")
    return kind, p
