"""The invocations an org has seen, real and simulated, kept compactly in time order: what
telemetry pages and analytics windows read.

One row per invocation, held in column arrays (a millisecond timestamp, codes for the prompt id,
version, model and error text, the latency, the token counts and a byte of flags), not one dict
per row: a simulated step of 18,000 invocations costs a few hundred kilobytes, and a window is
found by bisecting the timestamps instead of scanning every row. A telemetry entity (a dict) is
made only for a row a page serves (``entity``) or a snapshot writes.

At most ``cap`` rows are visible, the newest (``DEFAULT_CAP`` unless the org is built with
another): an older row is dropped as a newer one arrives. Rows dropped are forgotten physically
in batches (up to a sixteenth of ``cap`` more are held until then, never shown). Each row has a
sequence number that survives the drops, so a telemetry cursor still points at the same row
after older ones are gone.

What this module must not do: decide what an invocation is or what a query means (``runtime``
and ``traffic`` do), read any clock, or change a row once kept (a row arriving out of time order
is inserted at its place; no row is edited).
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from typing import Any

from reconciler.emulator.state.common import iso
from reconciler.endpoints import RUNTIME

TEL = RUNTIME.telemetry
DEFAULT_CAP = 1_000_000
"""Rows kept by default: about 50 MB, 27 hours of traffic at 600 invocations a minute."""

ERROR, BLOCKED, FALLBACK, SIMULATED = 1, 2, 4, 8  # the bits of a row's flags
NONE = -1  # the code of an absent string (no version, no model, no error)


def to_ms(t: float) -> int:
    """A time in whole milliseconds, as ``iso`` writes it (truncated)."""
    return math.floor(round(t * 1000, 3))


def ceil_ms(t: float) -> int:
    """The first whole millisecond at or after ``t``."""
    return math.ceil(round(t * 1000, 3))


class Ledger:
    """The rows, oldest first, and the strings their codes stand for."""

    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        self.cap = max(1, cap)
        self.ts = array("q")  # milliseconds since the epoch
        self.prompt = array("i")  # codes of _strings
        self.version = array("i")
        self.model = array("i")
        self.error = array("i")
        self.latency = array("d")  # milliseconds
        self.n_in = array("q")
        self.n_out = array("q")
        self.flags = array("B")
        self.start = 0  # the first visible row (those before it are dropped, not yet freed)
        self.base = 0  # the sequence number of the row at index 0
        self._strings: list[str] = []
        self._codes: dict[str, int] = {}

    @property
    def columns(self) -> tuple[array[Any], ...]:
        return (
            self.ts,
            self.prompt,
            self.version,
            self.model,
            self.error,
            self.latency,
            self.n_in,
            self.n_out,
            self.flags,
        )

    # -- strings ------------------------------------------------------------------------------
    def code(self, text: str | None) -> int:
        """The code of ``text`` (given one if new); ``NONE`` for None."""
        if text is None:
            return NONE
        c = self._codes.get(text)
        if c is None:
            c = self._codes[text] = len(self._strings)
            self._strings.append(text)
        return c

    def known(self, text: str) -> int | None:
        """The code of ``text`` if some row carries it (or once did), else None."""
        return self._codes.get(text)

    def text(self, code: int) -> str | None:
        return None if code == NONE else self._strings[code]

    # -- rows ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ts) - self.start

    def add(
        self,
        t: float,
        prompt_id: str,
        version: str | None,
        model: str | None,
        latency: float,
        n_in: int,
        n_out: int,
        error: str | None,
        flags: int,
    ) -> None:
        """Keep one row (at its place in time: rows normally arrive in order)."""
        ms = to_ms(t)
        values = (
            ms,
            self.code(prompt_id),
            self.code(version),
            self.code(model),
            self.code(error),
            float(latency),
            n_in,
            n_out,
            flags | (ERROR if error is not None else 0),
        )
        if not self.ts or ms >= self.ts[-1]:
            for column, value in zip(self.columns, values, strict=True):
                column.append(value)
        else:
            at = bisect_right(self.ts, ms, self.start)
            for column, value in zip(self.columns, values, strict=True):
                column.insert(at, value)
        self._trim()

    def extend(self, batch: Sequence[Iterable[Any]]) -> None:
        """Keep a batch of rows given as columns (in ``columns`` order, codes already taken,
        timestamps in order and none before the newest row kept)."""
        for column, values in zip(self.columns, batch, strict=True):
            column.extend(values)
        self._trim()

    def _trim(self) -> None:
        if len(self.ts) - self.start > self.cap:
            self.start = len(self.ts) - self.cap
        if self.start > self.cap // 16:
            for column in self.columns:
                del column[: self.start]
            self.base += self.start
            self.start = 0

    # -- reading ------------------------------------------------------------------------------
    def span(self, first_ms: int | None, end_ms: int | None) -> range:
        """The indexes of the visible rows with ``first_ms <= ts < end_ms`` (None: unbounded)."""
        lo = self.start if first_ms is None else bisect_left(self.ts, first_ms, self.start)
        hi = len(self.ts) if end_ms is None else bisect_left(self.ts, end_ms, self.start)
        return range(lo, max(lo, hi))

    def index_of(self, seq: int) -> int:
        """The index of the row with sequence number ``seq`` (the oldest visible if dropped)."""
        return max(self.start, seq - self.base)

    def seq(self, index: int) -> int:
        return self.base + index

    def entity(self, i: int) -> dict[str, Any]:
        """Row ``i`` as a telemetry entity (a new dict)."""
        return {
            TEL.timestamp: iso(self.ts[i] / 1000),
            TEL.prompt_id: self.text(self.prompt[i]),
            TEL.version: self.text(self.version[i]),
            TEL.model_id: self.text(self.model[i]),
            TEL.latency_ms: self.latency[i],
            TEL.input_tokens: self.n_in[i],
            TEL.output_tokens: self.n_out[i],
            TEL.error: self.text(self.error[i]),
            TEL.simulated: bool(self.flags[i] & SIMULATED),
        }

    def newest(self, n: int) -> range:
        return range(max(self.start, len(self.ts) - n), len(self.ts))
