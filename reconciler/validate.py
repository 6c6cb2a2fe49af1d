"""Offline validation of manifests: load, schema, semantic rules; every problem of a run at once.

Pure apart from reading the manifest files (through the loader). Never talks to the gateway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from reconciler import rules, schema
from reconciler.loader import load_paths
from reconciler.model import Document, Problem


@dataclass
class Report:
    documents: list[Document] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity != "error"]

    def ok(self, strict: bool = False) -> bool:
        return not self.errors and not (strict and self.warnings)


def check_documents(docs: Sequence[Document]) -> list[Problem]:
    problems: list[Problem] = []
    for doc in docs:
        problems.extend(schema.check_document(doc))
        problems.extend(rules.check_document(doc))
    problems.extend(rules.check_set(list(docs)))
    return problems


def validate_paths(paths: Sequence[str], cwd: str | None = None) -> Report:
    loaded = load_paths(paths, cwd)
    problems = loaded.problems + check_documents(loaded.documents)
    unique = sorted(set(problems), key=lambda p: (p.file, p.line, p.severity, p.path, p.message))
    return Report(loaded.documents, unique, loaded.files)
