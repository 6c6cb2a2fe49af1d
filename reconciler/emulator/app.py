"""The emulator's HTTP layer: who may ask, how often, and what goes wrong on the way.

``create_app`` returns a Starlette application that hands every request to one ``Emulator``
(no Starlette route: the emulator routes by the endpoint table, so even a path no pattern could
match gets a Genesys error body), which runs the contract's pipeline in its order
(``docs/contract.md``):

1. admin endpoints under ``/__emulator/`` (only with ``admin=True``; no token, never faulted),
   and the OpenAPI document (``openapi.OPENAPI_PATH``, no token, never faulted);
2. injected latency; ``POST /oauth/token`` (client credentials, 60 a minute per client);
3. the bearer token (401), then the idempotency lookup of a write's ``X-Genesys-Request-Id``
   (per client and operation; a repeat gets the first answer, before any other check), then
   the per-token rate window (429), then injected faults (429/500/503, connection dropped
   before acting);
4. routing (404/405), the endpoint's scope (403 ``missing.scope``), the body (at most
   ``body.MAX_BODY_BYTES``, else 413; strict JSON, else 400: ``body``), the state machine
   (``state.Gateway``), remembering its answer for the request id, and possibly a connection
   dropped after committing.

Before any of it, the simulated traffic is made up to the emulator's clock
(``Gateway.simulate``), so everything a request sees or changes comes after it. The clock is the
injected one plus the offset ``POST /__emulator/clock`` adds (``Org.now``): token expiry, rate
windows, idempotency memory, ingest delays, timestamps and the ``Date`` header all read it.

Every answer carries ``Date`` (the emulator's clock), ``inin-correlation-id`` (the error body's
``contextId``), the three ``inin-ratelimit-*`` headers, and the request's
``X-Genesys-Request-Id`` when it had one. The
gateway's rules live in ``state``; nothing here decides what a valid object is. A dropped
connection is a response started with a Content-Length and never finished, then
``ConnectionDropped`` raised: uvicorn closes the socket, the in-process transport maps it to
``httpx.RemoteProtocolError``, and neither turns it into a 500.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import email.utils
import json
import math
import random
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from reconciler.emulator import body as bodies
from reconciler.emulator import openapi
from reconciler.emulator.config import (
    ADMIN_PREFIX,
    FAULT_KINDS,
    MAX_INGEST_DELAY,
    MAX_LATENCY_MS,
    MAX_REQUEST_ID,
    ClientSpec,
    EmulatorConfig,
)
from reconciler.emulator.state import Answer, ApiError, Gateway
from reconciler.emulator.state.common import is_int, is_num
from reconciler.emulator.state.persistence import finite_number
from reconciler.endpoints import (
    CODES,
    ERROR_BODY,
    HEADERS,
    OAUTH,
    PAGING,
    PARAMS,
    PATHS,
    SCOPES,
)

IDEMPOTENCY_SECONDS = 24 * 3600
WINDOW = 60.0  # seconds of a rate window (API and token endpoint alike)
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOG_LIMIT = 20000
ADMIN_METHODS: dict[str, tuple[str, ...]] = {
    "requests": ("GET",),
    "faults": ("GET", "PUT", "POST"),
    "reset": ("POST",),
    "state": ("GET", "PUT"),
    "clock": ("GET", "POST"),
    "traffic": ("GET", "PUT"),
}


class TooLarge(Exception):
    """A request body over the bound (``413``); carries the bound."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is over {limit} bytes")
        self.limit = limit


