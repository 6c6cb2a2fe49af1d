"""The views of `llmgw validate` (reconciler/views/validate.py) under hostile names and values.

Covers: control characters and bidi overrides escaped in the text view; a 200,000-character
name gives a short message; JSON escapes invisible characters but reads back as the same
string; the Markdown table keeps its columns (`|` escaped) and `<script>` and `@team` arrive
inert; GitHub annotations stay one line each; the summary lines ("valid:" for the verdict valid,
"invalid" under --strict with only warnings, the counts pluralised) and the verdict in JSON and
Markdown.
"""

from __future__ import annotations

import json

from reconciler.model import Problem
from reconciler.views import validate
from tests.views_samples import (
    NASTY,
    cells,
    no_raw_controls,
    outside_code,
    problem,
    report,
    table_rows,
)


def test_text_escapes_invisible_characters() -> None:
    text = validate.view("text").show(report(problem()), False)
    no_raw_controls(text)
    assert "\\x1b" in text


def test_json_escapes_invisible_characters() -> None:
    text = validate.view("json").show(report(problem()), False)
    assert r"\u202e" in text and "\u202e" not in text
    assert json.loads(text)["problems"][0]["name"] == NASTY  # the same string
    for ch in text:
        assert ch == "\n" or ch.isprintable()


def test_long_names_give_short_lines() -> None:
    line = str(problem(name="n" * 200_000, message="m"))
    assert len(line) < 300
    shown = validate.view("text").show(report(problem(name="n" * 200_000, message="m")), False)
    assert all(len(ln) < 300 for ln in shown.splitlines())


def test_markdown_table_keeps_its_columns() -> None:
    md = validate.view("markdown").show(report(problem()), False)
    header, row = table_rows(md)
    assert cells(row) == cells(header) == 5
    assert "<script>" not in outside_code(md) and "&lt;script&gt;" in md
    assert "@team" not in outside_code(md)


def test_github_annotations_stay_one_line() -> None:
    text = validate.view("github").show(report(problem(message="line1\nline2\r\x1b[0m")), False)
    first = text.splitlines()[0]
    assert first.startswith("::error file=m|x.yaml,line=3")
    assert "%0A" in first and "\x1b" not in first
    assert text.splitlines()[-1] == "1 error, 0 warnings"


def test_summaries() -> None:
    clean = report(files=("a.yaml", "b.yaml"))
    assert validate.view("text").show(clean, True) == (
        "valid: 0 errors, 0 warnings in 0 documents (2 files)"
    )
    assert validate.view("markdown").show(clean, True).startswith("✅ **Manifests are valid**")
    warned = report(Problem("a.yaml", 1, "warning", "Prompt", "p", "spec", "close to a limit", ""))
    assert validate.view("text").show(warned, True).splitlines()[-1].startswith("valid: 0 errors")
    strict = validate.view("text").show(warned, False).splitlines()[-1]  # --strict: not valid
    assert (
        strict == "invalid (--strict counts warnings): 0 errors, 1 warning in 0 documents (1 file)"
    )
    data = json.loads(validate.view("json").show(report(problem()), False))
    assert (data["valid"], data["errors"], data["files"]) == (False, 1, ["m|x.yaml"])
