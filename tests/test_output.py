"""Renderers under hostile names and values: text, Markdown and GitHub annotations stay intact.

Covers: control characters and bidi overrides escaped in every text line (problems, plan
headings, diffs, drift findings); a 200,000-character name gives a short message; Markdown
escapes `|` (a name cannot split a table row), backticks (a code span cannot end early; a code
fence cannot be closed from inside), HTML (`<script>` arrives inert) and `@` mentions; GitHub
annotations stay one line each. And the few-shot trimming: linear-time search equals the
one-at-a-time definition (hypothesis), 6,000 examples in one call.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler import fewshot, output, tokens
from reconciler.diffing import DiffItem
from reconciler.drift import DriftReport, Finding
from reconciler.model import Problem
from reconciler.planner import Operation, OpType, Plan

NASTY = "evil|name`<script>alert(1)</script>@team\x1b[31m\u202e\u0007"


def _problem(name: str = NASTY, message: str = "bad value") -> Problem:
    return Problem("m|x.yaml", 3, "error", "Prompt", name, "spec.a|b", message, "fix `it`")


def _op(
    key: str = NASTY, old: str = "a\x1b[2Jb\nsecond", new: str = "c\u202ed\nsecond"
) -> Operation:
    return Operation(
        OpType.UPDATE,
        "Prompt",
        key,
        "differs <b>now</b>",
        2,
        (
            DiffItem("change", "systemPrompt", old, new),
            DiffItem("change", 'labels["a\x1bb"]', "x|y", "``"),
        ),
    )


def _no_raw_controls(text: str) -> None:
    for ch in text:
        assert ch == "\n" or ch.isprintable(), f"raw {ch!r} in output"
    assert "\u202e" not in text


def test_text_outputs_escape_invisible_characters() -> None:
    _no_raw_controls(output.validation_text([_problem()], 1, 1))
    _no_raw_controls(output.plan_text(Plan((_op(),)), target="http://127.0.0.1:1"))
    report = DriftReport(
        [Finding("modified", "Prompt", NASTY, (DiffItem("change", "temperature", 0.1, 0.2),))],
        checked=1,
    )
    _no_raw_controls(output.drift_text(report))
    assert "\\x1b" in output.validation_text([_problem()], 1, 1)


def test_json_outputs_escape_invisible_characters() -> None:
    import json

    text = output.validation_json([_problem()], ["m|x.yaml"], 1, False)
    assert r"\u202e" in text and "\u202e" not in text
    assert json.loads(text)["problems"][0]["name"] == NASTY  # the same string to a reader
    for ch in text:
        assert ch == "\n" or ch.isprintable()


def test_long_names_give_short_lines() -> None:
    line = str(_problem(name="n" * 200_000, message="m"))
    assert len(line) < 300


def _table_rows(md: str) -> list[str]:
    return [ln for ln in md.splitlines() if ln.startswith("|") and not re.match(r"\|[ |-]+$", ln)]


def _outside_code(md: str) -> str:
    """Markdown with its code spans removed (inside one, GitHub shows `<script>` as text)."""
    return re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", md)


def _cells(row: str) -> int:
    return len(re.findall(r"(?<!\\)\|", row)) - 1


def test_validation_markdown_table_keeps_its_columns() -> None:
    md = output.validation_markdown([_problem()], 1, 1, False)
    header, row = _table_rows(md)
    assert _cells(row) == _cells(header) == 5
    assert "<script>" not in _outside_code(md) and "&lt;script&gt;" in md
    assert "@team" not in _outside_code(md)


def test_drift_markdown_table_keeps_its_columns() -> None:
    report = DriftReport(
        [Finding("modified", "Prompt", NASTY, (DiffItem("change", "a|b", "x|y", "<i>z</i>"),))],
        checked=1,
    )
    md = output.drift_markdown(report)
    header, row = _table_rows(md)
    assert _cells(row) == _cells(header) == 3
    assert "<i>" not in _outside_code(md) and "<script>" not in _outside_code(md)
    assert "``Prompt/evil\\|name`<script>" in md  # a code span: inert, and `|` escaped


def test_plan_markdown_code_fence_cannot_be_closed_from_inside() -> None:
    op = _op(old="line\n```\n</details>\n<script>x</script>", new="line\n````\nnew")
    md = output.plan_markdown(Plan((op,)))
    opening = re.search(r"^(`{3,})diff$", md, re.M)
    assert opening is not None
    fence = opening.group(1)
    body = md[opening.end() :]
    assert all(
        len(f) < len(fence) for f in re.findall(r"^`{3,}", body.split(f"\n{fence}\n")[0], re.M)
    )
    summary = next(ln for ln in md.splitlines() if ln.startswith("<summary>"))
    assert "<script>" not in summary and "<b>now</b>" not in summary


def test_md_code_survives_backticks() -> None:
    assert output.md_code("a`b") == "``a`b``"
    assert output.md_code("`x`") == "`` `x` ``"
    assert output.md_code("a|b", table=True) == "`a\\|b`"


def test_github_annotations_stay_one_line() -> None:
    text = output.validation_github([_problem(message="line1\nline2\r\x1b[0m")])
    first = text.splitlines()[0]
    assert first.startswith("::error file=m|x.yaml,line=3")
    assert "%0A" in first and "\x1b" not in first


def _one_at_a_time(base: str, examples: list[tuple[str, str]], limit: int) -> int:
    start = 0
    while start < len(examples) and tokens.count(fewshot.render(base, examples[start:])) > limit:
        start += 1
    return start


_PIECES = st.sampled_from(
    ["hi", "order", " ", "  ", "\n", "\r\n", "!", "...", "?\n", "é", "日本", "123", "x.", "\t"]
)
_TEXT = st.lists(_PIECES, max_size=6).map("".join)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    st.lists(st.tuples(_TEXT, _TEXT), min_size=1, max_size=10),
    _TEXT,
    st.integers(min_value=1, max_value=90),
)
def test_few_shot_trimming_equals_the_definition(
    examples: list[tuple[str, str]], base: str, limit: int
) -> None:
    spec = {
        "systemPrompt": base,
        "fewShot": {
            "contextWindowLimit": limit,
            "examples": [{"input": i, "output": o} for i, o in examples],
        },
    }
    rendered = fewshot.render_system_prompt(spec)
    expected = _one_at_a_time(base, examples, limit)
    got = len(rendered.dropped) if rendered.fits else len(examples)
    assert got == expected
    if rendered.fits:
        assert tokens.count(rendered.text) <= limit


def test_few_shot_six_thousand_examples() -> None:
    examples = [
        {"input": f"Where is my order {i}?", "output": f"Let me check tracking number {i}."}
        for i in range(6000)
    ]
    spec = {
        "systemPrompt": "You help.",
        "fewShot": {"contextWindowLimit": 1500, "examples": examples},
    }
    rendered = fewshot.render_system_prompt(spec)
    assert rendered.fits and 0 < len(rendered.dropped) < 6000
    assert tokens.count(rendered.text) <= 1500
    kept = fewshot.render(
        "You help.", [(e["input"], e["output"]) for e in examples[len(rendered.dropped) - 1 :]]
    )
    assert tokens.count(kept) > 1500  # one more example would not fit
