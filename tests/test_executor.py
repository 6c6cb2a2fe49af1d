"""The executor against a fake sender that implements the client's interface.

Covers: waves run in order and ids created in one wave resolve the references of the next; each
request carries a request id; a replacement deletes, then creates; `index.processing` is waited
out (polling GET) and resent with a new request id; a failure stops later waves but lets its
wave finish; a precondition failure is reported as stale; every write (applied or failed)
reaches the audit hook, a write that got no answer as outcome "unknown"; a progress callback
that raises never breaks the run.

The invariants, whatever the plan says, each refused before anything is sent: a request
retargeted to DELETE, a delete without prune, a delete or replacement of an object the live
state shows without the management label, a replacement without permission (and with each kind
of permission: the flag, the manifest's annotation), a request to another object's path, a
method the kind does not use, a header llmgw never sets; an id that is not one path segment
(known only once an earlier create answered) refused as it is sent, stopping the run.

Stopping: a stop before the run sends nothing; a stop during a wave lets the request in flight
finish and sends no new one; a request still in flight after the grace period is abandoned
(audit outcome unknown); waiting for an index stops with the run; an audit line that cannot be
written stops the run before any further write and lists the applied write without a line.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from reconciler.endpoints import PATHS
from reconciler.errors import (
    AuditError,
    InvariantError,
    PreconditionFailedError,
    ProcessingError,
    RunStopped,
    ServerError,
    TransportError,
)
from reconciler.executor import (
    APPLIED,
    FAILED,
    NOT_ATTEMPTED,
    UNKNOWN,
    Executor,
    Permissions,
    Stop,
    StopReason,
)
from reconciler.objects import LiveState, Obj, Ref
from reconciler.planner import Operation, OpType, Plan, Request

STORE = "s"
INDEX = PATHS.index
IDX = {"vectorStoreId": STORE, "indexId": "i"}


@dataclass
class Resp:
    status: int
    body: Any
    etag: str | None = None
    correlation_id: str | None = "corr-1"


class FakeSender:
    """The client's interface: ``before_send`` plays the wait for pacing or a retry, after
    which the client asks ``may_send`` before the request goes on the wire."""

    def __init__(
        self,
        script: dict[tuple[str, str], list[Any]] | None = None,
        on_call: Any = None,
        before_send: Any = None,
    ) -> None:
        self.calls: list[tuple[str, str, Any, dict[str, str], str | None]] = []
        self.script = script or {}
        self.on_call = on_call
        self.before_send = before_send

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: Any = None,
        request_id: str | None = None,
        may_send: Any = None,
    ) -> Resp:
        if self.before_send is not None:
            await self.before_send(method, path)
        if may_send is not None and not may_send():
            raise RunStopped(method, path)
        self.calls.append((method, path, json, dict(headers or {}), request_id))
        if self.on_call is not None:
            await self.on_call(method, path)
        queue = self.script.get((method, path))
        if queue:
            item = queue.pop(0)
            if isinstance(item, Exception):
                raise item
            return item
        if method == "POST" and path.endswith("prompt-templates"):
            return Resp(201, {"id": "tid-1", "version": 1})
        return Resp(200, {"version": 2}, etag='"e2"')


def op(
    action: OpType, kind: str, key: str, phase: int, *requests: Request, observed: Any = None
) -> Operation:
    return Operation(action, kind, key, "test", phase, (), tuple(requests), observed)


def live_of(*objs: Obj) -> LiveState:
    return LiveState(objects={o.ref: o for o in objs})


def prompt(name: str, pid: str, *, managed: bool = True) -> Obj:
    return Obj("Prompt", name, {}, remote_id=pid, precondition='"e1"', managed=managed)


def index(name: str = "i", *, managed: bool = True) -> Obj:
    return Obj("VectorIndex", f"{STORE}/{name}", {}, remote_id=name, managed=managed)


def template_create(name: str = "t") -> Operation:
    return op(OpType.CREATE, "PromptTemplate", name, 0, Request("POST", PATHS.templates, body={}))


def index_put(name: str, action: OpType = OpType.CREATE) -> Operation:
    params = {"vectorStoreId": STORE, "indexId": name}
    return op(action, "VectorIndex", f"{STORE}/{name}", 0, Request("PUT", INDEX, params, {}))


async def test_waves_and_reference_resolution() -> None:
    tpl = op(
        OpType.CREATE,
        "PromptTemplate",
        "t",
        0,
        Request("POST", PATHS.templates, body={"name": "t"}),
    )
    ver = op(
        OpType.CREATE,
        "PromptVersion",
        "t@1.0.0",
        1,
        Request(
            "POST",
            PATHS.versions,
            {"templateId": Ref("PromptTemplate", "t")},
            {"templateId": Ref("PromptTemplate", "t"), "version": "1.0.0"},
        ),
    )
    sender = FakeSender()
    audit: list[dict[str, Any]] = []
    result = await Executor(sender, Plan((tpl, ver)), LiveState(), audit=audit.append).run()
    assert result.ok
    assert sender.calls[1][1] == "/api/v2/ai/prompt-templates/tid-1/versions"
    assert sender.calls[1][2] == {"templateId": "tid-1", "version": "1.0.0"}
    assert all(c[4] for c in sender.calls) and sender.calls[0][4] != sender.calls[1][4]
    assert [a["outcome"] for a in audit] == [APPLIED, APPLIED]
    assert audit[0]["correlationId"] == "corr-1" and audit[0]["beforeHash"] is None


async def test_replace_deletes_then_creates_in_one_operation() -> None:
    path = "/api/v2/ai/vectorstores/s/indexes/i"
    replace = op(
        OpType.REPLACE,
        "VectorIndex",
        "s/i",
        0,
        Request("DELETE", INDEX, IDX, None, {"If-Match": '"e1"'}, "if-match"),
        Request("PUT", INDEX, IDX, {"a": 2}, {"If-None-Match": "*"}, "if-none-match"),
        observed='"e1"',
    )
    sender = FakeSender({("DELETE", path): [Resp(204, None)]})
    permit = Permissions(allow_replace=True)
    result = await Executor(sender, Plan((replace,)), live_of(index()), permissions=permit).run()
    assert result.ok
    assert [(c[0], c[3]) for c in sender.calls] == [
        ("DELETE", {"If-Match": '"e1"'}),
        ("PUT", {"If-None-Match": "*"}),
    ]


async def test_index_processing_is_waited_out() -> None:
    path = "/api/v2/ai/vectorstores/s/indexes/i"
    sender = FakeSender(
        {
            ("PUT", path): [
                ProcessingError("PUT", path, 409, "index.processing"),
                Resp(200, {"indexId": "i"}, etag='"e3"'),
            ],
            ("GET", path): [Resp(200, {"status": "PROCESSING"}), Resp(200, {"status": "ACTIVE"})],
        }
    )
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    put = index_put("i", OpType.UPDATE)
    result = await Executor(sender, Plan((put,)), live_of(index()), sleep=sleep).run()
    assert result.ok
    methods = [c[0] for c in sender.calls]
    assert methods == ["PUT", "GET", "GET", "PUT"]
    puts = [c for c in sender.calls if c[0] == "PUT"]
    assert puts[0][4] != puts[1][4]  # the refused attempt's id would replay the 409
    assert len(slept) == 2


async def test_failure_stops_later_waves_but_finishes_its_own() -> None:
    a, b = index_put("a"), index_put("b")
    c = op(
        OpType.CREATE,
        "PromptVersion",
        "t@1.0.0",
        1,
        Request("POST", PATHS.versions, {"templateId": "tid"}, {}),
    )
    path_a = "/api/v2/ai/vectorstores/s/indexes/a"
    sender = FakeSender({("PUT", path_a): [ServerError("PUT", path_a, 500, None, "boom")]})
    audit: list[dict[str, Any]] = []
    live = LiveState(objects={"PromptTemplate/t": Obj("PromptTemplate", "t", {}, remote_id="tid")})
    result = await Executor(sender, Plan((a, b, c)), live, audit=audit.append).run()
    outcomes = {r.op.key: r.outcome for r in result.results}
    assert outcomes == {"s/a": FAILED, "s/b": APPLIED, "t@1.0.0": NOT_ATTEMPTED}
    assert not result.ok
    assert {x["outcome"] for x in audit} == {APPLIED, FAILED}


async def test_precondition_failure_is_stale() -> None:
    path = "/api/v2/llm-gateway/prompt-templates/tid"
    sender = FakeSender(
        {("PUT", path): [PreconditionFailedError("PUT", path, 412, "precondition.failed")]}
    )
    up = op(
        OpType.UPDATE,
        "PromptTemplate",
        "t",
        0,
        Request("PUT", PATHS.template, {"templateId": "tid"}),
    )
    live = live_of(Obj("PromptTemplate", "t", {}, remote_id="tid", managed=True))
    result = await Executor(sender, Plan((up,)), live).run()
    (r,) = result.results
    assert r.stale and r.outcome == FAILED and "re-run `llmgw plan`" in (r.error or "")


async def test_no_answer_is_an_unknown_outcome_in_the_audit() -> None:
    path = "/api/v2/ai/vectorstores/s/indexes/i"
    sender = FakeSender({("PUT", path): [TransportError("PUT", path, None, None, "ReadTimeout")]})
    audit: list[dict[str, Any]] = []
    result = await Executor(sender, Plan((index_put("i"),)), LiveState(), audit=audit.append).run()
    assert result.results[0].outcome == FAILED
    assert [a["outcome"] for a in audit] == [UNKNOWN]


# -- invariants ------------------------------------------------------------------------------
UNMANAGED = prompt("someone-elses", "pid-other", managed=False)
MINE = prompt("support-agent", "pid-mine")


def _put_mine(**kw: Any) -> Request:
    return Request("PUT", PATHS.prompt, {"promptId": "pid-mine"}, {"temperature": 0.0}, **kw)


CASES: list[tuple[str, Operation, Permissions, str]] = [
    (
        "update retargeted to DELETE an unmanaged prompt",
        op(
            OpType.UPDATE,
            "Prompt",
            "support-agent",
            2,
            Request("DELETE", PATHS.prompt, {"promptId": "pid-other"}),
        ),
        Permissions(prune=True),
        "sends DELETE /api/v2/ai/llm/gateway/prompts/{promptId}; an update of a Prompt sends PUT",
    ),
    (
        "delete without --prune",
        op(
            OpType.DELETE,
            "Prompt",
            "support-agent",
            4,
            Request("DELETE", PATHS.prompt, {"promptId": "pid-mine"}),
        ),
        Permissions(),
        "a delete needs --prune",
    ),
    (
        "delete of an unlabelled object",
        op(
            OpType.DELETE,
            "Prompt",
            "someone-elses",
            4,
            Request("DELETE", PATHS.prompt, {"promptId": "pid-other"}),
        ),
        Permissions(prune=True),
        "without the label managed-by: llmgw",
    ),
    (
        "delete of my prompt aimed at another's id",
        op(
            OpType.DELETE,
            "Prompt",
            "support-agent",
            4,
            Request("DELETE", PATHS.prompt, {"promptId": "pid-other"}),
        ),
        Permissions(prune=True),
        "goes to another object than Prompt/support-agent",
    ),
    (
        "update aimed at another object",
        op(
            OpType.UPDATE,
            "Prompt",
            "support-agent",
            2,
            Request("PUT", PATHS.prompt, {"promptId": "pid-other"}, {"temperature": 2.0}),
        ),
        Permissions(),
        "goes to another object than Prompt/support-agent",
    ),
    (
        "replace without permission",
        op(
            OpType.REPLACE,
            "VectorIndex",
            "s/i",
            0,
            Request("DELETE", INDEX, IDX),
            Request("PUT", INDEX, IDX, {}),
        ),
        Permissions(prune=True, replace_annotated=frozenset({"VectorIndex/s/other"})),
        "needs --allow-replace",
    ),
    (
        "a method the kind does not use",
        op(OpType.CREATE, "VectorIndex", "s/i", 0, Request("POST", INDEX, IDX, {})),
        Permissions(),
        "sends POST",
    ),
    (
        "a path of another kind",
        op(
            OpType.UPDATE,
            "Prompt",
            "support-agent",
            2,
            Request("PUT", PATHS.template, {"templateId": "pid-mine"}),
        ),
        Permissions(),
        "sends PUT /api/v2/llm-gateway/prompt-templates/{templateId}",
    ),
    (
        "a header llmgw never sets",
        op(OpType.UPDATE, "Prompt", "support-agent", 2, _put_mine(headers={"Authorization": "x"})),
        Permissions(),
        "headers llmgw never sets: Authorization",
    ),
    (
        "parameters that do not fill the path",
        op(
            OpType.UPDATE,
            "Prompt",
            "support-agent",
            2,
            Request("PUT", PATHS.prompt, {"promptId": "pid-mine", "x": "y"}, {}),
        ),
        Permissions(),
        "do not fill the path",
    ),
]


@pytest.mark.parametrize(
    ("operation", "permissions", "message"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
async def test_invariants_refuse_before_anything_is_sent(
    operation: Operation, permissions: Permissions, message: str
) -> None:
    sender = FakeSender()
    live = live_of(MINE, UNMANAGED, index(), index("other"))
    fine = op(OpType.UPDATE, "Prompt", "support-agent", 0, _put_mine())
    plan = Plan((fine, operation))  # a sound operation first: nothing of it is sent either
    with pytest.raises(InvariantError, match="nothing was sent") as err:
        await Executor(sender, plan, live, permissions=permissions).run()
    assert message in str(err.value), str(err.value)
    assert sender.calls == []


@pytest.mark.parametrize(
    "permissions",
    [
        Permissions(allow_replace=True),
        Permissions(replace_annotated=frozenset({"VectorIndex/s/i"})),
    ],
    ids=["--allow-replace", "annotation"],
)
async def test_replacement_with_permission(permissions: Permissions) -> None:
    replace = op(
        OpType.REPLACE,
        "VectorIndex",
        "s/i",
        0,
        Request("DELETE", INDEX, IDX),
        Request("PUT", INDEX, IDX, {}),
    )
    sender = FakeSender()
    result = await Executor(
        sender, Plan((replace,)), live_of(index()), permissions=permissions
    ).run()
    assert result.ok and [c[0] for c in sender.calls] == ["DELETE", "PUT"]
    with pytest.raises(InvariantError, match="llmgw never deletes an object it does not manage"):
        await Executor(
            FakeSender(), Plan((replace,)), live_of(index(managed=False)), permissions=permissions
        ).run()


async def test_an_id_that_is_not_one_segment_is_refused_as_it_is_sent() -> None:
    ver = op(
        OpType.CREATE,
        "PromptVersion",
        "t@1.0.0",
        1,
        Request("POST", PATHS.versions, {"templateId": Ref("PromptTemplate", "t")}, {}),
    )
    other = index_put("later")
    other = Operation(other.action, other.kind, other.key, "", 2, (), other.requests)
    sender = FakeSender(
        {("POST", PATHS.templates): [Resp(201, {"id": "../../vectorstores/s/indexes/i"})]}
    )
    result = await Executor(sender, Plan((template_create(), ver, other)), LiveState()).run()
    outcomes = [r.outcome for r in result.results]
    assert outcomes == [APPLIED, FAILED, NOT_ATTEMPTED]
    assert "is not a single path segment" in (result.results[1].error or "")
    assert result.stopped is not None and result.stopped.kind == "invariant"
    assert len(sender.calls) == 1


# -- stopping --------------------------------------------------------------------------------
async def test_a_stop_before_the_run_sends_nothing() -> None:
    stop = Stop()
    stop.request(StopReason("signal", "interrupted by SIGTERM", 15))
    sender = FakeSender()
    result = await Executor(
        sender, Plan((index_put("a"), index_put("b"))), LiveState(), stop=stop
    ).run()
    assert sender.calls == [] and not result.ok
    assert {r.outcome for r in result.results} == {NOT_ATTEMPTED}
    assert result.stopped == stop.reason


async def test_a_stop_during_a_wave_finishes_in_flight_and_sends_no_new_request() -> None:
    stop = Stop()
    release = asyncio.Event()

    async def on_call(method: str, path: str) -> None:
        if path.endswith("/a"):
            stop.request(StopReason("signal", "interrupted by SIGTERM", 15))
            await asyncio.sleep(0)  # the answer comes after the stop
        release.set()

    sender = FakeSender(on_call=on_call)
    plan = Plan(tuple(index_put(n) for n in "abc"))
    audit: list[dict[str, Any]] = []
    result = await Executor(
        sender, plan, LiveState(), stop=stop, parallelism=1, audit=audit.append
    ).run()
    assert [c[1][-1] for c in sender.calls] == ["a"]
    assert [r.outcome for r in result.results] == [APPLIED, NOT_ATTEMPTED, NOT_ATTEMPTED]
    assert [a["outcome"] for a in audit] == [APPLIED]


async def test_a_request_waiting_for_its_turn_when_the_run_stops_is_never_sent() -> None:
    """Handed to the client, waiting for pacing or a retry's backoff: the stop wins."""
    stop = Stop()

    async def before_send(method: str, path: str) -> None:
        if path.endswith("/b"):
            stop.request(StopReason("signal", "interrupted by SIGTERM", 15))

    sender = FakeSender(before_send=before_send)
    plan = Plan(tuple(index_put(n) for n in "abc"))
    result = await Executor(sender, plan, LiveState(), stop=stop, parallelism=1).run()
    assert [c[1][-1] for c in sender.calls] == ["a"]
    assert [r.outcome for r in result.results] == [APPLIED, NOT_ATTEMPTED, NOT_ATTEMPTED]
    assert result.stopped == stop.reason


