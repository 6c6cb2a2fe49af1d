"""The views of ``llmgw fleet``: ``fleet list`` (text, JSON for tools, ``github-matrix`` for a
GitHub Actions ``strategy.matrix``) and the report that ``fleet run`` prints at its end and
``fleet report`` prints from result files (text, JSON, Markdown for a job summary), with the
progress lines ``fleet run`` writes to stderr.

Names come from the environments file and error messages from children, so none is shown raw
(``views.base``). Pure string building: no printing, no I/O, no click.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from reconciler.text import visible
from reconciler.views.base import (
    Style,
    View,
    choose,
    json_dumps,
    md_code,
    md_text,
    plain,
    plural,
    registry,
)

if TYPE_CHECKING:
    from reconciler.fleet import Environment, Report, Result, Shard

# GitHub Actions runs at most 256 jobs from one matrix
GITHUB_MATRIX_LIMIT = 256


def _where(env: Environment) -> str:
    return env.region or env.api_url


def _columns(rows: Sequence[Sequence[str]]) -> list[list[str]]:
    """The cells of ``rows`` shown (``visible``), each but the last padded to its column's
    width: a table once each row is joined with two spaces (and stripped on the right)."""
    cells = [[visible(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]) - 1)]
    return [[c.ljust(w) for c, w in zip(row, widths, strict=False)] + row[-1:] for row in cells]


# -- fleet list --------------------------------------------------------------------------------
class ListView(View):
    """``limit``: the most environments the format can carry (None: no limit)."""

    limit: ClassVar[int | None] = None

    def show(self, environments: Sequence[Environment], shard: Shard | None) -> str:
        raise NotImplementedError

    def too_many(self, count: int) -> tuple[str, str]:
        """The message and fix when ``count`` is over ``limit``."""
        n = -(-count // (self.limit or 1))
        return (
            f"{count} environments are more than the {self.limit} jobs one GitHub Actions "
            "matrix runs",
            f"shard the fleet: a static matrix of {n} or more shards, each job running "
            f"`llmgw fleet run COMMAND --shard I/{n}` (see README: Fleets), or list one shard "
            f"with --shard I/{n}",
        )


class ListText(ListView):
    format = "text"

    def show(self, environments: Sequence[Environment], shard: Shard | None) -> str:
        of = f" of shard {shard}" if shard else ""
        if not environments:
            return f"No environments{of}."
        rows = [("NAME", "SHARD", "REGION / API", "PATHS", "LABELS")]
        for e in environments:
            env = e.as_dict(shard)
            labels = ",".join(f"{k}={v}" for k, v in env["labels"].items())
            rows.append((e.name, env["shard"] or "-", _where(e), " ".join(e.paths), labels or "-"))
        lines = ["  ".join(cells).rstrip() for cells in _columns(rows)]
        lines.append(f"{plural(len(environments), 'environment')}{of}.")
        return "\n".join(lines)


class ListJson(ListView):
    format = "json"

    def show(self, environments: Sequence[Environment], shard: Shard | None) -> str:
        return json_dumps([e.as_dict(shard) for e in environments])


class ListGithubMatrix(ListView):
    """One line of JSON, ``{"include": [...]}``: what ``fromJSON`` hands ``strategy.matrix``
    (each job gets ``matrix.name``, ``matrix.clientIdEnv`` ...; never a secret)."""

    format = "github-matrix"
    limit = GITHUB_MATRIX_LIMIT

    def show(self, environments: Sequence[Environment], shard: Shard | None) -> str:
        include = [e.as_dict(shard) for e in environments]
        return json_dumps({"include": include}, indent=None, separators=(",", ":"))


LIST_VIEWS = registry(ListText, ListJson, ListGithubMatrix)
LIST_FORMATS = tuple(LIST_VIEWS)


def list_view(output_format: str = "text", style: Style = plain) -> ListView:
    return choose(LIST_VIEWS, output_format, style)


# -- fleet run / fleet report -------------------------------------------------------------------
_COLOUR = {
    "ok": "green",
    "changes": "yellow",
    "drift": "yellow",
    "failed": "red",
    "timeout": "red",
    "usage-error": "red",
    "internal-error": "red",
    "interrupted": "red",
}


def describe(summary: Mapping[str, Any], command: str) -> str:
    """The counts of one result in a few words: ``3 changes (2 create, 1 update)``."""
    if command == "plan" and "changes" in summary:
        actions = summary.get("actions") or {}
        detail = ", ".join(f"{n} {a}" for a, n in actions.items() if n)
        return plural(int(summary["changes"]), "change") + (f" ({detail})" if detail else "")
    if command == "drift" and "drifted" in summary:
        states = summary.get("states") or {}
        detail = ", ".join(f"{n} {s}" for s, n in states.items() if n)
        checked = summary.get("checked")
        of = f" of {checked}" if isinstance(checked, int) else ""
        return f"{summary['drifted']}{of} drifted" + (f" ({detail})" if detail else "")
    if command == "apply" and "applied" in summary:
        return f"{summary['applied']} applied" + (", verified" if summary.get("verified") else "")
    return ""


def _detail(r: Result) -> str:
    return describe(r.summary, r.command)


def _first_line(text: str | None, limit: int = 160) -> str:
    line = (text or "").strip().splitlines()[-1:] or [""]
    return visible(line[0], limit)


class ReportView(View):
    def show(self, report: Report) -> str:
        raise NotImplementedError

    def progress(self, event: str, env: Environment, result: Result | None) -> str | None:
        """A stderr line as an environment starts or ends (None: nothing to say)."""
        if event == "start":
            return f"llmgw fleet: {visible(env.name)}: started" if self.verbose else None
        if result is None:
            return None
        detail = _detail(result)
        why = f": {_first_line(result.error)}" if result.error else ""
        tail = f" ({detail})" if detail else ""
        return (
            f"llmgw fleet: {visible(env.name)}: {result.status} (exit {result.exit_code}, "
            f"{result.duration:.1f} s){tail}{why}"
        )

    def notices(self, report: Report) -> list[str]:
        """stderr lines after the report: files not read or written, an interruption."""
        out = [f"llmgw: error: {visible(p)}" for p in report.problems]
        if report.interrupted:
            import signal

            name = signal.Signals(report.interrupted).name
            started = report.count("not-started")
            out.append(
                f"llmgw fleet: stopped by {name}: the running environments got it too"
                + (f"; {plural(started, 'environment')} not started" if started else "")
            )
        return out


class ReportText(ReportView):
    format = "text"

    def show(self, report: Report) -> str:
        if not report.results:
            return "No results."
        rows = [("ENVIRONMENT", "STATUS", "EXIT", "DETAIL")]
        for r in report.results:
            detail = _detail(r) or _first_line(r.error, 100)
            rows.append((r.name, r.status, str(r.exit_code), detail))
        lines = []
        for i, (row, cells) in enumerate(zip(rows, _columns(rows), strict=True)):
            if i:
                cells[1] = self.style(cells[1], fg=_COLOUR.get(row[1]))
            lines.append("  ".join(cells).rstrip())
        lines += ["", self._verdict(report)]
        return "\n".join(lines)

    def _verdict(self, report: Report) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in report.counts().items())
        code = report.exit_code
        colour = "green" if code == 0 else "yellow" if code == 2 else "red"
        return self.style(
            f"Fleet: {plural(len(report.results), 'environment')} ({counts}); exit {code}.",
            fg=colour,
            bold=True,
        )


class ReportJson(ReportView):
    format = "json"

    def show(self, report: Report) -> str:
        return json_dumps(report.as_dict())


class ReportMarkdown(ReportView):
    format = "markdown"
    newline = False

    def show(self, report: Report) -> str:
        code = report.exit_code
        mark = "✅" if code == 0 else "⚠️" if code == 2 else "❌"
        counts = ", ".join(f"{n} {s}" for s, n in report.counts().items()) or "no results"
        out = [
            "### llmgw fleet",
            "",
            f"{mark} {plural(len(report.results), 'environment')}: {counts}; exit {code}.",
        ]
        if report.results:
            out += ["", "| environment | status | exit | detail |", "| --- | --- | --- | --- |"]
            for r in report.results:
                detail = md_text(_detail(r) or _first_line(r.error, 200))
                out.append(
                    f"| {md_code(r.name, table=True)} | {r.status} | {r.exit_code} | {detail} |"
                )
        if report.problems:
            out += ["", "Not read:"]
            out += [f"- {md_text(p, 300)}" for p in report.problems]
        return "\n".join(out) + "\n"


REPORT_VIEWS = registry(ReportText, ReportJson, ReportMarkdown)
REPORT_FORMATS = tuple(REPORT_VIEWS)


def report_view(
    output_format: str = "text", style: Style = plain, *, verbose: bool = False
) -> ReportView:
    return choose(REPORT_VIEWS, output_format, style, verbose=verbose)
