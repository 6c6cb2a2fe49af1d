"""Policy packs: ``kind: PolicySet`` YAML files, loaded, checked and compiled before any
manifest is judged.

Where packs come from (``sources``): ``--policies PATH`` (repeatable), else ``LLMGW_POLICIES``
(paths separated by the OS path separator), else ``policies/`` in the current folder when it
exists. A path named explicitly must exist; the default folder may be absent (no policies).

Loading reports every problem of every pack at once, each at its file and line: YAML and schema
problems (``policy-set.schema.json``), a rule id used twice, and for each rule's ``expr`` and
``messageExpression`` a CEL syntax error or a static error from ``policy/check.py`` (a field the
kind's schema does not have, a type mismatch, a cost above the budget), pointing at the line and
column inside the expression. A pack with any problem contributes no rule, so no run ever judges
manifests with half a pack. Pure apart from reading the pack files through the loader.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from reconciler import cel, kinds, schema
from reconciler.defaults import load_schema_file
from reconciler.errors import ExpressionError
from reconciler.loader import display_path, load_paths
from reconciler.model import Document, Locations, Path, Problem, format_path
from reconciler.policy import check, syntax

KIND = "PolicySet"
SCHEMA_FILE = "policy-set.schema.json"
DEFAULT_DIR = "policies"
ENV_VAR = "LLMGW_POLICIES"
RULE_PREFIX = "policy/"  # Problem.rule of a violation: policy/<rule id>
# The rule ids of problems with the packs themselves and with exceptions, and what each asks
# for (short, full), for SARIF's rule descriptions.
DESCRIPTIONS: dict[str, tuple[str, str]] = {
    "policy.load": (
        "Policy packs named by --policies or LLMGW_POLICIES exist",
        "Each path given for policy packs is a file or folder that exists.",
    ),
    "policy.kind": (
        "Policy files hold PolicySet documents only",
        "A policy file holds `kind: PolicySet` documents; manifests belong among the manifests.",
    ),
    "policy.duplicate-id": (
        "Each policy rule id is defined once",
        "A rule id is unique across every pack loaded, as exceptions and reports name it.",
    ),
    "policy.message": (
        "Each policy rule says what is wrong",
        "A rule has a `message` or a `messageExpression`.",
    ),
    "policy.syntax": (
        "Policy rules are valid CEL",
        "A rule's `expr` and `messageExpression` parse as CEL.",
    ),
    "policy.check": (
        "Policy rules fit the schemas of the kinds they match",
        "Every name is declared, every field exists in the kind's schema, operands have types "
        "their operators take, and nested loops stay within the cost budget.",
    ),
    "policy.test": (
        "Policy tests name rules of their pack",
        "A pack's test names only its own rules, each as passing or failing, not both.",
    ),
    "policy.exception": (
        "Policy exceptions are well formed and allowed",
        "An exception annotation reads `until YYYY-MM-DD: reason`, names a loaded rule, and "
        "that rule allows exceptions.",
    ),
    "policy.exception-expired": (
        "Policy exceptions are renewed or removed when they expire",
        "An expired exception no longer applies: fix the document or renew it with a new date.",
    ),
}


@dataclass(frozen=True)
class Rule:
    id: str
    pack: str
    file: str
    line: int
    kinds: tuple[str, ...]  # empty: every kind
    environments: tuple[str, ...]  # empty: every environment (and none)
    labels: tuple[tuple[str, str], ...]
    expr: cel.Program
    message: str
    message_expr: cel.Program | None
    severity: str
    allow_exceptions: bool
    fields: tuple[Path, ...] = ()  # what ``expr`` reads, for the line of a violation

    def matches(self, kind: str, env: str, labels: Mapping[str, Any]) -> bool:
        if self.kinds and kind not in self.kinds:
            return False
        if self.environments and env not in self.environments:
            return False
        return all(labels.get(k) == v for k, v in self.labels)


@dataclass(frozen=True)
class Case:
    """One test of a pack: a document, and the rules it must pass and fail."""

    name: str
    file: str
    line: int
    env: str
    document: Document
    must_pass: tuple[str, ...]
    must_fail: tuple[str, ...]


@dataclass
class Policies:
    rules: list[Rule] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def ids(self) -> set[str]:
        return {r.id for r in self.rules}


def sources(explicit: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """The pack paths of a run: named ones (each must exist), else the default folder if it
    exists."""
    if explicit:
        return list(explicit)
    from_env = [p for p in environ.get(ENV_VAR, "").split(os.pathsep) if p.strip()]
    if from_env:
        return from_env
    return [DEFAULT_DIR] if os.path.isdir(DEFAULT_DIR) else []


def load(paths: Sequence[str]) -> Policies:
    """Every pack under ``paths``, compiled; see the module docstring."""
    out = Policies()
    if not paths:
        return out
    missing = [p for p in paths if not os.path.exists(p)]
    for p in missing:
        out.problems.append(
            _problem(
                display_path(p),
                0,
                "",
                "no such policy file or folder",
                "check the --policies path or LLMGW_POLICIES",
                "policy.load",
            )
        )
    present = [p for p in paths if p not in missing]
    if not present:
        return out
    loaded = load_paths(present)
    out.files = list(loaded.files)
    out.problems.extend(loaded.problems)
    seen: dict[str, Rule] = {}
    for doc in loaded.documents:
        rules, cases, problems = _pack(doc)
        out.problems.extend(problems)
        if problems:
            continue
        clash = [r for r in rules if r.id in seen]
        for r in clash:
            first = seen[r.id]
            out.problems.append(
                _problem(
                    r.file,
                    r.line,
                    f"rules[{r.id}]",
                    f"rule id `{r.id}` is also defined at {first.file}:{first.line}",
                    "rule ids are unique across every pack loaded: rename one",
                    "policy.duplicate-id",
                    doc,
                )
            )
        if clash:
            continue
        for r in rules:
            seen[r.id] = r
        out.rules.extend(rules)
        out.cases.extend(cases)
    # a set: the schema may explain two of its errors as the same problem
    out.problems = sorted(set(out.problems), key=lambda p: (p.file, p.line, p.path, p.message))
    return out


def _problem(
    file: str,
    line: int,
    path: str,
    message: str,
    fix: str,
    rule: str,
    doc: Document | None = None,
) -> Problem:
    kind, name = (KIND, doc.name) if doc is not None else ("", "")
    return Problem(file, line, "error", kind, name, path, message, fix, rule)


@cache
def _variables() -> dict[str, dict[str, check.T]]:
    """Each kind's typed variables, read from the schemas once (shared: never edit them)."""
    return {r.kind: check.document_type(load_schema_file(r.schema_file)) for r in kinds.REGISTRY}


