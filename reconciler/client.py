"""The one place that speaks HTTP: settings, OAuth, retries, pacing, paging, error mapping.

Only this module imports httpx. Every failure leaves it as an error of the project's own tree
(``reconciler.errors``), never as an httpx exception, and no message or log line ever holds the
client secret or a bearer token. It knows the wire (headers, status codes, error ``code``s,
paging) but nothing of manifests or plans.

- One pooled ``httpx.AsyncClient`` and one OAuth token per run, renewed 60 s before expiry and
  once on a 401; never minted afresh to escape a rate window. The token endpoint's own rate limit
  (``400 invalid_request``, "rate limit exceeded") is waited out.
- Retries with exponential backoff and full jitter, honouring ``Retry-After``, bounded in tries
  and total time, for 429, 5xx and transport errors; a POST only when it carries an idempotency
  key (``X-Genesys-Request-Id``), kept across its retries.
- Pacing by the ``inin-ratelimit-*`` headers: when little of the window's budget is left, new
  requests are spread over what remains of the window, so a large run slows down before 429s.
- Bounded concurrency, a timeout on every call, both paging styles.
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from reconciler import __version__
from reconciler.endpoints import HEADERS, PAGING, PATHS, REGIONS
from reconciler.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    InvalidRequestError,
    LlmgwError,
    NotFoundError,
    PreconditionFailedError,
    ProcessingError,
    RateLimitError,
    RemoteError,
    ScopeError,
    ServerError,
    TransportError,
)
from reconciler.rules import is_loopback

log = logging.getLogger("llmgw.client")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"})
TRIM = 300


# -- settings ----------------------------------------------------------------------------------
def _check_url(name: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{name} is not an http(s) URL", f"set {name} to e.g. https://api.<domain>"
        )
    if parts.username or parts.password:
        raise ConfigError(
            f"{name} holds credentials in the URL",
            "remove user:password@ and use GENESYS_CLOUD_CLIENT_ID / _SECRET",
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(
            f"{name} uses plain http:// to {parts.hostname}",
            "use https:// (plain http is allowed only to loopback, e.g. the emulator)",
        )
    return url.rstrip("/")


@dataclass(frozen=True)
class Settings:
    """Where and as whom to connect. The secret is never part of str() or repr()."""

    api_url: str
    login_url: str
    client_id: str
    client_secret: str = field(repr=False)
    region: str | None = None

    @property
    def target(self) -> str:
        return self.api_url

    def __str__(self) -> str:
        return f"{self.api_url} as {self.client_id}"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        region = env.get("GENESYS_CLOUD_REGION", "").strip()
        api = env.get("GENESYS_CLOUD_API_URL", "").strip()
        login = env.get("GENESYS_CLOUD_LOGIN_URL", "").strip()
        cid = env.get("GENESYS_CLOUD_CLIENT_ID", "").strip()
        secret = env.get("GENESYS_CLOUD_CLIENT_SECRET", "")
        missing = []
        if not region and not api:
            missing.append("GENESYS_CLOUD_REGION (or GENESYS_CLOUD_API_URL)")
        if not cid:
            missing.append("GENESYS_CLOUD_CLIENT_ID")
        if not secret:
            missing.append("GENESYS_CLOUD_CLIENT_SECRET")
        if missing:
            raise ConfigError(
                "missing environment variable"
                + ("s" if len(missing) > 1 else "")
                + ": "
                + ", ".join(missing),
                "export them (credentials come from the environment only, e.g. CI secrets)",
            )
        if api:
            api = _check_url("GENESYS_CLOUD_API_URL", api)
            if login:
                login = _check_url("GENESYS_CLOUD_LOGIN_URL", login)
            elif is_loopback(urlsplit(api).hostname or ""):
                login = api
            else:
                raise ConfigError(
                    "GENESYS_CLOUD_LOGIN_URL is not set",
                    "set it to the org's login URL, e.g. https://login.<domain>, or use "
                    "GENESYS_CLOUD_REGION",
                )
            return cls(api, login, cid, secret, region or None)
        domain = region.lower().removeprefix("https://").removeprefix("api.").strip("/")
        if domain not in REGIONS:
            raise ConfigError(
                f"unknown GENESYS_CLOUD_REGION {region!r}",
                "use one of " + ", ".join(REGIONS) + "; or set GENESYS_CLOUD_API_URL and "
                "GENESYS_CLOUD_LOGIN_URL",
            )
        return cls(f"https://api.{domain}", f"https://login.{domain}", cid, secret, domain)


# -- responses and metrics ---------------------------------------------------------------------
@dataclass(frozen=True)
class Response:
    status: int
    body: Any
    headers: Mapping[str, str]
    etag: str | None = None
    correlation_id: str | None = None


@dataclass(frozen=True)
class EndpointStats:
    method: str
    endpoint: str
    count: int
    errors: int
    retries: int
    latency_p50_ms: float
    latency_p95_ms: float
    latency_max_ms: float
    latency_total_ms: float


_ID_SEGMENT = re.compile(r"^(?:[0-9a-fA-F-]{16,}|\d+|\d+\.\d+\.\d+[0-9A-Za-z.+-]*)$")


def endpoint_of(path: str) -> str:
    """A path with ids replaced by ``{id}``, so metrics group by endpoint."""
    segs = path.split("?")[0].split("/")
    out = []
    for i, seg in enumerate(segs):
        prev = segs[i - 1] if i else ""
        if seg and (
            _ID_SEGMENT.match(seg)
            or prev in ("prompt-templates", "prompts", "indexes", "versions", "vectorstores")
        ):
            out.append("{id}")
        else:
            out.append(seg)
    return "/".join(out)


class _Stats:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}

    def record(self, method: str, path: str, ms: float, error: bool, retry: bool) -> None:
        row = self.rows.setdefault(
            (method, endpoint_of(path)), {"count": 0, "errors": 0, "retries": 0, "lat": []}
        )
        row["count"] += 1
        row["errors"] += int(error)
        row["retries"] += int(retry)
        row["lat"].append(ms)

    def snapshot(self) -> list[EndpointStats]:
        out = []
        for (method, endpoint), row in sorted(self.rows.items(), key=lambda kv: kv[0][1]):
            lat = sorted(row["lat"])

            def q(p: float, lat: list[float] = lat) -> float:
                return round(lat[min(len(lat) - 1, int(p * len(lat)))], 1) if lat else 0.0

            out.append(
                EndpointStats(
                    method,
                    endpoint,
                    row["count"],
                    row["errors"],
                    row["retries"],
                    q(0.5),
                    q(0.95),
                    round(lat[-1], 1) if lat else 0.0,
                    round(sum(lat), 1),
                )
            )
        return out


# -- errors ------------------------------------------------------------------------------------
_SCOPE_RX = re.compile(r"[a-z][\w-]*(?::[\w-]+){1,3}")


def _body(resp: httpx.Response) -> Any:
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return resp.text


def map_error(
    method: str, path: str, status: int, body: Any, correlation: str | None
) -> RemoteError:
    """The project's error for a gateway answer, branching on status and the error ``code``."""
    code = body.get("code") if isinstance(body, dict) else None
    if isinstance(body, dict):
        detail = str(body.get("message") or body.get("description") or body.get("error") or "")
        details = body.get("details")
        if details and isinstance(details, list):
            detail += " " + "; ".join(str(d) for d in details[:5])
    else:
        detail = str(body or "")
    detail = detail.strip()[:TRIM]
    code = str(code) if code else None
    args = (method, path, status, code, detail, correlation)
    if status in (400, 422):
        return InvalidRequestError(*args)
    if status == 401:
        return AuthError(*args)
    if status == 403:
        m = _SCOPE_RX.search(detail)
        return ScopeError(*args, scope=m.group(0) if m else None)
    if status == 404:
        return NotFoundError(*args)
    if status == 412 or code == "precondition.failed":
        return PreconditionFailedError(*args)
    if status == 409 and code == "index.processing":
        return ProcessingError(*args)
    if status == 409:
        return ConflictError(*args)
    if status == 429:
        return RateLimitError(*args)
    if status >= 500:
        return ServerError(*args)
    return RemoteError(*args)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get(HEADERS.retry_after.lower())
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class _Pacer:
    """Spreads the rest of a rate window's budget over the time left in it.

    The server says how many requests the window allows, how many are used and when it resets.
    While more than a fifth of the budget is left, requests go out freely; below that, each new
    request waits ``reset / remaining`` (so the budget lasts until the reset); with nothing left it
    waits for the reset. The counters are the server's, so several clients sharing a token still
    pace correctly. Requests already holding a slot (sending, or waiting for their turn) count
    against the budget, and no slot is ever reserved past the reset: whoever would wait longer
    waits for the new window, where requests go out freely again.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.allowed: int | None = None
        self.remaining = 0
        self.reset_at = 0.0
        self.next_slot = 0.0

    def observe(self, headers: Mapping[str, str], in_flight: int = 0) -> None:
        """Take the server's counters; requests still in flight will count against them too."""
        try:
            allowed = int(headers[HEADERS.rate_allowed.lower()])
            count = int(headers[HEADERS.rate_count.lower()])
            reset = float(headers[HEADERS.rate_reset.lower()])
        except (KeyError, ValueError):
            return
        if allowed <= 0:
            self.allowed = None
            return
        self.allowed = allowed
        self.remaining = max(0, allowed - count - in_flight)
        # the header is in whole seconds: one more second never sends early into a full window
        self.reset_at = self.clock() + max(0.0, reset) + 1.0

    def delay(self) -> float:
        """Seconds to wait before sending one more request (and reserve its slot)."""
        if self.allowed is None:
            return 0.0
        now = self.clock()
        if now >= self.reset_at:
            self.allowed = None
            return 0.0
        left = self.reset_at - now
        if self.remaining <= 0:
            return left
        if self.remaining > self.allowed / 5:
            self.remaining -= 1
            return 0.0
        spacing = left / self.remaining
        slot = min(max(now, self.next_slot), self.reset_at)
        self.next_slot = slot + spacing
        self.remaining -= 1
        return slot - now


