"""Executing a plan: the operations of each wave concurrently, waves in order.

Each operation's requests are sent as written in the plan, with three run-time additions: ids of
objects created earlier in the run replace the plan's references; a request whose object this
run already wrote carries the precondition that write returned (the run's own writes never count
as staleness); and every request carries a fresh ``X-Genesys-Request-Id`` that the client keeps
across its retries, so a retried create never duplicates. A failed operation stops new waves;
operations already in flight finish. ``index.processing`` is not a failure: the executor waits
(bounded) for the index to become ACTIVE and sends again.

Whatever the plan says, some things never happen (checked for the whole plan before the first
write, and again for each request as it is sent): a DELETE of an object the live state does not
show with the management label; a delete without ``prune``; a replacement without
``allow_replace`` or the manifest's annotation; a request whose method and path are not the ones
the endpoint table gives the operation's kind and action, or that goes to another object than
the operation names. A violation is ``InvariantError`` before the run, or stops the run.

A run can be stopped (``Stop``): by a signal, the run deadline, an audit line that could not be
written, an invariant. From then on no new request is sent; requests in flight finish, or are
abandoned once the stop's grace period is over (their audit line says the outcome is unknown).
The audit hook is called after every write, and the next write is sent only once it returned; an
``AuditError`` from it stops the run, and the write is listed as applied without an audit line.

It never decides what to do (the planner did) and never prints: progress goes to a callback,
every write to the audit hook.
"""

from __future__ import annotations

import asyncio
import string
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from reconciler import kinds
from reconciler.endpoints import HEADERS
from reconciler.errors import (
    AuditError,
    InvariantError,
    LlmgwError,
    PreconditionFailedError,
    ProcessingError,
    RemoteError,
    RunStopped,
    TransportError,
)
from reconciler.objects import SERVER_TIME, LiveState, Ref, ServerTime, fingerprint
from reconciler.operations import Operation, OpType, Plan, Request
from reconciler.text import iso_utc

APPLIED, FAILED, NOT_ATTEMPTED = "applied", "failed", "not attempted"
UNKNOWN = "unknown"  # an audit line's outcome when no answer came: the write may have happened

R = TypeVar("R")


ALLOWED_HEADERS = frozenset(
    h.lower() for h in (HEADERS.if_match, HEADERS.if_none_match, HEADERS.ab_test)
)


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _safe_segment(value: str) -> bool:
    """An id that stays one path segment: no separator, query, escape or control character."""
    return (
        bool(value)
        and value not in (".", "..")
        and not any(c in value for c in "/?#%\\")
        and all(c.isprintable() and not c.isspace() for c in value)
    )


@dataclass(frozen=True)
class Permissions:
    """What the person running apply permitted: deletes (``--prune``) and replacements
    (``--allow-replace``, or the ``llmgw/allow-replace`` annotation of these manifests' refs)."""

    prune: bool = False
    allow_replace: bool = False
    replace_annotated: frozenset[str] = frozenset()

    def may_replace(self, ref: str) -> bool:
        return self.allow_replace or ref in self.replace_annotated

    def refusal(self, op: Operation) -> str | None:
        """Why ``op`` is not permitted (a delete without --prune, a replace without
        --allow-replace or the annotation), or None."""
        if op.action == OpType.DELETE and not self.prune:
            return "a delete needs --prune"
        if op.action == OpType.REPLACE and not self.may_replace(op.ref):
            resource = kinds.get(op.kind)
            loses = resource.replace_loses if resource is not None else "what it holds"
            return (
                f"replacing it deletes {loses}; needs --allow-replace or the annotation "
                'llmgw/allow-replace: "true" in its manifest'
            )
        return None

    def refusals(self, plan: Plan) -> list[str]:
        """Every change of ``plan`` this run has no permission for, by ref."""
        return [f"{op.ref}: {why}" for op in plan.changes if (why := self.refusal(op))]


def own_path(op: Operation, method: str, ids: Mapping[str, str]) -> str | None:
    """The concrete path of the object ``op`` names (its collection for a POST), or None while
    an id it needs is not known (the kind says: ``Resource.own_path``)."""
    resource = kinds.get(op.kind)
    return resource.own_path(op.key, method, ids) if resource is not None else None


