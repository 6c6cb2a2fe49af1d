"""The packs' own tests (``tests:`` in a PolicySet), run by ``llmgw policy test``.

Each case names a document, an environment, and the rules it must pass and fail. A rule listed
under ``pass`` passes when it gives true, does not apply to the document (its ``match`` leaves
the document out) or is excepted by the document's own exception annotation; under ``fail``
only when it gives false. A rule that cannot be evaluated on
the case's document fails its case whichever list names it: the test has found a bug in the
rule. Pure: the cases and rules come loaded (``pack.load``), today's date is passed in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from reconciler.policy import engine
from reconciler.policy.pack import RULE_PREFIX, Case, Policies


@dataclass(frozen=True)
class Failure:
    case: Case
    rule: str
    expected: str  # pass | fail
    got: str  # pass | fail | error | excepted | skipped
    detail: str = ""

    def __str__(self) -> str:
        c = self.case
        said = {
            "pass": "passed",
            "fail": "failed",
            "error": "could not be evaluated",
            "excepted": "was excepted by the document's annotation",
            "skipped": "does not apply to the document (its match leaves it out)",
        }[self.got]
        detail = f": {self.detail}" if self.detail else ""
        head = f"{c.file}:{c.line}: test {c.name!r}: rule {self.rule}"
        return f"{head} should {self.expected} but {said}{detail}"


@dataclass
class Results:
    cases: int = 0
    checks: int = 0
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def run(policies: Policies, today: dt.date) -> Results:
    """Every case of every pack, against every rule loaded (a case may name only its own
    pack's rules; the others still judge the document, for the exceptions it carries)."""
    results = Results()
    for case in policies.cases:
        results.cases += 1
        outcome = engine.judge(policies.rules, [case.document], case.env, today)
        details = {p.rule.removeprefix(RULE_PREFIX): p.message for p in outcome.problems}
        for rid, expected in [(r, "pass") for r in case.must_pass] + [
            (r, "fail") for r in case.must_fail
        ]:
            results.checks += 1
            got = outcome.verdicts.get((0, rid), "skipped")
            ok = got == expected or (expected == "pass" and got in ("skipped", "excepted"))
            if not ok:
                detail = details.get(rid, "") if got == "error" else ""
                results.failures.append(Failure(case, rid, expected, got, detail))
    return results
