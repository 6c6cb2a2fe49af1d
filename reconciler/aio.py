"""Bounded concurrency: never one coroutine per item of a list a server or a user sized.

``window`` runs ``width`` copies of a worker that pull their items from a shared iterator;
``bounded`` maps a coroutine function over a sequence that way, keeping the order. On the first
failure the other workers are cancelled and awaited, then the failure is raised: no task
outlives the call. Pure asyncio; no I/O of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

_T = TypeVar("_T")
_R = TypeVar("_R")


async def window(worker: Callable[[], Awaitable[None]], width: int) -> None:
    """Run ``width`` copies of ``worker`` (which pull from a shared iterator); on the first
    failure cancel the others and raise it."""
    if width > 0:
        await gather(*(worker() for _ in range(width)))


async def bounded(fn: Callable[[_T], Awaitable[_R]], items: Sequence[_T], width: int) -> list[_R]:
    """``[await fn(x) for x in items]`` with at most ``width`` running at a time, in order; the
    first failure cancels the rest."""
    results: list[Any] = [None] * len(items)
    todo = iter(enumerate(items))

    async def worker() -> None:
        for i, item in todo:  # shared: each item is taken by exactly one worker
            results[i] = await fn(item)

    await window(worker, min(max(1, width), len(items)))
    return results


async def gather(*aws: Awaitable[Any]) -> list[Any]:
    """``asyncio.gather`` that, on the first failure, cancels and awaits the rest before
    raising it (plain ``gather`` leaves them running)."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
