"""The views of ``llmgw drift``: text for people, JSON for tools, Markdown for an issue or a
pull-request comment, and the notices (stderr) about the webhook and the metrics file.

Fields are shown as git -> live (``drift.detect`` flips them so). Pure string building: no
printing, no I/O, no click (``views.base``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from reconciler import formats
from reconciler.text import NAME, visible
from reconciler.views.base import (
    Style,
    View,
    choose,
    json_dumps,
    md_code,
    md_text,
    plain,
    registry,
    short,
)

if TYPE_CHECKING:
    from reconciler.drift import DriftReport
    from reconciler.ignores import Entry
    from reconciler.jobs import DriftRun, Target

_MARK = {"modified": "~", "missing": "+", "orphaned": "-", "unmanaged": "?"}


def text(
    report: DriftReport,
    *,
    target: str = "",
    environment: str | None = None,
    expired: Sequence[Entry] = (),
    style: Style = plain,
) -> str:
    """Each drifted object with its fields, the unmanaged ones in one line, the expired ignore
    entries, then the verdict."""
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
                f"{_MARK[f.state]} {f.state}: {visible(f.ref, NAME * 2)}{visible(where)}",
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
                f"    {visible(d.path, NAME * 2)}: git {short(d.old, 60)}{sep} live "
                f"{short(d.new, 60)}"
            )
    held = [f for f in report.findings if f.state == "rollout"]
    if held:
        lines.append("")
        lines.append(f"Held by rollouts, for information ({len(held)}):")
        lines.extend(f"  {visible(f.ref, NAME * 2)}: {visible(f.note)}" for f in held[:10])
        if len(held) > 10:
            lines.append(f"  ... and {len(held) - 10} more")
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


def as_json(
    report: DriftReport,
    *,
    target: str = "",
    environment: str | None = None,
    expired: Sequence[Entry] = (),
) -> str:
    return json_dumps(
        {
            **formats.header(formats.DRIFT),
            "inSync": report.in_sync,
            "target": target,
            "environment": environment,
            "checked": report.checked,
            "counts": {
                s: report.count(s)
                for s in ("modified", "missing", "orphaned", "unmanaged", "rollout")
            },
            "findings": [f.as_dict() for f in report.findings],
            "expiredIgnores": [e.as_dict() for e in expired],
        }
    )


def markdown(
    report: DriftReport,
    *,
    target: str = "",
    environment: str | None = None,
    expired: Sequence[Entry] = (),
) -> str:
    """A table of the drifted objects (state, object, fields git → live), ending in a newline."""
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
            md_text(f"{d.path}: {short(d.old, 40)} → {short(d.new, 40)}") for d in f.diff
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


class DriftView(View):
    def show(self, run: DriftRun, target: Target) -> str:
        raise NotImplementedError

    def notices(self, run: DriftRun) -> list[str]:
        """stderr lines after the report: a webhook not delivered, a metrics file not written."""
        out = []
        if run.webhook_error:
            out.append(f"llmgw: warning: webhook not delivered: {run.webhook_error}")
        if run.metrics_error:
            out.append(f"llmgw: warning: metrics file not written: {run.metrics_error}")
        return out


class DriftText(DriftView):
    format = "text"

    def show(self, run: DriftRun, target: Target) -> str:
        return text(
            run.report,
            target=target.url,
            environment=target.environment,
            expired=run.desired.ignores.expired,
            style=self.style,
        )


class DriftJson(DriftView):
    format = "json"

    def show(self, run: DriftRun, target: Target) -> str:
        return as_json(
            run.report,
            target=target.url,
            environment=target.environment,
            expired=run.desired.ignores.expired,
        )


class DriftMarkdown(DriftView):
    format = "markdown"
    newline = False

    def show(self, run: DriftRun, target: Target) -> str:
        return markdown(
            run.report,
            target=target.url,
            environment=target.environment,
            expired=run.desired.ignores.expired,
        )


VIEWS = registry(DriftText, DriftJson, DriftMarkdown)
FORMATS = tuple(VIEWS)


def view(output_format: str, style: Style = plain) -> DriftView:
    return choose(VIEWS, output_format, style)
