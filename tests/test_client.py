"""The client at its boundary, against httpx.MockTransport fakes of the contract.

Covers: settings from the environment (regions, explicit URLs, http refused off loopback, every
missing variable named at once, the secret never in str/repr/errors); one token per run, renewed
60 s before expiry and once on a 401; the token endpoint's rate-limit 400 waited out; retries
with Retry-After and bounded full jitter; a POST retried only with its request id (kept across
retries); the error mapping table; no httpx exception escaping; the read-only client refusing
writes before sending; pacing by the rate-limit headers; bounded concurrency; both paging
styles; per-endpoint metrics; the webhook never raising and never showing a URL's secrets.

Every answer bounded: page-number paging checked against its own total/pageSize/pageCount (the
echoed page size used; wrong shapes of each kind refused), a billion claimed pages refused at
once in bounded memory, later pages through a window of ``parallelism`` requests and tasks;
cursor paging refusing cycles, odd cursors and endless listings; bodies past the bound (streamed,
declared, gzip bombs, with tracemalloc peaks), deep nesting, huge numbers, NaN, duplicate keys,
invalid UTF-8 and non-JSON refused, compressed answers read; the per-attempt deadline on a fake
clock against a drip (retried for idempotent requests only, then a TransportError naming it),
and on the real clock; a Retry-After past the budget not waited out. Write statuses by the
endpoint table; redirects on reads, writes, the token request and webhooks never followed;
informational final answers; token answers llmgw cannot use; a short-lived token renewed
halfway. Redaction: a token straddling the cut masked whole, transport errors redacted, the
settings' secret registered for library callers; LLMGW_REQUEST_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import gzip
import heapq
import json
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest

from reconciler import errors, redact
from reconciler.endpoints import PATHS
from reconciler.errors import ConfigError
from reconciler.remote import GatewayClient, Settings, endpoint_of, paging, post_webhook

SECRET = "s3cr3t-value-xyz"
API = "http://127.0.0.1:9"


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


# -- settings --------------------------------------------------------------------------------
def test_settings_from_region_and_explicit_urls() -> None:
    s = Settings.from_env(
        {
            "GENESYS_CLOUD_REGION": "usw2.pure.cloud",
            "GENESYS_CLOUD_CLIENT_ID": "a",
            "GENESYS_CLOUD_CLIENT_SECRET": SECRET,
        }
    )
    assert (s.api_url, s.login_url) == (
        "https://api.usw2.pure.cloud",
        "https://login.usw2.pure.cloud",
    )
    s = Settings.from_env(
        {
            "GENESYS_CLOUD_API_URL": "http://127.0.0.1:8787/",
            "GENESYS_CLOUD_CLIENT_ID": "a",
            "GENESYS_CLOUD_CLIENT_SECRET": SECRET,
        }
    )
    assert s.login_url == "http://127.0.0.1:8787"
    assert SECRET not in repr(s) and SECRET not in str(s)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        (
            {},
            "GENESYS_CLOUD_REGION (or GENESYS_CLOUD_API_URL), GENESYS_CLOUD_CLIENT_ID, "
            "GENESYS_CLOUD_CLIENT_SECRET",
        ),
        ({"GENESYS_CLOUD_REGION": "mars.pure.cloud"}, "unknown GENESYS_CLOUD_REGION"),
        (
            {"GENESYS_CLOUD_API_URL": "http://api.example.com"},
            "GENESYS_CLOUD_API_URL must use https; plain http is allowed only to loopback",
        ),
        ({"GENESYS_CLOUD_API_URL": "https://api.example.com"}, "GENESYS_CLOUD_LOGIN_URL"),
        (
            {"GENESYS_CLOUD_API_URL": "https://u:p@api.example.com"},
            "GENESYS_CLOUD_API_URL holds user information",
        ),
        (
            {"GENESYS_CLOUD_API_URL": "https://evil.example.com\\@localhost/"},
            "GENESYS_CLOUD_API_URL contains a backslash",
        ),
        ({"GENESYS_CLOUD_API_URL": "http://127.1:8787"}, "non-standard form"),
        (
            {
                "GENESYS_CLOUD_API_URL": "https://api.example.com/?x=1",
                "GENESYS_CLOUD_LOGIN_URL": "x",
            },
            "GENESYS_CLOUD_API_URL has a query",
        ),
        (
            {"GENESYS_CLOUD_API_URL": "http://127.0.0.1:1", "LLMGW_REQUEST_TIMEOUT": "soon"},
            'LLMGW_REQUEST_TIMEOUT "soon" is not a number of seconds',
        ),
        (
            {"GENESYS_CLOUD_API_URL": "http://127.0.0.1:1", "LLMGW_REQUEST_TIMEOUT": "0"},
            "LLMGW_REQUEST_TIMEOUT",
        ),
    ],
)
def test_settings_errors(env: dict[str, str], needle: str) -> None:
    full = (
        {"GENESYS_CLOUD_CLIENT_ID": "a", "GENESYS_CLOUD_CLIENT_SECRET": SECRET, **env}
        if env
        else env
    )
    with pytest.raises(ConfigError) as exc:
        Settings.from_env(full)
    assert needle in str(exc.value)
    assert SECRET not in str(exc.value)


# -- tokens ----------------------------------------------------------------------------------
async def test_one_token_renewed_before_expiry_and_once_on_401() -> None:
    minted: list[int] = []
    seen: list[str] = []
    reject_next = [False]

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            assert req.headers["authorization"].startswith("Basic ")
            return token_ok(req, expires=3600, n=minted)
        seen.append(req.headers["authorization"])
        if reject_next[0]:
            reject_next[0] = False
            return httpx.Response(401, json={"message": "expired", "code": "bad.credentials"})
        return httpx.Response(200, json={})

    clock = Clock()
    async with make(handler, clock) as c:
        await c.request("GET", "/a")
        await c.request("GET", "/a")
        assert len(minted) == 1
        clock.t += 3600 - 59  # within 60 s of expiry: renewed
        await c.request("GET", "/a")
        assert len(minted) == 2
        reject_next[0] = True
        await c.request("GET", "/a")
        assert len(minted) == 3 and seen[-1] == "Bearer tok3"


async def test_second_401_is_an_auth_error() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req)
        return httpx.Response(401, json={"message": "no", "code": "bad.credentials"})

    async with make(handler) as c:
        with pytest.raises(errors.AuthError):
            await c.request("GET", "/a")


async def test_token_rate_limit_400_is_waited_out() -> None:
    calls: list[int] = []

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            calls.append(1)
            if len(calls) < 3:
                return httpx.Response(
                    400,
                    json={"error": "invalid_request", "description": "rate limit exceeded"},
                    headers={"Retry-After": "7"},
                )
            return token_ok(req)
        return httpx.Response(200, json={})

    clock = Clock()
    async with make(handler, clock) as c:
        await c.request("GET", "/a")
    assert clock.sleeps == [7.0, 7.0]


async def test_refused_credentials_name_the_variables_not_the_secret() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": "invalid_client"})

    async with make(handler) as c:
        with pytest.raises(errors.AuthError) as exc:
            await c.request("GET", "/a")
    assert "GENESYS_CLOUD_CLIENT_SECRET" in str(exc.value) and SECRET not in str(exc.value)


# -- retries ---------------------------------------------------------------------------------
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


# -- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "validation.failed", errors.InvalidRequestError),
        (422, "immutable.field", errors.InvalidRequestError),
        (403, "missing.scope", errors.ScopeError),
        (404, "not.found", errors.NotFoundError),
        (409, "name.exists", errors.ConflictError),
        (409, "precondition.failed", errors.PreconditionFailedError),
        (412, "precondition.failed", errors.PreconditionFailedError),
        (409, "index.processing", errors.ProcessingError),
        (429, "rate.limited", errors.RateLimitError),
        (500, None, errors.ServerError),
    ],
)
async def test_error_mapping(status: int, code: str | None, cls: type[Exception]) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req)
        body = {
            "message": f"refused; the OAuth client lacks the scope ai:prompt:write {SECRET}",
            "code": code,
            "status": status,
            "contextId": "ctx",
        }
        return httpx.Response(status, json=body, headers={"inin-correlation-id": "ctx"})

    async with make(handler, max_attempts=1) as c:
        with pytest.raises(cls) as exc:
            await c.request("GET", "/x")
    assert type(exc.value) is cls
    assert exc.value.correlation_id == "ctx"  # type: ignore[attr-defined]
    assert SECRET not in str(exc.value)
    if cls is errors.ScopeError:
        assert exc.value.scope == "ai:prompt:write"  # type: ignore[attr-defined]


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


async def test_non_json_error_body_is_trimmed() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req)
        return httpx.Response(400, text="<html>" + "x" * 5000)

    async with make(handler) as c:
        with pytest.raises(errors.InvalidRequestError) as exc:
            await c.request("GET", "/x")
    assert len(str(exc.value)) < 400


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


# -- pacing, concurrency, paging, metrics ---------------------------------------------------
async def test_pacing_spreads_the_last_fifth_of_the_window() -> None:
    count = [0]

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req)
        count[0] += 1
        return httpx.Response(
            200,
            json={},
            headers={
                "inin-ratelimit-allowed": "100",
                "inin-ratelimit-count": str(90 + count[0]),
                "inin-ratelimit-reset": "30",
            },
        )

    clock = Clock()
    async with make(handler, clock) as c:
        for _ in range(4):
            await c.request("GET", "/x")
    # 9 left of 100 with 30 s to go: each request waits about 30/9 s
    assert clock.sleeps and all(2.0 < s < 5.0 for s in clock.sleeps)


async def test_exhausted_window_waits_for_reset() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req)
        return httpx.Response(
            200,
            json={},
            headers={
                "inin-ratelimit-allowed": "300",
                "inin-ratelimit-count": "300",
                "inin-ratelimit-reset": "12",
            },
        )

    clock = Clock()
    async with make(handler, clock) as c:
        await c.request("GET", "/x")
        await c.request("GET", "/x")
    assert clock.sleeps == [13.0]  # the reset header plus a second of margin


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


async def test_pacing_at_the_window_edge_loses_no_time_and_meets_no_429() -> None:
    """330 reads at 300 a minute, 8 at a time, against the emulator's fixed window: the last 30
    go out when the window resets (plus the one-second margin), not seconds later."""
    from reconciler.emulator.app import create_app
    from reconciler.emulator.config import EmulatorConfig
    from reconciler.emulator.transport import in_process_transport

    vt = VirtualTime()
    app = create_app(EmulatorConfig(rate_limit=300), clock=vt, sleep=vt.sleep)
    client = GatewayClient(
        Settings(API, API, "emulator-client", "emulator-secret"),
        transport=in_process_transport(app),
        parallelism=8,
        sleep=vt.sleep,
        clock=vt,
    )

    async def reads() -> None:
        async with client:
            await asyncio.gather(*(client.request("GET", PATHS.models) for _ in range(330)))

    start = vt()
    await vt.run(reads())
    api = [r for r in app.log if r["path"] != "/oauth/token"]
    assert len(api) == 330
    assert not [r for r in api if r["status"] == 429]
    assert vt() - start <= 60 + 2.5, vt() - start


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


async def test_metrics_group_by_endpoint() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req)
        pid = req.url.path.rsplit("/", 1)[1]
        return httpx.Response(200 if "b1" in pid else 404, json={"id": pid})

    async with make(handler) as c:
        await c.request(
            "PUT", "/api/v2/ai/llm/gateway/prompts/b1f3e6a0-aaaa-bbbb-cccc-1234567890ab"
        )
        with pytest.raises(errors.NotFoundError):
            await c.request(
                "PUT", "/api/v2/ai/llm/gateway/prompts/c2f3e6a0-aaaa-bbbb-cccc-1234567890ab"
            )
    (row,) = c.metrics()
    assert row.endpoint == "/api/v2/ai/llm/gateway/prompts/{id}"
    assert (row.count, row.errors) == (2, 1)
    assert endpoint_of("/api/v2/ai/prompt-templates/abc/versions/2.1.0") == (
        "/api/v2/ai/prompt-templates/{id}/versions/{id}"
    )


async def test_debug_log_names_attempts_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    answers = iter([httpx.Response(503), httpx.Response(200, json={})])

    def handler(req: httpx.Request) -> httpx.Response:
        return token_ok(req) if req.url.path == "/oauth/token" else next(answers)

    caplog.set_level("DEBUG", logger="llmgw.client")
    async with make(handler) as c:
        await c.request("PUT", "/x", json={})
    assert "attempt 2/5: PUT /x -> 503" in caplog.text
    assert SECRET not in caplog.text and "tok" not in caplog.text


# -- webhook ---------------------------------------------------------------------------------
async def test_webhook_retries_and_never_raises() -> None:
    got: list[Any] = []
    answers = iter([httpx.Response(502), httpx.Response(200)])

    def handler(req: httpx.Request) -> httpx.Response:
        got.append(json.loads(req.content))
        return next(answers)

    async def nosleep(_: float) -> None:
        return None

    assert (
        await post_webhook(
            "http://127.0.0.1:1/hook",
            {"text": "hi"},
            transport=httpx.MockTransport(handler),
            sleep=nosleep,
        )
        is None
    )
    assert got == [{"text": "hi"}] * 2

    def boom(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("nope")

    msg = await post_webhook(
        "https://hooks.example.com/T0/B0?token=XYZSECRET",
        {},
        transport=httpx.MockTransport(boom),
        sleep=nosleep,
    )
    assert msg == "webhook https://hooks.example.com/*** failed after 3 attempts: ConnectError"
    assert "plain http" in (await post_webhook("http://hooks.example.com/x", {}) or "")
    assert "backslash" in (await post_webhook("https://a.example.com\\@127.0.0.1/", {}) or "")


# -- answers bounded in count: page-number paging --------------------------------------------
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


# -- cursor paging ---------------------------------------------------------------------------
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


# -- answers bounded in size and shape -------------------------------------------------------
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


DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (DEEP, "nested deeper than 64 levels"),
        (b"[" * 70 + b"]" * 70, "nested deeper than 64 levels"),
        (b'{"n": ' + b"9" * 5000 + b"}", "a number in the body has more digits than llmgw reads"),
        (b'{"n": 1e400}', 'the number "1e400" is out of range'),
        (b'{"n": NaN}', "NaN is not JSON"),
        (b'{"n": -Infinity}', "-Infinity is not JSON"),
        (b'{"id": "a", "id": "b"}', 'an object has the key "id" twice'),
        (b'{"name": "caf\xe9"}', "the body is not valid UTF-8 (at byte 13)"),
        (b"<html>maintenance</html>", "the body is not JSON (Expecting value at line 1 column 1)"),
        (b'{"entities": [', "the body is not JSON"),
    ],
)
async def test_bodies_llmgw_cannot_read_are_protocol_errors(content: bytes, needle: str) -> None:
    async with make(answering(content)) as c:
        with pytest.raises(errors.ProtocolError) as exc:
            await c.request("GET", "/x")
    assert str(exc.value).startswith("the server answered something llmgw cannot read: GET /x")
    assert needle in str(exc.value)


async def test_a_byte_order_mark_is_skipped() -> None:
    async with make(answering(b'\xef\xbb\xbf{"ok": 1}')) as c:
        assert (await c.request("GET", "/x")).body == {"ok": 1}


async def test_a_body_past_the_bound_is_refused() -> None:
    stream = Chunks([b"[" + b"0," * 500] * 10_000)
    async with make(answering(stream), max_body=100_000) as c:
        with pytest.raises(errors.ProtocolError, match="reads at most 100,000 bytes"):
            await c.request("GET", "/x")
    assert stream.sent < 200  # stopped at the bound, not at the end of the 10 MB


async def test_a_declared_length_past_the_bound_is_refused_unread() -> None:
    stream = Chunks([b"{}"])
    handler = answering(stream, **{"content-length": str(100 * 2**20)})
    async with make(handler) as c:
        with pytest.raises(errors.ProtocolError, match="the body is 104,857,600 bytes"):
            await c.request("GET", "/x")
    assert stream.sent == 0


async def test_a_gzip_bomb_is_inflated_only_to_the_bound() -> None:
    bomb = gzip.compress(b" " * (64 * 2**20), 9)  # 64 MiB of spaces in about 64 KiB
    assert len(bomb) < 2**17
    tracemalloc.start()
    try:
        async with make(answering(Chunks([bomb]), **{"content-encoding": "gzip"})) as c:
            c.max_body = 2**20
            with pytest.raises(errors.ProtocolError, match="reads at most 1,048,576 bytes"):
                await c.request("GET", "/x")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20  # httpx's own decoder would inflate the chunk whole: 64 MiB


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some servers send it
        ("identity", lambda b: b),
    ],
)
async def test_compressed_answers_are_read(encoding: str, pack: Callable[[bytes], bytes]) -> None:
    body = json.dumps({"text": "x" * 10_000}).encode()
    data = pack(body)
    stream = Chunks([data[i : i + 100] for i in range(0, len(data), 100)])
    async with make(answering(stream, **{"content-encoding": encoding})) as c:
        assert (await c.request("GET", "/x")).body == {"text": "x" * 10_000}


async def test_an_encoding_not_asked_for_is_refused() -> None:
    async with make(answering(Chunks([b"{}"]), **{"content-encoding": "br"})) as c:
        with pytest.raises(errors.ProtocolError, match='encoded as "br", which llmgw did not'):
            await c.request("GET", "/x")


async def test_an_error_body_is_read_leniently() -> None:
    raw = b'{"message": "bad \xff byte \x1b[31m red", "code": "validation.failed"}'
    async with make(answering(raw, 400)) as c:
        with pytest.raises(errors.InvalidRequestError) as exc:
            await c.request("GET", "/x")
    assert "\x1b" not in str(exc.value) and "\\x1b[31m red" in str(exc.value)


async def test_odd_codes_and_correlation_ids_are_quoted() -> None:
    body = {"message": "no", "code": "bad\ncode"}
    handler = answering(json.dumps(body).encode(), 404, **{"inin-correlation-id": "a b\tc"})
    async with make(handler) as c:
        with pytest.raises(errors.NotFoundError) as exc:
            await c.request("GET", "/x")
    assert exc.value.code == '"bad\\ncode"' and exc.value.correlation_id == '"a b\\tc"'


# -- answers bounded in time -----------------------------------------------------------------
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


# -- statuses: writes, redirects, informational answers --------------------------------------
TPL = "/api/v2/llm-gateway/prompt-templates"
VER = "/api/v2/ai/prompt-templates/t1/versions"
PRM = "/api/v2/ai/llm/gateway/prompts"
IDX = "/api/v2/ai/vectorstores/s1/indexes/idx-1"


@pytest.mark.parametrize(
    ("method", "path", "status", "body", "needle"),
    [
        ("POST", TPL, 201, {"id": "t1"}, None),
        ("POST", TPL, 200, {"id": "t1"}, "200 is not the documented answer to this write (201)"),
        ("POST", TPL, 202, {"id": "t1"}, "cannot tell whether it was applied"),
        ("POST", TPL, 201, [{"id": "t1"}], "the answer is an array, not the object written"),
        ("POST", TPL, 201, {"name": "x"}, "has no usable id (it is missing)"),
        ("POST", TPL, 201, {"id": 7}, "has no usable id (it is not a string: 7)"),
        ("POST", TPL, 201, {"id": "../../x"}, 'has no usable id (it contains ..: "../../x")'),
        ("POST", TPL, 201, {"id": "a/b"}, "contains '/'"),
        ("PUT", f"{TPL}/t1", 200, {"id": "t1"}, None),
        ("PUT", f"{TPL}/t1", 200, {"id": "t2"}, 'the object answered is id "t2", not the "t1"'),
        ("PUT", f"{TPL}/t1", 201, {"id": "t1"}, "(200)"),
        ("DELETE", f"{TPL}/t1", 204, None, None),
        ("DELETE", f"{TPL}/t1", 200, {"status": "deleted"}, None),
        ("DELETE", f"{TPL}/t1", 202, None, "(204 or 200)"),
        ("POST", VER, 201, {"version": "1.0.0"}, None),
        ("PATCH", f"{VER}/1.0.0", 200, {"version": "1.0.0"}, None),
        ("PATCH", f"{VER}/1.0.0", 200, {"version": "1.0.1"}, 'is version "1.0.1", not the'),
        ("POST", PRM, 201, {"id": "p1", "version": "1.0.0", "status": "ACTIVE"}, None),
        ("PUT", f"{PRM}/p1", 200, {"id": "p1"}, None),
        ("PUT", f"{PRM}/p1", 204, None, "(200)"),
        ("PUT", IDX, 201, {"indexId": "idx-1"}, None),
        ("PUT", IDX, 200, {"indexId": "idx-1"}, None),
        ("PUT", IDX, 200, {"indexId": "idx 1"}, "contains whitespace"),
        ("PUT", IDX, 204, None, "(200 or 201)"),
        ("POST", "/api/v2/ai/llm/gateway/audit-logs", 201, {}, None),
        ("POST", "/elsewhere", 200, None, None),
        ("POST", "/elsewhere", 206, None, "(200 or 201 or 204)"),
        ("GET", TPL, 200, {"entities": []}, None),
        ("GET", TPL, 204, None, "204 is not the documented answer to a read (200)"),
    ],
)
async def test_writes_succeed_only_with_their_documented_answer(
    method: str, path: str, status: int, body: Any, needle: str | None
) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req)
        return httpx.Response(status, json=body) if body is not None else httpx.Response(status)

    async with make(handler) as c:
        if needle is None:
            assert (await c.request(method, path, json={}, request_id="r")).status == status
            return
        with pytest.raises(errors.ProtocolError) as exc:
            await c.request(method, path, json={}, request_id="r")
    assert f"cannot read: {method} {path} -> {status}: " in str(exc.value)
    assert needle in str(exc.value)


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


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
@pytest.mark.parametrize(
    ("status", "location", "needle"),
    [
        (302, "https://other.example.com/steal", 'redirected to "other.example.com";'),
        (307, "/api/v2/other", 'redirected to "127.0.0.1" (the same origin)'),
        (308, "http://127.0.0.1:10/x", 'redirected to "127.0.0.1";'),
        (301, None, "redirected to nowhere (no Location header)"),
        (304, None, "redirected to nowhere"),
    ],
)
async def test_redirects_are_errors_and_never_followed(
    method: str, status: int, location: str | None, needle: str
) -> None:
    hits: list[str] = []
    async with make(redirecting(status, location, hits=hits)) as c:
        with pytest.raises(errors.ProtocolError) as exc:
            await c.request(method, f"{TPL}/t1" if method != "POST" else TPL, request_id="r")
    assert needle in str(exc.value)
    assert "no credential went there: check GENESYS_CLOUD_API_URL" in str(exc.value)
    assert [h.split()[0] for h in hits] == ["127.0.0.1", "127.0.0.1"]  # token, then the one


async def test_a_redirect_of_the_token_request_is_not_followed() -> None:
    hits: list[str] = []
    handler = redirecting(307, "https://other.example.com/oauth/token", on_token=True, hits=hits)
    async with make(handler) as c:
        with pytest.raises(errors.ProtocolError) as exc:
            await c.request("GET", "/x")
    assert 'POST /oauth/token -> 307: the server redirected to "other.example.com"' in str(
        exc.value
    )
    assert "check GENESYS_CLOUD_LOGIN_URL" in str(exc.value)
    assert len(hits) == 1 and hits[0].startswith("127.0.0.1 Basic ")


@pytest.mark.parametrize("status", [100, 101, 199])
async def test_an_informational_final_answer_is_an_error(status: int) -> None:
    async with make(redirecting(status, None)) as c:
        with pytest.raises(errors.ProtocolError, match="an informational status, not an answer"):
            await c.request("POST", TPL, request_id="r")


async def test_webhook_redirects_are_reported_not_followed() -> None:
    hosts: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        hosts.append(req.url.host)
        return httpx.Response(302, headers={"location": "https://elsewhere.example.com/x?t=1"})

    msg = await post_webhook(
        "https://hooks.example.com/T0/B0?token=XYZSECRET",
        {},
        transport=httpx.MockTransport(handler),
    )
    assert msg == (
        "webhook https://hooks.example.com/*** answered 302, a redirect to "
        '"elsewhere.example.com"; llmgw does not follow redirects, so nothing was posted there: '
        "use the final URL"
    )
    assert hosts == ["hooks.example.com"]
    # registered by post_webhook: shown as its origin, path (Slack's T0/B0 is a secret) and all
    shown = redact.redact("posted to https://hooks.example.com/T0/B0?token=XYZSECRET")
    assert shown == "posted to https://hooks.example.com/***"


# -- tokens: what the login server may answer ------------------------------------------------
@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"access_token": "abc\ndef-123", "expires_in": 60}, "is not a bearer token"),
        ({"access_token": "tok-ok-12345", "expires_in": "soon"}, 'expires_in is "soon"'),
        ({"access_token": "tok-ok-12345", "expires_in": -5}, "expires_in is -5"),
        ({"access_token": "tok-ok-12345", "expires_in": True}, "expires_in is true"),
        (["access_token"], "the answer is an array, not a token object"),
    ],
)
async def test_token_answers_llmgw_cannot_use(body: Any, needle: str) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=body)

    async with make(handler) as c:
        with pytest.raises(errors.ProtocolError) as exc:
            await c.request("GET", "/x")
    assert needle in str(exc.value) and "abc\ndef" not in str(exc.value)


async def test_a_short_lived_token_is_renewed_halfway_not_on_every_request() -> None:
    minted: list[int] = []

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req, expires=30, n=minted)
        return httpx.Response(200, json={})

    clock = Clock()
    async with make(handler, clock) as c:
        for _ in range(5):
            await c.request("GET", "/x")
        assert len(minted) == 1
        clock.t += 16  # past half of its 30 s
        await c.request("GET", "/x")
    assert len(minted) == 2


# -- redaction -------------------------------------------------------------------------------
TOKEN = "tok-" + "Q7xW9pL2" * 5


async def test_a_token_straddling_the_cut_is_masked_whole() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": TOKEN, "expires_in": 3600})
        # the token sits across the 300-character cut of the message
        return httpx.Response(400, json={"message": "x" * 280 + TOKEN + " tail " + SECRET})

    async with make(handler) as c:
        with pytest.raises(errors.InvalidRequestError) as exc:
            await c.request("GET", "/x")
    text = str(exc.value)
    assert not any(TOKEN[i : i + 8] in text for i in range(len(TOKEN) - 7))
    assert "***" in text and len(exc.value.detail) <= 300
    assert not hasattr(GatewayClient, "_redact")  # one redactor: reconciler.redact


async def test_transport_errors_are_redacted() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": TOKEN, "expires_in": 3600})
        raise httpx.ConnectError(f"proxy said: Authorization: Bearer {TOKEN}; secret {SECRET}")

    async with make(handler, max_attempts=1) as c:
        with pytest.raises(errors.TransportError) as exc:
            await c.request("GET", "/x")
    assert TOKEN not in str(exc.value) and SECRET not in str(exc.value)


def test_the_settings_secret_is_registered_for_library_callers() -> None:
    GatewayClient(Settings(API, API, "cid", "library-secret-value"))
    assert redact.redact("it was library-secret-value") == "it was ***"


def test_request_timeout_from_the_environment() -> None:
    env = {
        "GENESYS_CLOUD_API_URL": "http://127.0.0.1:1",
        "GENESYS_CLOUD_CLIENT_ID": "a",
        "GENESYS_CLOUD_CLIENT_SECRET": SECRET,
    }
    assert Settings.from_env(env).request_timeout == 60.0
    s = Settings.from_env({**env, "LLMGW_REQUEST_TIMEOUT": "2.5"})
    assert s.request_timeout == 2.5 and GatewayClient(s).timeout == 2.5


async def test_a_redirect_names_the_region_when_the_urls_came_from_it() -> None:
    s = Settings(
        "https://api.usw2.pure.cloud",
        "https://login.usw2.pure.cloud",
        "c",
        SECRET,
        "usw2.pure.cloud",
    )
    handler = redirecting(302, "https://elsewhere.example.com/")
    async with GatewayClient(s, transport=httpx.MockTransport(handler)) as c:
        with pytest.raises(errors.ProtocolError, match=r"check GENESYS_CLOUD_REGION$"):
            await c.request("GET", "/x")
