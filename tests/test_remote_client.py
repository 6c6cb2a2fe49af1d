"""``remote.client``: GatewayClient.request at its boundary, against MockTransport fakes.

Covers: no httpx exception escaping (requests and listings); the read-only client refusing
writes before sending; bounded concurrency; the per-attempt deadline on a fake clock against a
drip (retried for idempotent requests only, then a TransportError naming it), and on the real
clock; transport errors redacted; an answer's etag that is no entity tag (a trailing newline,
empty, too long, not ASCII) refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest

from reconciler import errors
from reconciler.remote import GatewayClient
from tests.remote_fakes import SECRET, TOKEN, Clock, VirtualTime, make, settings, token_ok


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("cut"),
        httpx.WriteError("broken pipe"),
        httpx.PoolTimeout("pool"),
        httpx.DecodingError("gzip"),
        httpx.TooManyRedirects("loop"),
    ],
)
async def test_no_httpx_exception_escapes(exc: Exception) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise exc

    async with make(handler) as c:
        with pytest.raises(errors.RemoteError) as got:
            await c.request("GET", "/x")
    assert not isinstance(got.value, httpx.HTTPError)
    assert got.value.__cause__ is None or not isinstance(got.value.__cause__, httpx.HTTPError)

    def api_fails(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req)
        raise exc

    async with make(api_fails) as c:
        with pytest.raises(errors.TransportError):
            await c.list_pages("/x")


async def test_read_only_client_refuses_writes_before_sending() -> None:
    sent: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        sent.append(req.method)
        return token_ok(req)

    async with make(handler, read_only=True) as c:
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            with pytest.raises(errors.LlmgwError, match="read-only"):
                await c.request(method, "/x", json={})
    assert sent == []


async def test_concurrency_is_bounded() -> None:
    active, peak = [0], [0]

    async def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req)
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        await asyncio.sleep(0.005)
        active[0] -= 1
        return httpx.Response(200, json={})

    async with GatewayClient(
        settings(), parallelism=3, transport=httpx.MockTransport(handler)
    ) as c:
        await asyncio.gather(*(c.request("GET", f"/x/{i}") for i in range(20)))
    assert peak[0] == 3


def virtual_deadline(vt: VirtualTime) -> Callable[[float], AbstractAsyncContextManager[None]]:
    """``asyncio.timeout`` on the virtual clock."""

    @asynccontextmanager
    async def deadline(seconds: float) -> AsyncIterator[None]:
        task = asyncio.current_task()
        assert task is not None
        fired: list[bool] = []

        async def alarm() -> None:
            await vt.sleep(seconds)
            fired.append(True)
            task.cancel()

        timer = asyncio.ensure_future(alarm())
        try:
            yield
        except asyncio.CancelledError:
            if fired:
                task.uncancel()
                raise TimeoutError from None
            raise
        finally:
            timer.cancel()

    return deadline


def dripping(vt: VirtualTime, drips: list[int], good_after: int = 10**9) -> Any:
    """A server that answers headers at once, then one byte of the body every 5 s (for ever),
    except from attempt ``good_after`` on, when it answers at once."""

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req)
        drips.append(0)
        if len(drips) >= good_after:
            return httpx.Response(200, json={"ok": 1})

        class Drip(httpx.AsyncByteStream):
            async def __aiter__(self) -> AsyncIterator[bytes]:
                yield b"["
                while True:
                    await vt.sleep(5)
                    drips[-1] += 1
                    yield b" "

        return httpx.Response(200, stream=Drip())

    return handler


async def test_a_drip_cannot_stretch_the_deadline_of_an_attempt() -> None:
    vt = VirtualTime()
    drips: list[int] = []
    client = GatewayClient(
        settings(),
        transport=httpx.MockTransport(dripping(vt, drips)),
        sleep=vt.sleep,
        clock=vt,
        random=lambda: 1.0,
        deadline=virtual_deadline(vt),
        timeout=60.0,
    )

    async def get() -> None:
        async with client:
            await client.request("GET", "/x")

    start = vt()
    with pytest.raises(errors.TransportError) as exc:
        await vt.run(get())
    # attempt 1 at 0..60, a 0.5 s backoff, attempt 2 at 60.5..120.5: past the 120 s retry budget
    assert vt() - start == pytest.approx(120.5)
    assert drips == [11, 11]  # a byte every 5 s, cut at 60 s each time
    assert "no complete answer within 60 s" in str(exc.value) and "after 2 attempts" in str(
        exc.value
    )


async def test_a_timed_out_attempt_is_retried_for_idempotent_requests_only() -> None:
    vt = VirtualTime()
    drips: list[int] = []

    def client() -> GatewayClient:
        return GatewayClient(
            settings(),
            transport=httpx.MockTransport(dripping(vt, drips, good_after=2)),
            sleep=vt.sleep,
            clock=vt,
            random=lambda: 1.0,
            deadline=virtual_deadline(vt),
            timeout=30.0,
        )

    async def put() -> Any:
        async with client() as c:
            return (await c.request("PUT", "/x", json={})).body

    async def post() -> Any:
        async with client() as c:
            return await c.request("POST", "/x", json={})

    assert await vt.run(put()) == {"ok": 1}
    assert len(drips) == 2
    drips.clear()
    with pytest.raises(errors.TransportError, match="within 30 s"):
        await vt.run(post())  # no idempotency key: a second POST could create twice
    assert len(drips) == 1


async def test_the_real_deadline_ends_an_answer_that_never_comes() -> None:
    async def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    clock = Clock()
    async with make(handler, clock, timeout=0.05, max_attempts=2) as c:
        with pytest.raises(errors.TransportError, match=r"within 0\.05 s .*after 2 attempts"):
            await c.request("GET", "/x")


async def test_transport_errors_are_redacted() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": TOKEN, "expires_in": 3600})
        raise httpx.ConnectError(f"proxy said: Authorization: Bearer {TOKEN}; secret {SECRET}")

    async with make(handler, max_attempts=1) as c:
        with pytest.raises(errors.TransportError) as exc:
            await c.request("GET", "/x")
    assert TOKEN not in str(exc.value) and SECRET not in str(exc.value)


@pytest.mark.parametrize("etag", ['"e1"\n', "", '"' + "e" * 1100 + '"', '"é"'])
async def test_an_answer_whose_etag_is_no_entity_tag_is_refused(etag: str) -> None:
    """The body's etag of an answer (the header cannot carry these): a trailing newline, which
    a `$`-anchored pattern let through, empty, over 1,024 characters, not ASCII."""

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req)
        return httpx.Response(200, json={"id": "x", "etag": etag})

    async with make(handler) as c:
        with pytest.raises(errors.ProtocolError, match="is not an entity tag"):
            await c.request("GET", "/api/v2/x")
