"""When to try again, and how long to wait: the one retry policy of the token and API requests.

It exists because two loops retry (the token request in ``remote.auth``, every API request in
``remote.client``) and must wait the same way: exponential backoff with full jitter, or the
server's ``Retry-After`` when it gives one, never past the retry budget (a ``Retry-After`` of a
day is not waited out). Which statuses are worth a retry (``RETRY_STATUSES``) and which methods
may be repeated safely (``IDEMPOTENT``; a POST only with its idempotency key) are stated here
too, so the webhook reads the same list.

It must not send anything or decide what an answer means: it only waits, or says it will not.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from reconciler.endpoints import HEADERS

log = logging.getLogger("llmgw.client")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"})


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The seconds a ``Retry-After`` header asks for (None when absent or not a number)."""
    value = headers.get(HEADERS.retry_after.lower())
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


@dataclass
class Retries:
    """A client's retry policy: at most ``attempts`` tries within ``budget`` seconds, waiting
    ``random() * min(cap, base * 2 ** (attempt - 1))`` between them unless told how long."""

    attempts: int
    budget: float
    base: float
    cap: float
    sleep: Callable[[float], Awaitable[None]]
    clock: Callable[[], float]
    random: Callable[[], float]

    def deadline(self) -> float:
        """When the retries of a request that starts now must end."""
        return self.clock() + self.budget

    async def wait(
        self,
        attempt: int,
        retry_after: float | None,
        method: str,
        path: str,
        what: str,
        deadline: float,
    ) -> bool:
        """Wait before the next attempt; False (and no wait) when that would pass ``deadline``
        (a ``Retry-After`` of a day is not waited out)."""
        delay = (
            retry_after
            if retry_after is not None
            else self.random() * min(self.cap, self.base * 2 ** (attempt - 1))
        )
        if self.clock() + delay > deadline:
            log.debug(
                "%s %s -> %s: waiting %.2fs would pass the retry budget", method, path, what, delay
            )
            return False
        log.debug(
            "attempt %d/%d: %s %s -> %s (retrying in %.2fs)",
            attempt + 1,
            self.attempts,
            method,
            path,
            what,
            delay,
        )
        await self.sleep(delay)
        return True