async def read_body(request: Request, limit: int) -> bytes:
    """The body, read from the stream and refused past ``limit`` bytes (``TooLarge``) without
    holding more than that: a declared Content-Length over the bound is refused before reading.
    The rest of an oversized body is drained (up to 64 times the bound) so that a real client
    sees the 413 rather than a connection reset while it is still sending."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        await _drain(request, 64 * limit)
        raise TooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            await _drain(request, 64 * limit - size)
            raise TooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def _drain(request: Request, budget: int) -> None:
    """Read and discard what is left of a request body, at most ``budget`` bytes."""
    with contextlib.suppress(RuntimeError, ClientDisconnect):  # RuntimeError: already consumed
        async for chunk in request.stream():
            budget -= len(chunk)
            if budget <= 0:
                return


class ConnectionDropped(Exception):
    """An injected fault: the connection closes without a complete answer."""


# -- the endpoint table, built from reconciler.endpoints ---------------------------------------


@dataclass(frozen=True)
class Call:
    """A parsed request as the state machine sees it."""

    params: Mapping[str, str]
    query: Mapping[str, str]
    body: Any
    headers: Mapping[str, str]
    base: str  # scheme://host of the request, for selfUri

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


Handler = Callable[[Gateway, Call], Answer]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    scope: str
    handler: Handler


def _pattern(template: str) -> re.Pattern[str]:
    """``/a/{id}/b`` -> a regex with one named group per path parameter."""
    regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return re.compile(f"^{regex}$")


S, H, P = SCOPES, HEADERS, PARAMS
E = ERROR_BODY
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", PATHS.templates, S.template_read, lambda g, c: g.list_templates(c.query)),
    Endpoint(
        "POST",
        PATHS.templates,
        S.template_write,
        lambda g, c: g.create_template(c.body, c.base + PATHS.templates),
    ),
    Endpoint(
        "GET", PATHS.template, S.template_read, lambda g, c: g.get_template(c.params[P.template_id])
    ),
    Endpoint(
        "PUT",
        PATHS.template,
        S.template_write,
        lambda g, c: g.replace_template(c.params[P.template_id], c.body, c.header(H.if_match)),
    ),
    Endpoint(
        "DELETE",
        PATHS.template,
        S.template_write,
        lambda g, c: g.delete_template(c.params[P.template_id], c.header(H.if_match)),
    ),
    Endpoint(
        "GET",
        PATHS.versions,
        S.version_read,
        lambda g, c: g.list_versions(c.params[P.template_id], c.query),
    ),
    Endpoint(
        "POST",
        PATHS.versions,
        S.version_write,
        lambda g, c: g.create_version(c.params[P.template_id], c.body, c.header(H.ab_test)),
    ),
    Endpoint(
        "GET",
        PATHS.version,
        S.version_read,
        lambda g, c: g.get_version(c.params[P.template_id], c.params[P.version]),
    ),
    Endpoint(
        "PATCH",
        PATHS.version,
        S.version_write,
        lambda g, c: g.patch_version(c.params[P.template_id], c.params[P.version], c.body),
    ),
    Endpoint(
        "DELETE",
        PATHS.version,
        S.version_write,
        lambda g, c: g.delete_version(c.params[P.template_id], c.params[P.version]),
    ),
    Endpoint("GET", PATHS.prompts, S.prompt_read, lambda g, c: g.list_prompts(c.query)),
    Endpoint(
        "POST",
        PATHS.prompts,
        S.prompt_write,
        lambda g, c: g.create_prompt(c.body, c.base + PATHS.prompts),
    ),
    Endpoint("GET", PATHS.prompt, S.prompt_read, lambda g, c: g.get_prompt(c.params[P.prompt_id])),
    Endpoint(
        "PUT",
        PATHS.prompt,
        S.prompt_write,
        lambda g, c: g.update_prompt(c.params[P.prompt_id], c.body, c.header(H.if_match)),
    ),
    Endpoint(
        "DELETE",
        PATHS.prompt,
        S.prompt_write,
        lambda g, c: g.delete_prompt(c.params[P.prompt_id], c.header(H.if_match)),
    ),
    Endpoint("GET", PATHS.models, S.prompt_read, lambda g, c: g.list_models(c.query)),
    Endpoint("GET", PATHS.vector_stores, S.store_read, lambda g, c: g.list_stores(c.query)),
    Endpoint(
        "GET",
        PATHS.indexes,
        S.store_read,
        lambda g, c: g.list_indexes(c.params[P.store_id], c.query),
    ),
    Endpoint(
        "GET",
        PATHS.index,
        S.store_read,
        lambda g, c: g.get_index(c.params[P.store_id], c.params[P.index_id]),
    ),
    Endpoint(
        "PUT",
        PATHS.index,
        S.store_write,
        lambda g, c: g.put_index(
            c.params[P.store_id],
            c.params[P.index_id],
            c.body,
            c.header(H.if_match),
            c.header(H.if_none_match),
        ),
    ),
    Endpoint(
        "DELETE",
        PATHS.index,
        S.store_write,
        lambda g, c: g.delete_index(
            c.params[P.store_id], c.params[P.index_id], c.header(H.if_match)
        ),
    ),
    Endpoint("POST", PATHS.invocations, S.execute, lambda g, c: g.invoke(c.body)),
    Endpoint("POST", PATHS.dispatch, S.execute, lambda g, c: g.dispatch(c.body)),
    Endpoint("GET", PATHS.telemetry, S.telemetry_read, lambda g, c: g.telemetry_page(c.query)),
    Endpoint("POST", PATHS.analytics, S.analytics_read, lambda g, c: g.analytics(c.body)),
    Endpoint("POST", PATHS.audit_logs, S.audit_write, lambda g, c: g.audit_log(c.body)),
)


_COMPILED = tuple((e, _pattern(e.path)) for e in ENDPOINTS)


def match(method: str, path: str) -> tuple[Endpoint | None, dict[str, str], list[str]]:
    """The endpoint for a request, its path parameters, and the methods the path allows."""
    allowed: list[str] = []
    for e, pattern in _COMPILED:
        m = pattern.match(path)
        if m:
            if e.method == method:
                return e, m.groupdict(), allowed
            allowed.append(e.method)
    return None, {}, allowed


# -- runtime records ---------------------------------------------------------------------------


@dataclass
class Token:
    client: str
    scopes: frozenset[str]
    expires: float


class Remembered(NamedTuple):
    """A write's first answer, replayed for a repeat of its request id."""

    expires: float
    status: int
    content: bytes
    headers: dict[str, str]
    context_id: str


