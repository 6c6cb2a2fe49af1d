"""Semantic rules beyond the JSON Schemas, run offline: the generic driver over the kinds.

Rules common to every kind live here: the reserved management label, llmgw's own annotations
(a rename, ``llmgw.io/renamed-from``, only where the kind may be renamed, from another name,
by one manifest, of an object no other manifest names), identity characters in the fields each
kind names as identities (``Resource.identity_fields``), and two documents with one identity.
Everything particular to a kind is its ``Resource.check`` (one document) and
``Resource.check_set`` (across documents), in ``reconciler/kinds/``.

Every rule runs on every document it can run on, also one that failed its schema, so one run
shows all problems; so each rule checks the types it relies on instead of trusting the schema.
Rules never read the network or the clock: references that only the live org can settle are
warnings here, and ``plan`` makes them errors unless the org has the object. Every problem
carries a rule id (``Problem.rule``); quoted values go through ``text.shown``.
"""

from __future__ import annotations

from typing import Any

from reconciler import kinds, textrules
from reconciler.kinds.base import DocIndex, Emit, doc_problem
from reconciler.model import (
    ALLOW_REPLACE_ANNOTATION,
    MANAGED_LABEL,
    MANAGED_VALUE,
    RENAMED_FROM_ANNOTATION,
    STATE_LABEL_PREFIX,
    Document,
    Path,
    Problem,
)
from reconciler.text import NAME, shown, visible

LABEL_RESERVED = "label.reserved"
ANNOTATION = "annotation"
DUPLICATE = "identity.duplicate"
RENAME = "rename"
ANNOTATIONS = (ALLOW_REPLACE_ANNOTATION, RENAMED_FROM_ANNOTATION)


def check_document(doc: Document) -> list[Problem]:
    emit = Emit(doc)
    _labels(doc, emit)
    resource = kinds.get(doc.kind)
    if resource is not None:
        _identities(doc, emit, resource.identity_fields)
        _rename(doc, emit, resource)
        resource.check(doc, emit)
    return emit.problems


def _labels(doc: Document, emit: Emit) -> None:
    value = doc.labels.get(MANAGED_LABEL)
    if value is not None and value != MANAGED_VALUE:
        emit(
            ("metadata", "labels", MANAGED_LABEL),
            f"the label `{MANAGED_LABEL}` is reserved for llmgw (got {shown(value)})",
            f"remove it; llmgw sets {MANAGED_LABEL}: {MANAGED_VALUE} itself",
            rule=LABEL_RESERVED,
        )
    for key in doc.labels:
        if isinstance(key, str) and key.startswith(STATE_LABEL_PREFIX):
            emit(
                ("metadata", "labels", key),
                f"labels under `{STATE_LABEL_PREFIX}` are llmgw's record of a rollout's state",
                f"remove it; llmgw keeps `{STATE_LABEL_PREFIX}` labels on the live object itself",
                rule=LABEL_RESERVED,
            )
    for key, val in doc.annotations.items():
        path = ("metadata", "annotations", key)
        if key == ALLOW_REPLACE_ANNOTATION and val not in ("true", "false"):
            emit(
                path,
                f'must be "true" or "false" (got {shown(val)})',
                'quote it: "true"',
                rule=ANNOTATION,
            )
        elif (
            isinstance(key, str)
            and key.startswith(("llmgw/", STATE_LABEL_PREFIX))
            and key not in ANNOTATIONS
        ):
            emit(
                path,
                f"unknown llmgw annotation {shown(key)}",
                "llmgw's annotations are " + " and ".join(ANNOTATIONS),
                severity="warning",
                line=doc.locations.key_line(path),
                rule=ANNOTATION,
            )


