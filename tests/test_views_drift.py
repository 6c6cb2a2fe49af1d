"""The views of `llmgw drift` (reconciler/views/drift.py) under hostile names and values.

Covers: control characters and bidi overrides escaped in drift findings; the Markdown table keeps
its columns (`|` escaped, `<i>` and `<script>` inert, the object in a code span); the verdict
lines and the expired ignore entries in text, JSON and Markdown; the stderr notices.
"""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

from reconciler.diffing import DiffItem
from reconciler.drift import DriftReport, Finding
from reconciler.ignores import Entry
from reconciler.views import drift
from tests.views_samples import NASTY, cells, no_raw_controls, outside_code, table_rows


def test_text_escapes_invisible_characters() -> None:
    report = DriftReport(
        [Finding("modified", "Prompt", NASTY, (DiffItem("change", "temperature", 0.1, 0.2),))],
        checked=1,
    )
    no_raw_controls(drift.text(report))


def test_markdown_table_keeps_its_columns() -> None:
    report = DriftReport(
        [Finding("modified", "Prompt", NASTY, (DiffItem("change", "a|b", "x|y", "<i>z</i>"),))],
        checked=1,
    )
    md = drift.markdown(report)
    header, row = table_rows(md)
    assert cells(row) == cells(header) == 3
    assert "<i>" not in outside_code(md) and "<script>" not in outside_code(md)
    assert "``Prompt/evil\\|name`<script>" in md  # a code span: inert, and `|` escaped


def _run() -> SimpleNamespace:
    report = DriftReport([Finding("missing", "Prompt", "p"), Finding("unmanaged", "Prompt", "u")])
    report.checked = 2
    expired = [Entry("Prompt/p", "temperature", "noisy", dt.date(2020, 1, 2), "i.yaml")]
    return SimpleNamespace(
        report=report,
        desired=SimpleNamespace(ignores=SimpleNamespace(expired=expired)),
        webhook_error="HTTP 500",
        metrics_error=None,
    )


TARGET = SimpleNamespace(url="http://127.0.0.1:1", environment="prod")


def test_views_render_the_run() -> None:
    run = _run()
    text = drift.view("text").show(run, TARGET)
    assert text.splitlines()[0] == "Target: http://127.0.0.1:1 (environment: prod)"
    assert "warning: ignore entry Prompt/p temperature expired on 2020-01-02" in text
    assert text.endswith("Drift: 1 of 2 objects differ (0 modified, 1 missing, 0 orphaned).")
    data = json.loads(drift.view("json").show(run, TARGET))
    assert data["counts"] == {
        "modified": 0,
        "missing": 1,
        "orphaned": 0,
        "unmanaged": 1,
        "rollout": 0,
    }
    assert data["expiredIgnores"][0]["expires"] == "2020-01-02"
    md = drift.view("markdown").show(run, TARGET)
    assert md.startswith("### llmgw drift for `prod`") and md.endswith("2020-01-02\n")
    assert "1 unmanaged objects, for information." in md
    assert drift.view("text").newline and not drift.view("markdown").newline


def test_in_sync() -> None:
    assert drift.text(DriftReport([], checked=3)) == "In sync: 3 objects match the manifests."


def test_notices() -> None:
    run = _run()
    assert drift.view("json").notices(run) == ["llmgw: warning: webhook not delivered: HTTP 500"]
    run.metrics_error = "disk full"
    assert drift.view("text").notices(run)[1] == (
        "llmgw: warning: metrics file not written: disk full"
    )