async def test_in_flight_past_the_grace_period_is_abandoned_as_unknown() -> None:
    stop = Stop(grace_seconds=0.0)
    never = asyncio.Event()

    async def on_call(method: str, path: str) -> None:
        stop.request(StopReason("timeout", "the run did not finish within --timeout 1s"))
        await never.wait()  # no answer, ever

    audit: list[dict[str, Any]] = []
    result = await Executor(
        FakeSender(on_call=on_call),
        Plan((index_put("a"),)),
        LiveState(),
        stop=stop,
        audit=audit.append,
    ).run()
    (r,) = result.results
    assert r.outcome == FAILED and "may or may not have been applied" in (r.error or "")
    assert [a["outcome"] for a in audit] == [UNKNOWN]
    assert "abandoned" in audit[0]["error"]


async def test_waiting_for_an_index_ends_with_the_run() -> None:
    path = "/api/v2/ai/vectorstores/s/indexes/i"
    stop = Stop()
    sender = FakeSender({("PUT", path): [ProcessingError("PUT", path, 409, "index.processing")]})

    async def sleep(_s: float) -> None:
        stop.request(StopReason("signal", "interrupted by SIGINT", 2))
        await asyncio.Event().wait()

    result = await Executor(
        sender, Plan((index_put("i", OpType.UPDATE),)), live_of(index()), stop=stop, sleep=sleep
    ).run()
    assert [c[0] for c in sender.calls] == ["PUT"]
    assert result.results[0].outcome == NOT_ATTEMPTED and result.stopped is not None


