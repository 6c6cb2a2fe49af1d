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


# ---------------------------------------------------------------------------------------------
# Plans

TEXT_FIELDS = {"systemPrompt", "content", "userTemplate", "systemInstruction"}
_SYMBOL = {"create": "+", "update": "~", "adopt": "~", "replace": "-/+", "delete": "-", "noop": " "}
_COLOUR = {
    "create": "green",
    "update": "yellow",
    "adopt": "cyan",
    "replace": "red",
    "delete": "red",
    "noop": None,
}
MARKDOWN_LIMIT = 60_000  # GitHub comments stop at 65,536 characters


def _value(v: Any, width: int = 80) -> str:
    text = json.dumps(v, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def diff_lines(op: Any, style: Style = plain) -> list[str]:
    """The field diff of one operation as indented lines (text fields as a line diff)."""
    from reconciler import tokens
    from reconciler.diffing import text_change

    out: list[str] = []
    for item in op.diff:
        leaf = item.path.rsplit(".", 1)[-1]
        if leaf in TEXT_FIELDS and isinstance(item.new, str) and isinstance(item.old, str):
            change = text_change(item.old, item.new)
            out.append(style(f"~ {item.path}:", fg="yellow"))
            for ln in change.lines:
                colour = "green" if ln.startswith("+") else "red" if ln.startswith("-") else None
                out.append("    " + (style(ln, fg=colour) if colour else ln))
            if change.placeholders_added or change.placeholders_removed:
                added = ", ".join(f"{{{{{p}}}}}" for p in change.placeholders_added) or "none"
                removed = ", ".join(f"{{{{{p}}}}}" for p in change.placeholders_removed) or "none"
                out.append(f"    placeholders added: {added}; removed: {removed}")
            out.append(
                f"    tokens ({tokens.ENCODING}): {tokens.count(item.old)} -> "
                f"{tokens.count(item.new)}"
            )
        elif item.op == "add":
            shown = _value(item.new)
            if leaf in TEXT_FIELDS and isinstance(item.new, str):
                from reconciler import tokens as _t

                shown += f"  ({_t.count(item.new)} tokens)"
            out.append(style(f"+ {item.path}: {shown}", fg="green"))
        elif item.op == "remove":
            out.append(style(f"- {item.path}: {_value(item.old)}", fg="red"))
        else:
            out.append(
                style(
                    f"~ {item.path}: {_value(item.old, 60)} -> {_value(item.new, 60)}", fg="yellow"
                )
            )
    return out


def _op_heading(op: Any) -> str:
    extra = ""
    if op.kind == "Prompt" and len(op.covers) > 1:
        extra = " (with its TrafficSplit)"
    tail = f"{op.action.value}: {op.reason}"
    if op.destructive and not op.allowed and op.action.value == "replace":
        tail += "; DESTRUCTIVE: apply needs --allow-replace or the llmgw/allow-replace annotation"
    elif op.destructive:
        tail += "; destructive"
    return f"{_SYMBOL[op.action.value]} {op.ref}{extra}  ({tail})"


def plan_text(
    plan: Any,
    *,
    target: str = "",
    requests: int | None = None,
    environment: str | None = None,
    verbose: bool = False,
    style: Style = plain,
) -> str:
    lines: list[str] = []
    if target:
        env = f" (environment: {environment})" if environment else ""
        lines.append(f"Target: {target}{env}")
    if requests is not None:
        lines.append(f"Read the org in {_plural(requests, 'request')}.")
    lines.append(style(plan.summary(), bold=True))
    ops = plan.operations if verbose else plan.changes
    if not plan.changes:
        lines.append(style("No changes: the org matches the manifests.", fg="green"))
    for op in ops:
        lines.append("")
        lines.append(style(_op_heading(op), fg=_COLOUR[op.action.value], bold=True))
        lines.extend("    " + ln for ln in diff_lines(op, style))
        if verbose:
            for r in op.requests:
                lines.append(f"    request: {r.method} {r.path}")
    if plan.orphaned and not plan.prune:
        lines.append("")
        lines.append(
            f"Managed by llmgw but in no manifest ({len(plan.orphaned)}; deleted only "
            "with --prune):"
        )
        lines.extend(f"    {r}" for r in plan.orphaned[:50])
        if len(plan.orphaned) > 50:
            lines.append(f"    ... and {len(plan.orphaned) - 50} more")
    if plan.unmanaged:
        lines.append("")
        lines.append(
            f"Not managed, left alone ({len(plan.unmanaged)}): "
            + ", ".join(plan.unmanaged[:10])
            + (f", ... and {len(plan.unmanaged) - 10} more" if len(plan.unmanaged) > 10 else "")
        )
    for w in plan.warnings:
        lines.append(style(f"warning: {w}", fg="yellow"))
    return "\n".join(lines)


def plan_markdown(
    plan: Any,
    *,
    target: str = "",
    requests: int | None = None,
    environment: str | None = None,
    limit: int = MARKDOWN_LIMIT,
) -> str:
    c = plan.counts()
    head = [f"### llmgw plan{f' for `{environment}`' if environment else ''}", ""]
    head.append(f"**{plan.summary()}**")
    if target:
        head.append(
            f"Target: `{target}`"
            + (f", read in {_plural(requests, 'request')}" if requests is not None else "")
        )
    if any(o.destructive for o in plan.changes):
        head.append("")
        head.append("⚠️ **This plan contains destructive operations** (deletes or replacements).")
    if not plan.changes:
        head.append("")
        head.append("No changes: the org matches the manifests.")
    body: list[str] = []
    for op in plan.changes:
        block = [
            "<details>",
            f"<summary><code>{_SYMBOL[op.action.value]}</code> "
            f"<b>{op.ref}</b>: {op.action.value} ({op.reason})</summary>",
            "",
            "```diff",
        ]
        block.extend(diff_lines(op))
        block.extend(["```", "</details>", ""])
        body.append("\n".join(block))
    out = "\n".join(head) + "\n\n"
    shown = 0
    for text in body:
        if len(out) + len(text) > limit - 200:
            break
        out += text
        shown += 1
    if shown < len(body):
        out += (
            f"\n_…{len(body) - shown} more changes not shown: the comment would exceed "
            f"{limit} characters. See the full plan in the job log or the plan.json "
            "artifact._\n"
        )
    extra = []
    if plan.orphaned and not plan.prune:
        extra.append(
            f"{len(plan.orphaned)} managed objects are in no manifest (deleted only with "
            "`--prune`)."
        )
    if plan.unmanaged:
        extra.append(f"{len(plan.unmanaged)} unmanaged objects are left alone.")
    if extra:
        out += "\n" + " ".join(extra) + "\n"
    _ = c
    return out.rstrip() + "\n"
