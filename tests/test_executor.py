"""The executor against a fake sender that implements the client's interface.

Covers: waves run in order and ids created in one wave resolve the references of the next; each
request carries a request id; a write to an object already written in the run carries the
precondition that write returned; `index.processing` is waited out (polling GET) and resent with a
new request id; a failure stops later waves but lets its wave finish; a precondition failure is
reported as stale; every write (applied or failed) reaches the audit hook.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.errors import PreconditionFailedError, ProcessingError, ServerError
from reconciler.executor import APPLIED, FAILED, NOT_ATTEMPTED, Executor
from reconciler.normalize import LiveState, Ref
from reconciler.planner import Operation, OpType, Plan, Request


@dataclass
class Resp:
    status: int
    body: Any
    etag: str | None = None
    correlation_id: str | None = "corr-1"


class FakeSender:
    def __init__(self, script: dict[tuple[str, str], list[Any]] | None = None) -> None:
        self.calls: list[tuple[str, str, Any, dict[str, str], str | None]] = []
        self.script = script or {}

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: Any = None,
        request_id: str | None = None,
    ) -> Resp:
        self.calls.append((method, path, json, dict(headers or {}), request_id))
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


async def test_waves_and_reference_resolution() -> None:
    tpl = op(
        OpType.CREATE,
        "PromptTemplate",
        "t",
        0,
        Request("POST", "/api/v2/llm-gateway/prompt-templates", body={"name": "t"}),
    )
    ver = op(
        OpType.CREATE,
        "PromptVersion",
        "t@1.0.0",
        1,
        Request(
            "POST",
            "/api/v2/ai/prompt-templates/{templateId}/versions",
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


async def test_second_write_uses_precondition_returned_by_first() -> None:
    path = "/api/v2/ai/vectorstores/s/indexes/i"
    replace = op(
        OpType.REPLACE,
        "VectorIndex",
        "s/i",
        0,
        Request("PUT", path, body={"a": 1}, headers={"If-Match": '"e1"'}, precondition="if-match"),
        Request("PUT", path, body={"a": 2}, headers={"If-Match": '"e1"'}, precondition="if-match"),
        observed='"e1"',
    )
    sender = FakeSender()
    assert (await Executor(sender, Plan((replace,)), LiveState()).run()).ok
    assert [c[3]["If-Match"] for c in sender.calls] == ['"e1"', '"e2"']


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

    put = op(OpType.UPDATE, "VectorIndex", "s/i", 0, Request("PUT", path, body={}))
    result = await Executor(sender, Plan((put,)), LiveState(), sleep=sleep).run()
    assert result.ok
    methods = [c[0] for c in sender.calls]
    assert methods == ["PUT", "GET", "GET", "PUT"]
    puts = [c for c in sender.calls if c[0] == "PUT"]
    assert puts[0][4] != puts[1][4]  # the refused attempt's id would replay the 409
    assert len(slept) == 2


async def test_failure_stops_later_waves_but_finishes_its_own() -> None:
    a = op(OpType.CREATE, "VectorIndex", "s/a", 0, Request("PUT", "/x/a", body={}))
    b = op(OpType.CREATE, "VectorIndex", "s/b", 0, Request("PUT", "/x/b", body={}))
    c = op(OpType.CREATE, "PromptVersion", "t@1.0.0", 1, Request("POST", "/x/c", body={}))
    sender = FakeSender({("PUT", "/x/a"): [ServerError("PUT", "/x/a", 500, None, "boom")]})
    audit: list[dict[str, Any]] = []
    result = await Executor(sender, Plan((a, b, c)), LiveState(), audit=audit.append).run()
    outcomes = {r.op.key: r.outcome for r in result.results}
    assert outcomes == {"s/a": FAILED, "s/b": APPLIED, "t@1.0.0": NOT_ATTEMPTED}
    assert not result.ok
    assert {x["outcome"] for x in audit} == {APPLIED, FAILED}


async def test_precondition_failure_is_stale() -> None:
    path = "/api/v2/llm-gateway/prompt-templates/tid"
    sender = FakeSender(
        {("PUT", path): [PreconditionFailedError("PUT", path, 412, "precondition.failed")]}
    )
    up = op(OpType.UPDATE, "PromptTemplate", "t", 0, Request("PUT", path, body={}))
    result = await Executor(sender, Plan((up,)), LiveState()).run()
    (r,) = result.results
    assert r.stale and r.outcome == FAILED and "re-run `llmgw plan`" in (r.error or "")
