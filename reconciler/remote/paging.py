"""Listing a collection: page-number and cursor paging, each page's layout checked and bounded.

It exists so that a listing is read whole or refused, never half-read in silence: a page-number
listing is checked against its own ``total`` / ``pageSize`` / ``pageCount`` (the page size the
server echoes wins, as it may cap what was asked), holds at most ``MAX_PAGES`` pages, and its
later pages are fetched through a window of ``parallelism`` requests (never one coroutine per
claimed page); a later page that disagrees with the first means the collection changed while
it was read. A cursor listing refuses a cursor that repeats, is not a string or is longer than
``MAX_CURSOR``, and stops at ``MAX_PAGES`` too. Every refusal is a ``ProtocolError`` naming the
page. Paging names come from ``endpoints.PAGING``.

It must not send anything itself or know HTTP: each page is one ``get`` the client hands it
(its retries, pacing and error mapping included).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler import redact
from reconciler.aio import window
from reconciler.endpoints import PAGING
from reconciler.errors import ProtocolError
from reconciler.remote.answers import Response, Unreadable
from reconciler.remote.errors import TRIM
from reconciler.text import kind_of, plural, shown

MAX_PAGES = 10_000  # pages of one listing (a million objects at 100 a page)
MAX_CURSOR = 4096  # characters of a paging cursor (it is sent back in the query string)

Get = Callable[[Mapping[str, Any]], Awaitable[Response]]
"""One GET of the listing's path with these query parameters."""


async def list_pages(
    get: Get, path: str, params: Mapping[str, Any] | None, *, parallelism: int
) -> list[dict[str, Any]]:
    """Every entity of a page-number collection: page 1, then the rest through a window of
    ``parallelism`` concurrent requests. The pages must agree with each other and with the
    ``total``, ``pageSize`` and ``pageCount`` they state."""
    base = dict(params or {})
    asked = PAGING.max_page_size

    async def page(n: int) -> _Page:
        resp = await get({**base, PAGING.page_size: asked, PAGING.page_number: n})
        return _Page.read(resp.body, n, path, resp.correlation_id)

    first = await page(1)
    layout = first.layout(asked)
    results: list[list[dict[str, Any]] | None] = [None] * (layout.pages - 1)
    numbers: Iterator[int] = iter(range(2, layout.pages + 1))

    async def worker() -> None:
        for n in numbers:  # shared: each page number is taken by exactly one worker
            got = await page(n)
            layout.check(first, got)
            results[n - 2] = got.entities

    await window(worker, min(parallelism, layout.pages - 1))
    entities = list(first.entities)
    for part in results:
        entities.extend(part or ())
    layout.check_count(first, len(entities))
    return entities


