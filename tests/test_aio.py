"""Bounded concurrency (reconciler/aio.py).

Covers: ``bounded`` keeps the order and never runs more than its width at once, even over many
items; the first failure cancels the workers still running and is raised, with no task left
behind; an empty list and a width of zero do nothing.
"""

from __future__ import annotations

import asyncio

import pytest

from reconciler.aio import bounded, window


async def test_bounded_keeps_order_and_width() -> None:
    running = peak = 0

    async def work(x: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)
        running -= 1
        return x * 2

    assert await bounded(work, list(range(1000)), 4) == [x * 2 for x in range(1000)]
    assert peak == 4


async def test_the_first_failure_cancels_the_rest() -> None:
    cancelled = 0

    async def work(x: int) -> int:
        nonlocal cancelled
        if x == 3:
            raise ValueError("boom")
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled += 1
            raise
        return x

    with pytest.raises(ValueError, match="boom"):
        await bounded(work, list(range(10)), 4)
    assert cancelled == 3  # the other three workers, each mid-item
    current = asyncio.current_task()
    assert [t for t in asyncio.all_tasks() if t is not current] == []


async def test_nothing_to_do() -> None:
    async def never() -> None:
        raise AssertionError("not run")

    assert await bounded(lambda x: never(), [], 8) == []
    await window(never, 0)