class Window:
    """A fixed rate window: starts with the first request, lasts ``WINDOW`` seconds."""

    __slots__ = ("count", "start")

    def __init__(self, start: float) -> None:
        self.start, self.count = start, 0

    def reset_in(self, now: float) -> int:
        return max(0, math.ceil(self.start + WINDOW - now))


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, not {type(value).__name__}")
    return value


def _remembered(status: int) -> bool:
    """Whether an answer is remembered for idempotent replay: the state machine's answers
    from 200 to 499, never a 429."""
    return 200 <= status < 500 and status != 429


def _replayable_status(value: Any) -> int:
    """A snapshot's remembered status: one ``_remembered`` accepts (``ValueError`` otherwise)."""
    status = is_int(value)
    if status and value == 429:
        raise ValueError("a 429 is never remembered")
    if not (status and _remembered(value)):
        raise ValueError(f"status {value!r:.40} is not a remembered answer's (200..499)")
    return value


def _header(value: Any) -> str:
    """A header name or value that can be sent again: visible latin-1, no line breaks."""
    text = _text(value)
    if any(c in text for c in "\r\n\0") or not all(ord(c) < 256 for c in text):
        raise ValueError(f"{text[:40]!r} cannot be sent as a header")
    return text


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class _Encoder:
    """JSON bodies, with the entities of a page encoded once per object.

    Sound because the state machine never edits a stored object in place (it stores a new one),
    and the cache keeps a reference to each object it has seen, so an ``id`` cannot be reused
    while cached. A list page then costs a join instead of encoding every object again."""

    def __init__(self, limit: int = 50000) -> None:
        self._cache: dict[int, tuple[Any, bytes]] = {}
        self._limit = limit
        self._prefix = b'{"' + PAGING.entities.encode() + b'":['

    def _one(self, obj: Any) -> bytes:
        hit = self._cache.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        data = _dumps(obj)
        if len(self._cache) >= self._limit:
            self._cache.clear()
        self._cache[id(obj)] = (obj, data)
        return data

    def encode(self, body: Any) -> bytes:
        if not (isinstance(body, dict) and body and next(iter(body)) == PAGING.entities):
            return _dumps(body)
        entities = body[PAGING.entities]
        if not isinstance(entities, list) or not all(isinstance(e, dict) for e in entities):
            return _dumps(body)
        rest = {k: v for k, v in body.items() if k != PAGING.entities}
        tail = b"," + _dumps(rest)[1:] if rest else b"}"
        return self._prefix + b",".join(self._one(e) for e in entities) + b"]" + tail

    def clear(self) -> None:
        self._cache.clear()


def _error_body(status: int, code: str, message: str, cid: str, details: list[str]) -> bytes:
    return _dumps(
        {E.message: message, E.code: code, E.status: status, E.context_id: cid, E.details: details}
    )