async def list_cursor(
    get: Get, path: str, params: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """Every entity of a cursor-paged collection, following ``nextPageCursor`` (a cursor
    that repeats, is not a string or is too long is refused; so is a listing past
    ``MAX_PAGES`` pages)."""
    base = {**(params or {}), PAGING.page_size: PAGING.max_page_size}
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    cursor: str | None = None
    for n in range(1, MAX_PAGES + 1):
        q = dict(base)
        if cursor:
            q[PAGING.cursor] = cursor
        resp = await get(q)
        got = _Page.read(resp.body, n, path, resp.correlation_id, numbered=False)
        out.extend(got.entities)
        nxt = got.body.get(PAGING.next_cursor)
        if nxt is None or nxt == "":
            return out
        if not isinstance(nxt, str) or len(nxt) > MAX_CURSOR:
            what = (
                f"{kind_of(nxt)}, not a string"
                if not isinstance(nxt, str)
                else f"{len(nxt):,} characters long (at most {MAX_CURSOR:,})"
            )
            raise got.error(f"page {n}'s {PAGING.next_cursor} is {what}")
        if nxt in seen:
            raise got.error(
                f"page {n}'s {PAGING.next_cursor} repeats the one of page {seen[nxt]}: the "
                "listing would cycle for ever"
            )
        seen[nxt] = n
        cursor = nxt
    raise ProtocolError("GET", path, None, None, f"the listing goes on past {MAX_PAGES:,} pages")


def _count(body: Mapping[str, Any], name: str) -> int | None:
    """A non-negative integer paging field, None when absent; anything else is unreadable."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Unreadable(f"{name} is {shown(value)}, not a count")
    return value


@dataclass(frozen=True)
class _Page:
    """One page of a listing, its shape checked: an object whose ``entities`` is a list of
    objects, and whose paging fields, when present, are non-negative integers."""

    n: int
    path: str
    body: Mapping[str, Any]
    entities: list[dict[str, Any]]
    total: int | None
    size: int | None
    count: int | None
    correlation: str | None

    def error(self, what: str) -> ProtocolError:
        return ProtocolError(
            "GET", self.path, None, None, redact.clip(what, TRIM), self.correlation
        )

    @classmethod
    def read(
        cls, body: Any, n: int, path: str, correlation: str | None, *, numbered: bool = True
    ) -> _Page:
        def bad(what: str) -> ProtocolError:
            return ProtocolError("GET", path, None, None, redact.clip(what, TRIM), correlation)

        where = f"page {n}"
        if not isinstance(body, dict):
            raise bad(f"{where} is {kind_of(body)}, not a JSON object with {PAGING.entities}")
        entities = body.get(PAGING.entities)
        if not isinstance(entities, list):
            raise bad(
                f"{where}'s {PAGING.entities} is {kind_of(entities)}, not a list"
                if PAGING.entities in body
                else f"{where} has no {PAGING.entities}"
            )
        for i, item in enumerate(entities):
            if not isinstance(item, dict):
                raise bad(f"{where}'s entity {i + 1} is {kind_of(item)}, not an object")
        if not numbered:
            return cls(n, path, body, entities, None, None, None, correlation)
        try:
            total = _count(body, PAGING.total)
            size = _count(body, PAGING.page_size)
            counts = {c for c in (_count(body, PAGING.page_count), _count(body, PAGING.num_pages))}
            number = _count(body, PAGING.page_number)
        except Unreadable as exc:
            raise bad(f"{where}: {exc}") from None
        counts.discard(None)
        if len(counts) > 1:
            raise bad(
                f"{where}: {PAGING.page_count} and {PAGING.num_pages} disagree "
                f"({' and '.join(str(c) for c in sorted(c for c in counts if c is not None))})"
            )
        if size == 0:
            raise bad(f"{where}: {PAGING.page_size} is 0")
        if number is not None and number != n:
            raise bad(f"page {n} was asked for and page {number} answered")
        count = next(iter(counts)) if counts else None
        return cls(n, path, body, entities, total, size, count, correlation)

    def layout(self, asked: int) -> _Layout:
        """How many pages the listing has, from this first page, checked for consistency."""
        size = self.size or asked  # the server's echo wins: it may cap what was asked
        if len(self.entities) > size:
            raise self.error(
                f"page 1 holds {len(self.entities)} entities, more than its page size {size}"
            )
        if self.total is not None:
            pages = -(-self.total // size)
            if (
                self.count is not None
                and self.count != pages
                and not (pages == 0 and self.count == 1)
            ):
                raise self.error(
                    f"{PAGING.page_count} {self.count} does not match {PAGING.total} "
                    f"{self.total} at {size} a page ({plural(pages, 'page')})"
                )
            if self.total < len(self.entities):
                raise self.error(
                    f"{PAGING.total} {self.total} is less than the {len(self.entities)} entities "
                    "of page 1"
                )
        elif self.count is not None:
            pages = self.count
        elif len(self.entities) >= size:
            raise self.error(
                f"a full page 1 with neither {PAGING.total} nor {PAGING.page_count}: llmgw cannot "
                "tell whether more pages follow"
            )
        else:
            pages = 1
        if pages > MAX_PAGES:
            raise self.error(
                f"the listing claims {pages:,} pages"
                + (f" ({PAGING.total} {self.total:,} at {size} a page)" if self.total else "")
                + f"; llmgw reads at most {MAX_PAGES:,} pages of a listing"
            )
        return _Layout(max(1, pages), size)


@dataclass(frozen=True)
class _Layout:
    pages: int
    size: int

    def check(self, first: _Page, page: _Page) -> None:
        """A later page agrees with the first: same total and page count, and full unless last
        (otherwise the collection changed while it was read, and entities were skipped or
        repeated)."""
        for name, a, b in (
            (PAGING.total, first.total, page.total),
            (PAGING.page_count, first.count, page.count),
            (PAGING.page_size, first.size, page.size),
        ):
            if a is not None and b is not None and a != b:
                raise page.error(
                    f"{name} is {a} on page 1 and {b} on page {page.n}: the collection changed "
                    "while it was read (re-run)"
                )
        n = len(page.entities)
        last = page.n == self.pages
        if n > self.size or (not last and n != self.size):
            raise page.error(
                f"page {page.n} of {self.pages} holds {n} entities"
                + (f", not {self.size}" if not last else f", more than {self.size}")
            )

    def check_count(self, first: _Page, got: int) -> None:
        if first.total is not None and got != first.total and self.pages == 1:
            raise first.error(
                f"{PAGING.total} says {first.total} and the only page holds {got} "
                f"entit{'y' if got == 1 else 'ies'}"
            )
        if first.total is not None and got != first.total:
            raise first.error(
                f"the pages hold {got} entities and {PAGING.total} says {first.total}: the "
                "collection changed while it was read (re-run)"
            )
