"""The views of `llmgw plan` (reconciler/views/plan.py) under hostile names and values.

Covers: control characters and bidi overrides escaped in plan headings and diffs; a Markdown
code fence that no backtick run in a diff can close, and summaries with inert HTML; the JSON
view is the saved plan's bytes (its own newline); the notice after `--out`; verbose text lists
the requests; warnings say "warning:" once in text and are listed (at most 20) in the
Markdown comment.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

from reconciler.model import Problem
from reconciler.planner import Plan
from reconciler.views import plan
from tests.views_samples import no_raw_controls, operation


def test_text_escapes_invisible_characters() -> None:
    no_raw_controls(plan.text(Plan((operation(),)), target="http://127.0.0.1:1"))


def test_markdown_code_fence_cannot_be_closed_from_inside() -> None:
    op = operation(old="line\n```\n</details>\n<script>x</script>", new="line\n````\nnew")
    md = plan.markdown(Plan((op,)))
    opening = re.search(r"^(`{3,})diff$", md, re.M)
    assert opening is not None
    fence = opening.group(1)
    body = md[opening.end() :]
    assert all(
        len(f) < len(fence) for f in re.findall(r"^`{3,}", body.split(f"\n{fence}\n")[0], re.M)
    )
    summary = next(ln for ln in md.splitlines() if ln.startswith("<summary>"))
    assert "<script>" not in summary and "<b>now</b>" not in summary


def test_views_render_the_run() -> None:
    run = SimpleNamespace(
        plan=Plan((operation(key="p"),)),
        requests=3,
        saved=SimpleNamespace(targeted=None),
        desired=SimpleNamespace(objects={}),
    )
    target = SimpleNamespace(url="http://127.0.0.1:1", environment="dev")
    text = plan.view("text").show(run, target)
    assert text.startswith("Target: http://127.0.0.1:1 (environment: dev)\nRead the org in 3")
    md = plan.view("markdown").show(run, target)
    assert md.startswith("### llmgw plan for `dev`") and md.endswith("\n")
    assert not plan.view("markdown").newline and plan.view("text").newline


def test_json_view_is_the_saved_plan() -> None:
    from reconciler import planfile

    saved = planfile.SavedPlan(Plan(()), "http://127.0.0.1:1", ("org",), "h")
    run = SimpleNamespace(saved=saved)
    chosen = plan.view("json")
    assert chosen.show(run, None) == planfile.dumps(saved)
    assert not chosen.newline


def test_saved_notice() -> None:
    assert plan.view("json").saved("p.json") == (
        "Plan saved to p.json; apply it with `llmgw apply p.json`."
    )


def test_verbose_text_lists_the_requests_and_the_no_ops() -> None:
    from reconciler.operations import NOOP_REASON
    from reconciler.planner import Operation, OpType, Request

    create = Operation(
        OpType.CREATE, "Prompt", "p", "not in the org", 2, requests=(Request("POST", "/p"),)
    )
    noop = Operation(OpType.NOOP, "Prompt", "q", NOOP_REASON, 2)
    terse = plan.text(Plan((create, noop)))
    verbose = plan.text(Plan((create, noop)), verbose=True)
    assert "request: POST /p" not in terse and "Prompt/q" not in terse
    assert "    request: POST /p" in verbose
    assert f"  Prompt/q  (noop: {NOOP_REASON})" in verbose


def test_what_a_rollout_holds_is_listed_with_the_plan() -> None:
    from reconciler.planner import Operation, OpType

    held = Operation(OpType.NOOP, "TrafficSplit", "s", "rollout 1.0.0 -> 1.1.0 was aborted", 3)
    out = plan.text(Plan((held,)))
    assert "Left as they are (1):\n    TrafficSplit/s: rollout 1.0.0 -> 1.1.0 was aborted" in out
    md = plan.markdown(Plan((held,)))
    assert "- `TrafficSplit/s`: rollout 1.0.0 -&gt; 1.1.0 was aborted" in md


def _warning(n: int) -> Problem:
    return Problem(
        "m/p.yaml", n, "warning", "Prompt", f"p{n}", "", "policy owner: names no team", "add it"
    )


def test_warnings_say_warning_once_and_reach_the_pull_request_comment() -> None:
    warned = Plan((operation(),), warnings=tuple(_warning(n) for n in range(1, 26)))
    text = plan.text(warned, target="http://127.0.0.1:1")
    line = next(ln for ln in text.splitlines() if "p1:" in ln)
    assert line == "m/p.yaml:1: warning: Prompt/p1: policy owner: names no team (add it)"
    md = plan.markdown(warned)
    assert "⚠️ 25 warnings:" in md
    assert "- `m/p.yaml:20` Prompt/p20: policy owner: names no team (add it)" in md
    assert "p21:" not in md and "… and 5 more in the job log" in md
    assert "warning" not in plan.markdown(Plan((operation(),)))