def _pack(doc: Document) -> tuple[list[Rule], list[Case], list[Problem]]:
    if doc.kind != KIND:
        got = f"kind {doc.kind}" if doc.kind else "a document without a kind"
        where = "a manifest: keep it among the manifests" if doc.kind in kinds.KINDS else ""
        return (
            [],
            [],
            [
                _problem(
                    doc.file,
                    doc.locations.line(("kind",), doc.line),
                    "kind",
                    f"a policy file holds `kind: {KIND}` documents, not {got}",
                    where or f"write `kind: {KIND}`",
                    "policy.kind",
                    doc,
                )
            ],
        )
    problems = schema.check_against(doc, SCHEMA_FILE)
    raw_rules = doc.body.get("rules")
    if not isinstance(raw_rules, list):
        return [], [], problems
    variables = _variables()
    rules: list[Rule] = []
    pack = doc.name
    for i, raw in enumerate(raw_rules):
        prefix = f"rules[{i}]"
        if any(
            p.path == prefix or p.path.startswith((f"{prefix}.", f"{prefix}[")) for p in problems
        ):
            continue  # its schema problems are reported; its expression is checked once they go
        rule, found = _rule(doc, i, raw, pack, variables)
        problems.extend(found)
        if rule is not None:
            rules.append(rule)
    if any(p.path == "rules" or p.path == "tests" for p in problems):
        return [], [], problems
    by_index = [r.get("id") if isinstance(r, dict) else None for r in raw_rules]
    for i, rid in enumerate(by_index):
        if isinstance(rid, str) and rid in by_index[:i]:
            first = by_index.index(rid)
            problems.append(
                _problem(
                    doc.file,
                    doc.line_of(("rules", i, "id")),
                    f"rules[{i}].id",
                    f"rule id `{rid}` is used twice in this pack: also rules[{first}] at line "
                    f"{doc.line_of(('rules', first, 'id'))}",
                    "give each rule its own id",
                    "policy.duplicate-id",
                    doc,
                )
            )
    ids = {rid for rid in by_index if isinstance(rid, str)}
    if not any(p.path.startswith("tests") for p in problems):
        cases, case_problems = _cases(doc, ids)
        problems.extend(case_problems)
    else:
        cases = []
    return rules, cases, problems


