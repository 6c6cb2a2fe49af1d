"""The one place that speaks HTTP: settings, OAuth, retries, pacing, paging, error mapping.

Only this module imports httpx. Every failure leaves it as an error of the project's own tree
(``reconciler.errors``), never as an httpx exception, and no message or log line ever holds the
client secret or a bearer token: both are registered with ``reconciler.redact`` as soon as the
client holds them, and every detail it raises is clipped through ``redact.clip``. It knows the
wire (headers, status codes, error ``code``s, paging) but nothing of manifests or plans.

- One pooled ``httpx.AsyncClient`` and one OAuth token per run, renewed 60 s before expiry and
  once on a 401; never minted afresh to escape a rate window. The token endpoint's own rate limit
  (``400 invalid_request``, "rate limit exceeded") is waited out.
- Retries with exponential backoff and full jitter, honouring ``Retry-After``, bounded in tries
  and total time, for 429, 5xx, transport errors and attempts past their deadline; a POST only
  when it carries an idempotency key (``X-Genesys-Request-Id``), kept across its retries.
- Pacing by the ``inin-ratelimit-*`` headers: when little of the window's budget is left, new
  requests are spread over what remains of the window, so a large run slows down before 429s.
- Bounded concurrency, both paging styles.

Every answer is bounded, so a hostile or broken server can make a run fail but never hang it or
exhaust its memory (each bound is a ``ProtocolError`` or ``TransportError``, exit 1):

- time: one deadline per attempt (``timeout``, default 60 s, ``LLMGW_REQUEST_TIMEOUT``) covers
  connecting, the headers and the whole body, so a server dripping a byte a second cannot
  stretch it (httpx's own timeouts apply per read);
- size: a body is streamed and dropped past ``MAX_BODY`` (a declared ``Content-Length`` past it
  is refused unread), after undoing gzip/deflate with the same bound (httpx inflates a chunk
  whole); JSON nested deeper than ``MAX_DEPTH``, numbers past Python's digit limit or not finite,
  duplicate keys, invalid UTF-8 and a non-JSON body where JSON is promised are refused;
- count: a page-number listing is checked against its own ``total`` / ``pageSize`` /
  ``pageCount``, holds at most ``MAX_PAGES`` pages, and its later pages are fetched through a
  window of ``parallelism`` requests (never one coroutine per claimed page); a cursor listing
  refuses a cursor that repeats or is not a string, and stops at ``MAX_PAGES`` too;
- status: a read succeeds with 200 only, a write only with the statuses the endpoint table
  documents for it (``endpoints.WRITES``), its answer the object it wrote. A 1xx or 3xx is an
  error: redirects are never followed, so no credential ever goes to the host a server names.
"""

from __future__ import annotations

import asyncio
import json as _json
import logging
import math
import random as _random
import re
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from reconciler import __version__, redact
from reconciler.aio import window
from reconciler.endpoints import HEADERS, PAGING, PATHS, READ_SUCCESS, REGIONS, WRITES, Write
from reconciler.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    InvalidRequestError,
    LlmgwError,
    NotFoundError,
    PreconditionFailedError,
    ProcessingError,
    ProtocolError,
    RateLimitError,
    RemoteError,
    RunStopped,
    ScopeError,
    ServerError,
    TransportError,
)
from reconciler.text import NAME, kind_of, shown, visible
from reconciler.urls import UrlProblem, check, is_loopback, segment_problem

log = logging.getLogger("llmgw.client")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"})
TRIM = 300  # characters of a server's message in an error

DEFAULT_TIMEOUT = 60.0  # seconds per attempt: connect, headers and the whole body
MAX_TIMEOUT = 3600.0
MAX_BODY = 32 * 1024 * 1024  # bytes of one answer's body, after Content-Encoding is undone
MAX_ERROR_BODY = 64 * 1024  # bytes read of an error's body (only TRIM characters are shown)
MAX_DEPTH = 64  # levels of nesting in one JSON answer (a listing's envelope is two of them)
MAX_PAGES = 10_000  # pages of one listing (a million objects at 100 a page)
MAX_CURSOR = 4096  # characters of a paging cursor (it is sent back in the query string)
MAX_WINDOW = 300.0  # seconds a rate window is taken to last at most (the contract's is 60)
_CHUNK = 64 * 1024  # bytes inflated at a time


