"""Pacing by the ``inin-ratelimit-*`` headers, so a large run slows down before it meets a 429.

It exists because the gateway counts requests per rate window and says so on every answer
(how many the window allows, how many are used, when it resets): when little of the budget is
left, new requests are spread over what remains of the window instead of spending it at once.
The counters are the server's, so several clients sharing a token still pace correctly.

It must not sleep, send or retry: the client asks ``Pacer.delay`` how long to wait before each
attempt and waits itself, and hands every answer's headers to ``Pacer.observe``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from reconciler.endpoints import HEADERS

MAX_WINDOW = 300.0  # seconds a rate window is taken to last at most (the contract's is 60)


class Pacer:
    """Spreads the rest of a rate window's budget over the time left in it.

    The server says how many requests the window allows, how many are used and when it resets.
    While more than a fifth of the budget is left, requests go out freely; below that, each new
    request waits ``reset / remaining`` (so the budget lasts until the reset); with nothing left it
    waits for the reset. The counters are the server's, so several clients sharing a token still
    pace correctly. Requests already holding a slot (sending, or waiting for their turn) count
    against the budget, and no slot is ever reserved past the reset: whoever would wait longer
    waits for the new window, where requests go out freely again.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.allowed: int | None = None
        self.remaining = 0
        self.reset_at = 0.0
        self.next_slot = 0.0

    def observe(self, headers: Mapping[str, str], in_flight: int = 0) -> None:
        """Take the server's counters; requests still in flight will count against them too."""
        try:
            allowed = int(headers[HEADERS.rate_allowed.lower()])
            count = int(headers[HEADERS.rate_count.lower()])
            reset = float(headers[HEADERS.rate_reset.lower()])
        except (KeyError, ValueError):
            return
        if allowed <= 0 or not math.isfinite(reset):
            self.allowed = None
            return
        self.allowed = allowed
        self.remaining = max(0, allowed - count - in_flight)
        # the header is in whole seconds: one more second never sends early into a full window;
        # and no window is taken to last longer than MAX_WINDOW, whatever a server says
        self.reset_at = self.clock() + min(max(0.0, reset), MAX_WINDOW) + 1.0

    def delay(self) -> float:
        """Seconds to wait before sending one more request (and reserve its slot)."""
        if self.allowed is None:
            return 0.0
        now = self.clock()
        if now >= self.reset_at:
            self.allowed = None
            return 0.0
        left = self.reset_at - now
        if self.remaining <= 0:
            return left
        if self.remaining > self.allowed / 5:
            self.remaining -= 1
            return 0.0
        spacing = left / self.remaining
        slot = min(max(now, self.next_slot), self.reset_at)
        self.next_slot = slot + spacing
        self.remaining -= 1
        return slot - now
