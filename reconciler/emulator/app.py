"""The emulator's HTTP layer: routing, OAuth, scopes, rate limits, idempotency, faults, latency.

A plain ASGI application (starlette's request and response types, no framework middleware, so an
injected dropped connection is not turned into a 500). The same object serves uvicorn
(``server``) and in-process httpx clients (``transport``). All gateway rules live in ``state``;
this module decides who may ask, how often, and which faults to inject.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from reconciler.emulator.config import FAULT_KINDS, ClientSpec, EmulatorConfig
from reconciler.emulator.state import Answer, ApiError, Gateway
from reconciler.endpoints import HEADERS, PATHS, SCOPES

IDEMPOTENCY_SECONDS = 24 * 3600
WINDOW = 60.0
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ConnectionDropped(Exception):
    """An injected fault: the connection closes without an answer (before or after acting)."""


def _rx(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$")


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    scope: str
    action: str


S = SCOPES
ROUTES = (
    Route("GET", _rx(PATHS.templates), S.template_read, "list_templates"),
    Route("POST", _rx(PATHS.templates), S.template_write, "create_template"),
    Route("GET", _rx(PATHS.template), S.template_read, "get_template"),
    Route("PUT", _rx(PATHS.template), S.template_write, "replace_template"),
    Route("DELETE", _rx(PATHS.template), S.template_write, "delete_template"),
    Route("GET", _rx(PATHS.versions), S.version_read, "list_versions"),
    Route("POST", _rx(PATHS.versions), S.version_write, "create_version"),
    Route("GET", _rx(PATHS.version), S.version_read, "get_version"),
    Route("PATCH", _rx(PATHS.version), S.version_write, "patch_version"),
    Route("DELETE", _rx(PATHS.version), S.version_write, "delete_version"),
    Route("GET", _rx(PATHS.prompts), S.prompt_read, "list_prompts"),
    Route("POST", _rx(PATHS.prompts), S.prompt_write, "create_prompt"),
    Route("GET", _rx(PATHS.prompt), S.prompt_read, "get_prompt"),
    Route("PUT", _rx(PATHS.prompt), S.prompt_write, "update_prompt"),
    Route("DELETE", _rx(PATHS.prompt), S.prompt_write, "delete_prompt"),
    Route("GET", _rx(PATHS.models), S.prompt_read, "list_models"),
    Route("GET", _rx(PATHS.vector_stores), S.store_read, "list_stores"),
    Route("GET", _rx(PATHS.indexes), S.store_read, "list_indexes"),
    Route("GET", _rx(PATHS.index), S.store_read, "get_index"),
    Route("PUT", _rx(PATHS.index), S.store_write, "put_index"),
    Route("DELETE", _rx(PATHS.index), S.store_write, "delete_index"),
    Route("POST", _rx(PATHS.invocations), S.execute, "invoke"),
    Route("POST", _rx(PATHS.dispatch), S.execute, "dispatch"),
    Route("GET", _rx(PATHS.telemetry), S.telemetry_read, "telemetry_page"),
    Route("POST", _rx(PATHS.analytics), S.analytics_read, "analytics"),
    Route("POST", _rx(PATHS.audit_logs), S.audit_write, "audit_log"),
)


@dataclass
class Token:
    client: str
    scopes: frozenset[str]
    expires: float


class Emulator:
    """The ASGI application. ``gateway`` is the state; ``log`` the request log."""

    def __init__(
        self,
        config: EmulatorConfig,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.clock = clock
        self.sleep = sleep
        self.gateway = Gateway(now=clock, ingest_delay=config.ingest_delay, seed=config.seed)
        self.clients: dict[str, ClientSpec] = {c.id: c for c in config.clients}
        self.on_change: Callable[[], None] | None = None
        self.reset_runtime()

    def reset_runtime(self) -> None:
        self.tokens: dict[str, Token] = {}
        self.token_windows: dict[str, list[float]] = {}  # client -> [start, count]
        self.rate_windows: dict[str, list[float]] = {}  # token -> [start, count]
        self.idempotency: dict[tuple[str, str], tuple[float, int, Any, dict[str, str]]] = {}
        self.log: list[dict[str, Any]] = []
        self.rates: dict[str, float] = {k: float(v) for k, v in self.config.fault_rates.items()}
        self.latency_ms = self.config.latency_ms
        self.jitter_ms = self.config.jitter_ms
        self.faults_rng = random.Random(self.config.seed)

    # -- ASGI --
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = await self.handle(request)
        await response(scope, receive, send)

    # -- helpers --
    def _error(
        self, status: int, code: str, message: str, details: list[str] | None = None, cid: str = ""
    ) -> JSONResponse:
        return JSONResponse(
            {
                "message": message,
                "code": code,
                "status": status,
                "contextId": cid,
                "details": details or [],
            },
            status_code=status,
        )

    def _finish(self, resp: Response, cid: str, window: list[float] | None) -> Response:
        resp.headers[HEADERS.correlation_id] = cid
        limit = self.config.rate_limit
        if window is not None and limit:
            reset = max(0, round(window[0] + WINDOW - self.clock()))
            count = int(window[1])
        else:
            reset, count = int(WINDOW), 0
        resp.headers[HEADERS.rate_allowed] = str(limit)
        resp.headers[HEADERS.rate_count] = str(count)
        resp.headers[HEADERS.rate_reset] = str(reset)
        return resp

    def _record(
        self, request: Request, status: int | str, rid: str | None, client: str | None
    ) -> None:
        self.log.append(
            {
                "time": self.clock(),
                "method": request.method,
                "path": request.url.path,
                "status": status,
                "requestId": rid,
                "client": client,
            }
        )
        if len(self.log) > 20000:
            del self.log[:5000]

    def _draw(self, kind: str) -> bool:
        p = self.rates.get(kind, 0.0)
        return p > 0 and self.faults_rng.random() < p

    async def _latency(self) -> None:
        if self.latency_ms or self.jitter_ms:
            ms = self.latency_ms + self.faults_rng.uniform(0, self.jitter_ms)
            await self.sleep(ms / 1000)

    # -- the request pipeline --
    async def handle(self, request: Request) -> Response:
        cid = str(uuid.uuid4())
        path = request.url.path
        if path.startswith("/__emulator/"):
            if not self.config.admin:
                return self._finish(
                    self._error(404, "not.found", "no such endpoint", cid=cid), cid, None
                )
            return self._finish(await self._admin(request), cid, None)
        await self._latency()
        if path == PATHS.token:
            resp = await self._token(request, cid)
            self._record(request, resp.status_code, None, None)
            return self._finish(resp, cid, None)
        auth = request.headers.get("authorization", "")
        token = self.tokens.get(auth[7:].strip()) if auth.lower().startswith("bearer ") else None
        if token is None or token.expires <= self.clock():
            self._record(request, 401, None, None)
            return self._finish(
                self._error(
                    401, "bad.credentials", "missing, unknown or expired bearer token", cid=cid
                ),
                cid,
                None,
            )
        method = request.method
        rid = request.headers.get(HEADERS.request_id) if method in WRITES else None
        window = self._window(auth[7:].strip())
        if rid:
            key = (token.client, rid)
            hit = self.idempotency.get(key)
            if hit is not None and hit[0] > self.clock():
                window[1] += 1
                _, status, body, headers = hit
                resp = self._json(status, body, headers)
                self._record(request, status, rid, token.client)
                return self._finish(resp, cid, window)
        limit = self.config.rate_limit
        if limit and window[1] >= limit:
            retry = max(1, round(window[0] + WINDOW - self.clock()))
            resp = self._error(
                429, "rate.limited", f"rate limit of {limit} requests a minute exceeded", cid=cid
            )
            resp.headers[HEADERS.retry_after] = str(retry)
            self._record(request, 429, rid, token.client)
            return self._finish(resp, cid, window)
        window[1] += 1
        for kind, status in (("429", 429), ("500", 500), ("503", 503)):
            if self._draw(kind):
                resp = self._error(
                    status,
                    "rate.limited" if status == 429 else "server.error",
                    f"injected fault {kind}",
                    cid=cid,
                )
                if status == 429:
                    resp.headers[HEADERS.retry_after] = "1"
                self._record(request, f"{status} (injected)", rid, token.client)
                return self._finish(resp, cid, window)
        if self._draw("drop-before"):
            self._record(request, "dropped before", rid, token.client)
            raise ConnectionDropped("injected drop before acting")
        status, body, headers = await self._dispatch(request, token, cid)
        if rid and status < 500 and status != 429:
            self.idempotency[(token.client, rid)] = (
                self.clock() + IDEMPOTENCY_SECONDS,
                status,
                body,
                headers,
            )
        if method in WRITES and status < 400 and self.on_change is not None:
            self.on_change()
        self._record(request, status, rid, token.client)
        if self._draw("drop-after"):
            self.log[-1]["status"] = f"{status} (answer dropped)"
            raise ConnectionDropped("injected drop after committing")
        return self._finish(self._json(status, body, headers), cid, window)

    def _json(self, status: int, body: Any, headers: dict[str, str]) -> Response:
        if status == 204 or body is None:
            resp: Response = Response(status_code=status, headers=headers)
        else:
            resp = JSONResponse(body, status_code=status, headers=headers)
        return resp

    def _window(self, token: str) -> list[float]:
        now = self.clock()
        w = self.rate_windows.get(token)
        if w is None or now >= w[0] + WINDOW:
            w = [now, 0]
            self.rate_windows[token] = w
        return w

    async def _dispatch(
        self, request: Request, token: Token, cid: str
    ) -> tuple[int, Any, dict[str, str]]:
        path, method = request.url.path, request.method
        route, params, allowed = None, {}, []
        for r in ROUTES:
            m = r.pattern.match(path)
            if m:
                allowed.append(r.method)
                if r.method == method:
                    route, params = r, m.groupdict()
                    break
        if route is None:
            if allowed:
                return self._err_tuple(
                    405,
                    "method.not.allowed",
                    f"{method} is not allowed here; use {', '.join(allowed)}",
                    cid,
                )
            return self._err_tuple(404, "not.found", f"no endpoint {path}", cid)
        if route.scope not in token.scopes:
            return self._err_tuple(
                403, "missing.scope", f"the OAuth client lacks the scope {route.scope}", cid
            )
        body: Any = None
        if method in ("POST", "PUT", "PATCH"):
            raw = await request.body()
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    return self._err_tuple(400, "validation.failed", "the body is not JSON", cid)
        query = dict(request.query_params)
        g = self.gateway
        base = str(request.base_url).rstrip("/")
        h = request.headers
        if_match, if_none = h.get(HEADERS.if_match), h.get(HEADERS.if_none_match)
        try:
            a = route.action
            answer: Answer
            if a == "list_templates":
                answer = g.list_templates(query)
            elif a == "create_template":
                answer = g.create_template(body, base + PATHS.templates)
            elif a == "get_template":
                answer = g.get_template(params["templateId"])
            elif a == "replace_template":
                answer = g.replace_template(params["templateId"], body, if_match)
            elif a == "delete_template":
                answer = g.delete_template(params["templateId"])
            elif a == "list_versions":
                answer = g.list_versions(params["templateId"], query)
            elif a == "create_version":
                answer = g.create_version(params["templateId"], body)
            elif a == "get_version":
                answer = g.get_version(params["templateId"], params["version"])
            elif a == "patch_version":
                answer = g.patch_version(params["templateId"], params["version"], body)
            elif a == "delete_version":
                answer = g.delete_version(params["templateId"], params["version"])
            elif a == "list_prompts":
                answer = g.list_prompts(query)
            elif a == "create_prompt":
                answer = g.create_prompt(body, base + PATHS.prompts)
            elif a == "get_prompt":
                answer = g.get_prompt(params["promptId"])
            elif a == "update_prompt":
                answer = g.update_prompt(params["promptId"], body, if_match)
            elif a == "delete_prompt":
                answer = g.delete_prompt(params["promptId"], if_match)
            elif a == "list_models":
                answer = g.list_models(query)
            elif a == "list_stores":
                answer = g.list_stores(query)
            elif a == "list_indexes":
                answer = g.list_indexes(params["vectorStoreId"], query)
            elif a == "get_index":
                answer = g.get_index(params["vectorStoreId"], params["indexId"])
            elif a == "put_index":
                answer = g.put_index(
                    params["vectorStoreId"], params["indexId"], body, if_match, if_none
                )
            elif a == "delete_index":
                answer = g.delete_index(params["vectorStoreId"], params["indexId"], if_match)
            elif a == "invoke":
                answer = g.invoke(body)
            elif a == "dispatch":
                answer = g.dispatch(body)
            elif a == "telemetry_page":
                answer = g.telemetry_page(query)
            elif a == "analytics":
                answer = g.analytics(body)
            else:
                answer = g.audit_log(body)
        except ApiError as exc:
            return self._err_tuple(exc.status, exc.code, exc.message, cid, exc.details)
        # a copy: the answer may be remembered for an idempotent replay while the state moves on
        body_out = json.loads(json.dumps(answer.body)) if method in WRITES else answer.body
        return answer.status, body_out, dict(answer.headers)

    def _err_tuple(
        self, status: int, code: str, message: str, cid: str, details: list[str] | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        return (
            status,
            {
                "message": message,
                "code": code,
                "status": status,
                "contextId": cid,
                "details": details or [],
            },
            {},
        )

    # -- OAuth --
    async def _token(self, request: Request, cid: str) -> Response:
        if request.method != "POST":
            return self._error(405, "method.not.allowed", "use POST", cid=cid)
        from urllib.parse import parse_qs

        try:
            raw = (await request.body()).decode("utf-8")
        except UnicodeDecodeError:
            raw = ""
        form = {k: v[0] for k, v in parse_qs(raw).items()}
        cid_, secret = form.get("client_id"), form.get("client_secret")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            import base64

            try:
                cid_, _, secret = base64.b64decode(auth[6:]).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                cid_, secret = None, None
        if form.get("grant_type") != "client_credentials":
            return JSONResponse(
                {
                    "error": "unsupported_grant_type",
                    "description": "use grant_type=client_credentials",
                },
                400,
            )
        client = self.clients.get(str(cid_)) if cid_ else None
        if client is None or not secrets.compare_digest(str(secret or ""), client.secret):
            return JSONResponse(
                {"error": "invalid_client", "description": "client authentication failed"}, 401
            )
        now = self.clock()
        w = self.token_windows.get(client.id)
        if w is None or now >= w[0] + WINDOW:
            w = [now, 0]
            self.token_windows[client.id] = w
        if self.config.token_rate_limit and w[1] >= self.config.token_rate_limit:
            resp = JSONResponse(
                {"error": "invalid_request", "description": "rate limit exceeded"}, 400
            )
            resp.headers[HEADERS.retry_after] = str(max(1, round(w[0] + WINDOW - now)))
            return resp
        w[1] += 1
        granted = client.granted()
        asked = form.get("scope")
        if asked:
            granted = granted & frozenset(str(asked).split())
        value = secrets.token_urlsafe(32)
        self.tokens[value] = Token(client.id, granted, now + self.config.token_lifetime)
        return JSONResponse(
            {
                "access_token": value,
                "token_type": "bearer",
                "expires_in": self.config.token_lifetime,
                "scope": " ".join(sorted(granted)),
            }
        )

    # -- admin (test-only) --
    async def _admin(self, request: Request) -> Response:
        path, method = request.url.path, request.method
        if path == "/__emulator/requests" and method == "GET":
            return JSONResponse({"requests": self.log})
        if path == "/__emulator/faults" and method == "GET":
            return JSONResponse(self._faults())
        if path == "/__emulator/faults" and method in ("PUT", "POST"):
            try:
                data = json.loads(await request.body() or b"{}")
                self._set_faults(data)
            except (ValueError, TypeError) as exc:
                return self._error(400, "validation.failed", str(exc))
            return JSONResponse(self._faults())
        if path == "/__emulator/reset" and method == "POST":
            self.gateway.reset()
            self.reset_runtime()
            if self.on_change is not None:
                self.on_change()
            return JSONResponse({"reset": True})
        if path == "/__emulator/state" and method == "GET":
            return JSONResponse(self.gateway.snapshot())
        return self._error(404, "not.found", f"no admin endpoint {method} {path}")

    def _faults(self) -> dict[str, Any]:
        return {
            "rates": {k: self.rates.get(k, 0.0) for k in FAULT_KINDS},
            "latencyMs": self.latency_ms,
            "jitterMs": self.jitter_ms,
            "ingestDelay": self.gateway.ingest_delay,
            "failingModels": sorted(self.gateway.failing_models),
        }

    def _set_faults(self, data: Any) -> None:
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        if "rates" in data:
            rates = data["rates"] or {}
            for k, v in rates.items():
                if k not in FAULT_KINDS or not isinstance(v, int | float) or not 0 <= v <= 1:
                    raise ValueError(f"fault rate {k}={v}: kinds {', '.join(FAULT_KINDS)}, 0..1")
            self.rates = {k: float(v) for k, v in rates.items()}
        if "latencyMs" in data:
            self.latency_ms = int(data["latencyMs"])
        if "jitterMs" in data:
            self.jitter_ms = int(data["jitterMs"])
        if "ingestDelay" in data:
            self.gateway.ingest_delay = float(data["ingestDelay"])
        if "failingModels" in data:
            self.gateway.failing_models = {str(m) for m in data["failingModels"] or []}
        if "seed" in data:
            self.faults_rng = random.Random(data["seed"])


def create_app(
    config: EmulatorConfig,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Emulator:
    return Emulator(config, clock=clock, sleep=sleep)
