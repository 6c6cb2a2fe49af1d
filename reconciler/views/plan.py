"""The views of ``llmgw plan``: text for people, the saved plan's JSON for tools
(``planfile.dumps``, the very bytes ``--out`` writes), Markdown for a pull-request comment.

Also the pieces other views show a plan with: an operation's heading and its field diff (text
fields as a line diff, with placeholders and token counts), used by apply's confirmation and its
verification report. Pure string building: no printing, no I/O, no click (``views.base``).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from reconciler import kinds
from reconciler.text import NAME, visible
from reconciler.views.base import (
    Style,
    View,
    choose,
    fence,
    md_code,
    md_text,
    plain,
    plural,
    registry,
    short,
)

if TYPE_CHECKING:
    from reconciler.jobs import PlanRun, Target
    from reconciler.planfile import Targeted
    from reconciler.planner import Operation, Plan


def _text_fields(kind: str) -> frozenset[str]:
    """A kind's fields holding prose: a change shows as a line diff with its token counts."""
    resource = kinds.get(kind)
    return resource.text_fields if resource is not None else frozenset()


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


def ref(op: Operation) -> str:
    return visible(op.ref, NAME * 2)


def diff_lines(op: Operation, style: Style = plain) -> list[str]:
    """The field diff of one operation as indented lines (text fields as a line diff)."""
    # imported here: tiktoken and deepdiff load slowly, and validate never shows a diff
    from reconciler import tokens
    from reconciler.diffing import text_change

    out: list[str] = []
    prose = _text_fields(op.kind)
    for item in op.diff:
        leaf = item.path.rsplit(".", 1)[-1]
        path = visible(item.path, NAME * 2)
        if leaf in prose and isinstance(item.new, str) and isinstance(item.old, str):
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
            shown = short(item.new)
            if leaf in prose and isinstance(item.new, str):
                shown += f"  ({tokens.count(item.new)} tokens)"
            out.append(style(f"+ {path}: {shown}", fg="green"))
        elif item.op == "remove":
            out.append(style(f"- {path}: {short(item.old)}", fg="red"))
        else:
            out.append(
                style(f"~ {path}: {short(item.old, 60)} -> {short(item.new, 60)}", fg="yellow")
            )
    return out


def heading(op: Operation) -> str:
    """``~ Kind/key  (action: reason)``, with what makes it destructive or refused."""
    extra = ""
    if len(op.covers) > 1:  # an owner written with the parts it owns (a Prompt and its split)
        parts = sorted({r.partition("/")[0] for r in op.covers} - {op.kind})
        extra = f" (with its {', '.join(parts)})" if parts else ""
    tail = f"{op.action.value}: {op.reason}"
    if op.destructive and not op.allowed and op.action.value == "replace":
        tail += "; DESTRUCTIVE: apply needs --allow-replace or the llmgw/allow-replace annotation"
    elif op.destructive:
        tail += "; destructive"
    return f"{_SYMBOL[op.action.value]} {ref(op)}{extra}  ({tail})"


def text(
    plan: Plan,
    *,
    target: str = "",
    requests: int | None = None,
    environment: str | None = None,
    verbose: bool = False,
    style: Style = plain,
    scope: str = "",
) -> str:
    """The plan for people: where, how it was read (``scope``: what a targeted plan covers),
    the summary, each change with its diff (with ``verbose`` the no-ops and each request too),
    then what is left alone and the warnings."""
    lines: list[str] = []
    if target:
        env = f" (environment: {environment})" if environment else ""
        lines.append(f"Target: {target}{env}")
    if requests is not None:
        lines.append(f"Read the org in {plural(requests, 'request')}.")
    if scope:
        lines.append(style(scope, fg="cyan"))
    lines.append(style(plan.summary(), bold=True))
    ops = plan.operations if verbose else plan.changes
    if not plan.changes:
        lines.append(style("No changes: the org matches the manifests.", fg="green"))
    for op in ops:
        lines.append("")
        lines.append(style(heading(op), fg=_COLOUR[op.action.value], bold=True))
        lines.extend("    " + ln for ln in diff_lines(op, style))
        if verbose:
            for r in op.requests:
                lines.append(f"    request: {r.method} {r.path}")
    if plan.held and not verbose:
        lines.append("")
        lines.append(f"Left as they are ({len(plan.held)}):")
        lines.extend(f"    {visible(ref(o), NAME * 2)}: {visible(o.reason)}" for o in plan.held)
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
    for w in plan.warnings:  # a Problem says "warning:" itself, after its file:line
        lines.append(style(str(w) if w.severity == "warning" else f"warning: {w}", fg="yellow"))
    return "\n".join(lines)


MARKDOWN_WARNINGS = 20  # warnings a comment lists before "and N more"


