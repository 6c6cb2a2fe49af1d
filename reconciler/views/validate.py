"""The views of ``llmgw validate``: text for people, JSON for tools, Markdown for a pull-request
comment, GitHub Actions annotations on the pull request's diff, SARIF for code scanning.

Each renders a ``validate.Report`` whole: every problem of the run (then, but in SARIF, a summary).
Pure string building: no printing, no I/O, no click (``views.base``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler import formats
from reconciler.text import visible
from reconciler.views.base import (
    Style,
    View,
    choose,
    gh_data,
    gh_prop,
    json_dumps,
    md_code,
    md_text,
    plain,
    plural,
    registry,
)

if TYPE_CHECKING:
    from reconciler.model import Problem
    from reconciler.validate import Report


def _errors(problems: list[Problem]) -> int:
    return sum(1 for p in problems if p.severity == "error")


def _policies(report: Report) -> str:
    """``, 5 policy rules`` when policy packs were loaded (a run without them says nothing)."""
    return f", {plural(report.rules, 'policy rule')}" if report.rules or report.policy_files else ""


def _excepted(report: Report) -> list[str]:
    """One line per violation an exception let pass: exceptions are shown, never hidden."""
    return [
        f"{visible(e.file)}:{e.line}: {visible(e.subject)}: policy {e.rule} excepted until "
        f"{e.until.isoformat()}: {visible(e.reason)}"
        for e in report.excepted
    ]


class ValidateView(View):
    def show(self, report: Report, valid: bool) -> str:
        """The whole report; ``valid`` is the verdict (``Report.ok``, strict or not)."""
        raise NotImplementedError


class ValidateText(ValidateView):
    format = "text"

    def show(self, report: Report, valid: bool) -> str:
        style, problems = self.style, report.problems
        lines = []
        for p in problems:
            colour = "red" if p.severity == "error" else "yellow"
            lines.append(style(str(p), fg=colour))
        lines += [style(line, dim=True) for line in _excepted(report)]
        errors = _errors(problems)
        summary = (
            f"{plural(errors, 'error')}, {plural(len(problems) - errors, 'warning')} in "
            f"{plural(len(report.documents), 'document')} ({plural(len(report.files), 'file')})"
            f"{_policies(report)}"
        )
        if valid:
            summary = style("valid: ", fg="green", bold=True) + summary
        elif not errors:  # --strict, and warnings: the verdict says why the exit code is 1
            summary = style("invalid (--strict counts warnings): ", fg="red", bold=True) + summary
        lines.append(summary)
        return "\n".join(lines)


class ValidateJson(ValidateView):
    format = "json"

    def show(self, report: Report, valid: bool) -> str:
        errors = _errors(report.problems)
        return json_dumps(
            {
                **formats.header(formats.VALIDATE),
                "valid": valid,
                "errors": errors,
                "warnings": len(report.problems) - errors,
                "documents": len(report.documents),
                "files": list(report.files),
                "problems": [p.as_dict() for p in report.problems],
                "policies": {
                    "rules": report.rules,
                    "files": list(report.policy_files),
                    "excepted": [
                        {
                            "rule": e.rule,
                            "file": e.file,
                            "line": e.line,
                            "object": e.subject,
                            "until": e.until.isoformat(),
                            "reason": e.reason,
                        }
                        for e in report.excepted
                    ],
                },
            },
            indent=2,
        )


class ValidateMarkdown(ValidateView):
    format = "markdown"

    def show(self, report: Report, valid: bool) -> str:
        problems = report.problems
        errors = _errors(problems)
        head = "✅ **Manifests are valid**" if valid else "❌ **Manifests are invalid**"
        out = [
            f"{head}: {plural(errors, 'error')}, "
            f"{plural(len(problems) - errors, 'warning')} in "
            f"{plural(len(report.documents), 'document')} ({plural(len(report.files), 'file')})"
            f"{_policies(report)}"
        ]
        if problems:
            out += ["", "| | where | object | field | problem |", "|---|---|---|---|---|"]
            for p in problems:
                icon = "❌" if p.severity == "error" else "⚠️"
                msg = p.message + (f" ({p.fix})" if p.fix else "")
                out.append(
                    f"| {icon} | {md_code(f'{p.file}:{p.line}', table=True)} | "
                    f"{md_text(p.subject)} | {md_code(p.path, table=True) if p.path else ''} | "
                    f"{md_text(msg)} |"
                )
        if report.excepted:
            out += ["", "Policy exceptions in force:", ""]
            out += [f"- {md_text(line)}" for line in _excepted(report)]
        return "\n".join(out)


class ValidateGithub(ValidateView):
    """GitHub Actions workflow commands: one annotation per problem on the PR's diff."""

    format = "github"

    def show(self, report: Report, valid: bool) -> str:
        out = []
        for p in report.problems:
            level = "error" if p.severity == "error" else "warning"
            props = [f"file={gh_prop(p.file)}"]
            if p.line:
                props.append(f"line={p.line}")
            if p.subject:
                props.append(f"title={gh_prop(p.subject)}")
            body = (f"{p.path}: " if p.path else "") + p.message + (f" ({p.fix})" if p.fix else "")
            out.append(f"::{level} {','.join(props)}::{visible(gh_data(body))}")
        errors = _errors(report.problems)
        out.append(f"{plural(errors, 'error')}, {plural(len(report.problems) - errors, 'warning')}")
        return "\n".join(out)


class ValidateSarif(ValidateView):
    """A SARIF 2.1.0 log of every problem, for GitHub code scanning (``views.sarif``). The
    verdict is the exit code's to tell: the log is the same whether warnings count or not."""

    format = "sarif"

    def show(self, report: Report, valid: bool) -> str:
        from reconciler.views import sarif  # it reads rule ids from the checks: only when used

        return sarif.render(report.problems)


VIEWS = registry(ValidateText, ValidateJson, ValidateMarkdown, ValidateGithub, ValidateSarif)
FORMATS = tuple(VIEWS)


def view(output_format: str, style: Style = plain) -> ValidateView:
    return choose(VIEWS, output_format, style)
