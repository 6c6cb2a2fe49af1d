"""Offline validation of manifests: load, schema, semantic rules, policy rules; every problem of
a run at once.

Pure apart from reading the manifest files (through the loader). Never talks to the gateway.
Policy rules (``reconciler.policy``) are judged only on documents that passed their schema: a
rule reads ``spec.temperature`` as a number only once the schema said it is one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from reconciler import rules, schema
from reconciler.kinds.base import doc_problem
from reconciler.loader import load_paths
from reconciler.model import Document, Problem
from reconciler.policy import engine, pack
from reconciler.policy.pack import Policies


@dataclass
class Report:
    documents: list[Document] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    # policy rules: how many were loaded, the violations exceptions let pass, the pack files
    rules: int = 0
    excepted: list[engine.Excepted] = field(default_factory=list)
    policy_files: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity != "error"]

    def ok(self, strict: bool = False) -> bool:
        return not self.errors and not (strict and self.warnings)


def check_documents(docs: Sequence[Document]) -> list[Problem]:
    """Every problem of ``docs`` (the property tests check generated documents with it)."""
    return checked(docs)[0]


def checked(docs: Sequence[Document]) -> tuple[list[Problem], list[Document]]:
    """Every problem of ``docs``, and the documents that passed their schema."""
    problems: list[Problem] = []
    clean: list[Document] = []
    for doc in docs:
        if doc.kind == pack.KIND:
            problems.append(_pack_among_manifests(doc))
            continue
        found = schema.check_document(doc)
        if not any(p.severity == "error" for p in found):
            clean.append(doc)
        problems.extend(found)
        problems.extend(rules.check_document(doc))
    problems.extend(rules.check_set(list(docs)))
    return problems, clean


def _pack_among_manifests(doc: Document) -> Problem:
    return doc_problem(
        doc,
        ("kind",),
        f"a policy pack ({pack.KIND}) among the manifests",
        f"move it to {pack.DEFAULT_DIR}/ beside the manifests, or pass it with --policies",
        rule="policy.kind",
    )


def validate_paths(
    paths: Sequence[str],
    cwd: str | None = None,
    *,
    policies: Policies | None = None,
    env: str = "",
    today: dt.date | None = None,
) -> Report:
    """The report of ``paths``; with ``policies``, their load problems and the violations of
    their rules for environment ``env`` (``""``: none named) on ``today``."""
    loaded = load_paths(paths, cwd)
    problems, clean = checked(loaded.documents)
    problems = loaded.problems + problems
    report = Report(loaded.documents, [], loaded.files)
    if policies is not None:
        problems.extend(policies.problems)
        outcome = engine.judge(policies.rules, clean, env, today or dt.date.today())
        problems.extend(outcome.problems)
        report.rules = len(policies.rules)
        report.excepted = outcome.excepted
        report.policy_files = list(policies.files)
    report.problems = sorted(
        set(problems), key=lambda p: (p.file, p.line, p.severity, p.path, p.message)
    )
    return report