def _rename(doc: Document, emit: Emit, resource: kinds.Resource) -> None:
    """``llmgw.io/renamed-from``: on a kind that may be renamed, from another valid name (the
    schemas of those kinds check its characters and length as they do the name's)."""
    old = doc.annotations.get(RENAMED_FROM_ANNOTATION)
    if old is None:
        return
    path: Path = ("metadata", "annotations", RENAMED_FROM_ANNOTATION)
    if not resource.renamable:
        message, fix = resource.rename_refusal
        emit(path, f"a {doc.kind} cannot be renamed: {message}", fix, rule=RENAME)
        return
    if not isinstance(old, str):
        return  # the schema says what it must be
    if old == doc.name:
        emit(
            path,
            f"names the object itself ({visible(old, NAME)}): there is nothing to rename",
            "set it to the name the org still gives the object, or remove it",
            rule=RENAME,
        )
    for f in textrules.identity_findings(old, ascii=False):
        emit(path, f.message, f.fix, rule=f.rule)


def _renames(index: DocIndex) -> list[Problem]:
    """One object renamed by one manifest, and never one another manifest still names."""
    problems: list[Problem] = []
    claimed: dict[tuple[str, str], Document] = {}
    path: Path = ("metadata", "annotations", RENAMED_FROM_ANNOTATION)
    for doc in index.docs:
        old = doc.annotations.get(RENAMED_FROM_ANNOTATION)
        resource = kinds.get(doc.kind)
        if not isinstance(old, str) or resource is None or not resource.renamable:
            continue
        found: list[tuple[str, str]] = []
        first = claimed.setdefault((doc.kind, old), doc)
        if first is not doc:
            found.append(
                (
                    f"{doc.kind} {visible(old, NAME)} is renamed twice: here and at "
                    f"{first.file}:{first.line} ({visible(first.name, NAME)})",
                    "keep the annotation on the one manifest the object becomes",
                )
            )
        other = index.get(doc.kind, old)
        if other is not None and old != doc.name:
            found.append(
                (
                    f"{doc.kind} {visible(old, NAME)}, which this renames, has its own manifest "
                    f"at {other.file}:{other.line}: one object cannot keep its name and take "
                    "this one",
                    "remove that manifest (the rename moves the object), or remove this annotation",
                )
            )
        problems.extend(doc_problem(doc, path, message, fix, rule=RENAME) for message, fix in found)
    return problems


def _identities(doc: Document, emit: Emit, fields: tuple[Path, ...]) -> None:
    """Names and path values: no invisible characters, whitespace or `..` (the schemas refuse
    ASCII controls, spaces, / ? # and backslash; this adds what a pattern cannot say)."""
    for path in fields:
        value = _at(doc.body, path)
        if isinstance(value, str):
            for f in textrules.identity_findings(value, ascii=False):
                emit(path, f.message, f.fix, rule=f.rule)


def _at(value: Any, path: Path) -> Any:
    """The value at ``path`` in plain YAML data, or None."""
    for part in path:
        if isinstance(part, int):
            value = value[part] if isinstance(value, list) and part < len(value) else None
        else:
            value = value.get(part) if isinstance(value, dict) else None
    return value


def identity(doc: Document) -> str | None:
    """The identity of a document within its kind, or None when unknown or undeterminable."""
    resource = kinds.get(doc.kind)
    return resource.identity(doc.name, doc.spec) if resource is not None else None


def check_set(docs: list[Document]) -> list[Problem]:
    """Rules across documents: two documents with one identity, then each kind's own
    (references, withdrawn versions in splits)."""
    problems: list[Problem] = []
    index = DocIndex(docs)
    for doc in docs:
        key = identity(doc)
        if not key:
            continue
        other = index.first.get((doc.kind, key))
        if other is None:
            index.first[(doc.kind, key)] = doc
        else:
            problems.append(
                Problem(
                    doc.file,
                    doc.line,
                    "error",
                    doc.kind,
                    doc.name,
                    "",
                    f"{doc.kind} {visible(key, NAME)} is defined twice: here and at "
                    f"{other.file}:{other.line}",
                    "keep one definition",
                    DUPLICATE,
                )
            )
    problems.extend(_renames(index))
    for resource in kinds.REGISTRY:
        problems.extend(resource.check_set(index))
    return problems
