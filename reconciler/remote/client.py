"""The gateway client: one run's pooled connection, and ``request`` with its whole discipline.

It exists to hold together what each request goes through, in order: the read-only refusal
(before anything is sent), bounded concurrency (``parallelism``), pacing (``remote.pacing``),
the token of every attempt and its one renewal on a 401 (``remote.auth``), one attempt within
its deadline, the answer read within its bounds (``remote.answers``), retries with backoff
(``remote.retries``): 429, 5xx, transport errors and attempts past their deadline, a POST only
when it carries an idempotency key (``X-Genesys-Request-Id``, kept across its retries), what the
status means (``remote.errors``), and the endpoint statistics (``remote.stats``). Listings page
through ``remote.paging``.

Every answer is bounded in time: one deadline per attempt (``timeout``, default 60 s,
``LLMGW_REQUEST_TIMEOUT``) covers connecting, the headers and the whole body, so a server
dripping a byte a second cannot stretch it (httpx's own timeouts apply per read). Redirects are
never followed, so no credential ever goes to the host a server names.

It must not let an httpx exception out (every failure leaves as an error of
``reconciler.errors``), show the client secret or a bearer token (both are registered with
``reconciler.redact`` as soon as the client holds them; every detail is clipped through
``redact.clip``), or know anything of manifests or plans.
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx

from reconciler import __version__, redact
from reconciler.endpoints import HEADERS, QUERIES
from reconciler.errors import LlmgwError, ProtocolError, RunStopped, TransportError
from reconciler.remote import paging
from reconciler.remote.answers import (
    MAX_BODY,
    MAX_ERROR_BODY,
    Answer,
    AttemptFailed,
    Response,
    Unreadable,
    lenient,
    parse_json,
    read_body,
)
from reconciler.remote.auth import Auth, TokenStore
from reconciler.remote.errors import (
    TRIM,
    check_read,
    check_written,
    map_error,
    redirect_error,
    server_token,
    write_endpoint,
)
from reconciler.remote.pacing import Pacer
from reconciler.remote.retries import IDEMPOTENT, RETRY_STATUSES, Retries, retry_after
from reconciler.remote.settings import Settings, variable_to_check
from reconciler.remote.stats import EndpointStats, Stats
from reconciler.text import ETAG_MAX, http_date, shown, visible_ascii

log = logging.getLogger("llmgw.client")


class GatewayClient:
    """One run's connection to the gateway. Use as ``async with GatewayClient(...) as c``.

    ``timeout`` is the deadline of each attempt (default: the settings' ``request_timeout``);
    ``deadline`` makes the context manager that enforces it (``asyncio.timeout``; tests pass a
    fake-clock one). ``max_body`` bounds each answer's body in bytes. The retry policy
    (``max_attempts``, ``max_retry_seconds``, ``backoff_base``, ``backoff_cap``, ``random``) is
    ``retries``."""

    def __init__(
        self,
        settings: Settings,
        *,
        parallelism: int = 8,
        read_only: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float | None = None,
        max_attempts: int = 5,
        max_retry_seconds: float = 120.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 20.0,
        max_body: int = MAX_BODY,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
        deadline: Callable[[float], AbstractAsyncContextManager[Any]] = asyncio.timeout,
        tokens: TokenStore | None = None,
    ) -> None:
        self.settings = settings
        self.tokens = tokens if tokens is not None else TokenStore()
        self.read_only = read_only
        self.parallelism = max(1, parallelism)
        self.timeout = float(timeout if timeout is not None else settings.request_timeout)
        self.retries = Retries(
            attempts=max(1, max_attempts),
            budget=max_retry_seconds,
            base=backoff_base,
            cap=backoff_cap,
            sleep=sleep,
            clock=clock,
            random=random,
        )
        self.max_body = max_body
        self.sleep = sleep
        self.clock = clock
        self.deadline = deadline
        self._auth = Auth(
            settings, self.tokens, send=self._exchange, retries=self.retries, clock=clock
        )
        self._sem = asyncio.Semaphore(self.parallelism)
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=self.timeout,
            headers={
                HEADERS.user_agent: f"llmgw/{__version__}",
                HEADERS.accept: "application/json",
                # what answers.Decoder undoes with a bound; httpx would also offer br and zstd
                # when their packages happen to be installed, and inflate them unbounded
                HEADERS.accept_encoding: "gzip, deflate",
            },
            limits=httpx.Limits(max_connections=self.parallelism + 2),
            follow_redirects=False,
        )
        self._pacer = Pacer(clock)
        self._stats = Stats()
        self._server_date: tuple[float, float] | None = None  # (the Date header, our clock then)
        self.requests_sent = 0
        self._in_flight = 0

    @property
    def token_requests(self) -> int:
        """Token requests this client sent (retries included)."""
        return self._auth.requests

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        try:
            await self._http.aclose()
        except Exception:  # closing must never mask the run's own outcome
            log.debug("closing the HTTP client failed", exc_info=True)

    def metrics(self) -> list[EndpointStats]:
        return self._stats.snapshot()

    # -- one attempt --
    async def _exchange(self, method: str, url: str, **kwargs: Any) -> Answer:
        """Send once and read the answer, all within the attempt's deadline. Raises
        ``AttemptFailed`` (an httpx error or the deadline: the caller may retry) or
        ``Unreadable``. A 1xx or 3xx answer's body is never read; an error's is read up to
        ``MAX_ERROR_BODY``."""
        try:
            async with (
                self.deadline(self.timeout),
                self._http.stream(method, url, follow_redirects=False, **kwargs) as resp,
            ):
                status = resp.status_code
                if 200 <= status < 300:
                    try:
                        content = await read_body(resp, self.max_body, strict=True)
                    except Unreadable as exc:
                        exc.status = status
                        raise
                elif status >= 400:
                    try:
                        content = await read_body(resp, MAX_ERROR_BODY, strict=False)
                    except Unreadable:
                        content = b""
                else:
                    content = b""
                self._note_date(resp.headers.get(HEADERS.date))
                return Answer(status, resp.headers, content)
        except (httpx.HTTPError, TimeoutError) as exc:
            raise AttemptFailed(self._failed(exc)) from None

    def _note_date(self, value: str | None) -> None:
        when = http_date(value)
        if when is not None:
            self._server_date = (when, self.clock())

    def server_time(self) -> float | None:
        """The server's clock now (epoch seconds): the last answer's ``Date`` header plus the
        time since; None before any answer carried one. Anything several runners must agree on
        (how long a rollout step has run) is measured on it, never on this machine's clock."""
        if self._server_date is None:
            return None
        when, at = self._server_date
        return when + (self.clock() - at)

    def _failed(self, exc: BaseException) -> str:
        if isinstance(exc, TimeoutError):
            return (
                f"no complete answer within {self.timeout:g} s (the deadline of each attempt, "
                "set by LLMGW_REQUEST_TIMEOUT)"
            )
        return redact.clip(f"{type(exc).__name__}: {exc}".rstrip(": "), TRIM)

    # -- requests --
    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
        may_send: Callable[[], bool] | None = None,
    ) -> Response:
        """One request, retried as the module docstring says. ``may_send`` is asked just before
        each attempt goes on the wire (after pacing and backoff waits): False raises
        ``RunStopped``, so a stopped run sends nothing it had not sent already."""
        method = method.upper()
        query = (method, path) in QUERIES
        if self.read_only and method not in ("GET", "HEAD") and not query:
            raise LlmgwError(
                f"refusing to send {method} {path}: this run is read-only (drift, plan and "
                "export never write)"
            )
        write = write_endpoint(method, path) if method not in ("GET", "HEAD") else None
        hdrs = dict(headers or {})
        if request_id:
            hdrs[HEADERS.request_id] = request_id
        retryable = method in IDEMPOTENT or query or (method == "POST" and bool(request_id))
        url = self.settings.api_url + path
        retries = self.retries
        deadline = retries.deadline()
        flow = self._auth.flow()
        attempt = 0
        limited = 0
        while True:
            attempt += 1
            await flow.authorize(hdrs)
            failure: str | None = None
            async with self._sem:
                self._in_flight += 1  # from here on it holds a slot of the window's budget
                try:
                    wait = self._pacer.delay()
                    if wait > 0:
                        log.debug("pacing: waiting %.2fs for the rate window", wait)
                        await self.sleep(wait)
                    if may_send is not None and not may_send():
                        raise RunStopped(method, path)
                    self.requests_sent += 1
                    started = self.clock()  # latency is the request's, not the queue's
                    try:
                        answer = await self._exchange(
                            method, url, params=params, json=json, headers=hdrs
                        )
                    except AttemptFailed as exc:
                        failure = exc.what
                    except Unreadable as exc:
                        self._stats.record(method, path, self._ms(started), True, attempt > 1)
                        raise ProtocolError(
                            method, path, exc.status, None, redact.clip(str(exc), TRIM)
                        ) from None
                    except httpx.InvalidURL as exc:
                        raise TransportError(
                            method, path, None, None, redact.clip(f"invalid URL: {exc}", TRIM)
                        ) from None
                finally:
                    self._in_flight -= 1
            ms = self._ms(started)
            if failure is not None:
                self._stats.record(method, path, ms, True, attempt > 1)
                if (
                    retryable
                    and attempt < retries.attempts
                    and await retries.wait(attempt, None, method, path, failure, deadline)
                ):
                    continue
                tries = f" (after {attempt} attempts)" if attempt > 1 else ""
                raise TransportError(method, path, None, None, failure + tries, None) from None
            status = answer.status
            self._pacer.observe(answer.headers, self._in_flight)
            self._stats.record(method, path, ms, not 200 <= status < 300, attempt > 1)
            raw_correlation = answer.headers.get(HEADERS.correlation_id)
            correlation = server_token(raw_correlation)
            if status < 200:
                raise ProtocolError(
                    method, path, status, None, "an informational status, not an answer"
                )
            if 300 <= status < 400:
                raise redirect_error(
                    method,
                    path,
                    status,
                    answer.headers.get(HEADERS.location.lower()),
                    url,
                    variable_to_check(self.settings, "API"),
                )
            if await flow.renewed(status):
                attempt -= 1
                continue
            if status == 429 and retryable and limited < 3 * retries.attempts:
                # the server said when to come back: waiting is safe, so a 429 costs no attempt
                # (bounded by its own count and the total time instead)
                limited += 1
                attempt -= 1
                if await retries.wait(
                    limited, retry_after(answer.headers), method, path, str(status), deadline
                ):
                    continue
            if (
                status in RETRY_STATUSES
                and retryable
                and attempt < retries.attempts
                and await retries.wait(
                    attempt, retry_after(answer.headers), method, path, str(status), deadline
                )
            ):
                continue
            if status >= 400:
                raise map_error(method, path, status, lenient(answer.content), raw_correlation)
            try:
                body = parse_json(answer.content)
            except Unreadable as exc:
                raise ProtocolError(
                    method, path, status, None, redact.clip(str(exc), TRIM), correlation
                ) from None
            if write is None:
                check_read(method, path, status, correlation)
            else:
                check_written(method, path, status, body, *write)
            etag = self._etag(method, path, status, answer.headers, body, correlation)
            return Response(status, body, dict(answer.headers), etag, correlation)

    def _ms(self, started: float) -> float:
        return (self.clock() - started) * 1000

    @staticmethod
    def _etag(
        method: str,
        path: str,
        status: int,
        headers: httpx.Headers,
        body: Any,
        correlation: str | None,
    ) -> str | None:
        """The answer's entity tag (its ETag header, else the body's ``etag``), if it is one."""
        etag = headers.get(HEADERS.etag.lower())
        if etag is None and isinstance(body, dict) and isinstance(body.get("etag"), str):
            etag = body["etag"]
        if etag is not None and not visible_ascii(etag, ETAG_MAX):
            raise ProtocolError(
                method,
                path,
                status,
                None,
                redact.clip(f"the ETag {shown(etag)} is not an entity tag", TRIM),
                correlation,
            )
        return etag

    # -- paging --
    async def list_pages(
        self, path: str, *, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Every entity of a page-number collection (``remote.paging.list_pages``)."""
        return await paging.list_pages(
            self._getter(path), path, params, parallelism=self.parallelism
        )

    async def list_cursor(
        self, path: str, *, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Every entity of a cursor-paged collection (``remote.paging.list_cursor``)."""
        return await paging.list_cursor(self._getter(path), path, params)

    def _getter(self, path: str) -> paging.Get:
        async def get(params: Mapping[str, Any]) -> Response:
            return await self.request("GET", path, params=params)

        return get
