"""The rollout job against an in-process emulator, and against answers no honest server gives.

Covers: a hostile analytics answer (not a list, rows of the wrong types, impossible counts,
thousands of rows) gets a clear error or a bounded, honest reading, never a crash; a server
without a Date header falls back to this machine's clock; a prompt the org lacks is an error
naming the fix; a rollout the live prompt does not carry is "not started"; a stop before the
first write sends none; the metrics file holds the gauges; the webhook gets the run's summary
with no secret in it.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler import jobs, rollouts
from reconciler.emulator.transport import in_process_transport
from reconciler.endpoints import PATHS
from reconciler.executor import Stop, StopReason
from reconciler.remote import Settings
from tests.rollout_manifests import rollout_manifests
from tests.test_e2e import URL, Org

REPO = Path(__file__).resolve().parent.parent


class Rewriting(httpx.AsyncBaseTransport):
    """The in-process emulator, with the analytics answer (and optionally every Date header)
    replaced."""

    def __init__(self, app: Any, analytics: Any = None, *, no_date: bool = False) -> None:
        self.inner = in_process_transport(app)
        self.analytics = analytics
        self.no_date = no_date

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        resp = await self.inner.handle_async_request(request)
        if self.analytics is not None and request.url.path == PATHS.analytics:
            await resp.aread()
            return httpx.Response(200, json=self.analytics)
        if self.no_date:
            await resp.aread()
            headers = [(k, v) for k, v in resp.headers.items() if k.lower() != "date"]
            return httpx.Response(resp.status_code, headers=headers, content=resp.content)
        return resp


def target(org: Org, transport: Any) -> jobs.Target:
    return jobs.Target(Settings(URL, URL, "emulator-client", "emulator-secret"), "test", transport)


async def started(org: Org, tmp: Path, canary: dict[str, float] | None = None) -> Path:
    m = rollout_manifests(tmp)
    for paths in ([str(REPO / "manifests")], [str(m)]):
        prepared = await jobs.prepare_apply(org.target(), paths=paths)
        run = await jobs.execute(org.target(), prepared, audit_path=str(tmp / "apply.jsonl"))
        assert run.ok
    async with httpx.AsyncClient(transport=in_process_transport(org.app), base_url=URL) as c:
        setting = {"perMinute": 600, "versions": {"2.0.0": {}, "2.1.0": canary or {}}}
        r = await c.put("/__emulator/traffic", json={"prompts": {"support-agent": setting}})
        assert r.status_code == 200
        r = await c.post("/__emulator/clock", json={"advanceSeconds": 3600})
        assert r.status_code == 200
    return m


async def advance(t: jobs.Target, m: Path, tmp: Path, **kw: Any) -> rollouts.RolloutRun:
    desired = jobs.load_desired([str(m)])
    return await rollouts.run(t, desired, audit_path=str(tmp / "audit.jsonl"), **kw)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ({"data": "nope"}, "is not a list of rows"),
        ({"data": None}, "is not a list of rows"),
        ([1, 2, 3], "is not a list of rows"),
    ],
)
def test_an_analytics_answer_that_is_no_rows_is_a_clear_error(
    tmp_path: Path, answer: Any, error: str
) -> None:
    org = Org()
    m = run(started(org, tmp_path))
    result = run(advance(target(org, Rewriting(org.app, answer)), m, tmp_path))
    (o,) = result.outcomes
    assert o.error is not None and error in o.error
    assert result.exit_code == 1


@pytest.mark.parametrize(
    "rows",
    [
        [{"version": "2.0.0", "invocations": "many"}, {"version": 7}, "row", None],
        [{"version": "2.1.0", "invocations": -5, "errorCount": 10**30, "latencyP95Ms": "slow"}],
        [{"version": "2.1.0", "invocations": True, "errorCount": 1.5, "latencyP95Ms": 1e308}],
        [{"version": f"9.{i}.0", "invocations": 1} for i in range(5000)],
    ],
)
def test_rows_of_the_wrong_shape_are_read_as_no_data_never_a_pass(
    tmp_path: Path, rows: list[Any]
) -> None:
    org = Org()
    m = run(started(org, tmp_path))
    result = run(advance(target(org, Rewriting(org.app, {"data": rows})), m, tmp_path))
    (o,) = result.outcomes
    assert o.error is None
    assert o.decision is not None and o.decision.action == "wait"
    assert not o.acted
    assert o.canary.invocations == 0  # nothing usable was read as data
    assert result.exit_code == 0


def test_impossible_counts_never_step(tmp_path: Path) -> None:
    org = Org()
    m = run(started(org, tmp_path))
    rows = [
        {"version": "2.0.0", "invocations": 10000, "errorCount": 50},
        {"version": "2.1.0", "invocations": 1000, "errorCount": 5000},  # more errors than calls
    ]
    result = run(advance(target(org, Rewriting(org.app, {"data": rows})), m, tmp_path))
    (o,) = result.outcomes
    assert o.decision is not None and o.decision.action in ("rollback", "wait")
    assert "stepped" not in o.acted


def test_a_server_without_a_date_header_falls_back_to_this_clock(tmp_path: Path) -> None:
    org = Org()
    m = run(started(org, tmp_path))
    result = run(advance(target(org, Rewriting(org.app, no_date=True)), m, tmp_path))
    (o,) = result.outcomes
    assert o.error is None and o.now is not None


def test_a_prompt_the_org_lacks_and_a_rollout_not_started(tmp_path: Path) -> None:
    org = Org()
    m = rollout_manifests(tmp_path)
    result = run(advance(org.target(), m, tmp_path))
    (o,) = result.outcomes
    assert o.error is not None and "`llmgw apply` creates it" in o.error
    prepared = run(jobs.prepare_apply(org.target(), paths=[str(REPO / "manifests")]))
    assert run(jobs.execute(org.target(), prepared, audit_path=str(tmp_path / "a.jsonl"))).ok
    result = run(advance(org.target(), m, tmp_path))
    (o,) = result.outcomes
    assert o.error is None and o.note.startswith("not started")
    assert result.exit_code == 0


def test_a_stopped_run_writes_nothing(tmp_path: Path) -> None:
    org = Org()
    m = run(started(org, tmp_path))
    stop = Stop()
    stop.request(StopReason("signal", "interrupted by SIGTERM", 15))
    before = run(org.requests_log())
    result = run(advance(org.target(), m, tmp_path, stop=stop))
    (o,) = result.outcomes
    assert "not looked at: interrupted by SIGTERM" in o.note
    after = run(org.requests_log())
    assert [r for r in after[len(before) :] if r["method"] == "PUT"] == []


def test_metrics_and_webhook(tmp_path: Path) -> None:
    org = Org()
    m = run(started(org, tmp_path))
    got: list[Any] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    metrics = tmp_path / "rollout.prom"
    try:
        hook = f"http://127.0.0.1:{server.server_address[1]}/hook"
        result = run(advance(org.target(), m, tmp_path, metrics_file=str(metrics), webhook=hook))
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 0 and result.webhook_error is None
    text = metrics.read_text()
    assert 'llmgw_rollout_step{prompt="support-agent"} 2' in text
    assert 'llmgw_rollout_canary_weight{prompt="support-agent"} 0.25' in text
    assert 'llmgw_rollout_state{prompt="support-agent",state="progressing"} 1' in text
    (payload,) = got
    assert payload["rollouts"][0]["acted"].startswith("stepped to 2")
    assert "emulator-secret" not in json.dumps(payload)


async def _version(org: Org, version: str) -> dict[str, Any]:
    for versions in (await _state(org))["versions"].values():
        if version in versions:
            return dict(versions[version])
    raise AssertionError(version)


async def _state(org: Org) -> dict[str, Any]:
    async with httpx.AsyncClient(transport=in_process_transport(org.app), base_url=URL) as c:
        data: dict[str, Any] = (await c.get("/__emulator/state")).json()
    return data


def test_resume_after_a_rollback_restores_the_withdrawn_canary_and_abort_withdraws_none(
    tmp_path: Path,
) -> None:
    org = Org()
    m = run(started(org, tmp_path, {"errorRate": 0.2}))
    result = run(advance(org.target(), m, tmp_path))
    assert result.exit_code == 2
    assert run(_version(org, "2.1.0"))["rollbackDirective"] is True
    desired = jobs.load_desired([str(m)])
    audit = str(tmp_path / "audit.jsonl")
    resumed = run(
        rollouts.run(
            org.target(), desired, command="resume", prompt="support-agent", audit_path=audit
        )
    )
    (o,) = resumed.outcomes
    assert o.error is None and o.acted.startswith("2.1.0 restored; restarted at step 1")
    v = run(_version(org, "2.1.0"))
    assert v["rollbackDirective"] is False and "llmgw.io/withdrawn-by" not in v["labels"]
    # a person's abort puts traffic on stable and withdraws nothing, now or at the next advance
    aborted = run(
        rollouts.run(
            org.target(), desired, command="abort", prompt="support-agent", audit_path=audit
        )
    )
    assert aborted.exit_code == 0
    run(advance(org.target(), m, tmp_path))
    assert run(_version(org, "2.1.0"))["rollbackDirective"] is False