def _rule(
    doc: Document,
    i: int,
    raw: dict[str, Any],
    pack: str,
    variables: dict[str, dict[str, check.T]],
) -> tuple[Rule | None, list[Problem]]:
    base: Path = ("rules", i)
    match = raw.get("match") or {}
    rule_kinds = tuple(match.get("kinds") or ())
    scoped = {k: v for k, v in variables.items() if not rule_kinds or k in rule_kinds}
    problems: list[Problem] = []
    compiled = _compile(doc, (*base, "expr"), raw["expr"], scoped, "bool", rule_kinds, problems)
    message_expr = None
    if "messageExpression" in raw:
        message_compiled = _compile(
            doc,
            (*base, "messageExpression"),
            raw["messageExpression"],
            scoped,
            "string",
            rule_kinds,
            problems,
        )
        message_expr = message_compiled[0] if message_compiled else None
    if "message" not in raw and "messageExpression" not in raw:
        problems.append(
            _problem(
                doc.file,
                doc.line_of(base),
                format_path(base),
                "a rule needs a `message` or a `messageExpression`",
                "say what is wrong and how to fix it",
                "policy.message",
                doc,
            )
        )
    if problems or compiled is None:
        return None, problems
    expr, tree = compiled
    return (
        Rule(
            id=raw["id"],
            pack=pack,
            file=doc.file,
            line=doc.line_of((*base, "id")),
            kinds=rule_kinds,
            environments=tuple(match.get("environments") or ()),
            labels=tuple(sorted((match.get("labels") or {}).items())),
            expr=expr,
            message=raw.get("message") or f"fails policy {raw['id']}",
            message_expr=message_expr,
            severity=raw.get("severity", "error"),
            allow_exceptions=raw.get("allowExceptions", True),
            fields=tuple(syntax.field_paths(tree)),
        ),
        [],
    )


