"""Helpers the kinds share: the semantic checks of texts that reach the model, typed reads of
a document's values, and the pieces of an export document.

The rules the gateway itself applies to text (the placeholder grammar, the injection patterns,
identity characters) come from ``reconciler/textrules.py``, which the emulator runs too: what a
kind's check accepts, the gateway accepts. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler import textrules
from reconciler.kinds.base import DocIndex, Emit, doc_problem, reference_warning
from reconciler.model import (
    API_VERSION,
    MANAGED_LABEL,
    RENAMED_FROM_ANNOTATION,
    Document,
    Path,
    Problem,
    format_path,
)
from reconciler.objects import Obj
from reconciler.text import NAME, visible

# Rule ids of the kinds' own checks (those shared with the gateway come from textrules).
TOKEN_BUDGET = "tokens.budget"
CONTENT_SIZE = textrules.CONTENT_SIZE
CONTENT_TOKENS = textrules.CONTENT_TOKENS
PROMPT_LENGTH = textrules.PROMPT_LENGTH
PROMPT_TOKENS = textrules.PROMPT_TOKENS
FEW_SHOT = "fewshot.fit"
SPLIT_WEIGHTS = textrules.SPLIT_WEIGHTS
SPLIT_FORM = "split.form"
SPLIT_WITHDRAWN = "split.withdrawn"
ROLLOUT = "rollout"
IDENTITY_MATCH = "identity.name"
URL = "url"
AB_TEST = "abtest.incomplete"
FALLBACK = "fallback.primary"
REFERENCE = "reference.missing"
PLACEHOLDER_TEXT = "placeholder.not-substituted"


def s(v: Any) -> str | None:
    """``v`` when it is a string (documents that failed their schema still get checked)."""
    return v if isinstance(v, str) else None


def template_references(index: DocIndex, kind: str, template: str) -> list[Problem]:
    """A warning for each ``kind`` document whose ``spec.template`` names a ``template`` kind
    object the manifests do not define (plan checks the live org); an error when a manifest
    renames that object."""
    return references(index, kind, "template", template)


def renamed(index: DocIndex, kind: str) -> dict[str, Document]:
    """The names ``kind``'s manifests rename objects from (``llmgw.io/renamed-from``), each
    with the (first) manifest renaming it."""
    out: dict[str, Document] = {}
    for doc in index.of_kind(kind):
        old = doc.annotations.get(RENAMED_FROM_ANNOTATION)
        if isinstance(old, str) and old != doc.name:
            out.setdefault(old, doc)
    return out


def references(index: DocIndex, kind: str, field: str, target: str) -> list[Problem]:
    """Each ``kind`` document whose ``spec.<field>`` names a ``target`` kind object the
    manifests do not define: a warning (plan checks the live org), or an error when a manifest
    renames that object (the reference would be left behind)."""
    known = index.keys(target)
    moved = renamed(index, target)
    path: Path = ("spec", field)
    out = []
    for doc in index.of_kind(kind):
        t = s(doc.spec.get(field))
        if not t or t in known:
            continue
        what = f"{target} {visible(t, NAME)}"
        by = moved.get(t)
        if by is None:
            out.append(reference_warning(doc, path, what, REFERENCE))
            continue
        new = visible(by.name, NAME)
        out.append(
            doc_problem(
                doc,
                path,
                f"{what} is renamed to {new} (llmgw.io/renamed-from at {by.file}:{by.line})",
                f"set {format_path(path)} to {new}",
                rule=REFERENCE,
            )
        )
    return out


def num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def injection(emit: Emit, path: Path, text: Any) -> None:
    """Every blocked pattern in a text that reaches the model (normalised: look-alike and
    invisible characters do not hide a pattern)."""
    if isinstance(text, str):
        for f in textrules.injection_findings(text):
            emit.finding(path, f)


def placeholders(
    emit: Emit,
    text_path: Path,
    text: Any,
    names: Iterable[str],
    name_lines: dict[str, int],
    container: str,
) -> None:
    """Placeholders of ``text`` must equal ``names``: report missing and unused both, and text
    that only looks like a placeholder (the gateway would send it as written)."""
    if not isinstance(text, str):
        return
    field = str(text_path[-1])
    for f in textrules.placeholder_findings(
        text, names, field=field, container=f"spec.{container}"
    ):
        if f.rule == textrules.PLACEHOLDER_UNUSED:
            name = f.message.split("'")[1] if "'" in f.message else ""
            emit.finding(("spec", container), f, line=name_lines.get(name))
        else:
            emit.finding(text_path, f)
    for f in textrules.lookalikes(text):
        emit.finding(text_path, f)


def not_substituted(emit: Emit, path: Path, text: Any, where: str) -> None:
    """A placeholder in a text the gateway does not fill is sent to the model as written."""
    if not isinstance(text, str):
        return
    for name, offset in textrules.placeholders(text).items():
        emit(
            path,
            f"{{{{{name}}}}} is sent to the model as written: the gateway fills placeholders "
            f"only in {where}",
            f"move it to {where}, or reword it",
            line=emit.doc.locations.text_line(path, offset),
            severity="warning",
            rule=PLACEHOLDER_TEXT,
        )


# -- export ------------------------------------------------------------------------------------
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def filename(name: str) -> str:
    """A file name for an object's export: unsafe characters replaced, never empty."""
    return _SAFE.sub("_", name).strip("._") or "unnamed"


def document(kind: str, name: str, obj: Obj | None, spec: dict[str, Any]) -> dict[str, Any]:
    """A manifest document: the envelope, the object's labels without the management label."""
    meta: dict[str, Any] = {"name": name}
    labels = {k: v for k, v in (obj.labels if obj else {}).items() if k != MANAGED_LABEL}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": meta, "spec": spec}


def spec_of(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A live object's fields as a manifest's spec: all but its labels (server-managed fields
    are not in them)."""
    return {k: v for k, v in fields.items() if k != "labels"}