# -- the client --------------------------------------------------------------------------------
class GatewayClient:
    """One run's connection to the gateway. Use as ``async with GatewayClient(...) as c``."""

    def __init__(
        self,
        settings: Settings,
        *,
        parallelism: int = 8,
        read_only: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        max_attempts: int = 5,
        max_retry_seconds: float = 120.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 20.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.settings = settings
        self.read_only = read_only
        self.max_attempts = max(1, max_attempts)
        self.max_retry_seconds = max_retry_seconds
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.sleep = sleep
        self.clock = clock
        self.random = random
        self._sem = asyncio.Semaphore(max(1, parallelism))
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=timeout,
            headers={"User-Agent": f"llmgw/{__version__}", "Accept": "application/json"},
            limits=httpx.Limits(max_connections=max(1, parallelism) + 2),
            follow_redirects=False,
        )
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = asyncio.Lock()
        self._pacer = _Pacer(clock)
        self._stats = _Stats()
        self.requests_sent = 0
        self.token_requests = 0
        self._in_flight = 0

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

    def _redact(self, text: str) -> str:
        for s in (self.settings.client_secret, self._token):
            if s and len(s) >= 4:
                text = text.replace(s, "***")
        return text

    # -- token --
    async def _get_token(self, *, renew: bool = False) -> str:
        async with self._token_lock:
            if not renew and self._token and self.clock() < self._token_expires - 60:
                return self._token
            self._token = None
            url = self.settings.login_url + PATHS.token
            deadline = self.clock() + self.max_retry_seconds
            attempt = 0
            while True:
                attempt += 1
                self.token_requests += 1
                try:
                    resp = await self._http.post(
                        url,
                        data={"grant_type": "client_credentials"},
                        auth=(self.settings.client_id, self.settings.client_secret),
                    )
                except httpx.HTTPError as exc:
                    if attempt < self.max_attempts and self.clock() < deadline:
                        await self._backoff(attempt, None, "POST", PATHS.token, type(exc).__name__)
                        continue
                    raise TransportError(
                        "POST",
                        PATHS.token,
                        None,
                        None,
                        self._redact(f"{type(exc).__name__}: {exc}")[:TRIM],
                        None,
                    ) from None
                body = _body(resp)
                limited = resp.status_code == 400 and "rate limit" in str(body).lower()
                if (limited or resp.status_code in RETRY_STATUSES) and (
                    attempt < self.max_attempts and self.clock() < deadline
                ):
                    wait = _retry_after(resp.headers)
                    if limited and wait is None:
                        wait = min(60.0, self.backoff_cap * attempt)
                    await self._backoff(attempt, wait, "POST", PATHS.token, str(resp.status_code))
                    continue
                if resp.status_code != 200 or not isinstance(body, dict):
                    raise AuthError(
                        "POST",
                        PATHS.token,
                        resp.status_code,
                        str(body.get("error")) if isinstance(body, dict) else None,
                        f"the login server refused the client credentials of client "
                        f"{self.settings.client_id!r}; check GENESYS_CLOUD_CLIENT_ID and "
                        "GENESYS_CLOUD_CLIENT_SECRET (and GENESYS_CLOUD_LOGIN_URL)",
                        resp.headers.get(HEADERS.correlation_id),
                    )
                token = body.get("access_token")
                if not isinstance(token, str) or not token:
                    raise AuthError(
                        "POST",
                        PATHS.token,
                        resp.status_code,
                        None,
                        "the login server answered without an access_token",
                        None,
                    )
                try:
                    lifetime = float(body.get("expires_in", 86400))
                except (TypeError, ValueError):
                    lifetime = 86400.0
                self._token = token
                self._token_expires = self.clock() + lifetime
                return token

    async def _backoff(
        self, attempt: int, retry_after: float | None, method: str, path: str, what: str
    ) -> None:
        delay = (
            retry_after
            if retry_after is not None
            else self.random() * min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        )
        log.debug(
            "attempt %d/%d: %s %s -> %s (retrying in %.2fs)",
            attempt + 1,
            self.max_attempts,
            method,
            path,
            what,
            delay,
        )
        await self.sleep(delay)

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
    ) -> Response:
        method = method.upper()
        if self.read_only and method not in ("GET", "HEAD"):
            raise LlmgwError(
                f"refusing to send {method} {path}: this run is read-only (drift, plan and "
                "export never write)"
            )
        hdrs = dict(headers or {})
        if request_id:
            hdrs[HEADERS.request_id] = request_id
        retryable = method in IDEMPOTENT or (method == "POST" and bool(request_id))
        deadline = self.clock() + self.max_retry_seconds
        attempt = 0
        limited = 0
        renewed = False
        while True:
            attempt += 1
            token = await self._get_token()
            hdrs["Authorization"] = f"Bearer {token}"
            async with self._sem:
                self._in_flight += 1  # from here on it holds a slot of the window's budget
                try:
                    wait = self._pacer.delay()
                    if wait > 0:
                        log.debug("pacing: waiting %.2fs for the rate window", wait)
                        await self.sleep(wait)
                    self.requests_sent += 1
                    started = self.clock()  # latency is the request's, not the queue's
                    resp = await self._http.request(
                        method,
                        self.settings.api_url + path,
                        params=params,
                        json=json,
                        headers=hdrs,
                    )
                    body = _body(resp)
                except httpx.HTTPError as exc:
                    ms = (self.clock() - started) * 1000
                    self._stats.record(method, path, ms, True, attempt > 1)
                    what = type(exc).__name__
                    if retryable and attempt < self.max_attempts and self.clock() < deadline:
                        await self._backoff(attempt, None, method, path, what)
                        continue
                    raise TransportError(
                        method,
                        path,
                        None,
                        None,
                        self._redact(f"{what}: {exc}")[:TRIM] or what,
                        None,
                    ) from None
                finally:
                    self._in_flight -= 1
            ms = (self.clock() - started) * 1000
            status = resp.status_code
            self._pacer.observe(resp.headers, self._in_flight)
            self._stats.record(method, path, ms, status >= 400, attempt > 1)
            correlation = resp.headers.get(HEADERS.correlation_id)
            if status == 401 and not renewed:
                renewed = True
                await self._get_token(renew=True)
                attempt -= 1
                continue
            if status == 429 and retryable and limited < 3 * self.max_attempts:
                # the server said when to come back: waiting is safe, so a 429 costs no attempt
                # (bounded by its own count and the total time instead)
                limited += 1
                attempt -= 1
                if self.clock() < deadline:
                    await self._backoff(
                        limited, _retry_after(resp.headers), method, path, str(status)
                    )
                    continue
            if (
                status in RETRY_STATUSES
                and retryable
                and (attempt < self.max_attempts and self.clock() < deadline)
            ):
                await self._backoff(attempt, _retry_after(resp.headers), method, path, str(status))
                continue
            if status >= 400:
                err = map_error(method, path, status, body, correlation)
                err.detail = self._redact(err.detail)
                raise err
            etag = resp.headers.get(HEADERS.etag.lower())
            if etag is None and isinstance(body, dict) and isinstance(body.get("etag"), str):
                etag = body["etag"]
            return Response(status, body, dict(resp.headers), etag, correlation)

    # -- paging --
    async def list_pages(self, path: str, *, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Every entity of a page-number collection: page 1, then the rest concurrently."""
        base = dict(params or {})
        size = PAGING.max_page_size

        async def page(n: int) -> dict[str, Any]:
            resp = await self.request(
                "GET", path, params={**base, PAGING.page_size: size, PAGING.page_number: n}
            )
            if not isinstance(resp.body, dict):
                raise RemoteError(
                    "GET", path, resp.status, None, "not a paged answer", resp.correlation_id
                )
            return resp.body

        first = await page(1)
        entities = list(first.get(PAGING.entities) or [])
        pages = first.get(PAGING.page_count) or first.get(PAGING.num_pages)
        if not pages and first.get(PAGING.total) is not None:
            pages = -(-int(first[PAGING.total]) // size)
        pages = int(pages or 1)
        rest = await asyncio.gather(*(page(n) for n in range(2, pages + 1)))
        for body in rest:
            entities.extend(body.get(PAGING.entities) or [])
        return entities

    async def list_cursor(self, path: str, *, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Every entity of a cursor-paged collection, following ``nextPageCursor``."""
        base = {**(params or {}), PAGING.page_size: PAGING.max_page_size}
        out: list[Any] = []
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            q = dict(base)
            if cursor:
                q[PAGING.cursor] = cursor
            resp = await self.request("GET", path, params=q)
            body = resp.body if isinstance(resp.body, dict) else {}
            out.extend(body.get(PAGING.entities) or [])
            cursor = body.get(PAGING.next_cursor)
            if not cursor or cursor in seen:
                return out
            seen.add(cursor)


def _safe_url(url: str) -> str:
    p = urlsplit(url)
    return f"{p.scheme}://{p.hostname}{f':{p.port}' if p.port else ''}{p.path}"


async def post_webhook(
    url: str,
    payload: Any,
    *,
    attempts: int = 3,
    timeout: float = 10.0,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> str | None:
    """POST ``payload`` as JSON. None on success, else a short message. Never raises; the URL's
    query and user info (webhook URLs often embed tokens) never appear in the message."""
    try:
        parts = urlsplit(url)
        shown = _safe_url(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return f"webhook URL {shown!r} is not an http(s) URL"
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            return f"webhook {shown} refused: plain http is allowed only to loopback"
    except ValueError:
        return "webhook URL is not a valid URL"
    last = ""
    async with httpx.AsyncClient(transport=transport, timeout=timeout) as http:
        for attempt in range(1, max(1, attempts) + 1):
            try:
                resp = await http.post(url, json=payload)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}"
            except Exception as exc:  # never fatal to the run that reports
                return f"webhook {shown} failed: {type(exc).__name__}"
            else:
                if resp.status_code < 300:
                    return None
                last = f"HTTP {resp.status_code}"
                if resp.status_code not in RETRY_STATUSES:
                    break
            if attempt < attempts:
                await sleep(min(10.0, 0.5 * 2 ** (attempt - 1)))
    return f"webhook {shown} failed after {attempt} attempt{'s' if attempt > 1 else ''}: {last}"
