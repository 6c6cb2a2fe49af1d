"""The views of ``llmgw policy test``: text for people, JSON for tools.

Each renders a ``selftest.Results`` whole: a line per failing rule check (file:line of the
case, what the rule should have done, what it did), then one summary line. Problems of the
packs themselves (they did not load) are rendered as ``validate`` renders problems. Pure
string building: no printing, no I/O, no click (``views.base``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler import formats
from reconciler.text import visible
from reconciler.views.base import Style, View, choose, json_dumps, plain, plural, registry

if TYPE_CHECKING:
    from reconciler.model import Problem
    from reconciler.policy.selftest import Results


class PolicyTestView(View):
    def show(self, results: Results, problems: list[Problem], rules: int, files: int) -> str:
        raise NotImplementedError


class PolicyTestText(PolicyTestView):
    format = "text"

    def show(self, results: Results, problems: list[Problem], rules: int, files: int) -> str:
        style = self.style
        lines = [style(str(p), fg="red" if p.severity == "error" else "yellow") for p in problems]
        lines += [style(visible(str(f)), fg="red") for f in results.failures]
        errors = sum(1 for p in problems if p.severity == "error")
        where = f"{plural(rules, 'rule')} in {plural(files, 'file')}"
        if errors:
            lines.append(style("the policy packs do not load: ", fg="red", bold=True) + where)
        elif not results.cases:
            lines.append(style("no tests: ", fg="yellow", bold=True) + f"{where}; add `tests:`")
        else:
            counts = (
                f"{plural(results.cases, 'test')}, {plural(results.checks, 'rule check')}, "
                f"{plural(len(results.failures), 'failure')} ({where})"
            )
            verdict = ("passed: ", "green") if results.ok else ("failed: ", "red")
            lines.append(style(verdict[0], fg=verdict[1], bold=True) + counts)
        return "\n".join(lines)


class PolicyTestJson(PolicyTestView):
    format = "json"

    def show(self, results: Results, problems: list[Problem], rules: int, files: int) -> str:
        errors = sum(1 for p in problems if p.severity == "error")
        return json_dumps(
            {
                **formats.header(formats.POLICY_TEST),
                "passed": results.ok and not errors,
                "rules": rules,
                "files": files,
                "tests": results.cases,
                "checks": results.checks,
                "failures": [
                    {
                        "file": f.case.file,
                        "line": f.case.line,
                        "test": f.case.name,
                        "rule": f.rule,
                        "expected": f.expected,
                        "got": f.got,
                        "detail": f.detail,
                    }
                    for f in results.failures
                ],
                "problems": [p.as_dict() for p in problems],
            },
            indent=2,
        )


VIEWS = registry(PolicyTestText, PolicyTestJson)
FORMATS = tuple(VIEWS)


def view(output_format: str, style: Style = plain) -> PolicyTestView:
    return choose(VIEWS, output_format, style)
