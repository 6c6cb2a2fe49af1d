"""The views of ``llmgw apply``: text for people and JSON for tools, including ``--dry-run``'s
request list, the confirmation question, progress lines, the requests-by-endpoint table
(``--verbose``) and the notices written to stderr after a run.

The text view shows the plan before anything else (the JSON view does not: its one document is
the run's result). Pure string building: no printing, no prompting, no I/O, no click
(``views.base``); the CLI asks the question and draws a progress bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from reconciler import formats
from reconciler.endpoints import STATUSES
from reconciler.text import visible
from reconciler.views import plan as plan_view
from reconciler.views.base import Style, View, choose, json_dumps, plain, plural, registry

if TYPE_CHECKING:
    from reconciler.executor import OpResult
    from reconciler.jobs import ApplyRun, Prepared, Target
    from reconciler.remote import EndpointStats


def dry_run_text(requests: Sequence[dict[str, Any]]) -> str:
    """``jobs.dry_run_requests``, wave by wave, each with its headers and body."""
    if not requests:
        return "Dry run: nothing to send."
    lines = [f"Dry run: {plural(len(requests), 'request')} would be sent, in this order:"]
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


def text(run: ApplyRun, *, style: Style = plain) -> str:
    """The run for people: what failed or was not attempted, index health, the verification,
    why it stopped, the summary line, what to do next and where the audit log ends."""
    res = run.result
    applied = res.by_outcome("applied")
    failed = res.by_outcome("failed")
    skipped = res.by_outcome("not attempted")
    lines = []
    for r in failed:
        lines.append(
            style(
                f"failed: {plan_view.ref(r.op)} ({r.op.action.value}): {visible(str(r.error))}",
                fg="red",
            )
        )
    for r in skipped:
        lines.append(f"not attempted: {plan_view.ref(r.op)} ({r.op.action.value})")
    for ref, status in sorted(run.index_health.items()):
        colour = "green" if status == STATUSES.active else "yellow"
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
                lines.append(f"  {plan_view.heading(op)}")
                lines.extend("      " + ln for ln in plan_view.diff_lines(op))
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
        f"({plural(run.requests, 'request')}, {run.duration_s:.1f} s)."
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


def endpoint_table(rows: Sequence[EndpointStats]) -> str:
    if not rows:
        return ""
    out = ["Requests by endpoint (count, errors, retries, p50/p95 ms):"]
    for r in rows:
        out.append(
            f"  {r.method:6} {r.endpoint:60} {r.count:5} {r.errors:4} {r.retries:4}  "
            f"{r.latency_p50_ms:7.1f} / {r.latency_p95_ms:7.1f}"
        )
    return "\n".join(out)


def as_json(run: ApplyRun) -> str:
    res = run.result
    data = {
        **formats.header(formats.APPLY),
        "ok": run.ok,
        "operations": [
            {**r.as_dict(), "stale": r.stale, "latencyMs": r.latency_ms} for r in res.results
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


class ApplyView(View):
    """What apply shows, in the order it shows it: the plan, then either the dry run, "nothing
    to apply", or the confirmation, the progress and the result, then the notices."""

    progress_bar: ClassVar[bool] = True  # on a terminal, a bar instead of one line per write

    def plan(self, prepared: Prepared, target: Target) -> str | None:
        """The plan about to be applied, or None when this format shows none."""
        raise NotImplementedError

    def dry_run(self, requests: Sequence[dict[str, Any]]) -> str:
        raise NotImplementedError

    def nothing(self) -> str:
        raise NotImplementedError

    def result(self, run: ApplyRun) -> str:
        raise NotImplementedError

    # the same in every format: stderr notices, the prompt, plain progress lines
    def waiting(self, holder: str, timeout: str) -> str:
        return f"llmgw: waiting up to {timeout} for the audit log's lock, held by {holder}"

    def question(self, changes: int, target: Target) -> str:
        where = target.environment or target.url
        return f"\nApply {plural(changes, 'change')} to {where}?"

    def cancelled(self) -> str:
        return "Apply cancelled; nothing was sent."

    def progress(self, r: OpResult) -> str:
        status = f" ({r.status}, {r.latency_ms:.0f} ms)" if r.status else ""
        return f"{r.outcome}: {r.op.action.value} {plan_view.ref(r.op)}{status}"

    def notices(self, run: ApplyRun) -> list[str]:
        """stderr lines after the result: a metrics file not written, why the run stopped (a
        signal says nothing more: the CLI reported it when it came)."""
        out = []
        if run.metrics_error:
            out.append(f"llmgw: warning: metrics file not written: {run.metrics_error}")
        stopped = run.stopped
        if stopped is None or (stopped.kind == "signal" and stopped.signum):
            return out
        if stopped.kind == "timeout":
            out.append(
                f"llmgw: error: {stopped.message}: the run stopped and sent no further write; "
                "re-run apply to converge (what was applied is not redone), or pass a longer "
                "--timeout"
            )
        else:
            out.append(f"llmgw: error: {stopped.message}: the run stopped before any further write")
        return out


class ApplyText(ApplyView):
    format = "text"

    def plan(self, prepared: Prepared, target: Target) -> str | None:
        return plan_view.text(
            prepared.plan,
            target=target.url,
            requests=prepared.requests,
            environment=target.environment,
            scope=plan_view.scope_of(prepared.saved.targeted, len(prepared.desired.objects)),
            verbose=self.verbose,
            style=self.style,
        )

    def dry_run(self, requests: Sequence[dict[str, Any]]) -> str:
        return "\n" + dry_run_text(requests)

    def nothing(self) -> str:
        return "Nothing to apply."

    def result(self, run: ApplyRun) -> str:
        parts = ["", text(run, style=self.style)]
        if self.verbose:
            parts.append(endpoint_table(run.metrics))  # empty: a blank line, as before
        return "\n".join(parts)


class ApplyJson(ApplyView):
    format = "json"
    progress_bar = False

    def plan(self, prepared: Prepared, target: Target) -> str | None:
        return None

    def dry_run(self, requests: Sequence[dict[str, Any]]) -> str:
        return json_dumps(
            {**formats.header(formats.DRY_RUN), "dryRun": True, "requests": list(requests)}
        )

    def nothing(self) -> str:
        """The apply document of a run with nothing to do: no request was sent, so it holds
        ``ok`` and no operations, none of a run's other fields."""
        return json_dumps({**formats.header(formats.APPLY), "ok": True, "operations": []})

    def result(self, run: ApplyRun) -> str:
        return as_json(run)


VIEWS = registry(ApplyText, ApplyJson)
FORMATS = tuple(VIEWS)


def view(output_format: str, style: Style = plain, *, verbose: bool = False) -> ApplyView:
    return choose(VIEWS, output_format, style, verbose=verbose)
