"""Executing a plan: the operations of each wave concurrently, waves in order.

Each operation's requests are sent as written in the plan, with three run-time additions: ids of
objects created earlier in the run replace the plan's references; a request whose object this
run already wrote carries the precondition that write returned (the run's own writes never count
as staleness); and every request carries a fresh ``X-Genesys-Request-Id`` that the client keeps
across its retries, so a retried create never duplicates. A failed operation stops new waves;
operations already in flight finish. ``index.processing`` is not a failure: the executor waits
(bounded) for the index to become ACTIVE and sends again.

It never decides what to do (the planner did) and never prints: progress goes to a callback,
every write to the audit hook.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from reconciler.endpoints import FIELDS
from reconciler.errors import (
    LlmgwError,
    PreconditionFailedError,
    ProcessingError,
    RemoteError,
)
from reconciler.model import Kind
from reconciler.normalize import LiveState, Ref, fingerprint
from reconciler.planner import Operation, OpType, Plan, Request

APPLIED, FAILED, NOT_ATTEMPTED = "applied", "failed", "not attempted"


class Response(Protocol):
    status: int
    body: Any
    etag: str | None
    correlation_id: str | None


class Sender(Protocol):
    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
    ) -> Any: ...


@dataclass
class OpResult:
    op: Operation
    outcome: str = NOT_ATTEMPTED
    error: str | None = None
    stale: bool = False
    status: int | None = None
    latency_ms: float = 0.0
    index_status: str | None = None


@dataclass
class ApplyResult:
    results: list[OpResult] = field(default_factory=list)

    def by_outcome(self, outcome: str) -> list[OpResult]:
        return [r for r in self.results if r.outcome == outcome]

    @property
    def ok(self) -> bool:
        return all(r.outcome == APPLIED for r in self.results)

    @property
    def stale(self) -> list[OpResult]:
        return [r for r in self.results if r.stale]


def resolve(value: Any, ids: Mapping[str, str]) -> Any:
    """Replace ``Ref``s by the remote ids they name (KeyError when not known yet)."""
    if isinstance(value, Ref):
        return ids[str(value)]
    if isinstance(value, dict):
        return {k: resolve(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, ids) for v in value]
    return value


def concrete_path(req: Request, ids: Mapping[str, str]) -> str:
    params = {k: str(resolve(v, ids)) for k, v in req.params.items()}
    return req.path.format(**params)


class Executor:
    def __init__(
        self,
        sender: Sender,
        plan: Plan,
        live: LiveState,
        *,
        parallelism: int = 8,
        audit: Callable[[dict[str, Any]], object] | None = None,
        on_event: Callable[[str, OpResult], None] | None = None,
        index_wait_seconds: float = 120.0,
        poll_seconds: float = 0.5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sender = sender
        self.plan = plan
        self.parallelism = max(1, parallelism)
        self.audit = audit
        self.on_event = on_event or (lambda _e, _r: None)
        self.index_wait_seconds = index_wait_seconds
        self.poll_seconds = poll_seconds
        self.sleep = sleep
        self.clock = clock
        self.ids: dict[str, str] = {}
        self.before: dict[str, str | None] = {}
        for ref, obj in live.objects.items():
            if obj.remote_id is not None:
                self.ids[ref] = obj.remote_id
            self.before[ref] = fingerprint(obj.fields)
        self.written: dict[str, int | str | None] = {}  # ref -> precondition after our write
        self._lock = asyncio.Lock()

    async def run(self) -> ApplyResult:
        result = ApplyResult([OpResult(op) for op in self.plan.changes])
        by_op = {id(r.op): r for r in result.results}
        sem = asyncio.Semaphore(self.parallelism)

        async def one(op: Operation) -> None:
            async with sem:
                await self._operation(by_op[id(op)])

        for wave in self.plan.waves():
            await asyncio.gather(*(one(op) for op in wave))
            if any(by_op[id(op)].outcome != APPLIED for op in wave):
                break
        return result

    def _precondition(self, op: Operation, req: Request) -> dict[str, str]:
        headers = dict(req.headers)
        if req.precondition == "if-match" and op.ref in self.written:
            current = self.written[op.ref]
            headers["If-Match"] = (
                f"version={current}" if op.kind == Kind.PROMPT_TEMPLATE.value else str(current)
            )
        return headers

    async def _operation(self, r: OpResult) -> None:
        op = r.op
        self.on_event("start", r)
        started = self.clock()
        try:
            for req in op.requests:
                await self._send(op, req, r)
        except PreconditionFailedError as exc:
            r.outcome, r.stale = FAILED, True
            r.error = (
                f"{op.ref} changed in the org since the plan was made "
                f"({exc.code or exc.status}); re-run `llmgw plan`"
            )
        except (RemoteError, LlmgwError) as exc:
            r.outcome, r.error = FAILED, str(exc)
        else:
            r.outcome = APPLIED
        r.latency_ms = round((self.clock() - started) * 1000, 1)
        self.on_event("done", r)

    async def _send(self, op: Operation, req: Request, r: OpResult) -> None:
        deadline = self.clock() + self.index_wait_seconds
        while True:
            async with self._lock:
                path = concrete_path(req, self.ids)
                body = resolve(req.body, self.ids) if req.body is not None else None
                headers = self._precondition(op, req)
            request_id = str(uuid.uuid4())
            t0 = self.clock()
            try:
                resp = await self.sender.request(
                    req.method, path, json=body, headers=headers, request_id=request_id
                )
            except ProcessingError as exc:
                self._audit(op, req, path, request_id, None, exc, t0)
                if self.clock() >= deadline:
                    raise
                await self._wait_active(path, deadline)
                continue
            except RemoteError as exc:
                self._audit(op, req, path, request_id, None, exc, t0)
                raise
            r.status = resp.status
            self._record(op, req, resp)
            self._audit(op, req, path, request_id, resp, None, t0)
            return

    async def _wait_active(self, path: str, deadline: float) -> None:
        """Poll the index until it is no longer PROCESSING (or the deadline passes)."""
        while self.clock() < deadline:
            await self.sleep(self.poll_seconds)
            try:
                resp = await self.sender.request("GET", path)
            except RemoteError:
                return
            body = resp.body if isinstance(resp.body, dict) else {}
            if body.get(FIELDS.index.status) != "PROCESSING":
                return

    def _record(self, op: Operation, req: Request, resp: Any) -> None:
        body = resp.body if isinstance(resp.body, dict) else {}
        if req.method == "DELETE":
            self.written[op.ref] = None
            return
        if op.kind == Kind.PROMPT_TEMPLATE.value:
            if body.get(FIELDS.template.id) is not None:
                self.ids[op.ref] = str(body[FIELDS.template.id])
            self.written[op.ref] = body.get(FIELDS.template.version)
        elif op.kind in (Kind.PROMPT.value, Kind.TRAFFIC_SPLIT.value):
            if body.get(FIELDS.prompt.id) is not None:
                for ref in (
                    f"{Kind.PROMPT.value}/{op.key}",
                    f"{Kind.TRAFFIC_SPLIT.value}/{op.key}",
                ):
                    self.ids[ref] = str(body[FIELDS.prompt.id])
            self.written[op.ref] = resp.etag or body.get(FIELDS.prompt.etag)
        elif op.kind == Kind.VECTOR_INDEX.value:
            self.ids[op.ref] = str(body.get(FIELDS.index.index_id) or op.key.partition("/")[2])
            self.written[op.ref] = resp.etag or body.get(FIELDS.index.etag)
        elif op.kind == Kind.PROMPT_VERSION.value:
            self.ids[op.ref] = str(body.get(FIELDS.version.version) or op.key.rpartition("@")[2])

    def _audit(
        self,
        op: Operation,
        req: Request,
        path: str,
        request_id: str,
        resp: Any,
        error: Exception | None,
        t0: float,
    ) -> None:
        if self.audit is None:
            return
        body = resp.body if resp is not None else None
        status = resp.status if resp is not None else getattr(error, "status", None)
        self.audit(
            {
                "operation": op.action.value,
                "kind": op.kind,
                "identity": op.key,
                "requestId": request_id,
                "correlationId": (
                    resp.correlation_id
                    if resp is not None
                    else getattr(error, "correlation_id", None)
                ),
                "method": req.method,
                "path": path,
                "status": status,
                "outcome": APPLIED if error is None else FAILED,
                "latencyMs": round((self.clock() - t0) * 1000, 1),
                "beforeHash": None if op.action == OpType.CREATE else self.before.get(op.ref),
                "afterHash": fingerprint(body) if body is not None else None,
                "error": str(error)[:300] if error is not None else None,
            }
        )
