"""``remote.paging``: both paging styles, every listing bounded in count.

Covers: page-number paging fetching later pages concurrently, checked against its own
total/pageSize/pageCount (the echoed page size used; wrong shapes of each kind refused, pages
that are not objects refused), a billion claimed pages refused at once in bounded memory, later
pages through a window of ``parallelism`` requests and tasks (stopping soon after a failure),
every page fetched once; cursor paging, refusing cycles, odd cursors and endless listings
(``MAX_PAGES``).
"""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from reconciler import errors
from reconciler.remote import paging
from tests.remote_fakes import make, token_ok


async def test_page_number_paging_fetches_later_pages_concurrently() -> None:
    items = [{"id": str(i)} for i in range(250)]
    pages: list[int] = []

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req)
        size, n = int(req.url.params["pageSize"]), int(req.url.params["pageNumber"])
        pages.append(n)
        assert size == 100
        return httpx.Response(
            200,
            json={
                "entities": items[(n - 1) * size : n * size],
                "total": 250,
                "numPages": 3,
                "pageNumber": n,
            },
        )

    async with make(handler) as c:
        got = await c.list_pages("/things")
    assert got == items and sorted(pages) == [1, 2, 3]
    assert c.requests_sent == 3 and c.token_requests == 1


def pager(
    total: int,
    *,
    size: int = 100,
    tweak: Callable[[int, dict[str, Any]], None] | None = None,
    seen: list[int] | None = None,
) -> Callable[[httpx.Request], httpx.Response]:
    """A page-number collection of ``total`` objects answering ``size`` a page; ``tweak`` may
    spoil page n's body."""

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req)
        n = int(req.url.params["pageNumber"])
        if seen is not None:
            seen.append(n)
        pages = -(-total // size)
        body: dict[str, Any] = {
            "entities": [{"id": str(i)} for i in range((n - 1) * size, min(total, n * size))],
            "pageSize": size,
            "pageNumber": n,
            "total": total,
            "pageCount": pages,
            "numPages": pages,
        }
        if tweak is not None:
            tweak(n, body)
        return httpx.Response(200, json=body)

    return handler


def _set(page: int, **changes: Any) -> Callable[[int, dict[str, Any]], None]:
    def tweak(n: int, body: dict[str, Any]) -> None:
        if n == page:
            body.update(changes)

    return tweak


async def test_paging_uses_the_page_size_the_server_echoes() -> None:
    seen: list[int] = []
    async with make(pager(60, size=25, seen=seen)) as c:  # the server caps the 100 asked
        got = await c.list_pages("/things")
    assert [e["id"] for e in got] == [str(i) for i in range(60)] and sorted(seen) == [1, 2, 3]


@pytest.mark.parametrize(
    ("tweak", "needle"),
    [
        (_set(1, entities={"a": 1}), "page 1's entities is an object, not a list"),
        (_set(1, entities=None), "page 1's entities is null, not a list"),
        (_set(1, entities=[1, 2]), "page 1's entity 1 is a number, not an object"),
        (_set(2, entities=["x"] * 100), "page 2's entity 1 is a string, not an object"),
        (_set(1, pageCount="3", numPages=None), 'page 1: pageCount is "3", not a count'),
        (_set(1, pageCount=-1, numPages=None), "page 1: pageCount is -1, not a count"),
        (_set(1, pageCount=True, numPages=None), "page 1: pageCount is true, not a count"),
        (_set(1, total=2.5), "page 1: total is 2.5, not a count"),
        (_set(1, pageCount=4), "pageCount and numPages disagree (3 and 4)"),
        (_set(1, pageCount=5, numPages=5), "pageCount 5 does not match total 250 at 100 a page"),
        (_set(1, total=20), "pageCount 3 does not match total 20 at 100 a page (1 page)"),
        (
            _set(1, total=20, pageCount=None, numPages=None),
            "total 20 is less than the 100 entities of page 1",
        ),
        (_set(1, pageSize=0), "pageSize is 0"),
        (_set(1, pageSize=50), "page 1 holds 100 entities, more than its page size 50"),
        (_set(2, pageNumber=1), "page 2 was asked for and page 1 answered"),
        (_set(3, total=251), "total is 250 on page 1 and 251 on page 3: the collection changed"),
        (_set(2, entities=[{"id": "x"}]), "page 2 of 3 holds 1 entities, not 100"),
        (_set(3, entities=[]), "the pages hold 200 entities and total says 250"),
        (_set(1, total=None, pageCount=None, numPages=None), "a full page 1 with neither total"),
        (_set(1, total=10**9, pageCount=None, numPages=None), "claims 10,000,000 pages"),
    ],
)
async def test_paging_refuses_pages_it_cannot_read(
    tweak: Callable[[int, dict[str, Any]], None], needle: str
) -> None:
    async with make(pager(250, tweak=tweak)) as c:
        with pytest.raises(errors.ProtocolError) as exc:
            await c.list_pages("/things")
    assert str(exc.value).startswith(
        "the server answered something llmgw cannot read: GET /things: "
    )
    assert needle in str(exc.value)


@pytest.mark.parametrize("body", [[], "page", None, 3])
async def test_a_page_that_is_not_an_object_is_refused(body: Any) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return token_ok(req) if req.url.path == "/oauth/token" else httpx.Response(200, json=body)

    async with make(handler) as c:
        with pytest.raises(errors.ProtocolError, match=r"page 1 is .*, not a JSON object"):
            await c.list_pages("/things")


async def test_a_billion_pages_fail_at_once_in_bounded_memory() -> None:
    seen: list[int] = []
    handler = pager(100 * 10**9, seen=seen)
    tracemalloc.start()
    try:
        async with make(handler) as c:
            with pytest.raises(errors.ProtocolError, match="claims 1,000,000,000 pages"):
                await c.list_pages("/things")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seen == [1] and peak < 2 * 2**20


async def test_later_pages_go_through_a_window_of_parallelism_requests() -> None:
    """9,000 claimed pages, page 40 fails: never more than 3 requests (nor page tasks) at once,
    and the listing stops soon after the failure instead of asking for the other 8,960."""
    active, peak, tasks, asked = [0], [0], [0], []

    async def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req)
        n = int(req.url.params["pageNumber"])
        asked.append(n)
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        tasks[0] = max(tasks[0], len(asyncio.all_tasks()))
        await asyncio.sleep(0)
        active[0] -= 1
        if n == 40:
            return httpx.Response(400, json={"message": "no", "code": "validation.failed"})
        return httpx.Response(
            200,
            json={
                "entities": [{"id": f"{n}-{i}"} for i in range(100)],
                "total": 900_000,
                "pageSize": 100,
            },
        )

    async with make(handler, parallelism=3) as c:
        with pytest.raises(errors.InvalidRequestError):
            await c.list_pages("/things")
    assert peak[0] == 3
    assert tasks[0] <= 3 + 1  # the three workers and the test's own task
    assert 40 in asked and len(asked) < 60


