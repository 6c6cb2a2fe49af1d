"""Hostile names and values for the view tests (tests/test_views_*.py), and the checks on what a
view makes of them: no raw control character, Markdown tables and code spans intact."""

from __future__ import annotations

import re

from reconciler.diffing import DiffItem
from reconciler.model import Problem
from reconciler.planner import Operation, OpType
from reconciler.validate import Report

NASTY = "evil|name`<script>alert(1)</script>@team\x1b[31m\u202e\u0007"


def problem(name: str = NASTY, message: str = "bad value") -> Problem:
    return Problem("m|x.yaml", 3, "error", "Prompt", name, "spec.a|b", message, "fix `it`")


def report(*problems: Problem, files: tuple[str, ...] = ("m|x.yaml",)) -> Report:
    return Report([], list(problems), list(files))


def operation(
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


def no_raw_controls(text: str) -> None:
    for ch in text:
        assert ch == "\n" or ch.isprintable(), f"raw {ch!r} in output"
    assert "\u202e" not in text


def table_rows(md: str) -> list[str]:
    return [ln for ln in md.splitlines() if ln.startswith("|") and not re.match(r"\|[ |-]+$", ln)]


def outside_code(md: str) -> str:
    """Markdown with its code spans removed (inside one, GitHub shows `<script>` as text)."""
    return re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", md)


def cells(row: str) -> int:
    return len(re.findall(r"(?<!\\)\|", row)) - 1
