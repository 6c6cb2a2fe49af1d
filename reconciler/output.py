"""Renderers: turn results (validation reports, plans, drift reports) into text for people,
JSON for tools, Markdown for pull-request comments and GitHub annotations.

Pure string building: no printing, no I/O, no click. Colour is passed in as a styling function so
the CLI alone decides whether stdout is a terminal.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from reconciler.model import Problem

Style = Callable[..., str]


def plain(text: str, **_: Any) -> str:
    return text


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def validation_text(
    problems: Sequence[Problem], files: int, documents: int, style: Style = plain
) -> str:
    lines = []
    for p in problems:
        colour = "red" if p.severity == "error" else "yellow"
        lines.append(style(str(p), fg=colour))
    errors = sum(1 for p in problems if p.severity == "error")
    warnings = len(problems) - errors
    summary = (
        f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')} in "
        f"{_plural(documents, 'document')} ({_plural(files, 'file')})"
    )
    if not errors:
        summary = style("valid: ", fg="green", bold=True) + summary
    lines.append(summary)
    return "\n".join(lines)


def validation_json(
    problems: Sequence[Problem], files: Sequence[str], documents: int, valid: bool
) -> str:
    errors = sum(1 for p in problems if p.severity == "error")
    return json.dumps(
        {
            "formatVersion": 1,
            "valid": valid,
            "errors": errors,
            "warnings": len(problems) - errors,
            "documents": documents,
            "files": list(files),
            "problems": [p.as_dict() for p in problems],
        },
        indent=2,
    )


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def validation_markdown(
    problems: Sequence[Problem], files: int, documents: int, valid: bool
) -> str:
    errors = sum(1 for p in problems if p.severity == "error")
    head = "✅ **Manifests are valid**" if valid else "❌ **Manifests are invalid**"
    out = [
        f"{head}: {_plural(errors, 'error')}, "
        f"{_plural(len(problems) - errors, 'warning')} in {_plural(documents, 'document')} "
        f"({_plural(files, 'file')})"
    ]
    if problems:
        out += ["", "| | where | object | field | problem |", "|---|---|---|---|---|"]
        for p in problems:
            icon = "❌" if p.severity == "error" else "⚠️"
            msg = p.message + (f" ({p.fix})" if p.fix else "")
            out.append(
                f"| {icon} | `{p.file}:{p.line}` | {_md_escape(p.subject)} | "
                f"`{_md_escape(p.path)}` | {_md_escape(msg)} |"
            )
    return "\n".join(out)


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_prop(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def validation_github(problems: Sequence[Problem]) -> str:
    """GitHub Actions workflow commands: one annotation per problem on the PR's diff."""
    out = []
    for p in problems:
        level = "error" if p.severity == "error" else "warning"
        props = [f"file={_gh_prop(p.file)}"]
        if p.line:
            props.append(f"line={p.line}")
        if p.subject:
            props.append(f"title={_gh_prop(p.subject)}")
        body = (f"{p.path}: " if p.path else "") + p.message + (f" ({p.fix})" if p.fix else "")
        out.append(f"::{level} {','.join(props)}::{_gh_data(body)}")
    errors = sum(1 for p in problems if p.severity == "error")
    out.append(f"{_plural(errors, 'error')}, {_plural(len(problems) - errors, 'warning')}")
    return "\n".join(out)
