"""Renderers: turn results (validation reports, plans, drift reports) into text for people,
JSON for tools, Markdown for pull-request comments and GitHub annotations.

Pure string building: no printing, no I/O, no click. Colour is passed in as a styling function so
the CLI alone decides whether stdout is a terminal.

Names, values and texts come from manifests and from the server, so none is printed raw: text
output escapes control and format characters (``text.visible``: no terminal escape sequence or
bidi override gets through), and Markdown output escapes Markdown and HTML (``md_text``,
``md_code``, ``_fence``): a `|` in a name cannot split a table row, a backtick cannot end a code
span early, and a live ``<script>`` or an ``@team`` in a name reaches a pull-request comment as
inert text.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from reconciler.model import Problem
from reconciler.text import NAME, json_dumps, visible

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
    return json_dumps(
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


# Inline Markdown syntax (table cells and paragraphs are inline: no line-start rules apply);
# < > & become HTML entities, and an @ that could start a mention becomes one too.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_MENTION = re.compile(r"(?<![\w.+-])@")


def md_text(text: str, limit: int | None = None) -> str:
    """``text`` as inert Markdown (a table cell or a paragraph): every Markdown and HTML special
    character escaped, invisible characters made visible, ``@`` mentions defused."""
    text = visible(text, limit)
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return _MENTION.sub("&#64;", html.escape(text, quote=False))


def md_code(text: str, limit: int | None = None, *, table: bool = False) -> str:
    """``text`` as an inline code span that no backtick inside can end early (a longer fence);
    in a table, ``|`` is escaped too (GitHub splits cells before it reads code spans)."""
    text = visible(text, limit)
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    if table:
        text = text.replace("|", "\\|")
    return f"{fence}{pad}{text}{pad}{fence}"


def _fence(lines: Sequence[str]) -> str:
    """A code fence longer than any run of backticks in ``lines`` (so none closes it)."""
    longest = max((len(m) for ln in lines for m in re.findall(r"`{3,}", ln)), default=0)
    return "`" * max(3, longest + 1)


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
                f"| {icon} | {md_code(f'{p.file}:{p.line}', table=True)} | {md_text(p.subject)} | "
                f"{md_code(p.path, table=True) if p.path else ''} | {md_text(msg)} |"
            )
    return "\n".join(out)


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_prop(text: str) -> str:
    return visible(_gh_data(text)).replace(":", "%3A").replace(",", "%2C")


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
        out.append(f"::{level} {','.join(props)}::{visible(_gh_data(body))}")
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
    text = visible(json.dumps(v, ensure_ascii=False, default=str))
    return text if len(text) <= width else text[: width - 3] + "..."


def _ref(op: Any) -> str:
    return visible(op.ref, NAME * 2)


def diff_lines(op: Any, style: Style = plain) -> list[str]:
    """The field diff of one operation as indented lines (text fields as a line diff)."""
    from reconciler import tokens
    from reconciler.diffing import text_change

    out: list[str] = []
    for item in op.diff:
        leaf = item.path.rsplit(".", 1)[-1]
        path = visible(item.path, NAME * 2)
        if leaf in TEXT_FIELDS and isinstance(item.new, str) and isinstance(item.old, str):
            change = text_change(item.old, item.new)
            out.append(style(f"~ {path}:", fg="yellow"))
            for ln in change.lines:
                colour = "green" if ln.startswith("+") else "red" if ln.startswith("-") else None
                ln = visible(ln)
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
            out.append(style(f"+ {path}: {shown}", fg="green"))
        elif item.op == "remove":
            out.append(style(f"- {path}: {_value(item.old)}", fg="red"))
        else:
            out.append(
                style(f"~ {path}: {_value(item.old, 60)} -> {_value(item.new, 60)}", fg="yellow")
            )
    return out


def _op_heading(op: Any) -> str:
    extra = ""
    if len(op.covers) > 1:  # an owner written with the parts it owns (a Prompt and its split)
        parts = sorted({ref.partition("/")[0] for ref in op.covers} - {op.kind})
        extra = f" (with its {', '.join(parts)})" if parts else ""
    tail = f"{op.action.value}: {op.reason}"
    if op.destructive and not op.allowed and op.action.value == "replace":
        tail += "; DESTRUCTIVE: apply needs --allow-replace or the llmgw/allow-replace annotation"
    elif op.destructive:
        tail += "; destructive"
    return f"{_SYMBOL[op.action.value]} {_ref(op)}{extra}  ({tail})"


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
        lines.extend(f"    {visible(r, NAME * 2)}" for r in plan.orphaned[:50])
        if len(plan.orphaned) > 50:
            lines.append(f"    ... and {len(plan.orphaned) - 50} more")
    if plan.unmanaged:
        lines.append("")
        lines.append(
            f"Not managed, left alone ({len(plan.unmanaged)}): "
            + ", ".join(visible(r, NAME * 2) for r in plan.unmanaged[:10])
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
    head = [f"### llmgw plan{f' for {md_code(environment)}' if environment else ''}", ""]
    head.append(f"**{plan.summary()}**")
    if target:
        head.append(
            f"Target: {md_code(target)}"
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
        lines = diff_lines(op)
        fence = _fence(lines)
        block = [
            "<details>",
            f"<summary><code>{_SYMBOL[op.action.value]}</code> "
            f"<b>{html.escape(_ref(op))}</b>: {op.action.value} "
            f"({html.escape(visible(op.reason))})</summary>",
            "",
            f"{fence}diff",
            *lines,
            fence,
            "</details>",
            "",
        ]
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
    return out.rstrip() + "\n"


# -- apply ---------------------------------------------------------------------------------------
def dry_run_text(requests: Sequence[dict[str, Any]]) -> str:
    if not requests:
        return "Dry run: nothing to send."
    lines = [f"Dry run: {_plural(len(requests), 'request')} would be sent, in this order:"]
    for r in requests:
        lines.append("")
        lines.append(f"[wave {r['wave']}] {r['method']} {r['path']}    # {r['operation']}")
        for k, v in (r.get("headers") or {}).items():
            lines.append(f"    {k}: {v}")
        if r.get("body") is not None:
            body = json_dumps(r["body"])
            lines.extend("    " + ln for ln in body.splitlines())
    lines.append("")
    lines.append("Nothing was sent (--dry-run).")
    return "\n".join(lines)


def apply_text(run: Any, *, style: Style = plain) -> str:
    res = run.result
    applied = res.by_outcome("applied")
    failed = res.by_outcome("failed")
    skipped = res.by_outcome("not attempted")
    lines = []
    for r in failed:
        lines.append(
            style(f"failed: {_ref(r.op)} ({r.op.action.value}): {visible(str(r.error))}", fg="red")
        )
    for r in skipped:
        lines.append(f"not attempted: {_ref(r.op)} ({r.op.action.value})")
    for ref, status in sorted(run.index_health.items()):
        colour = "green" if status == "ACTIVE" else "yellow"
        lines.append(style(f"index health: {ref}: {status}", fg=colour))
    if run.verify_error:
        lines.append(style(f"verification read failed: {run.verify_error}", fg="red"))
    elif run.verify_plan is not None:
        if run.verify_plan.changes:
            lines.append(
                style(
                    "verification FAILED: live still differs from the manifests:",
                    fg="red",
                    bold=True,
                )
            )
            for op in run.verify_plan.changes:
                lines.append(f"  {_op_heading(op)}")
                lines.extend("      " + ln for ln in diff_lines(op))
        else:
            lines.append(
                style("Verified: live matches the manifests (the plan is now empty).", fg="green")
            )
    if run.stopped is not None:
        lines.append(
            style(
                f"Stopped: {run.stopped.message}; no further write was sent.", fg="red", bold=True
            )
        )
    for w in res.unaudited:
        lines.append(style(f"applied, but no audit line: {w}", fg="red"))
    total = len(res.results)
    head = (
        f"Apply {'complete' if run.ok else 'FAILED'}: {len(applied)} of {total} applied, "
        f"{len(failed)} failed, {len(skipped)} not attempted "
        f"({_plural(run.requests, 'request')}, {run.duration_s:.1f} s)."
    )
    lines.append(style(head, fg="green" if run.ok else "red", bold=True))
    if failed and any(r.stale for r in failed):
        lines.append(
            "Some objects changed in the org during the run: re-run `llmgw plan`, "
            "review, then apply again."
        )
    elif not run.ok:
        lines.append("Re-running apply converges from here: what was applied is not redone.")
    for note in run.audit_notes:
        lines.append(style(f"note: {note}", fg="yellow"))
    if run.audit_path:
        tail = run.audit_tail
        last = f" (last record {tail[0]}: {tail[1]})" if tail and tail[0] else ""
        lines.append(f"Audit log: {run.audit_path}{last}")
    if run.audit_error:
        lines.append(
            style(f"warning: the audit log stopped taking records: {run.audit_error}", fg="red")
        )
    if run.webhook_error:
        lines.append(style(f"warning: webhook not delivered: {run.webhook_error}", fg="yellow"))
    return "\n".join(lines)


def endpoint_table(rows: Sequence[Any]) -> str:
    if not rows:
        return ""
    out = ["Requests by endpoint (count, errors, retries, p50/p95 ms):"]
    for r in rows:
        out.append(
            f"  {r.method:6} {r.endpoint:60} {r.count:5} {r.errors:4} {r.retries:4}  "
            f"{r.latency_p50_ms:7.1f} / {r.latency_p95_ms:7.1f}"
        )
    return "\n".join(out)


def apply_json(run: Any) -> str:
    res = run.result
    data = {
        "ok": run.ok,
        "operations": [
            {
                "ref": r.op.ref,
                "action": r.op.action.value,
                "outcome": r.outcome,
                "status": r.status,
                "error": r.error,
                "stale": r.stale,
                "latencyMs": r.latency_ms,
            }
            for r in res.results
        ],
        "verified": run.verify_plan is not None and not run.verify_plan.changes,
        "indexHealth": run.index_health,
        "requests": run.requests,
        "durationSeconds": round(run.duration_s, 3),
        "auditLog": run.audit_path,
        "auditLastRecord": (
            {"seq": run.audit_tail[0], "hash": run.audit_tail[1]} if run.audit_tail else None
        ),
        "auditError": run.audit_error,
        "stopped": run.stopped.message if run.stopped is not None else None,
        "unaudited": list(res.unaudited),
        "notes": list(run.audit_notes),
        "webhookError": run.webhook_error,
        "endpoints": [
            {
                "method": m.method,
                "endpoint": m.endpoint,
                "count": m.count,
                "errors": m.errors,
                "retries": m.retries,
                "latencyP50Ms": m.latency_p50_ms,
                "latencyP95Ms": m.latency_p95_ms,
            }
            for m in run.metrics
        ],
    }
    return json_dumps(data)


# -- drift ---------------------------------------------------------------------------------------
_DRIFT_MARK = {"modified": "~", "missing": "+", "orphaned": "-", "unmanaged": "?"}


def drift_text(
    report: Any,
    *,
    target: str = "",
    environment: str | None = None,
    expired: Sequence[Any] = (),
    style: Style = plain,
) -> str:
    lines = []
    if target:
        lines.append(
            f"Target: {target}" + (f" (environment: {environment})" if environment else "")
        )
    drifted = report.drifted
    for f in drifted:
        lines.append("")
        where = f"  [{f.source}]" if f.source else ""
        colour = {"modified": "yellow", "missing": "red", "orphaned": "red"}.get(f.state)
        lines.append(
            style(
                f"{_DRIFT_MARK[f.state]} {f.state}: {visible(f.ref, NAME * 2)}{visible(where)}",
                fg=colour,
                bold=True,
            )
        )
        if f.state == "missing":
            lines.append("    in git, not in the org")
        elif f.state == "orphaned":
            lines.append(
                "    labelled managed-by: llmgw, in no manifest (apply --prune deletes it)"
            )
        for d in f.diff:
            sep = " ->" if d.op == "change" else ","
            lines.append(
                f"    {visible(d.path, NAME * 2)}: git {_value(d.old, 60)}{sep} live "
                f"{_value(d.new, 60)}"
            )
    unmanaged = [f for f in report.findings if f.state == "unmanaged"]
    if unmanaged:
        lines.append("")
        lines.append(
            f"Unmanaged, for information ({len(unmanaged)}): "
            + ", ".join(visible(f.ref, NAME * 2) for f in unmanaged[:10])
            + (f", ... and {len(unmanaged) - 10} more" if len(unmanaged) > 10 else "")
        )
    for e in expired:
        lines.append(
            style(
                f"warning: ignore entry {e.identity} {e.field} expired on {e.expires.isoformat()}: "
                "compared again",
                fg="yellow",
            )
        )
    lines.append("")
    if drifted:
        lines.append(
            style(
                f"Drift: {len(drifted)} of {report.checked} objects differ "
                f"({report.count('modified')} modified, {report.count('missing')} missing, "
                f"{report.count('orphaned')} orphaned).",
                fg="red",
                bold=True,
            )
        )
    else:
        lines.append(
            style(f"In sync: {report.checked} objects match the manifests.", fg="green", bold=True)
        )
    return "\n".join(lines).lstrip("\n")


def drift_json(
    report: Any, *, target: str = "", environment: str | None = None, expired: Sequence[Any] = ()
) -> str:
    return json_dumps(
        {
            "inSync": report.in_sync,
            "target": target,
            "environment": environment,
            "checked": report.checked,
            "counts": {
                s: report.count(s) for s in ("modified", "missing", "orphaned", "unmanaged")
            },
            "findings": [f.as_dict() for f in report.findings],
            "expiredIgnores": [e.as_dict() for e in expired],
        }
    )


def drift_markdown(
    report: Any, *, target: str = "", environment: str | None = None, expired: Sequence[Any] = ()
) -> str:
    head = [f"### llmgw drift{f' for {md_code(environment)}' if environment else ''}", ""]
    if report.in_sync:
        head.append(f"✅ **In sync**: {report.checked} objects match the manifests.")
    else:
        head.append(f"⚠️ **Drift**: {len(report.drifted)} of {report.checked} objects differ.")
    if target:
        head.append(f"Target: {md_code(target)}")
    rows = ["", "| state | object | fields (git → live) |", "| --- | --- | --- |"]
    for f in report.drifted:
        fields = "<br>".join(
            md_text(f"{d.path}: {_value(d.old, 40)} → {_value(d.new, 40)}") for d in f.diff
        )
        rows.append(f"| {f.state} | {md_code(f.ref, NAME * 2, table=True)} | {fields} |")
    out = head + (rows if report.drifted else [])
    unmanaged = [f for f in report.findings if f.state == "unmanaged"]
    if unmanaged:
        out += ["", f"{len(unmanaged)} unmanaged objects, for information."]
    for e in expired:
        out.append(
            f"- ignore entry {md_code(e.identity)} {md_code(e.field)} expired on "
            f"{e.expires.isoformat()}"
        )
    return "\n".join(out) + "\n"
