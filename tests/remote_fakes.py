"""Fakes of the contract for the tests of ``reconciler.remote`` (not a test module itself).

The client is driven through ``httpx.MockTransport`` handlers, as a caller's transport plugs
in, never by patching httpx: ``make`` builds a GatewayClient on a fake ``Clock`` (its sleeps
recorded, jitter fixed at 1.0), ``token_ok`` answers the token endpoint, ``answering`` and
``redirecting`` answer every other request alike, ``Chunks`` streams a body as a socket does,
and ``VirtualTime`` runs many concurrent tasks on a virtual clock.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from reconciler.remote import GatewayClient, Settings

SECRET = "s3cr3t-value-xyz"


API = "http://127.0.0.1:9"


TOKEN = "tok-" + "Q7xW9pL2" * 5


def settings() -> Settings:
    return Settings(API, API, "cid", SECRET)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s


def make(
    handler: Callable[[httpx.Request], httpx.Response], clock: Clock | None = None, **kw: Any
) -> GatewayClient:
    clock = clock or Clock()
    return GatewayClient(
        settings(),
        transport=httpx.MockTransport(handler),
        sleep=clock.sleep,
        clock=clock,
        random=lambda: 1.0,
        **kw,
    )


def token_ok(
    request: httpx.Request, expires: int = 86400, n: list[int] | None = None
) -> httpx.Response:
    if n is not None:
        n.append(1)
    return httpx.Response(
        200,
        json={"access_token": f"tok{len(n or [])}", "expires_in": expires, "token_type": "bearer"},
    )


class VirtualTime:
    """Virtual time for many concurrent tasks: a sleep ends when the clock reaches its wake
    time, and the clock jumps to the next wake time only once every task is blocked."""

    def __init__(self) -> None:
        self.t = 1_800_000_000.0
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0

    def __call__(self) -> float:
        return self.t

    async def sleep(self, s: float) -> None:
        if s <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._waiters, (self.t + s, self._seq, fut))
        await fut

    async def run(self, coro: Any) -> Any:
        task = asyncio.ensure_future(coro)
        while not task.done():
            for _ in range(200):  # let every runnable task run until all are blocked
                await asyncio.sleep(0)
            while self._waiters and self._waiters[0][2].done():
                heapq.heappop(self._waiters)  # a cancelled sleep moves no clock
            if self._waiters and not task.done():
                wake, _, fut = heapq.heappop(self._waiters)
                self.t = max(self.t, wake)
                fut.set_result(None)
        return task.result()


def answering(
    content: bytes | httpx.AsyncByteStream, status: int = 200, **headers: str
) -> Callable[[httpx.Request], httpx.Response]:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req)
        if isinstance(content, bytes):
            return httpx.Response(status, content=content, headers=headers)
        return httpx.Response(status, stream=content, headers=headers)

    return handler


class Chunks(httpx.AsyncByteStream):
    """A body streamed in chunks, as a socket delivers it (not preloaded by httpx)."""

    def __init__(self, chunks: list[bytes], gap: Callable[[], Awaitable[None]] | None = None):
        self.chunks = chunks
        self.gap = gap
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            if self.gap is not None:
                await self.gap()
            self.sent += 1
            yield chunk


def redirecting(
    status: int, location: str | None, *, on_token: bool = False, hits: list[str] | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    def handler(req: httpx.Request) -> httpx.Response:
        if hits is not None:
            hits.append(f"{req.url.host} {req.headers.get('authorization', '')}")
        if req.url.path == "/oauth/token" and not on_token:
            return token_ok(req)
        headers = {"location": location} if location is not None else {}
        return httpx.Response(status, headers=headers, json={"id": "t1"})

    return handler