async def test_every_page_fetched_once_within_the_window() -> None:
    seen: list[int] = []
    async with make(pager(2_050, seen=seen), parallelism=4) as c:
        got = await c.list_pages("/things")
    assert len(got) == 2_050 and sorted(seen) == list(range(1, 22))


async def test_cursor_paging() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req)
        cur = int(req.url.params.get("cursor", "0"))
        body: dict[str, Any] = {"entities": [{"n": cur}, {"n": cur + 1}]}
        if cur < 4:
            body["nextPageCursor"] = str(cur + 2)
        return httpx.Response(200, json=body)

    async with make(handler) as c:
        assert [e["n"] for e in await c.list_cursor("/t")] == [0, 1, 2, 3, 4, 5]


def cursors(next_of: Callable[[str], Any]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req)
        cur = req.url.params.get("cursor", "")
        body: dict[str, Any] = {"entities": [{"at": cur}]}
        nxt = next_of(cur)
        if nxt is not None:
            body["nextPageCursor"] = nxt
        return httpx.Response(200, json=body)

    return handler


@pytest.mark.parametrize(
    ("next_of", "needle"),
    [
        ({"": "a", "a": "b", "b": "a"}.get, "page 3's nextPageCursor repeats the one of page 1"),
        ({"": "a", "a": "a"}.get, "page 2's nextPageCursor repeats the one of page 1"),
        (lambda cur: 7, "page 1's nextPageCursor is a number, not a string"),
        (lambda cur: ["a"], "page 1's nextPageCursor is an array, not a string"),
        (lambda cur: "c" * 5000, "5,000 characters long"),
    ],
)
async def test_cursor_paging_refuses_cycles_and_odd_cursors(
    next_of: Callable[[str], Any], needle: str
) -> None:
    async with make(cursors(next_of)) as c:
        with pytest.raises(errors.ProtocolError) as exc:
            await c.list_cursor("/t")
    assert needle in str(exc.value)


async def test_cursor_paging_is_bounded_in_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paging, "MAX_PAGES", 50)
    async with make(cursors(lambda cur: (cur or "c") + "x")) as c:
        with pytest.raises(errors.ProtocolError, match="goes on past 50 pages"):
            await c.list_cursor("/t")
        assert c.requests_sent == 50