def expected_writes(op: Operation) -> tuple[tuple[str, str], ...] | None:
    """The (method, path template) of each request ``op`` may send, in order, or None when
    llmgw never plans this action for this kind (the kind's ``writes``)."""
    resource = kinds.get(op.kind)
    return resource.writes.get(op.action) if resource is not None else None


def _where(n: int, op: Operation) -> str:
    return f"operation {n} ({op.action.value} {op.ref})"


def check_operation(n: int, op: Operation, live: LiveState, permissions: Permissions) -> list[str]:
    """What is wrong with ``op`` as a whole (its permission, its methods and path templates)."""
    out: list[str] = []
    where = _where(n, op)
    expected = expected_writes(op)
    if expected is None:
        return [f"{where}: llmgw never plans this action for this kind"]
    refused = permissions.refusal(op)
    if refused is not None:
        out.append(f"{where}: {refused}")
    if op.action in (OpType.DELETE, OpType.REPLACE):
        have = live.get(op.ref)
        if have is None:
            out.append(f"{where}: not in the org, so there is nothing of it to delete")
        elif not have.managed:
            out.append(
                f"{where}: the org shows it without the label managed-by: llmgw; llmgw never "
                "deletes an object it does not manage"
            )
    got = tuple((r.method.upper(), r.path) for r in op.requests)
    if got != expected:
        want = ", ".join(f"{m} {p}" for m, p in expected)
        sent = ", ".join(f"{m} {p}" for m, p in got) or "no request"
        a = "an" if op.action.value[0] in "aeiou" else "a"
        out.append(f"{where}: sends {sent}; {a} {op.action.value} of a {op.kind} sends {want}")
    for i, r in enumerate(op.requests, start=1):
        if set(r.params) != _placeholders(r.path):
            out.append(
                f"{where}, request {i}: parameters {sorted(r.params)} do not fill the path "
                f"{r.path} (it takes {sorted(_placeholders(r.path))})"
            )
        bad = sorted(h for h in r.headers if h.lower() not in ALLOWED_HEADERS)
        if bad:
            out.append(f"{where}, request {i}: headers llmgw never sets: {', '.join(bad)}")
    return out


def check_request(
    n: int,
    op: Operation,
    req: Request,
    path: str,
    params: Mapping[str, str],
    ids: Mapping[str, str],
) -> list[str]:
    """What is wrong with one request as it is about to be sent (its concrete path)."""
    where = _where(n, op)
    out = [
        f"{where}: the id {v!r} in {req.method} {req.path} is not a single path segment"
        for v in params.values()
        if not _safe_segment(v)
    ]
    own = own_path(op, req.method.upper(), ids)
    if own is None:
        out.append(f"{where}: the id of the object it names is not known; nothing sent to {path}")
    elif path != own:
        out.append(f"{where}: {req.method} {path} goes to another object than {op.ref} ({own})")
    return out


def check_plan(plan: Plan, live: LiveState, permissions: Permissions) -> list[str]:
    """Every invariant the plan breaks, before anything is sent (concrete paths where the ids
    are known already; the others are checked again as each request is sent)."""
    ids = {ref: o.remote_id for ref, o in live.objects.items() if o.remote_id is not None}
    out: list[str] = []
    for n, op in enumerate(plan.changes, start=1):
        problems = check_operation(n, op, live, permissions)
        if not problems:
            for req in op.requests:
                try:
                    params, path = concrete(req, ids)
                except KeyError:
                    continue  # an object this run creates first
                problems += check_request(n, op, req, path, params, ids)
        out.extend(problems)
    return out


# -- stopping ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StopReason:
    kind: str  # signal | timeout | audit | invariant
    message: str
    signum: int | None = None


