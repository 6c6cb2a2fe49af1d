"""The views of `llmgw apply` (reconciler/views/apply.py).

Covers: the dry run's request list (text, and ASCII-escaped JSON) and its empty form; the text
result (failures with escapes, index health, verification, the stop, the summary, the audit
log's last record) and, with --verbose, the endpoint table after it; the JSON result; "nothing
to apply" in both formats; only the text view shows the plan and draws a progress bar; the
confirmation question, the cancel and lock notices, the plain progress line; the stderr notices
after a run (a signal adds none, a timeout says how to go on).
"""

from __future__ import annotations

import json
from types import SimpleNamespace

from reconciler.executor import ApplyResult, OpResult, StopReason
from reconciler.jobs import ApplyRun
from reconciler.planner import Plan
from reconciler.remote import EndpointStats
from reconciler.views import apply
from tests.views_samples import no_raw_controls, operation

REQUESTS = [
    {
        "wave": 1,
        "method": "PUT",
        "path": "/api/v2/x/1",
        "operation": "update Prompt/p",
        "headers": {"If-Match": "3"},
        "body": {"name": "é"},
    }
]
TARGET = SimpleNamespace(url="http://127.0.0.1:1", environment=None)


def _run(**kw: object) -> ApplyRun:
    kw.setdefault(
        "metrics", [EndpointStats("GET", "/api/v2/x/{id}", 3, 0, 1, 1.5, 9.25, 10.0, 12.0)]
    )
    results = [
        OpResult(operation(key="ok"), "applied", status=200, latency_ms=4.0),
        OpResult(operation(), "failed", error="boom\x1b[2J", stale=True, status=412),
    ]
    return ApplyRun(
        prepared=None,  # type: ignore[arg-type]  # views never read it
        result=ApplyResult(results),
        index_health={"VectorIndex/s/i": "ACTIVE"},
        audit_path=".llmgw/audit.jsonl",
        audit_tail=(7, "abc123"),
        requests=3,
        duration_s=0.42,
        **kw,  # type: ignore[arg-type]
    )


def test_dry_run() -> None:
    text = apply.view("text").dry_run(REQUESTS)
    assert text.startswith("\nDry run: 1 request would be sent, in this order:\n\n[wave 1] PUT")
    assert '    If-Match: 3\n    {\n      "name": "é"\n    }' in text
    assert text.endswith("Nothing was sent (--dry-run).")
    assert apply.dry_run_text([]) == "Dry run: nothing to send."
    data = apply.view("json").dry_run(REQUESTS)
    # the same JSON as every other output: readable text, invisible characters escaped
    assert '"name": "é"' in data and json.loads(data) == {
        "formatVersion": "2.1",
        "document": "apply-dry-run",
        "dryRun": True,
        "requests": REQUESTS,
    }


def test_text_result() -> None:
    text = apply.view("text").result(_run())
    no_raw_controls(text)
    lines = text.splitlines()
    assert lines[0] == ""
    assert lines[1].startswith("failed: Prompt/evil|name") and "boom\\x1b[2J" in lines[1]
    assert "index health: VectorIndex/s/i: ACTIVE" in lines
    assert "Apply FAILED: 1 of 2 applied, 1 failed, 0 not attempted (3 requests, 0.4 s)." in lines
    assert "Some objects changed in the org during the run" in text
    assert lines[-1] == "Audit log: .llmgw/audit.jsonl (last record 7: abc123)"
    assert "Requests by endpoint" not in text


def test_verbose_text_result_ends_with_the_endpoint_table() -> None:
    text = apply.view("text", verbose=True).result(_run())
    assert text.splitlines()[-2:] == [
        "Requests by endpoint (count, errors, retries, p50/p95 ms):",
        f"  GET    {'/api/v2/x/{id}':60}     3    0    1      1.5 /     9.2",
    ]
    empty = apply.view("text", verbose=True).result(_run(metrics=[]))
    assert empty.endswith("\n")  # an empty table is an empty line, as it always was


def test_verification() -> None:
    ok = apply.text(_run(verify_plan=Plan(())))
    assert "Verified: live matches the manifests (the plan is now empty)." in ok
    bad = apply.text(_run(verify_plan=Plan((operation(key="p"),))))
    assert "verification FAILED: live still differs from the manifests:" in bad
    assert "\n  ~ Prompt/p  (update: differs <b>now</b>)\n      ~ systemPrompt:" in bad


def test_json_result() -> None:
    data = json.loads(apply.view("json").result(_run()))
    assert data["ok"] is False and data["verified"] is False
    assert [o["outcome"] for o in data["operations"]] == ["applied", "failed"]
    assert data["auditLastRecord"] == {"seq": 7, "hash": "abc123"}
    assert data["endpoints"][0]["latencyP95Ms"] == 9.25


def test_what_each_format_shows_before_the_run() -> None:
    prepared = SimpleNamespace(
        plan=Plan(()),
        requests=2,
        saved=SimpleNamespace(targeted=None),
        desired=SimpleNamespace(objects={}),
    )
    assert apply.view("json").plan(prepared, TARGET) is None
    shown = apply.view("text").plan(prepared, TARGET)
    assert shown is not None and shown.startswith("Target: http://127.0.0.1:1\nRead the org in 2")
    assert apply.view("text").nothing() == "Nothing to apply."
    assert json.loads(apply.view("json").nothing()) == {
        "formatVersion": "2.1",
        "document": "apply",
        "ok": True,
        "operations": [],
    }
    assert apply.view("text").progress_bar and not apply.view("json").progress_bar


def test_prompts_and_progress() -> None:
    view = apply.view("text")
    assert view.question(1, TARGET) == "\nApply 1 change to http://127.0.0.1:1?"
    prod = SimpleNamespace(url="http://x", environment="prod")
    assert view.question(2, prod) == "\nApply 2 changes to prod?"
    assert view.cancelled() == "Apply cancelled; nothing was sent."
    assert view.waiting("pid 7 on host", "10s") == (
        "llmgw: waiting up to 10s for the audit log's lock, held by pid 7 on host"
    )
    done = OpResult(operation(key="p"), "applied", status=201, latency_ms=12.4)
    assert view.progress(done) == "applied: update Prompt/p (201, 12 ms)"
    assert view.progress(OpResult(operation(key="p"))) == "not attempted: update Prompt/p"
    # a name with a terminal escape or a bidi control is shown escaped, as in the plan
    hostile = view.progress(OpResult(operation(key="p\x1b[2Jx\u202e")))
    assert "\x1b" not in hostile and "\u202e" not in hostile
    assert hostile.startswith("not attempted: update Prompt/p")


def test_notices() -> None:
    view = apply.view("json")
    assert view.notices(_run()) == []
    signal = _run(stopped=StopReason("signal", "interrupted by SIGTERM", 15))
    assert view.notices(signal) == []
    timeout = _run(stopped=StopReason("timeout", "--timeout 1s reached"), metrics_error="full")
    assert view.notices(timeout) == [
        "llmgw: warning: metrics file not written: full",
        "llmgw: error: --timeout 1s reached: the run stopped and sent no further write; re-run "
        "apply to converge (what was applied is not redone), or pass a longer --timeout",
    ]
    audit = _run(stopped=StopReason("audit", "audit line not written"))
    assert view.notices(audit) == [
        "llmgw: error: audit line not written: the run stopped before any further write"
    ]
