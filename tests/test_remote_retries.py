"""``remote.retries``: when the client tries again, and how long it waits.

Covers: retries with Retry-After (a 429 costs no attempt) and bounded full jitter; retries
bounded in attempts; a POST retried only with its request id (kept across retries); a
Retry-After past the retry budget not waited out; the debug log naming attempts without
secrets.
"""

from __future__ import annotations

import httpx
import pytest

from reconciler import errors
from tests.remote_fakes import SECRET, Clock, make, token_ok


async def test_retries_honour_retry_after_and_full_jitter() -> None:
    answers = iter(
        [
            httpx.Response(429, headers={"Retry-After": "3"}),
            httpx.Response(503),
            httpx.Response(200, json={"ok": 1}),
        ]
    )

    def handler(req: httpx.Request) -> httpx.Response:
        return token_ok(req) if req.url.path == "/oauth/token" else next(answers)

    clock = Clock()
    async with make(handler, clock, backoff_base=0.5) as c:
        resp = await c.request("PUT", "/x", json={})
    assert resp.body == {"ok": 1}
    assert clock.sleeps == [3.0, 0.5]  # Retry-After (a 429 costs no attempt), then 1.0 * 0.5


async def test_retries_are_bounded() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return token_ok(req) if req.url.path == "/oauth/token" else httpx.Response(503)

    clock = Clock()
    async with make(handler, clock, max_attempts=4) as c:
        with pytest.raises(errors.ServerError):
            await c.request("GET", "/x")
    assert len(clock.sleeps) == 3


async def test_post_retried_only_with_its_request_id() -> None:
    ids: list[str | None] = []

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req)
        ids.append(req.headers.get("X-Genesys-Request-Id"))
        return httpx.Response(503) if len(ids) in (1, 2, 3) else httpx.Response(201, json={})

    async with make(handler) as c:
        with pytest.raises(errors.ServerError):
            await c.request("POST", "/x", json={})
        assert ids == [None]
        await c.request("POST", "/x", json={}, request_id="rid-1")
    assert ids[1:] == ["rid-1"] * 3


async def test_a_retry_after_past_the_budget_is_not_waited_out() -> None:
    calls: list[int] = []

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req)
        calls.append(1)
        return httpx.Response(503, headers={"Retry-After": "86400"})

    clock = Clock()
    async with make(handler, clock) as c:
        with pytest.raises(errors.ServerError):
            await c.request("GET", "/x")
    assert calls == [1] and clock.sleeps == []


async def test_debug_log_names_attempts_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    answers = iter([httpx.Response(503), httpx.Response(200, json={})])

    def handler(req: httpx.Request) -> httpx.Response:
        return token_ok(req) if req.url.path == "/oauth/token" else next(answers)

    caplog.set_level("DEBUG", logger="llmgw.client")
    async with make(handler) as c:
        await c.request("PUT", "/x", json={})
    assert "attempt 2/5: PUT /x -> 503" in caplog.text
    assert SECRET not in caplog.text and "tok" not in caplog.text