class Stop:
    """Why a run stopped, shared by whoever may stop it and the executor that obeys. After the
    first ``request``, requests in flight have ``grace_seconds`` to finish (the CLI gives them
    the client's deadline of one attempt) before they are abandoned; a request still waiting
    for pacing or a retry is never sent (the client asks ``may_send``). Used from the event
    loop's thread only."""

    def __init__(self, grace_seconds: float = 30.0) -> None:
        self.grace_seconds = grace_seconds
        self.reason: StopReason | None = None
        self.stopped_event = asyncio.Event()
        self.abandon_event = asyncio.Event()

    @property
    def stopped(self) -> bool:
        return self.reason is not None

    @property
    def why(self) -> str:
        """Why the run stopped, as reported: the reason's message, or "stopped"."""
        return self.reason.message if self.reason else "stopped"

    def request(self, reason: StopReason) -> None:
        if self.reason is not None:
            return
        self.reason = reason
        self.stopped_event.set()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.abandon_event.set()
            return
        loop.call_later(max(0.0, self.grace_seconds), self.abandon_event.set)


class _Stopped(Exception):
    """Internal: the run was stopped before this request was sent."""


class _Abandoned(Exception):
    """Internal: the request was in flight when the grace period ended."""


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def _race(aw: Awaitable[R], event: asyncio.Event) -> tuple[bool, R | None]:
    """(True, result) when ``aw`` finished first, (False, None) when ``event`` was set first
    (``aw`` is cancelled then)."""
    task = asyncio.ensure_future(aw)
    waiter = asyncio.ensure_future(event.wait())
    try:
        done, _pending = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        if not task.done():
            task.cancel()  # its end is of no use; retrieved so that nothing logs it
            task.add_done_callback(_retrieve)
    if task in done and not task.cancelled():
        return True, task.result()
    return False, None


# -- results -------------------------------------------------------------------------------------
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
        may_send: Callable[[], bool] | None = None,
    ) -> Any: ...


@dataclass
class OpResult:
    op: Operation
    outcome: str = NOT_ATTEMPTED
    error: str | None = None
    stale: bool = False
    status: int | None = None
    latency_ms: float = 0.0
    sent: int = 0  # requests answered with success

    def as_dict(self) -> dict[str, Any]:
        """The operation's outcome as the JSON output and the webhook summary report it."""
        return {
            "ref": self.op.ref,
            "action": self.op.action.value,
            "outcome": self.outcome,
            "status": self.status,
            "error": self.error,
        }


@dataclass
class ApplyResult:
    results: list[OpResult] = field(default_factory=list)
    stopped: StopReason | None = None
    unaudited: list[str] = field(default_factory=list)  # applied writes with no audit line

    def by_outcome(self, outcome: str) -> list[OpResult]:
        return [r for r in self.results if r.outcome == outcome]

    @property
    def ok(self) -> bool:
        return (
            all(r.outcome == APPLIED for r in self.results)
            and self.stopped is None
            and not self.unaudited
        )


def resolve(value: Any, ids: Mapping[str, str]) -> Any:
    """Replace ``Ref``s by the remote ids they name (KeyError when not known yet), and
    ``ServerTime`` by the server's clock (``ids[SERVER_TIME]``, set before each write)."""
    if isinstance(value, Ref | ServerTime):
        return ids[str(value)]
    if isinstance(value, dict):
        return {k: resolve(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, ids) for v in value]
    return value


