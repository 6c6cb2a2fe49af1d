"""Per-endpoint request statistics of one client: count, errors, retries and latency quantiles.

It exists so that a run can report (``--metrics-file``, the summary) how it used the API without
any other module counting requests: the client records every attempt here, grouped by method
and endpoint, a path with its ids replaced by ``{id}`` (``endpoint_of``), so a thousand prompts
make one row. The collections whose next segment is an id are read from the endpoint table.

It must not send, time or log anything: the client measures, this only adds up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from itertools import pairwise
from typing import Any

from reconciler.endpoints import PATHS


@dataclass(frozen=True)
class EndpointStats:
    method: str
    endpoint: str
    count: int
    errors: int
    retries: int
    latency_p50_ms: float
    latency_p95_ms: float
    latency_max_ms: float
    latency_total_ms: float


_ID_SEGMENT = re.compile(r"^(?:[0-9a-fA-F-]{16,}|\d+|\d+\.\d+\.\d+[0-9A-Za-z.+%-]*)$")

# the segments of the table's paths that a path parameter follows ("prompts" in
# ".../prompts/{promptId}"): whatever follows them in a path is an id
COLLECTIONS = frozenset(
    seg
    for f in fields(PATHS)
    for seg, nxt in pairwise(getattr(PATHS, f.name).split("/"))
    if nxt.startswith("{")
)


def endpoint_of(path: str) -> str:
    """A path with ids replaced by ``{id}``, so metrics group by endpoint."""
    segs = path.split("?")[0].split("/")
    out = []
    for i, seg in enumerate(segs):
        prev = segs[i - 1] if i else ""
        if seg and (_ID_SEGMENT.match(seg) or prev in COLLECTIONS):
            out.append("{id}")
        else:
            out.append(seg)
    return "/".join(out)


class Stats:
    """The rows of one client, added to as requests finish."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}

    def record(self, method: str, path: str, ms: float, error: bool, retry: bool) -> None:
        row = self.rows.setdefault(
            (method, endpoint_of(path)), {"count": 0, "errors": 0, "retries": 0, "lat": []}
        )
        row["count"] += 1
        row["errors"] += int(error)
        row["retries"] += int(retry)
        row["lat"].append(ms)

    def snapshot(self) -> list[EndpointStats]:
        out = []
        for (method, endpoint), row in sorted(self.rows.items(), key=lambda kv: kv[0][1]):
            lat = sorted(row["lat"])

            def q(p: float, lat: list[float] = lat) -> float:
                return round(lat[min(len(lat) - 1, int(p * len(lat)))], 1) if lat else 0.0

            out.append(
                EndpointStats(
                    method,
                    endpoint,
                    row["count"],
                    row["errors"],
                    row["retries"],
                    q(0.5),
                    q(0.95),
                    round(lat[-1], 1) if lat else 0.0,
                    round(sum(lat), 1),
                )
            )
        return out