def _compile(
    doc: Document,
    path: Path,
    source: str,
    variables: dict[str, dict[str, check.T]],
    want: str,
    rule_kinds: tuple[str, ...],
    problems: list[Problem],
) -> tuple[cel.Program, syntax.Node] | None:
    """``source`` compiled by the library and parsed and checked by llmgw (the program and its
    tree), or None when either refuses its syntax; each problem located at its line in the pack
    (a block scalar's own line) and its column in the expression."""
    shown = format_path(path)

    def report(offset: int, message: str, fix: str, rule: str) -> None:
        # "ends too early" points past the end: past a block scalar's final newline that is
        # the line after the expression; point just after its last character instead
        offset = min(offset, len(source.rstrip()))
        line, column = _position(doc, path, source, offset)
        problems.append(
            _problem(doc.file, line, shown, f"column {column}: {message}", fix, rule, doc)
        )

    try:
        program = cel.compile_expression(source)
    except ExpressionError as exc:
        offset = _offset(source, exc.line, exc.column)
        report(offset, exc.message, "see README: policies", "policy.syntax")
        return None
    try:
        tree = syntax.parse(source)
    except syntax.SyntaxProblem as exc:
        report(exc.offset, exc.message, "see README: policies", "policy.syntax")
        return None
    for found_kinds, finding in check.check(tree, variables, want):
        fix = finding.fix
        fitting = [k for k in variables if k not in found_kinds]
        if not rule_kinds and fitting and "no field" in finding.message:
            fix = (
                "the rule matches every kind: restrict it with "
                f"`match: {{kinds: [{', '.join(fitting)}]}}`"
            )
        report(finding.offset, finding.message, fix, "policy.check")
    return program, tree


def _offset(source: str, line: int, column: int) -> int:
    """The offset of 1-based ``line`` and ``column`` in ``source``."""
    start = 0
    for _ in range(max(line - 1, 0)):
        nl = source.find("\n", start)
        if nl < 0:
            break
        start = nl + 1
    return min(start + max(column - 1, 0), len(source))


def _position(doc: Document, path: Path, source: str, offset: int) -> tuple[int, int]:
    """The file line of ``offset`` in the expression at ``path``, and its 1-based column in
    its own line of the expression."""
    line = doc.locations.text_line(path, offset)
    column = offset - (source.rfind("\n", 0, offset) + 1) + 1
    return line, column


def _cases(doc: Document, ids: set[str]) -> tuple[list[Case], list[Problem]]:
    cases: list[Case] = []
    problems: list[Problem] = []
    for i, raw in enumerate(doc.body.get("tests") or ()):
        base: Path = ("tests", i)
        for key in ("pass", "fail"):
            for j, rid in enumerate(raw.get(key) or ()):
                if rid not in ids:
                    problems.append(
                        _problem(
                            doc.file,
                            doc.line_of((*base, key, j)),
                            f"tests[{i}].{key}[{j}]",
                            f"names no rule of this pack: `{rid}`",
                            "rules: " + ", ".join(sorted(ids)),
                            "policy.test",
                            doc,
                        )
                    )
        both = set(raw.get("pass") or ()) & set(raw.get("fail") or ())
        if both:
            problems.append(
                _problem(
                    doc.file,
                    doc.line_of(base),
                    f"tests[{i}]",
                    f"a rule cannot both pass and fail: {', '.join(sorted(both))}",
                    "keep it in one list",
                    "policy.test",
                    doc,
                )
            )
        document = _sub_document(doc, (*base, "document"))
        prefix = f"tests[{i}].document"
        for found in schema.check_document(document):
            path = f"{prefix}.{found.path}" if found.path else prefix
            problems.append(dataclasses.replace(found, path=path))
        cases.append(
            Case(
                name=raw["name"],
                file=doc.file,
                line=doc.line_of((*base, "name")),
                env=raw.get("env", ""),
                document=document,
                must_pass=tuple(raw.get("pass") or ()),
                must_fail=tuple(raw.get("fail") or ()),
            )
        )
    return cases, problems


def _sub_document(doc: Document, path: Path) -> Document:
    """The mapping at ``path`` of ``doc`` as a document of its own, its lines kept."""
    body: Any = doc.body
    for part in path:
        body = body[part]
    n = len(path)

    def strip(table: dict[Path, Any]) -> dict[Path, Any]:
        return {p[n:]: v for p, v in table.items() if p[:n] == path}

    loc = doc.locations
    locations = Locations(
        values=strip(loc.values),
        keys=strip(loc.keys),
        raw=strip(loc.raw),
        blocks=strip(loc.blocks),
        coerced={p[n:] for p in loc.coerced if p[:n] == path},
    )
    return Document(body, doc.file, doc.line_of(path), locations)