# -- settings ----------------------------------------------------------------------------------
def _check_url(name: str, url: str) -> str:
    try:
        parsed = check(url, what=name)
    except UrlProblem as exc:
        raise ConfigError(
            f"{name} {exc}",
            f"set {name} to e.g. https://api.<domain>, or use GENESYS_CLOUD_REGION",
        ) from None
    if parsed.query or "#" in url:
        raise ConfigError(
            f"{name} has a query or fragment", f"set {name} to the bare URL, without ?... or #..."
        )
    return url.rstrip("/")


def _seconds(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (0 < value <= MAX_TIMEOUT):
        raise ConfigError(
            f"{name} {shown(raw)} is not a number of seconds between 0 and {MAX_TIMEOUT:.0f}",
            f"set it to e.g. {DEFAULT_TIMEOUT:.0f}, or unset it for the default",
        )
    return value


@dataclass(frozen=True)
class Settings:
    """Where and as whom to connect. The secret is never part of str() or repr().

    ``request_timeout`` is the deadline of each request attempt in seconds (connect, headers and
    the whole body), from ``LLMGW_REQUEST_TIMEOUT``."""

    api_url: str
    login_url: str
    client_id: str
    client_secret: str = field(repr=False)
    region: str | None = None
    request_timeout: float = DEFAULT_TIMEOUT

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
        redact.register(secret)
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
        timeout_raw = env.get("LLMGW_REQUEST_TIMEOUT", "").strip()
        timeout = _seconds("LLMGW_REQUEST_TIMEOUT", timeout_raw) if timeout_raw else DEFAULT_TIMEOUT
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
            return cls(api, login, cid, secret, region or None, timeout)
        domain = region.lower().removeprefix("https://").removeprefix("api.").strip("/")
        if domain not in REGIONS:
            raise ConfigError(
                f"unknown GENESYS_CLOUD_REGION {shown(region)}",
                "use one of " + ", ".join(REGIONS) + "; or set GENESYS_CLOUD_API_URL and "
                "GENESYS_CLOUD_LOGIN_URL",
            )
        return cls(f"https://api.{domain}", f"https://login.{domain}", cid, secret, domain, timeout)


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


_ID_SEGMENT = re.compile(r"^(?:[0-9a-fA-F-]{16,}|\d+|\d+\.\d+\.\d+[0-9A-Za-z.+%-]*)$")


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


# -- reading an answer -------------------------------------------------------------------------
class _Unreadable(Exception):
    """Why a body cannot be read; the caller turns it into a ProtocolError with the endpoint."""

    status: int | None = None


class _Decoder:
    """A Content-Encoding undone with a bound on the output: httpx's decoders inflate each
    received chunk whole, and a 64 KiB chunk of gzip can inflate to 64 MiB."""

    def __init__(self, encoding: str) -> None:
        enc = encoding.strip().lower()
        self._raw_deflate_tried = False
        if enc in ("", "identity"):
            self._z: Any = None
        elif enc in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif enc == "deflate":
            self._z = zlib.decompressobj()
        else:
            raise _Unreadable(
                f"the body is encoded as {shown(encoding)}, which llmgw did not ask for "
                "(it accepts gzip and deflate)"
            )
        self._deflate = enc == "deflate"

    def feed(self, data: bytes, room: int) -> bytes:
        """The decoded bytes of ``data``: at most ``room`` + 1 of them (one more means too
        many)."""
        if self._z is None:
            return data
        out = bytearray()
        while data and len(out) <= room:
            try:
                piece = self._z.decompress(data, min(room + 1 - len(out), _CHUNK))
            except zlib.error:
                if self._deflate and not self._raw_deflate_tried and not out:
                    # "deflate" is zlib-wrapped by the RFC and raw in practice: accept both
                    self._raw_deflate_tried = True
                    self._z = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise _Unreadable("the compressed body is corrupt") from None
            self._raw_deflate_tried = True
            out += piece
            data = self._z.unconsumed_tail
            if not piece:
                break
        return bytes(out)


async def _read_body(resp: httpx.Response, limit: int, *, strict: bool) -> bytes:
    """The decoded body, at most ``limit`` bytes. ``strict``: a longer body is ``_Unreadable``
    (an answer llmgw must read whole); otherwise it is cut (an error's message)."""

    def too_large(n: int | None) -> _Unreadable:
        size = f"{n:,} bytes" if n is not None else "more"
        mib = f" ({limit // 2**20} MiB)" if limit >= 2**20 else ""
        return _Unreadable(
            f"the body is {size}; llmgw reads at most {limit:,} bytes{mib} of an answer"
        )

    if resp.is_stream_consumed:  # an in-process transport built the whole answer in memory
        content = resp.content
        if len(content) > limit:
            if strict:
                raise too_large(len(content))
            content = content[:limit]
        return content
    declared = resp.headers.get("content-length", "")
    if strict and declared.isdigit() and int(declared) > limit:
        raise too_large(int(declared))
    decoder = _Decoder(resp.headers.get("content-encoding", ""))
    buf = bytearray()
    async for chunk in resp.aiter_raw():
        buf += decoder.feed(chunk, limit - len(buf))
        if len(buf) > limit:
            if strict:
                raise too_large(None)
            del buf[limit:]
            break
    return bytes(buf)


class _JsonProblem(ValueError):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                # parsers disagree on which of two values wins: llmgw reads neither
                raise _JsonProblem(f"an object has the key {shown(key)} twice")
            seen.add(key)
    return obj


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _JsonProblem(f"the number {shown(text)} is out of range")
    return value


def _constant(text: str) -> Any:
    raise _JsonProblem(f"{text} is not JSON")


def _too_deep(value: Any) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            values: Any = item.values()
        elif isinstance(item, list):
            values = item
        else:
            continue
        if depth > MAX_DEPTH:
            return True
        stack.extend((v, depth + 1) for v in values if isinstance(v, dict | list))
    return False


def parse_json(content: bytes) -> Any:
    """The JSON value of an answer's body (None when empty), or ``_Unreadable`` saying why not.

    Strict where parsers disagree or Python would fail later: UTF-8 only (a byte-order mark is
    skipped), no duplicate keys, no NaN/Infinity or numbers beyond a float's range, integers
    within Python's digit limit, at most ``MAX_DEPTH`` levels of nesting."""
    if not content or content.isspace():
        return None
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Unreadable(f"the body is not valid UTF-8 (at byte {exc.start:,})") from None
    try:
        value = _json.loads(
            text.removeprefix("\ufeff"),
            object_pairs_hook=_object,
            parse_float=_finite,
            parse_constant=_constant,
        )
    except _JsonProblem as exc:
        raise _Unreadable(str(exc)) from None
    except RecursionError:
        raise _Unreadable(f"the JSON is nested deeper than {MAX_DEPTH} levels") from None
    except _json.JSONDecodeError as exc:
        raise _Unreadable(
            f"the body is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): "
            f"{shown(text[:200])}"
        ) from None
    except ValueError:  # int(): more digits than sys.get_int_max_str_digits()
        raise _Unreadable("a number in the body has more digits than llmgw reads") from None
    if _too_deep(value):
        raise _Unreadable(f"the JSON is nested deeper than {MAX_DEPTH} levels")
    return value


# -- errors ------------------------------------------------------------------------------------
_SCOPE_RX = re.compile(r"[a-z][\w-]*(?::[\w-]+){1,3}")
_TOKEN_RX = re.compile(r"^[\w.:@/+=~-]{1,128}$")  # an error code or correlation id as is


def _server_token(value: Any) -> str | None:
    """A short server token (error code, correlation id) fit to print, quoted when odd."""
    if value is None or value == "":
        return None
    text = value if isinstance(value, str) else _json.dumps(value, default=str)[:NAME]
    return text if _TOKEN_RX.match(text) else shown(text, NAME)


def _clip(text: str) -> str:
    """A server's text as llmgw shows it: invisible characters escaped, secrets masked, at most
    ``TRIM`` characters (``redact.clip`` masks before it cuts, so no secret is cut in half)."""
    return redact.clip(visible(text[: TRIM * 8]).strip(), TRIM)


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
    detail = _clip(detail)
    code = _server_token(code)
    args = (method, path, status, code, detail, _server_token(correlation))
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
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _redirect_target(location: str | None, url: str) -> tuple[str, bool]:
    """The host a redirect names (shown quoted), and whether it is the request's own origin."""
    if not location:
        return "nowhere (no Location header)", False
    try:
        resolved = urlsplit(urljoin(url, location))
        here = urlsplit(url)
        host = resolved.hostname or ""
        same = (resolved.scheme, host, resolved.port) == (here.scheme, here.hostname, here.port)
    except ValueError:
        return f"{shown(location, NAME)} (not a valid URL)", False
    return (shown(host, NAME) if host else "an invalid URL"), same


def redirect_error(
    method: str, path: str, status: int, location: str | None, url: str, variable: str
) -> ProtocolError:
    """A 3xx as llmgw reports it: redirects are never followed, so no credential went there."""
    host, same = _redirect_target(location, url)
    where = f"{host} (the same origin)" if same else host
    return ProtocolError(
        method,
        path,
        status,
        None,
        redact.clip(
            f"the server redirected to {where}; llmgw does not follow redirects, so no "
            f"credential went there: check {variable}",
            TRIM,
        ),
    )


# -- which answers mean success ----------------------------------------------------------------
def _template_rx(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    rx = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(parts))
    return re.compile(f"^{rx}$")


_WRITES: tuple[tuple[Write, re.Pattern[str]], ...] = tuple(
    (w, _template_rx(w.path)) for w in WRITES
)
_ANY_WRITE = Write("", "", tuple(sorted({s for w in WRITES for s in w.success})))


def write_endpoint(method: str, path: str) -> tuple[Write, dict[str, str]]:
    """The endpoint table's entry for a write, and the path parameters it was sent with."""
    bare = path.split("?", 1)[0]
    for write, rx in _WRITES:
        if write.method == method:
            m = rx.match(bare)
            if m:
                return write, {k: unquote(v) for k, v in m.groupdict().items()}
    return _ANY_WRITE, {}


def _check_written(
    method: str, path: str, status: int, body: Any, write: Write, params: Mapping[str, str]
) -> None:
    """A 2xx write answer must be a documented success whose body is the object written."""
    if status not in write.success:
        documented = " or ".join(str(s) for s in write.success)
        raise ProtocolError(
            method,
            path,
            status,
            None,
            f"{status} is not the documented answer to this write ({documented}); llmgw cannot "
            "tell whether it was applied: check the object in the org, then re-run",
        )
    if write.identity is None:
        return
    if not isinstance(body, dict):
        raise ProtocolError(
            method, path, status, None, f"the answer is {kind_of(body)}, not the object written"
        )
    ident = body.get(write.identity)
    problem = segment_problem(ident) if ident is not None else "is missing"
    if problem:
        raise ProtocolError(
            method,
            path,
            status,
            None,
            redact.clip(
                f"the object answered has no usable {write.identity} (it {problem}"
                + (f": {shown(ident)}" if ident is not None else "")
                + ")",
                TRIM,
            ),
        )
    expected = params.get(write.param) if write.param else None
    if expected is not None and ident != expected:
        raise ProtocolError(
            method,
            path,
            status,
            None,
            redact.clip(
                f"the object answered is {write.identity} {shown(ident)}, not the "
                f"{shown(expected)} written",
                TRIM,
            ),
        )


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
        if allowed <= 0 or not math.isfinite(reset):
            self.allowed = None
            return
        self.allowed = allowed
        self.remaining = max(0, allowed - count - in_flight)
        # the header is in whole seconds: one more second never sends early into a full window;
        # and no window is taken to last longer than MAX_WINDOW, whatever a server says
        self.reset_at = self.clock() + min(max(0.0, reset), MAX_WINDOW) + 1.0

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
_VISIBLE_ASCII = re.compile(r"^[\x21-\x7e]+$")  # a bearer token or entity tag, as a header holds


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: httpx.Headers
    content: bytes


@dataclass
class TokenStore:
    """The run's one OAuth token, shared by the clients of one run (apply reads with one and
    writes with another): minting a second token is what the contract calls abuse. Plain data,
    so it may cross event loops; each client keeps its own lock."""

    token: str | None = None
    expires: float = 0.0
    margin: float = 60.0


class GatewayClient:
    """One run's connection to the gateway. Use as ``async with GatewayClient(...) as c``.

    ``timeout`` is the deadline of each attempt (default: the settings' ``request_timeout``);
    ``deadline`` makes the context manager that enforces it (``asyncio.timeout``; tests pass a
    fake-clock one). ``max_body`` bounds each answer's body in bytes."""

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
        redact.register(settings.client_secret)  # for library callers; the CLI did it already
        self.read_only = read_only
        self.parallelism = max(1, parallelism)
        self.timeout = float(timeout if timeout is not None else settings.request_timeout)
        self.max_attempts = max(1, max_attempts)
        self.max_retry_seconds = max_retry_seconds
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_body = max_body
        self.sleep = sleep
        self.clock = clock
        self.random = random
        self.deadline = deadline
        self._sem = asyncio.Semaphore(self.parallelism)
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=self.timeout,
            headers={
                "User-Agent": f"llmgw/{__version__}",
                "Accept": "application/json",
                # what _Decoder undoes with a bound; httpx would also offer br and zstd when
                # their packages happen to be installed, and inflate them unbounded
                "Accept-Encoding": "gzip, deflate",
            },
            limits=httpx.Limits(max_connections=self.parallelism + 2),
            follow_redirects=False,
        )
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

    # -- one attempt --
    async def _exchange(self, method: str, url: str, **kwargs: Any) -> _Answer:
        """Send once and read the answer, all within the attempt's deadline. Raises httpx
        errors and ``TimeoutError`` (the caller may retry) or ``_Unreadable``. A 1xx or 3xx
        answer's body is never read; an error's is read up to ``MAX_ERROR_BODY``."""
        async with (
            self.deadline(self.timeout),
            self._http.stream(method, url, follow_redirects=False, **kwargs) as resp,
        ):
            status = resp.status_code
            if 200 <= status < 300:
                try:
                    content = await _read_body(resp, self.max_body, strict=True)
                except _Unreadable as exc:
                    exc.status = status
                    raise
            elif status >= 400:
                try:
                    content = await _read_body(resp, MAX_ERROR_BODY, strict=False)
                except _Unreadable:
                    content = b""
            else:
                content = b""
            return _Answer(status, resp.headers, content)

    def _variable(self, which: str) -> str:
        """The setting a user would check when the API or login host misbehaves."""
        region = self.settings.region
        derived = bool(region) and self.settings.api_url == f"https://api.{region}"
        return "GENESYS_CLOUD_REGION" if derived else f"GENESYS_CLOUD_{which}_URL"

    def _failed(self, exc: BaseException) -> str:
        if isinstance(exc, TimeoutError):
            return (
                f"no complete answer within {self.timeout:g} s (the deadline of each attempt, "
                "set by LLMGW_REQUEST_TIMEOUT)"
            )
        return redact.clip(f"{type(exc).__name__}: {exc}".rstrip(": "), TRIM)

    async def _backoff(
        self,
        attempt: int,
        retry_after: float | None,
        method: str,
        path: str,
        what: str,
        deadline: float,
    ) -> bool:
        """Wait before the next attempt; False (and no wait) when that would pass ``deadline``
        (a ``Retry-After`` of a day is not waited out)."""
        delay = (
            retry_after
            if retry_after is not None
            else self.random() * min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        )
        if self.clock() + delay > deadline:
            log.debug(
                "%s %s -> %s: waiting %.2fs would pass the retry budget", method, path, what, delay
            )
            return False
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
        return True

    # -- token --
    async def _get_token(self, *, renew: bool = False) -> str:
        async with self._token_lock:
            store = self.tokens
            if not renew and store.token and self.clock() < store.expires - store.margin:
                return store.token
            store.token = None
            url = self.settings.login_url + PATHS.token
            deadline = self.clock() + self.max_retry_seconds
            attempt = 0
            while True:
                attempt += 1
                self.token_requests += 1
                try:
                    answer = await self._exchange(
                        "POST",
                        url,
                        data={"grant_type": "client_credentials"},
                        auth=(self.settings.client_id, self.settings.client_secret),
                    )
                except (httpx.HTTPError, TimeoutError) as exc:
                    what = self._failed(exc)
                    if attempt < self.max_attempts and await self._backoff(
                        attempt, None, "POST", PATHS.token, what, deadline
                    ):
                        continue
                    raise TransportError("POST", PATHS.token, None, None, what, None) from None
                except _Unreadable as exc:
                    raise ProtocolError(
                        "POST", PATHS.token, exc.status, None, redact.clip(str(exc), TRIM)
                    ) from None
                status = answer.status
                if status < 200:
                    raise ProtocolError(
                        "POST", PATHS.token, status, None, "an informational status, not an answer"
                    )
                if 300 <= status < 400:
                    raise redirect_error(
                        "POST",
                        PATHS.token,
                        status,
                        answer.headers.get("location"),
                        url,
                        self._variable("LOGIN"),
                    )
                if status >= 400:
                    body = _lenient(answer.content)
                    limited = status == 400 and "rate limit" in str(body).lower()
                    if (limited or status in RETRY_STATUSES) and attempt < self.max_attempts:
                        wait = _retry_after(answer.headers)
                        if limited and wait is None:
                            wait = min(60.0, self.backoff_cap * attempt)
                        if await self._backoff(
                            attempt, wait, "POST", PATHS.token, str(status), deadline
                        ):
                            continue
                    raise AuthError(
                        "POST",
                        PATHS.token,
                        status,
                        _server_token(body.get("error")) if isinstance(body, dict) else None,
                        f"the login server refused the client credentials of client "
                        f"{shown(self.settings.client_id)}; check GENESYS_CLOUD_CLIENT_ID and "
                        "GENESYS_CLOUD_CLIENT_SECRET (and GENESYS_CLOUD_LOGIN_URL)",
                        _server_token(answer.headers.get(HEADERS.correlation_id)),
                    )
                try:
                    body = parse_json(answer.content)
                except _Unreadable as exc:
                    raise ProtocolError(
                        "POST", PATHS.token, status, None, redact.clip(str(exc), TRIM)
                    ) from None
                return self._take_token(status, body)

    def _take_token(self, status: int, body: Any) -> str:
        def bad(what: str) -> ProtocolError:
            return ProtocolError("POST", PATHS.token, status, None, redact.clip(what, TRIM))

        if status != 200:
            raise bad(f"{status} is not the documented answer of the token endpoint (200)")
        if not isinstance(body, dict):
            raise bad(f"the answer is {kind_of(body)}, not a token object")
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthError(
                "POST",
                PATHS.token,
                status,
                None,
                "the login server answered without an access_token",
                None,
            )
        redact.register(token)  # before anything could show it
        if len(token) > 8192 or not _VISIBLE_ASCII.match(token):
            raise bad("the access_token is not a bearer token (visible ASCII, at most 8 KiB)")
        lifetime = body.get("expires_in", 86400)
        if isinstance(lifetime, str):
            try:
                lifetime = float(lifetime)
            except ValueError:
                pass
        if (
            isinstance(lifetime, bool)
            or not isinstance(lifetime, int | float)
            or not 0 < lifetime < math.inf
        ):
            raise bad(f"expires_in is {shown(lifetime)}, not a positive number of seconds")
        self.tokens.token = token
        self.tokens.expires = self.clock() + float(lifetime)
        # renewed 60 s before expiry, or halfway through a shorter life (never on every request)
        self.tokens.margin = min(60.0, float(lifetime) / 2)
        return token

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
        if self.read_only and method not in ("GET", "HEAD"):
            raise LlmgwError(
                f"refusing to send {method} {path}: this run is read-only (drift, plan and "
                "export never write)"
            )
        write = write_endpoint(method, path) if method not in ("GET", "HEAD") else None
        hdrs = dict(headers or {})
        if request_id:
            hdrs[HEADERS.request_id] = request_id
        retryable = method in IDEMPOTENT or (method == "POST" and bool(request_id))
        url = self.settings.api_url + path
        deadline = self.clock() + self.max_retry_seconds
        attempt = 0
        limited = 0
        renewed = False
        while True:
            attempt += 1
            token = await self._get_token()
            hdrs["Authorization"] = f"Bearer {token}"
            failure: BaseException | None = None
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
                    except (httpx.HTTPError, TimeoutError) as exc:
                        failure = exc
                    except _Unreadable as exc:
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
                what = self._failed(failure)
                if (
                    retryable
                    and attempt < self.max_attempts
                    and await self._backoff(attempt, None, method, path, what, deadline)
                ):
                    continue
                tries = f" (after {attempt} attempts)" if attempt > 1 else ""
                raise TransportError(method, path, None, None, what + tries, None) from None
            status = answer.status
            self._pacer.observe(answer.headers, self._in_flight)
            self._stats.record(method, path, ms, not 200 <= status < 300, attempt > 1)
            raw_correlation = answer.headers.get(HEADERS.correlation_id)
            correlation = _server_token(raw_correlation)
            if status < 200:
                raise ProtocolError(
                    method, path, status, None, "an informational status, not an answer"
                )
            if 300 <= status < 400:
                raise redirect_error(
                    method,
                    path,
                    status,
                    answer.headers.get("location"),
                    url,
                    self._variable("API"),
                )
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
                if await self._backoff(
                    limited, _retry_after(answer.headers), method, path, str(status), deadline
                ):
                    continue
            if (
                status in RETRY_STATUSES
                and retryable
                and attempt < self.max_attempts
                and await self._backoff(
                    attempt, _retry_after(answer.headers), method, path, str(status), deadline
                )
            ):
                continue
            if status >= 400:
                raise map_error(method, path, status, _lenient(answer.content), raw_correlation)
            try:
                body = parse_json(answer.content)
            except _Unreadable as exc:
                raise ProtocolError(
                    method, path, status, None, redact.clip(str(exc), TRIM), correlation
                ) from None
            if write is None:
                if status not in READ_SUCCESS:
                    raise ProtocolError(
                        method,
                        path,
                        status,
                        None,
                        f"{status} is not the documented answer to a read (200)",
                        correlation,
                    )
            else:
                _check_written(method, path, status, body, *write)
            etag = answer.headers.get(HEADERS.etag.lower())
            if etag is None and isinstance(body, dict) and isinstance(body.get("etag"), str):
                etag = body["etag"]
            if etag is not None and (len(etag) > 1024 or not _VISIBLE_ASCII.match(etag)):
                raise ProtocolError(
                    method,
                    path,
                    status,
                    None,
                    redact.clip(f"the ETag {shown(etag)} is not an entity tag", TRIM),
                    correlation,
                )
            return Response(status, body, dict(answer.headers), etag, correlation)

    def _ms(self, started: float) -> float:
        return (self.clock() - started) * 1000

    # -- paging --
    async def list_pages(
        self, path: str, *, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Every entity of a page-number collection: page 1, then the rest through a window of
        ``parallelism`` concurrent requests. The pages must agree with each other and with the
        ``total``, ``pageSize`` and ``pageCount`` they state."""
        base = dict(params or {})
        asked = PAGING.max_page_size

        async def page(n: int) -> _Page:
            resp = await self.request(
                "GET", path, params={**base, PAGING.page_size: asked, PAGING.page_number: n}
            )
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

        await window(worker, min(self.parallelism, layout.pages - 1))
        entities = list(first.entities)
        for part in results:
            entities.extend(part or ())
        layout.check_count(first, len(entities))
        return entities

    async def list_cursor(
        self, path: str, *, params: Mapping[str, Any] | None = None
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
            resp = await self.request("GET", path, params=q)
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
        raise ProtocolError(
            "GET", path, None, None, f"the listing goes on past {MAX_PAGES:,} pages"
        )


def _lenient(content: bytes) -> Any:
    """An error's body: its JSON when it is JSON, else its text (invalid bytes replaced)."""
    try:
        return parse_json(content)
    except _Unreadable:
        return content.decode("utf-8", errors="replace")


def _count(body: Mapping[str, Any], name: str) -> int | None:
    """A non-negative integer paging field, None when absent; anything else is unreadable."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Unreadable(f"{name} is {shown(value)}, not a count")
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
        except _Unreadable as exc:
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
                    f"{self.total} at {size} a page ({pages} page{'s' if pages != 1 else ''})"
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


# -- webhooks ----------------------------------------------------------------------------------
async def post_webhook(
    url: str,
    payload: Any,
    *,
    attempts: int = 3,
    timeout: float = 10.0,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> str | None:
    """POST ``payload`` as JSON. None on success, else a short message. Never raises; the URL
    is registered with the redactor and shown as its origin only (webhook URLs carry their
    token in the path or query). Each attempt has ``timeout`` seconds in all; the answer's body
    is never read; a redirect is never followed (the payload would go where the server says)."""
    redact.register_url(url)
    where = redact.safe_url(url)
    try:
        check(url, what="the webhook URL")
    except UrlProblem as exc:
        return redact.redact(f"the webhook URL {where} {exc}")
    last = ""
    attempt = 0
    try:
        async with httpx.AsyncClient(
            transport=transport, timeout=timeout, follow_redirects=False
        ) as http:
            for attempt in range(1, max(1, attempts) + 1):
                try:
                    async with asyncio.timeout(timeout):
                        async with http.stream("POST", url, json=payload) as resp:
                            status, location = resp.status_code, resp.headers.get("location")
                except TimeoutError:
                    last = f"no answer within {timeout:g} s"
                except httpx.HTTPError as exc:
                    last = type(exc).__name__
                else:
                    if 200 <= status < 300:
                        return None
                    if 300 <= status < 400:
                        host, _ = _redirect_target(location, url)
                        return redact.redact(
                            f"webhook {where} answered {status}, a redirect to {host}; llmgw "
                            "does not follow redirects, so nothing was posted there: use the "
                            "final URL"
                        )
                    last = f"HTTP {status}"
                    if status not in RETRY_STATUSES:
                        break
                if attempt < attempts:
                    await sleep(min(10.0, 0.5 * 2 ** (attempt - 1)))
    except Exception as exc:  # never fatal to the run that reports
        return redact.redact(f"webhook {where} failed: {type(exc).__name__}")
    plural = "s" if attempt > 1 else ""
    return redact.redact(f"webhook {where} failed after {attempt} attempt{plural}: {last}")
