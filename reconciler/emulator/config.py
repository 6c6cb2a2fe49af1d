"""The emulator's settings and the parsing of its command-line values (no I/O, no click)."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.endpoints import SCOPES

FAULT_KINDS = ("429", "500", "503", "drop-before", "drop-after")
DEFAULT_CLIENT_ID = "emulator-client"
DEFAULT_CLIENT_SECRET = "emulator-secret"


@dataclass(frozen=True)
class ClientSpec:
    id: str
    secret: str = field(repr=False)
    scopes: frozenset[str] | None = None  # None: every scope

    def granted(self) -> frozenset[str]:
        return frozenset(SCOPES.all) if self.scopes is None else self.scopes


def _default_clients() -> list[ClientSpec]:
    return [ClientSpec(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, None)]


@dataclass
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 8787
    clients: list[ClientSpec] = field(default_factory=_default_clients)
    state_file: str | None = None
    rate_limit: int = 300
    latency_ms: int = 0
    jitter_ms: int = 0
    fault_rates: dict[str, float] = field(default_factory=dict)
    ingest_delay: float = 2.0
    seed: int | None = None
    admin: bool = False
    token_lifetime: int = 86400
    token_rate_limit: int = 60


def parse_client_spec(value: str) -> ClientSpec:
    """``ID:SECRET[:SCOPES]``: split on the first two colons; SCOPES comma-separated."""
    parts = value.split(":", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ValueError(f"--client {value.split(':', 1)[0]!r}...: expected ID:SECRET[:SCOPES]")
    if len(parts) == 2:
        return ClientSpec(parts[0], parts[1], None)
    scopes = frozenset(s.strip() for s in parts[2].split(",") if s.strip())
    unknown = sorted(scopes - set(SCOPES.all))
    if unknown:
        raise ValueError(
            f"--client {parts[0]}: unknown scope(s) {', '.join(unknown)}; known: "
            + ", ".join(SCOPES.all)
        )
    return ClientSpec(parts[0], parts[1], scopes)


def parse_fault_rate(value: str) -> tuple[str, float]:
    kind, sep, rate = value.partition("=")
    if not sep:
        raise ValueError(f"--fault-rate {value!r}: expected KIND=P, e.g. 503=0.1")
    if kind not in FAULT_KINDS:
        raise ValueError(
            f"--fault-rate: unknown kind {kind!r}; use one of {', '.join(FAULT_KINDS)}"
        )
    try:
        p = float(rate)
    except ValueError:
        raise ValueError(f"--fault-rate {kind}: {rate!r} is not a number") from None
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"--fault-rate {kind}: {p} is outside 0..1")
    return kind, p