class Emulator:
    """The request pipeline and the runtime state around the org (tokens, windows, memory)."""

    def __init__(
        self,
        config: EmulatorConfig,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.sleep = sleep
        self.gateway = Gateway(
            now=clock,
            ingest_delay=config.ingest_delay,
            seed=config.seed,
            max_rows=config.max_telemetry_rows,
        )
        self.clock = self.gateway.now  # the injected clock, advanced by POST /__emulator/clock
        self.clients: dict[str, ClientSpec] = {c.id: c for c in config.clients}
        self.tokens: dict[str, Token] = {}
        self.token_windows: dict[str, Window] = {}
        self.on_change: Callable[[], None] | None = None  # the server persists --state here
        self.encoder = _Encoder()
        self._openapi_json: bytes | None = None
        self.reset_runtime()

    def reset_runtime(self) -> None:
        """Forget rate windows, idempotency keys, the log; faults back to the configuration.

        Issued tokens stay valid: a reset is the org going back to its seeded state, not the
        login service forgetting its clients."""
        self.rate_windows: dict[str, Window] = {}
        self.token_windows = {}
        # (client, method, path, request id): a request id names one operation, so the same id
        # on another method or path is another request, never a replay of the first's answer
        self.idempotency: dict[tuple[str, str, str, str], Remembered] = {}
        self._remembered_since_sweep = 0
        self.log: list[dict[str, Any]] = []
        self.rates: dict[str, float] = {k: float(v) for k, v in self.config.fault_rates.items()}
        self.latency_ms = self.config.latency_ms
        self.jitter_ms = self.config.jitter_ms
        self.faults_rng = random.Random(self.config.seed)
        self.gateway.ingest_delay = self.config.ingest_delay
        self.encoder.clear()

    # -- persistence (the server writes this to --state) --
    def snapshot(self, *, copy: bool = True) -> dict[str, Any]:
        """The org and the idempotency memory as a snapshot; ``copy=False`` shares the stored
        objects (``Gateway.snapshot``): for serialising at once, never for changing."""
        now = self.clock()
        memory = [
            {
                "client": client,
                "method": method,
                "path": path,
                "requestId": rid,
                "expires": r.expires,
                "status": r.status,
                "body": r.content.decode("utf-8"),
                "headers": r.headers,
                "contextId": r.context_id,
            }
            for (client, method, path, rid), r in self.idempotency.items()
            if r.expires > now
        ]
        return {**self.gateway.snapshot(copy=copy), "idempotency": memory}

    def restore(self, data: Mapping[str, Any]) -> None:
        """Replace the org and the idempotency memory with a snapshot, or change nothing:
        ``ValueError`` (naming what is wrong) when any part of it is not a snapshot."""
        memory: dict[tuple[str, str, str, str], Remembered] = {}
        entries = data.get("idempotency") if isinstance(data, Mapping) else None
        if entries is not None and not isinstance(entries, list):
            raise ValueError("not an emulator state snapshot: idempotency must be a list")
        for n, m in enumerate(entries or []):
            if isinstance(m, Mapping) and not {"method", "path"} <= set(m):
                continue  # written before ids were per operation: it can match no request now
            try:
                key = (_text(m["client"]), _text(m["method"]), _text(m["path"]))
                memory[(*key, _text(m["requestId"]))] = Remembered(
                    finite_number(m["expires"]),
                    _replayable_status(m["status"]),
                    _text(m["body"]).encode("utf-8"),
                    {_header(k): _header(v) for k, v in (m.get("headers") or {}).items()},
                    _text(m.get("contextId") or ""),
                )
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ValueError(
                    f"not an emulator state snapshot: idempotency[{n}]: {exc!s:.200}"
                ) from None
        self.gateway.restore(data)  # validates all, then replaces the org at once
        self.encoder.clear()
        self.idempotency = memory

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # -- ASGI --
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        try:
            response = await self.handle(request)
        except ConnectionDropped:
            # Read the whole request first (unread bytes would turn the close into a reset),
            # start an answer that promises more than it sends, so every HTTP client sees an
            # incomplete message, then let the server close the connection.
            await _drain(request, bodies.MAX_ADMIN_BODY_BYTES)
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", b"65536"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b"{", "more_body": True})
            raise
        await response(scope, receive, send)

    # -- answers --
    def _rate_headers(self, window: Window | None) -> dict[str, str]:
        now = self.clock()
        return {
            H.rate_allowed: str(self.config.rate_limit),
            H.rate_count: str(window.count if window else 0),
            H.rate_reset: str(window.reset_in(now) if window else int(WINDOW)),
        }

    def _respond(
        self,
        status: int,
        content: bytes | None,
        cid: str,
        window: Window | None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        hdrs = {
            H.date: email.utils.formatdate(self.clock(), usegmt=True),
            H.correlation_id: cid,
            **self._rate_headers(window),
            **(headers or {}),
        }
        if content is None or status == 204:
            return Response(status_code=status, headers=hdrs)
        return Response(content, status_code=status, headers=hdrs, media_type="application/json")

    def _error(
        self,
        status: int,
        code: str,
        message: str,
        cid: str,
        window: Window | None,
        details: list[str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        body = _error_body(status, code, message, cid, details or [])
        return self._respond(status, body, cid, window, headers)

    def _not_allowed(
        self, method: str, path: str, allowed: Sequence[str], cid: str, window: Window | None
    ) -> Response:
        """``405 method.not.allowed`` with the ``Allow`` header: the methods ``path`` takes."""
        return self._error(
            405,
            CODES.method_not_allowed,
            f"{method} is not allowed on {path}; use {', '.join(allowed)}",
            cid,
            window,
            headers={"Allow": ", ".join(allowed)},
        )

    def _oauth_error(
        self,
        status: int,
        error: str,
        description: str,
        cid: str,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """RFC 6749 section 5.2's ``error_description``, and ``description`` as the real
        platform's login service names it: both, so clients written against either read it."""
        body = {
            OAUTH.error: error,
            OAUTH.error_description: description,
            OAUTH.description: description,
        }
        return self._respond(status, _dumps(body), cid, None, headers)

    def _record(self, request: Request, status: int | str, cid: str, **extra: Any) -> None:
        self.log.append(
            {
                "time": self.clock(),
                "method": request.method,
                "path": request.url.path,
                "status": status,
                "requestId": extra.pop("rid", None),
                "client": extra.pop("client", None),
                "correlationId": cid,
                "fault": extra.pop("fault", None),
                "replayed": extra.pop("replayed", False),
            }
        )
        if len(self.log) > LOG_LIMIT:
            del self.log[: LOG_LIMIT // 4]

    def _draw(self, kind: str) -> bool:
        p = self.rates.get(kind, 0.0)
        return p > 0 and self.faults_rng.random() < p

    # -- the pipeline --
    async def handle(self, request: Request) -> Response:
        """The answer to one request; a request id the client sent is echoed on it (seed 001
        reads ``X-Genesys-Request-Id`` back from the answer)."""
        response = await self._handle(request)
        rid = request.headers.get(H.request_id)
        if rid is not None:
            response.headers[H.request_id] = rid
        return response

    async def _handle(self, request: Request) -> Response:
        cid = str(uuid.uuid4())
        path, method = request.url.path, request.method
        self.gateway.simulate()  # the traffic up to now happened before this request
        if path.startswith(ADMIN_PREFIX) or path == ADMIN_PREFIX.rstrip("/"):
            if not self.config.admin:
                return self._error(404, CODES.not_found, f"no endpoint {path}", cid, None)
            return await self._admin(request, cid)
        if path == openapi.OPENAPI_PATH:
            return self._openapi(method, cid)
        if self.latency_ms or self.jitter_ms:
            ms = self.latency_ms + self.faults_rng.uniform(0, self.jitter_ms)
            await self.sleep(ms / 1000)
        if path == PATHS.token:
            response = await self._token(request, cid)
            self._record(request, response.status_code, cid)
            return response

        # 1. authentication
        auth = request.headers.get("authorization", "")
        value = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        token = self.tokens.get(value) if value else None
        now = self.clock()
        if token is not None and token.expires <= now:
            del self.tokens[value]
            token = None
        if token is None:
            self._record(request, 401, cid)
            return self._error(
                401,
                CODES.bad_credentials,
                "missing, unknown or expired bearer token; request a new one at " + PATHS.token,
                cid,
                None,
                headers={"WWW-Authenticate": 'Bearer realm="api", error="invalid_token"'},
            )
        window = self.rate_windows.get(value)
        if window is None or now >= window.start + WINDOW:
            window = self.rate_windows[value] = Window(now)
        rid = request.headers.get(H.request_id) if method in WRITES else None
        if rid is not None and len(rid) > MAX_REQUEST_ID:
            self._record(request, 400, cid, client=token.client)
            return self._error(
                400,
                CODES.validation_failed,
                f"{H.request_id} is over {MAX_REQUEST_ID} characters; send a UUID",
                cid,
                window,
            )
        key = (token.client, method, path, rid) if rid else None

        # 2. idempotency: a repeat gets the first answer, before any other check
        if key is not None:
            hit = self.idempotency.get(key)
            if hit is not None and hit.expires > now:
                window.count += 1
                self._record(request, hit.status, cid, rid=rid, client=token.client, replayed=True)
                # an error body's contextId stays the correlation id of that answer
                return self._respond(
                    hit.status,
                    hit.content or None,
                    hit.context_id if hit.status >= 400 else cid,
                    window,
                    hit.headers,
                )

        # 3. the token's rate window
        limit = self.config.rate_limit
        if limit and window.count >= limit:
            retry = max(1, window.reset_in(now))
            self._record(request, 429, cid, rid=rid, client=token.client)
            return self._error(
                429,
                CODES.rate_limited,
                f"rate limit of {limit} requests per {int(WINDOW)} s exceeded; "
                f"retry after {retry} s",
                cid,
                window,
                headers={H.retry_after: str(retry)},
            )
        window.count += 1

        # 4. injected faults (never remembered)
        for kind, code, message in (
            ("429", CODES.rate_limited, "injected fault: too many requests"),
            ("500", CODES.internal_server_error, "injected fault: internal server error"),
            (
                "503",
                CODES.service_unavailable,
                "injected fault: the gateway is briefly unavailable",
            ),
        ):
            if self._draw(kind):
                status = int(kind)
                self._record(
                    request, f"{kind} (injected)", cid, rid=rid, client=token.client, fault=kind
                )
                if status == 429:
                    # as a real 429 reads: the window is spent until Retry-After
                    return self._error(
                        status,
                        code,
                        message,
                        cid,
                        window,
                        headers={
                            H.retry_after: "1",
                            H.rate_count: str(max(window.count, self.config.rate_limit)),
                            H.rate_reset: "1",
                        },
                    )
                extra = {H.retry_after: "1"} if status == 503 else None
                return self._error(status, code, message, cid, window, headers=extra)
        if self._draw("drop-before"):
            self._record(
                request, "dropped before", cid, rid=rid, client=token.client, fault="drop-before"
            )
            raise ConnectionDropped("injected fault: connection closed before acting")

        # 5. routing, scope, the state machine
        endpoint, params, allowed = match(method, path)
        if endpoint is None:
            status = 405 if allowed else 404
            self._record(request, status, cid, rid=rid, client=token.client)
            if allowed:
                return self._not_allowed(method, path, allowed, cid, window)
            return self._error(404, CODES.not_found, f"no endpoint {path}", cid, window)
        if endpoint.scope not in token.scopes:
            self._record(request, 403, cid, rid=rid, client=token.client)
            return self._error(
                403,
                CODES.missing_scope,
                f"the OAuth client lacks the scope {endpoint.scope} "
                f"needed for {method} {endpoint.path}",
                cid,
                window,
                details=[endpoint.scope],
            )
        answer = await self._call(request, endpoint, params, cid)
        content = self.encoder.encode(answer.body) if answer.body is not None else b""
        headers = dict(answer.headers)
        remembered = False
        if key is not None and _remembered(answer.status):
            self.idempotency[key] = Remembered(
                now + IDEMPOTENCY_SECONDS, answer.status, content, headers, cid
            )
            remembered = True
            self._sweep(now)
        if (method in WRITES and answer.status < 400) or remembered:
            self._changed()
        if self._draw("drop-after"):
            self._record(
                request,
                f"{answer.status} (answer dropped)",
                cid,
                rid=rid,
                client=token.client,
                fault="drop-after",
            )
            raise ConnectionDropped("injected fault: connection closed after committing")
        self._record(request, answer.status, cid, rid=rid, client=token.client)
        return self._respond(answer.status, content or None, cid, window, headers)

    async def _call(
        self, request: Request, endpoint: Endpoint, params: dict[str, str], cid: str
    ) -> Answer:
        """Parse the body and run the state machine; refusals become Genesys error bodies."""
        body: Any = None
        if request.method in ("POST", "PUT", "PATCH"):
            try:
                body = bodies.parse(await read_body(request, bodies.MAX_BODY_BYTES))
            except TooLarge as exc:
                return self._refusal(
                    413,
                    CODES.request_too_large,
                    f"the request body is over {exc.limit} bytes; send a smaller one",
                    cid,
                )
            except bodies.BodyError as exc:
                return self._refusal(400, CODES.validation_failed, exc.message, cid, [exc.message])
        call = Call(
            params=params,
            query=dict(request.query_params),
            body=body,
            headers=request.headers,
            base=f"{request.url.scheme}://{request.url.netloc}",
        )
        try:
            return endpoint.handler(self.gateway, call)
        except ApiError as exc:
            return self._refusal(exc.status, exc.code, exc.message, cid, exc.details)

    @staticmethod
    def _refusal(
        status: int, code: str, message: str, cid: str, details: list[str] | None = None
    ) -> Answer:
        return Answer(
            status,
            {
                E.message: message,
                E.code: code,
                E.status: status,
                E.context_id: cid,
                E.details: details or [],
            },
        )

    def _sweep(self, now: float) -> None:
        self._remembered_since_sweep += 1
        if self._remembered_since_sweep >= 1000:
            self._remembered_since_sweep = 0
            for k in [k for k, r in self.idempotency.items() if r.expires <= now]:
                del self.idempotency[k]
            for t in [t for t, tok in self.tokens.items() if tok.expires <= now]:
                del self.tokens[t]
                self.rate_windows.pop(t, None)

    # -- the OpenAPI document (no token, never delayed or faulted, like a platform's spec) --
    def _openapi(self, method: str, cid: str) -> Response:
        if method != "GET":
            return self._not_allowed(method, openapi.OPENAPI_PATH, ("GET",), cid, None)
        if self._openapi_json is None:
            admin = ADMIN_METHODS if self.config.admin else None
            self._openapi_json = _dumps(openapi.document(ENDPOINTS, admin))
        return self._respond(200, self._openapi_json, cid, None)

    # -- OAuth (client credentials) --
    async def _token(self, request: Request, cid: str) -> Response:
        if request.method != "POST":
            return self._oauth_error(
                405, OAUTH.invalid_request, "use POST with a form body", cid, {"Allow": "POST"}
            )
        try:
            raw = await read_body(request, bodies.MAX_BODY_BYTES)
        except TooLarge as exc:
            return self._oauth_error(
                413, OAUTH.invalid_request, f"the token request is over {exc.limit} bytes", cid
            )
        try:
            form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8")).items()}
        except UnicodeDecodeError:
            form = {}
        client_id, secret = form.get(OAUTH.client_id), form.get(OAUTH.client_secret)
        auth = request.headers.get("authorization", "")
        if auth[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            client_id, _, secret = decoded.partition(":")
        client = self.clients.get(client_id or "")
        if client is None or not secrets.compare_digest(
            (secret or "").encode("utf-8"), client.secret.encode("utf-8")
        ):
            return self._oauth_error(
                401,
                OAUTH.invalid_client,
                "client authentication failed",
                cid,
                {"WWW-Authenticate": 'Basic realm="oauth"'},
            )
        grant = form.get(OAUTH.grant_type)
        if grant is None:
            json_sent = "json" in request.headers.get("content-type", "")
            return self._oauth_error(
                400,
                OAUTH.invalid_request,
                f"{OAUTH.grant_type} is required: send the form body "
                f"{OAUTH.grant_type}={OAUTH.client_credentials}"
                + (" (application/x-www-form-urlencoded, not JSON)" if json_sent else ""),
                cid,
            )
        if grant != OAUTH.client_credentials:
            return self._oauth_error(
                400,
                OAUTH.unsupported_grant_type,
                f"use {OAUTH.grant_type}={OAUTH.client_credentials}",
                cid,
            )
        now = self.clock()
        w = self.token_windows.get(client.id)
        if w is None or now >= w.start + WINDOW:
            w = self.token_windows[client.id] = Window(now)
        limit = self.config.token_rate_limit
        if limit and w.count >= limit:
            return self._oauth_error(
                400,
                OAUTH.invalid_request,
                "rate limit exceeded",
                cid,
                {H.retry_after: str(max(1, w.reset_in(now)))},
            )
        w.count += 1
        granted = client.scopes
        asked = form.get(OAUTH.scope)
        if asked is not None:
            granted = granted & frozenset(asked.split())
        value = secrets.token_urlsafe(32)
        self.tokens[value] = Token(client.id, granted, now + self.config.token_lifetime)
        return self._respond(
            200,
            _dumps(
                {
                    OAUTH.access_token: value,
                    OAUTH.token_type: OAUTH.bearer,
                    OAUTH.expires_in: self.config.token_lifetime,
                    OAUTH.scope: " ".join(sorted(granted)),
                }
            ),
            cid,
            None,
            {"Cache-Control": "no-store"},
        )

    # -- admin (test-only, --admin) --
    async def _admin(self, request: Request, cid: str) -> Response:
        name = request.url.path[len(ADMIN_PREFIX) :]
        method = request.method

        def ok(body: Any) -> Response:
            return self._respond(200, _dumps(body), cid, None)

        async def data(*, finite: bool = True) -> Any:
            """The JSON body ({} when empty, None for null); ``BodyError`` or ``TooLarge``.
            ``finite=False``: a number beyond a float reaches the state machine, which refuses
            it naming its field."""
            raw = await read_body(request, bodies.MAX_ADMIN_BODY_BYTES)
            if not raw:
                return {}
            # snapshots nest deeper than API bodies
            return bodies.parse(raw, max_depth=bodies.MAX_DEPTH + 8, finite=finite)

        allowed = ADMIN_METHODS.get(name)
        if allowed is not None and method not in allowed:
            return self._not_allowed(method, request.url.path, allowed, cid, None)
        try:
            if name == "requests" and method == "GET":
                return ok({"requests": self.log})
            if name == "faults" and method == "GET":
                return ok(self.faults())
            if name == "faults" and method in ("PUT", "POST"):
                self.set_faults(await data())
                return ok(self.faults())
            if name == "state" and method == "PUT":
                self.restore(await data())
                self._changed()
                return ok({"restored": True})
            if name == "clock" and method == "POST":
                answer = self.gateway.advance_clock(await data(finite=False))
                self._changed()
                return ok(answer.body)
            if name == "traffic" and method == "PUT":
                answer = self.gateway.put_traffic(await data(finite=False))
                self._changed()
                return ok(answer.body)
        except ApiError as exc:
            return self._error(exc.status, exc.code, exc.message, cid, None, exc.details)
        except TooLarge as exc:
            return self._error(
                413, CODES.request_too_large, f"the body is over {exc.limit} bytes", cid, None
            )
        except (ValueError, TypeError) as exc:  # BodyError is a ValueError
            return self._error(400, CODES.validation_failed, str(exc), cid, None, [str(exc)])
        if name == "reset" and method == "POST":
            self.gateway.reset()
            self.reset_runtime()
            self._changed()
            return ok({"reset": True})
        if name == "state" and method == "GET":
            return ok(self.snapshot(copy=False))  # serialised at once: no deep copy
        if name == "clock" and method == "GET":
            return ok(self.gateway.get_clock().body)
        if name == "traffic" and method == "GET":
            return ok(self.gateway.get_traffic().body)
        return self._error(
            404, CODES.not_found, f"no admin endpoint {method} {request.url.path}", cid, None
        )

    def faults(self) -> dict[str, Any]:
        return {
            "rates": {k: self.rates.get(k, 0.0) for k in FAULT_KINDS},
            "latencyMs": self.latency_ms,
            "jitterMs": self.jitter_ms,
            "ingestDelay": self.gateway.ingest_delay,
            "failingModels": sorted(self.gateway.failing_models),
            "refusingModels": sorted(self.gateway.refusing_models),
        }

    def set_faults(self, data: Any) -> None:
        """Change faults at run time; ``rates`` replaces every rate, other keys only their own.

        Validates everything before changing anything."""
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        known = {"rates", "latencyMs", "jitterMs", "ingestDelay", "failingModels"}
        known |= {"refusingModels", "seed"}
        extra = sorted(set(data) - known)
        if extra:
            raise ValueError(
                f"unknown key(s) {', '.join(extra)}; known: {', '.join(sorted(known))}"
            )
        rates = data.get("rates", self.rates)
        rates = {} if rates is None else rates  # null: no faults (but [] or 0 is a mistake)
        if not isinstance(rates, dict):
            raise ValueError("rates must map a fault kind to a probability")
        for k, v in rates.items():
            if k not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {k!r}; valid kinds: {', '.join(FAULT_KINDS)}")
            if not is_num(v) or not 0 <= v <= 1:
                raise ValueError(f"fault rate {k}={v!r} is outside 0..1")
        numbers = {}
        for k, most in (
            ("latencyMs", MAX_LATENCY_MS),
            ("jitterMs", MAX_LATENCY_MS),
            ("ingestDelay", MAX_INGEST_DELAY),
        ):
            if k in data:
                v = data[k]
                # a comparison chain is False for NaN, and int(inf) would raise after changes
                if not (is_num(v) and 0 <= v <= most):
                    raise ValueError(f"{k} must be a number from 0 to {most:g}, not {v!r}")
                numbers[k] = v
        models = {}
        for k in ("failingModels", "refusingModels"):
            if k in data:
                v = [] if data[k] is None else data[k]
                if not isinstance(v, list) or not all(isinstance(m, str) for m in v):
                    raise ValueError(f"{k} must be a list of model ids")
                models[k] = set(v)
        seed = data.get("seed")
        if seed is not None and not is_int(seed):
            raise ValueError("seed must be an integer or null")
        self.rates = {k: float(v) for k, v in rates.items()}
        if "latencyMs" in numbers:
            self.latency_ms = int(numbers["latencyMs"])
        if "jitterMs" in numbers:
            self.jitter_ms = int(numbers["jitterMs"])
        if "ingestDelay" in numbers:
            self.gateway.ingest_delay = float(numbers["ingestDelay"])
        if "failingModels" in models:
            self.gateway.failing_models = models["failingModels"]
        if "refusingModels" in models:
            self.gateway.refusing_models = models["refusingModels"]
        if "seed" in data:
            self.faults_rng = random.Random(data["seed"])


async def _server_error(request: Request, exc: Exception) -> Response:
    """A bug in the emulator still answers in the Genesys error shape (then is re-raised)."""
    cid = str(uuid.uuid4())
    emulator = getattr(request.app.state, "emulator", None)
    now = emulator.clock() if isinstance(emulator, Emulator) else time.time()
    return Response(
        _error_body(500, CODES.internal_server_error, f"emulator bug: {exc!r}"[:300], cid, []),
        status_code=500,
        headers={H.date: email.utils.formatdate(now, usegmt=True), H.correlation_id: cid},
        media_type="application/json",
    )


class EmulatorApp(Starlette):
    """The Starlette application; ``state.emulator`` (also ``.emulator``) holds everything.

    ``gateway`` (the org), ``log`` (the request log) and ``config`` are shortcuts for tests and
    benchmarks."""

    def __init__(self, emulator: Emulator) -> None:
        super().__init__(routes=[], exception_handlers={Exception: _server_error})
        # Every request goes to the emulator, which routes by the endpoint table: a Starlette
        # route would answer a path its pattern cannot match (a line break, say) with a
        # plain-text 404 instead of the Genesys error body.
        self.router.default = emulator
        self.state.emulator = emulator

    @property
    def emulator(self) -> Emulator:
        emulator: Emulator = self.state.emulator
        return emulator

    @property
    def gateway(self) -> Gateway:
        return self.emulator.gateway

    @property
    def log(self) -> list[dict[str, Any]]:
        return self.emulator.log

    @property
    def config(self) -> EmulatorConfig:
        return self.emulator.config


def create_app(
    config: EmulatorConfig,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> EmulatorApp:
    """The emulator as an ASGI application (for uvicorn or ``transport.in_process_transport``).

    ``clock`` (advanced by ``POST /__emulator/clock``) drives token expiry, rate windows,
    idempotency memory, ingest delays, timestamps, simulated traffic and the ``Date`` header;
    ``sleep`` is awaited for injected latency. Tests pass fakes for both."""
    return EmulatorApp(Emulator(config, clock=clock, sleep=sleep))