def concrete(req: Request, ids: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """The request's path parameters with their ids resolved, and the path they make
    (KeyError while an id is not known yet)."""
    params = {k: str(resolve(v, ids)) for k, v in req.params.items()}
    return params, req.path.format(**params)


def concrete_path(req: Request, ids: Mapping[str, str]) -> str:
    return concrete(req, ids)[1]


class Executor:
    def __init__(
        self,
        sender: Sender,
        plan: Plan,
        live: LiveState,
        *,
        permissions: Permissions | None = None,
        stop: Stop | None = None,
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
        self.live = live
        self.permissions = permissions or Permissions()
        self.stop = stop or Stop()
        self.parallelism = max(1, parallelism)
        self.audit = audit
        self.on_event = on_event or (lambda _e, _r: None)
        self.index_wait_seconds = index_wait_seconds
        self.poll_seconds = poll_seconds
        self.sleep = sleep
        self.clock = clock
        self.ids: dict[str, str] = {
            ref: obj.remote_id for ref, obj in live.objects.items() if obj.remote_id is not None
        }
        self.written: dict[str, int | str | None] = {}  # ref -> precondition after our write
        self._lock = asyncio.Lock()
        self._result = ApplyResult()
        self._number: dict[int, int] = {}

    async def run(self) -> ApplyResult:
        """InvariantError (nothing sent) when the plan breaks a rule; else the outcome of
        every operation."""
        violations = check_plan(self.plan, self.live, self.permissions)
        if violations:
            raise InvariantError(violations)
        changes = self.plan.changes
        result = self._result = ApplyResult([OpResult(op) for op in changes])
        self._number = {id(op): n for n, op in enumerate(changes, start=1)}
        by_op = {id(r.op): r for r in result.results}
        sem = asyncio.Semaphore(self.parallelism)

        async def one(op: Operation) -> None:
            async with sem:
                await self._operation(by_op[id(op)])

        for wave in self.plan.waves():
            if self.stop.stopped:
                break
            await asyncio.gather(*(one(op) for op in wave))
            if any(by_op[id(op)].outcome != APPLIED for op in wave):
                break
        result.stopped = self.stop.reason
        return result

    def _precondition(self, op: Operation, req: Request) -> dict[str, str]:
        headers = dict(req.headers)
        if req.precondition == "if-match" and op.ref in self.written:
            headers[HEADERS.if_match] = kinds.resource(op.kind).if_match(self.written[op.ref])
        return headers

    async def _operation(self, r: OpResult) -> None:
        op = r.op
        if self.stop.stopped:
            return  # not attempted
        self._event("start", r)
        started = self.clock()
        try:
            for req in op.requests:
                await self._send(op, req, r)
        except _Stopped:
            if r.sent:
                r.outcome = FAILED
                r.error = (
                    f"stopped after {r.sent} of its {len(op.requests)} requests "
                    f"({self.stop.why}); re-run apply to finish it"
                )
            else:
                r.outcome = NOT_ATTEMPTED
        except _Abandoned:
            r.outcome = FAILED
            r.error = (
                "still in flight when the run stopped and abandoned after the grace period: it "
                "may or may not have been applied; re-run `llmgw plan` to see"
            )
        except PreconditionFailedError as exc:
            r.outcome, r.stale = FAILED, True
            r.error = (
                f"{op.ref} changed in the org since the plan was made "
                f"({exc.code or exc.status}); re-run `llmgw plan`"
            )
        except InvariantError as exc:
            r.outcome, r.error = FAILED, "; ".join(exc.violations)
            self.stop.request(StopReason("invariant", f"refused a request: {r.error}"))
        except (RemoteError, LlmgwError) as exc:
            r.outcome, r.error = FAILED, str(exc)
        else:
            r.outcome = APPLIED
        r.latency_ms = round((self.clock() - started) * 1000, 1)
        self._event("done", r)

    def _event(self, event: str, r: OpResult) -> None:
        """Progress is for people: a callback that fails (a closed terminal, a full disk under a
        redirected stderr) never stops or breaks a run that is writing to the org."""
        try:
            self.on_event(event, r)
        except Exception:  # deliberately anything: progress is cosmetic
            pass

    def _server_time(self) -> float:
        """The server's clock (its last ``Date`` header and the time since), else this
        machine's (a server that sends no Date header)."""
        now = getattr(self.sender, "server_time", None)
        when = now() if callable(now) else None
        return when if isinstance(when, float) else time.time()

    async def _send(self, op: Operation, req: Request, r: OpResult) -> None:
        deadline = self.clock() + self.index_wait_seconds
        n = self._number.get(id(op), 0)
        while True:
            if self.stop.stopped:
                raise _Stopped
            async with self._lock:
                self.ids[SERVER_TIME] = iso_utc(self._server_time())
                params, path = concrete(req, self.ids)
                body = resolve(req.body, self.ids) if req.body is not None else None
                headers = self._precondition(op, req)
                problems = check_request(n, op, req, path, params, self.ids)
            if problems:
                raise InvariantError(problems)
            request_id = str(uuid.uuid4())
            t0 = self.clock()
            try:
                done, resp = await _race(
                    self.sender.request(
                        req.method,
                        path,
                        json=body,
                        headers=headers,
                        request_id=request_id,
                        may_send=lambda: not self.stop.stopped,
                    ),
                    self.stop.abandon_event,
                )
            except RunStopped:  # stopped while it waited for pacing or a retry: never sent
                raise _Stopped from None
            except ProcessingError as exc:
                self._audit(op, req, path, request_id, None, exc, t0)
                if self.clock() >= deadline:
                    raise
                await self._wait_active(op, path, deadline)
                continue
            except RemoteError as exc:
                self._audit(op, req, path, request_id, None, exc, t0)
                raise
            if not done or resp is None:
                self._audit(op, req, path, request_id, None, None, t0, abandoned=True)
                raise _Abandoned
            r.status = resp.status
            r.sent += 1
            self._record(op, req, resp)
            self._audit(op, req, path, request_id, resp, None, t0)
            return

    async def _wait_active(self, op: Operation, path: str, deadline: float) -> None:
        """Poll the object (an index ingesting) until its kind says it is no longer busy (or
        the deadline passes, or the run stops)."""
        while self.clock() < deadline:
            slept, _ = await _race(self.sleep(self.poll_seconds), self.stop.stopped_event)
            if not slept:
                raise _Stopped
            try:
                resp = await self.sender.request("GET", path)
            except RemoteError:
                return
            body = resp.body if isinstance(resp.body, dict) else {}
            if not kinds.resource(op.kind).busy(body):
                return

    def _record(self, op: Operation, req: Request, resp: Any) -> None:
        """Note what a write's answer tells the run: its ids, and the object's new
        precondition, which later requests of this run send (its own writes never count as
        staleness). The kind reads its answer (``Resource.record``)."""
        if req.method == "DELETE":
            self.written[op.ref] = None
            return
        body = resp.body if isinstance(resp.body, dict) else {}
        recorded = kinds.resource(op.kind).record(op, body, resp.etag)
        self.ids.update(recorded.ids)
        if recorded.precondition is not None or op.ref in self.written:
            self.written[op.ref] = recorded.precondition

    def _before(self, op: Operation) -> str | None:
        """The fingerprint of the object as the plan read it (None for a create), computed for
        the objects the run writes only (the live state does not change during a run)."""
        have = self.live.objects.get(op.ref)
        if op.action == OpType.CREATE or have is None:
            return None
        return fingerprint(have.fields)

    def _audit(
        self,
        op: Operation,
        req: Request,
        path: str,
        request_id: str,
        resp: Any,
        error: Exception | None,
        t0: float,
        *,
        abandoned: bool = False,
    ) -> None:
        """One audit line per request sent. When the hook cannot write it, the run stops: no
        further write is sent, and an applied write is listed as having no audit line."""
        body = resp.body if resp is not None else None
        status = resp.status if resp is not None else getattr(error, "status", None)
        if abandoned:
            outcome, message = UNKNOWN, "abandoned at shutdown with no answer"
        elif isinstance(error, TransportError):
            outcome, message = UNKNOWN, str(error)  # no answer: it may have been applied
        elif error is not None:
            outcome, message = FAILED, str(error)
        else:
            outcome, message = APPLIED, None
        if self.audit is None:
            return
        record = {
            "operation": op.action.value,
            "kind": op.kind,
            "identity": op.key,
            "requestId": request_id,
            "correlationId": (
                resp.correlation_id if resp is not None else getattr(error, "correlation_id", None)
            ),
            "method": req.method,
            "path": path,
            "status": status,
            "outcome": outcome,
            "latencyMs": round((self.clock() - t0) * 1000, 1),
            "beforeHash": self._before(op),
            "afterHash": fingerprint(body) if body is not None else None,
            "error": message[:300] if message is not None else None,
        }
        try:
            self.audit(record)
        except AuditError as exc:
            if outcome != FAILED:
                self._result.unaudited.append(
                    f"{req.method} {path} ({op.action.value} {op.ref}: {outcome}"
                    + (f", {status}" if status is not None else "")
                    + ")"
                )
            self.stop.request(StopReason("audit", f"the audit log could not be written: {exc}"))
