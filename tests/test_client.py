"""The client at its boundary, against httpx.MockTransport fakes of the contract.

Covers: settings from the environment (regions, explicit URLs, http refused off loopback, every
missing variable named at once, the secret never in str/repr/errors); one token per run, renewed
60 s before expiry and once on a 401; the token endpoint's rate-limit 400 waited out; retries
with Retry-After and bounded full jitter; a POST retried only with its request id (kept across
retries); the error mapping table; no httpx exception escaping; the read-only client refusing
writes before sending; pacing by the rate-limit headers; bounded concurrency; both paging
styles; per-endpoint metrics; the webhook never raising and never showing a URL's secrets.
"""

from __future__ import annotations

import asyncio
import heapq
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from reconciler import errors
from reconciler.client import GatewayClient, Settings, endpoint_of, post_webhook
from reconciler.endpoints import PATHS
from reconciler.errors import ConfigError

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
        ({"GENESYS_CLOUD_API_URL": "http://api.example.com"}, "plain http://"),
        ({"GENESYS_CLOUD_API_URL": "https://api.example.com"}, "GENESYS_CLOUD_LOGIN_URL"),
        ({"GENESYS_CLOUD_API_URL": "https://u:p@api.example.com"}, "credentials in the URL"),
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
        body: dict[str, Any] = {"entities": [cur, cur + 1]}
        if cur < 4:
            body["nextPageCursor"] = str(cur + 2)
        return httpx.Response(200, json=body)

    async with make(handler) as c:
        assert await c.list_cursor("/t") == [0, 1, 2, 3, 4, 5]


async def test_metrics_group_by_endpoint() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req)
        return httpx.Response(200 if "b1" in req.url.path else 404, json={})

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
    assert msg is not None and "XYZSECRET" not in msg and "hooks.example.com/T0/B0" in msg
    assert "plain http" in (await post_webhook("http://hooks.example.com/x", {}) or "")