async def test_an_audit_line_that_cannot_be_written_stops_the_run() -> None:
    lines: list[dict[str, Any]] = []

    def audit(record: dict[str, Any]) -> None:
        if len(lines) == 1:
            raise AuditError(
                "audit.jsonl: cannot append to the audit log (No space left on device)"
            )
        lines.append(record)

    sender = FakeSender()
    plan = Plan(tuple(index_put(n) for n in "abcd"))
    result = await Executor(sender, plan, LiveState(), parallelism=1, audit=audit).run()
    assert [c[1][-1] for c in sender.calls] == ["a", "b"]  # nothing after the failed line
    assert [r.outcome for r in result.results] == [APPLIED, APPLIED, NOT_ATTEMPTED, NOT_ATTEMPTED]
    assert result.unaudited == [
        "PUT /api/v2/ai/vectorstores/s/indexes/b (create VectorIndex/s/b: applied, 200)"
    ]
    assert result.stopped is not None and result.stopped.kind == "audit"
    assert "No space left on device" in result.stopped.message
    assert not result.ok


async def test_a_failing_progress_callback_never_breaks_the_run() -> None:
    def on_event(_event: str, _r: Any) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    sender = FakeSender()
    plan = Plan((index_put("a"), index_put("b")))
    result = await Executor(sender, plan, LiveState(), on_event=on_event).run()
    assert result.ok and len(sender.calls) == 2
