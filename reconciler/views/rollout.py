"""What ``rollout advance``, ``rollout status`` and the overrides show: per rollout its step
and weights, time at step, the decision and what was done, each gate's evidence (samples per
version, both values, the limit, the verdict and its confidence) and the history of steps;
Markdown adds a Mermaid chart of the canary's weight and the error rates over the steps
(GitHub renders it in job summaries and pull-request comments).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from reconciler import formats
from reconciler.rollout.spec import percent
from reconciler.text import iso_utc, plural, visible
from reconciler.views.base import Style, View, choose, json_dumps, md_code, md_text, registry

if TYPE_CHECKING:
    from reconciler.jobs import Target
    from reconciler.rollouts import Outcome, RolloutRun

FORMATS = ("text", "json", "markdown")


def _ago(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} m"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} m"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def where(o: Outcome) -> str:
    """``step 2 of 3 (25 %), progressing for 12 m``, or why there is no position."""
    pos = o.position
    if pos is None:
        return "no position (not started)"
    n = len(o.rollout.steps)
    if pos.state == "done":
        return "done: the end state is live"
    if pos.state == "aborted":
        return f"aborted at step {pos.step} of {n}: all traffic on {o.rollout.stable}"
    since = f" for {_ago(o.now - pos.since)}" if o.now is not None else ""
    step = f"step {pos.step} of {n} ({percent(o.canary_weight())})" if pos.step else "step 0 (0 %)"
    return f"{step}, {pos.state}{since}"


def _history(o: Outcome) -> str:
    pos = o.position
    if pos is None or not pos.history:
        return ""
    return ", ".join(f"{what} at {iso_utc(t)}" for what, t in pos.history)


def text_of(o: Outcome, style: Style) -> list[str]:
    r = o.rollout
    head = f"{o.prompt}: rollout {r.stable} -> {r.canary} [{r.id}]: {where(o)}"
    colour = None
    if o.error or o.alarming:
        colour = "red"
    elif o.acted:
        colour = "green"
    lines = [style(visible(head), fg=colour, bold=True)]
    if o.error:
        lines.append(style(f"  error: {visible(o.error)}", fg="red"))
    if o.note:
        lines.append(f"  {visible(o.note)}")
    if o.decision is not None:
        lines.append(f"  decision: {visible(o.decision.reason)}")
    if o.acted:
        lines.append(f"  done: {visible(o.acted)}")
    if o.decision is not None and o.decision.evidence:
        lines.append(
            f"  evidence (stable {o.stable.invocations}, canary {o.canary.invocations} "
            "invocations in the step's window):"
        )
        lines.extend(f"    {visible(e.summary)}" for e in o.decision.evidence)
    history = _history(o)
    if history:
        lines.append(f"  history: {visible(history)}")
    return lines


def text(run: RolloutRun, target: Target, style: Style) -> str:
    lines = [
        f"Target: {target.url}"
        + (f" (environment: {target.environment})" if target.environment else "")
    ]
    for o in run.outcomes:
        lines.append("")
        lines.extend(text_of(o, style))
    lines.append("")
    lines.append(summary(run))
    return "\n".join(lines)


def summary(run: RolloutRun) -> str:
    n = len(run.outcomes)
    acted = sum(1 for o in run.outcomes if o.acted)
    errors = sum(1 for o in run.outcomes if o.error)
    alarms = sum(1 for o in run.outcomes if o.alarming)
    dry = " (dry run: nothing was written)" if run.dry_run and run.command == "advance" else ""
    parts = [plural(n, "rollout"), f"{acted} acted on"]
    if alarms:
        parts.append(f"{alarms} rolled back or paused")
    if errors:
        parts.append(f"{errors} failed")
    return (
        f"Rollout {run.command}: " + ", ".join(parts) + f"; {plural(run.requests, 'request')}{dry}."
    )


def _mermaid(o: Outcome) -> list[str]:
    """Canary weight and error rates (percent) per step, from the history and the step rows."""
    rows = [r for r in o.steps if r[2] is not None or r[3] is not None]  # windows with data
    if not rows:
        return []
    names = ", ".join(f'"{visible(str(label))}"' for label, *_ in rows)
    weights = ", ".join(f"{w * 100:.4g}" for _, w, _, _ in rows)
    stable = ", ".join(f"{(s if s is not None else 0) * 100:.4g}" for _, _, s, _ in rows)
    canary = ", ".join(f"{(c if c is not None else 0) * 100:.4g}" for _, _, _, c in rows)
    top = max([100.0] + [(c or 0) * 100 for *_, c in rows])
    return [
        "```mermaid",
        "xychart-beta",
        f'    title "{visible(o.prompt)}: canary weight, and error rate of stable and canary (%)"',
        f"    x-axis [{names}]",
        f'    y-axis "percent" 0 --> {top:.4g}',
        f"    bar [{weights}]",
        f"    line [{stable}]",
        f"    line [{canary}]",
        "```",
        "Bars: the canary's share of traffic; lines: stable's and the canary's error rates.",
    ]


def markdown(run: RolloutRun, target: Target) -> str:
    out = [f"### llmgw rollout {run.command}", "", f"Target: {md_code(target.url)}"]
    for o in run.outcomes:
        r = o.rollout
        out += [
            "",
            f"#### {md_text(o.prompt)}: {md_code(r.stable)} → {md_code(r.canary)}",
            "",
            f"- position: {md_text(where(o))}",
        ]
        if o.error:
            out.append(f"- **error**: {md_text(o.error)}")
        if o.note:
            out.append(f"- {md_text(o.note)}")
        if o.decision is not None:
            out.append(f"- decision (**{o.decision.action}**): {md_text(o.decision.reason)}")
        if o.acted:
            out.append(f"- done: {md_text(o.acted)}")
        if o.decision is not None and o.decision.evidence:
            out += [
                "",
                "| gate | stable | canary | limit | verdict | confidence |",
                "| --- | --- | --- | --- | --- | --- |",
            ]
            for e in o.decision.evidence:
                conf = f"{e.confidence * 100:.1f} %" if e.confidence is not None else "—"
                out.append(
                    f"| {e.gate} | {_value(e.stable_value)} (n={e.stable_n}) | "
                    f"{_value(e.canary_value)} (n={e.canary_n}) | {e.limit_word} {e.limit:g} | "
                    f"{e.verdict} | {conf} |"
                )
        history = _history(o)
        if history:
            out += ["", f"History: {md_text(history)}"]
        chart = _mermaid(o)
        if chart:
            out += ["", *chart]
    out += ["", md_text(summary(run)), ""]
    return "\n".join(out)


def _value(v: float | None) -> str:
    return "—" if v is None else f"{v:.4g}"


class RolloutView(View):
    def show(self, run: RolloutRun, target: Target) -> str:
        raise NotImplementedError

    def notices(self, run: RolloutRun) -> list[str]:
        out = []
        if run.audit_error:
            out.append(f"llmgw: error: audit log: {run.audit_error}")
        if run.webhook_error:
            out.append(f"llmgw: warning: webhook not delivered: {run.webhook_error}")
        if run.metrics_error:
            out.append(f"llmgw: warning: metrics file not written: {run.metrics_error}")
        if run.audit_tail is not None and run.audit_tail[0]:
            seq, last = run.audit_tail
            out.append(f"Audit log: {run.audit_path} (last record {seq}: {last})")
        return out


class RolloutText(RolloutView):
    format: ClassVar[str] = "text"

    def show(self, run: RolloutRun, target: Target) -> str:
        return text(run, target, self.style)


class RolloutJson(RolloutView):
    format: ClassVar[str] = "json"

    def show(self, run: RolloutRun, target: Target) -> str:
        data: dict[str, Any] = {**formats.header(formats.ROLLOUT), **run.as_dict(target)}
        return json_dumps(data)


class RolloutMarkdown(RolloutView):
    format: ClassVar[str] = "markdown"
    newline: ClassVar[bool] = False

    def show(self, run: RolloutRun, target: Target) -> str:
        return markdown(run, target)


VIEWS = registry(RolloutText, RolloutJson, RolloutMarkdown)


def view(output_format: str, style: Style) -> RolloutView:
    return choose(VIEWS, output_format, style)


__all__: Sequence[str] = ("FORMATS", "view")
