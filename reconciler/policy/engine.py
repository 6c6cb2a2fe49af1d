"""Policy rules judged on manifest documents: violations, exceptions, and their expiry.

Each document is given to CEL once (its ``spec`` with the schema's documented defaults filled in,
so ``spec.temperature`` is 0.7 when the manifest leaves it out, as the gateway will store it;
its ``metadata`` with ``labels`` and ``annotations`` present; its ``kind``, ``apiVersion``; and
``env``, the environment's name or ``""``), then every rule that matches it is evaluated. A rule
that gives false is a violation, reported like every other problem:
``file:line: Kind/name: policy RULE_ID: message``. A rule that cannot be evaluated on the
document (a field it does not guard with ``has()``, an overflow) is reported at the rule's
severity too: a rule that cannot say yes never passes silently.

Exceptions live in the manifest that needs one, as an annotation naming the rule::

    metadata:
      annotations:
        exceptions.llmgw.io/prod-low-temperature: "until 2027-01-31: pilot INC-4711"

Until its date (inclusive) the rule is not applied to that document; from the day after, the
exception is reported as expired (a warning) and the rule applies again, as the ignore file does.
A malformed exception, or one for a rule with ``allowExceptions: false``, is an error; one that
names no loaded rule is a warning. Pure: today's date is passed in.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from reconciler import cel, kinds
from reconciler.defaults import fill_defaults, load_schema_file
from reconciler.errors import ExpressionError
from reconciler.kinds.base import doc_problem
from reconciler.model import Document, Path, Problem
from reconciler.policy import check
from reconciler.policy.pack import RULE_PREFIX, Rule

EXCEPTION_PREFIX = "exceptions.llmgw.io/"
_EXCEPTION = re.compile(r"\s*until\s+(\d{4}-\d{2}-\d{2})\s*:\s*(\S.*)", re.DOTALL)


@dataclass(frozen=True)
class Excepted:
    """A violation an active exception let pass: shown, never hidden."""

    rule: str
    file: str
    line: int
    subject: str
    until: dt.date
    reason: str


@dataclass
class Outcome:
    problems: list[Problem]
    excepted: list[Excepted]
    judged: int  # documents the rules were evaluated on
    # (document index, rule id) -> pass | fail | error | excepted, for the packs' own tests
    verdicts: dict[tuple[int, str], str] = field(default_factory=dict)


def variables(doc: Document, env: str) -> dict[str, object]:
    """What a rule sees of ``doc``. A ``type: number`` field is always a double, whether the
    manifest wrote ``1`` or ``1.0``: CEL does not mix int and double in arithmetic, so
    ``spec.temperature + 0.1`` must not work on ``0.5`` and fail on ``1`` (the checker treats
    such a field as a double accordingly)."""
    resource = kinds.BY_KIND[doc.kind]
    metadata = dict(doc.metadata)
    metadata.setdefault("labels", {})
    metadata.setdefault("annotations", {})
    spec = fill_defaults(resource.schema_file, doc.spec, invent=False)
    return {
        "apiVersion": doc.body.get("apiVersion", ""),
        "kind": doc.kind,
        "metadata": metadata,
        "spec": _doubles(resource.schema_file)(spec),
        "env": env,
    }


_Convert = Callable[[Any], Any]


@cache
def _doubles(schema_file: str) -> _Convert:
    """A function making every ``number`` field of a spec (``schema_file``) a float, compiled
    once per kind; it copies only the containers on the way to such a field."""
    spec = check.from_schema(load_schema_file(schema_file)["properties"]["spec"], "spec")
    return _to_doubles(spec) or (lambda value: value)


def _to_doubles(t: check.T) -> _Convert | None:
    """The conversion for values of type ``t``, or None when nothing in ``t`` is a number."""
    if t.tag == "number":
        return lambda v: float(v) if isinstance(v, int) and not isinstance(v, bool) else v
    if t.tag == "object" and t.fields:
        fields = {k: f for k, sub in t.fields.items() if (f := _to_doubles(sub)) is not None}
        if not fields:
            return None

        def convert_object(v: Any) -> Any:
            if not isinstance(v, dict):
                return v
            return {k: fields[k](x) if k in fields else x for k, x in v.items()}

        return convert_object
    if t.tag in ("list", "map") and t.items is not None:
        item = _to_doubles(t.items)
        if item is None:
            return None
        if t.tag == "list":
            return lambda v: [item(x) for x in v] if isinstance(v, list) else v
        return lambda v: {k: item(x) for k, x in v.items()} if isinstance(v, dict) else v
    return None


def judge(
    rules: Sequence[Rule],
    docs: Iterable[Document],
    env: str,
    today: dt.date,
) -> Outcome:
    """Every rule that matches each document, evaluated; an exception may name any of
    ``rules``."""
    by_id = {r.id: r for r in rules}
    out = Outcome([], [], 0)
    for n, doc in enumerate(docs):
        if doc.kind not in kinds.BY_KIND:
            continue
        matching = [r for r in rules if r.matches(doc.kind, env, doc.labels)]
        exceptions = _exceptions(doc, today, by_id, out.problems)
        if not matching:
            continue
        out.judged += 1
        try:
            ctx = cel.context(variables(doc, env))
        except ExpressionError as exc:
            for rule in matching:
                out.problems.append(_violation(doc, rule, f"could not be evaluated: {exc}"))
                out.verdicts[n, rule.id] = "error"
            continue
        for rule in matching:
            out.verdicts[n, rule.id] = _judge_one(doc, rule, ctx, exceptions, out)
    return out


def _judge_one(
    doc: Document,
    rule: Rule,
    ctx: object,
    exceptions: dict[str, tuple[dt.date, str, int]],
    out: Outcome,
) -> str:
    try:
        verdict = cel.evaluate(rule.expr, ctx, rule.fields)
    except ExpressionError as exc:
        fix = exc.fix or "fix the rule's expression for documents like this one"
        out.problems.append(_violation(doc, rule, f"could not be evaluated: {exc}", fix))
        return "error"
    if verdict is True:
        return "pass"
    if verdict is not False:
        message = f"gave {type(verdict).__name__} {verdict!r:.60}, not true or false"
        out.problems.append(_violation(doc, rule, message))
        return "error"
    if rule.id in exceptions and rule.allow_exceptions:
        until, reason, line = exceptions[rule.id]
        out.excepted.append(Excepted(rule.id, doc.file, line, _subject(doc), until, reason))
        return "excepted"
    out.problems.append(_violation(doc, rule, _message(rule, ctx)))
    return "fail"


def _message(rule: Rule, ctx: object) -> str:
    if rule.message_expr is None:
        return rule.message
    try:
        text = cel.evaluate(rule.message_expr, ctx)
    except ExpressionError as exc:
        return f"{rule.message} (its messageExpression failed: {exc})"
    return text if isinstance(text, str) and text else rule.message


def _subject(doc: Document) -> str:
    return f"{doc.kind}/{doc.name}"


def _violation(doc: Document, rule: Rule, message: str, fix: str = "") -> Problem:
    if not fix:
        fix = (
            f"or record an exception: {EXCEPTION_PREFIX}{rule.id}" if rule.allow_exceptions else ""
        )
    line = next(
        (doc.locations.values[p] for p in rule.fields if p in doc.locations.values), doc.line
    )
    return doc_problem(
        doc,
        (),
        f"policy {rule.id}: {message}",
        fix,
        line=line,
        severity=rule.severity,
        rule=f"{RULE_PREFIX}{rule.id}",
    )


def _exceptions(
    doc: Document,
    today: dt.date,
    rules: dict[str, Rule],
    problems: list[Problem],
) -> dict[str, tuple[dt.date, str, int]]:
    """The active exceptions of ``doc``: rule id -> (until, reason, line); a problem for each
    exception that is malformed, names no loaded rule, is not allowed, or has expired."""
    active: dict[str, tuple[dt.date, str, int]] = {}
    for key, value in doc.annotations.items():
        if not isinstance(key, str) or not key.startswith(EXCEPTION_PREFIX):
            continue
        rid = key[len(EXCEPTION_PREFIX) :]
        path: Path = ("metadata", "annotations", key)
        line = doc.line_of(path)
        found = _EXCEPTION.fullmatch(value) if isinstance(value, str) else None
        until = _date(found.group(1)) if found else None
        finding = _exception_finding(rid, until, rules.get(rid), today)
        if finding is not None:
            severity, message, fix, rule_id = finding
            problems.append(doc_problem(doc, path, message, fix, severity=severity, rule=rule_id))
        elif found is not None and until is not None:
            active[rid] = (until, found.group(2).strip(), line)
    return active


def _exception_finding(
    rid: str, until: dt.date | None, rule: Rule | None, today: dt.date
) -> tuple[str, str, str, str] | None:
    """What is wrong with the exception to ``rid`` (severity, message, fix, rule id), or None
    when it is in force. ``until`` is None when the annotation does not read as one."""
    if until is None:
        return (
            "error",
            "an exception reads `until YYYY-MM-DD: reason`",
            'e.g. "until 2027-01-31: pilot INC-4711 needs it"',
            "policy.exception",
        )
    if rule is None:
        return (
            "warning",
            f"names no policy rule loaded: `{rid}`",
            "check the rule id",
            "policy.exception",
        )
    if not rule.allow_exceptions:
        return (
            "error",
            f"policy {rid} allows no exceptions",
            "change the document so that it passes",
            "policy.exception",
        )
    if today > until:
        return (
            "warning",
            f"the exception to policy {rid} expired on {until.isoformat()}; the rule applies again",
            "fix the document, or renew the exception with a new date and reason",
            "policy.exception-expired",
        )
    return None


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None