def markdown(
    plan: Plan,
    *,
    target: str = "",
    requests: int | None = None,
    environment: str | None = None,
    limit: int = MARKDOWN_LIMIT,
    scope: str = "",
) -> str:
    """The plan as a pull-request comment: one collapsed block per change, cut before ``limit``
    characters with a note saying how many were left out."""
    head = [f"### llmgw plan{f' for {md_code(environment)}' if environment else ''}", ""]
    head.append(f"**{plan.summary()}**")
    if target:
        head.append(
            f"Target: {md_code(target)}"
            + (f", read in {plural(requests, 'request')}" if requests is not None else "")
        )
    if scope:
        head.append("")
        head.append(md_text(scope))
    if any(o.destructive for o in plan.changes):
        head.append("")
        head.append("⚠️ **This plan contains destructive operations** (deletes or replacements).")
    if not plan.changes:
        head.append("")
        head.append("No changes: the org matches the manifests.")
    if plan.held:
        head.append("")
        head.append("Left as they are:")
        head.extend(f"- {md_code(ref(o), NAME * 2)}: {md_text(o.reason)}" for o in plan.held)
    if plan.warnings:  # policy warnings, expired ignore entries: a reviewer sees them here
        head.append("")
        head.append(f"⚠️ {plural(len(plan.warnings), 'warning')}:")
        for w in plan.warnings[:MARKDOWN_WARNINGS]:
            where = md_code(f"{w.file}:{w.line}" if w.line else w.file)
            what = (f"{w.subject}: " if w.subject else "") + (f"{w.path}: " if w.path else "")
            fix = f" ({w.fix})" if w.fix else ""
            head.append(f"- {where} {md_text(what + w.message + fix)}")
        if len(plan.warnings) > MARKDOWN_WARNINGS:
            head.append(f"- … and {len(plan.warnings) - MARKDOWN_WARNINGS} more in the job log")
    body: list[str] = []
    for op in plan.changes:
        lines = diff_lines(op)
        ticks = fence(lines)
        block = [
            "<details>",
            f"<summary><code>{_SYMBOL[op.action.value]}</code> "
            f"<b>{html.escape(ref(op))}</b>: {op.action.value} "
            f"({html.escape(visible(op.reason))})</summary>",
            "",
            f"{ticks}diff",
            *lines,
            ticks,
            "</details>",
            "",
        ]
        body.append("\n".join(block))
    out = "\n".join(head) + "\n\n"
    shown = 0
    for block_text in body:
        if len(out) + len(block_text) > limit - 200:
            break
        out += block_text
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


class PlanView(View):
    def show(self, run: PlanRun, target: Target) -> str:
        raise NotImplementedError

    def saved(self, path: str) -> str:
        """The notice (stderr) after ``--out``: where the plan is and how to apply it."""
        return f"Plan saved to {path}; apply it with `llmgw apply {path}`."


def scope_of(t: Targeted | None, total: int) -> str:
    """What a targeted plan covers (of ``total`` manifest objects) and what it did not read;
    "" for a full plan."""
    if t is None:
        return ""
    removed = (
        f"; {plural(len(t.removed), 'object')} removed by the change (reported, never deleted "
        "by a targeted plan: a full `plan --prune` deletes them)"
        if t.removed
        else ""
    )
    return (
        f"Targeted plan: the change since {t.changed_since} ({t.commit[:12]}) touches "
        f"{len(t.objects)} of {total} manifest objects{removed}. It read the "
        "collections' listings and the children of those objects only, not the rest of the "
        "org: run `plan` without --changed-since for everything (orphans, unmanaged objects)."
    )


class PlanText(PlanView):
    format = "text"

    def show(self, run: PlanRun, target: Target) -> str:
        return text(
            run.plan,
            target=target.url,
            requests=run.requests,
            environment=target.environment,
            verbose=self.verbose,
            style=self.style,
            scope=scope_of(run.saved.targeted, len(run.desired.objects)),
        )


class PlanJson(PlanView):
    """The saved plan itself: what ``--out`` writes, so a tool reads one format either way."""

    format = "json"
    newline = False

    def show(self, run: PlanRun, target: Target) -> str:
        from reconciler import planfile  # the saved-plan format; loads the planner

        return planfile.dumps(run.saved)


class PlanMarkdown(PlanView):
    format = "markdown"
    newline = False

    def show(self, run: PlanRun, target: Target) -> str:
        return markdown(
            run.plan,
            target=target.url,
            requests=run.requests,
            environment=target.environment,
            scope=scope_of(run.saved.targeted, len(run.desired.objects)),
        )


VIEWS = registry(PlanText, PlanJson, PlanMarkdown)
FORMATS = tuple(VIEWS)


def view(output_format: str, style: Style = plain, *, verbose: bool = False) -> PlanView:
    return choose(VIEWS, output_format, style, verbose=verbose)
