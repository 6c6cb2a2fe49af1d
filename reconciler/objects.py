"""Objects in the manifest's shape, the live state, and reading a server's entities safely.

``Obj`` is one object as the planner compares it: ``fields`` in the manifest's shape (camelCase,
references by name, defaults filled, sets sorted), the same for the desired side (from a
manifest) and the live side (from a listing), so an unchanged object never shows a diff.
``LiveState`` is what the org holds, by ref. ``Entity`` reads one remote entity for a kind's
live normaliser, trusting nothing: every field is type-checked as it is read, and a wrong shape
is a ``ProtocolError`` naming the listing and the entity, never a KeyError or TypeError.

Shared by the kinds and the generic core; knows no particular kind. Pure: no I/O.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from reconciler.diffing import DiffItem, parse_path
from reconciler.endpoints import FIELDS
from reconciler.errors import ProtocolError
from reconciler.model import (
    ALLOW_REPLACE_ANNOTATION,
    MANAGED_LABEL,
    MANAGED_VALUE,
    RENAMED_FROM_ANNOTATION,
    STATE_LABEL_PREFIX,
)
from reconciler.redact import clip
from reconciler.text import ETAG_MAX, kind_of, shown, visible_ascii
from reconciler.urls import segment_problem


@dataclass(frozen=True)
class Ref:
    """A reference to another object's remote id, resolved at apply time (it may not exist yet)."""

    kind: str
    key: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.key}"


@dataclass(frozen=True)
class ServerTime:
    """The server's clock when a request is sent, as ISO 8601 UTC (a rollout step's start):
    resolved at apply time like a ``Ref``, so a saved plan re-derived later is still the same."""

    def __str__(self) -> str:
        return SERVER_TIME


SERVER_TIME = "@server-time"


@dataclass
class Obj:
    """One object in the manifest's shape. ``fields`` excludes identity fields."""

    kind: str
    key: str
    fields: dict[str, Any]
    # live side
    remote_id: str | None = None
    precondition: int | str | None = None  # template version, or ETag
    managed: bool = False
    status: str | None = None
    state_labels: dict[str, str] = field(default_factory=dict)  # llmgw.io/ labels: never diffed
    # the name the org gives it, which the plan renames to ``key`` (set by ``renames.view``)
    renamed_from: str | None = None
    # desired side
    source: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # not the remote object's (a rollout)

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.key}"

    @property
    def labels(self) -> dict[str, str]:
        labels = self.fields.get("labels")
        return labels if isinstance(labels, dict) else {}

    @property
    def allow_replace(self) -> bool:
        return self.annotations.get(ALLOW_REPLACE_ANNOTATION) == "true"

    @property
    def renames(self) -> str | None:
        """Desired side: the name the manifest renames its object from (the annotation
        ``llmgw.io/renamed-from``), or None."""
        return self.annotations.get(RENAMED_FROM_ANNOTATION) or None


NAME_PATH = "metadata.name"  # a rename's field in a diff: the envelope's name


def renaming(have: Obj | None) -> tuple[DiffItem, ...]:
    """The identity change of a live object the plan renames: ``metadata.name`` from the
    name the org gives it to the manifest's (nothing when it is not renamed)."""
    if have is None or have.renamed_from is None:
        return ()
    return (DiffItem("change", NAME_PATH, have.renamed_from, have.key),)


def fingerprint(value: Any) -> str:
    """A stable hash of a JSON-like value (for preconditions of objects with no ETag, and audit)."""
    data = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(data.encode("utf-8")).hexdigest()[:32]


def floats(d: dict[str, Any], *names: str) -> None:
    for n in names:
        v = d.get(n)
        if isinstance(v, int | float) and not isinstance(v, bool):
            d[n] = float(v)


def labels_of(raw: Any, managed: bool) -> dict[str, str]:
    labels = {str(k): str(v) for k, v in (raw or {}).items()} if isinstance(raw, dict) else {}
    if managed:
        labels[MANAGED_LABEL] = MANAGED_VALUE
    return dict(sorted(labels.items()))


# ---------------------------------------------------------------------------------------------
# Reading a server's entities
#
# A server's entity is checked for every field a normaliser reads before it is read, so a
# hostile or buggy server cannot raise KeyError/TypeError inside one (a bug, exit 3): each
# wrong shape is a ProtocolError naming the listing and the entity, its value quoted with
# text.shown and the message clipped through the redactor.

TRIM = 300
SCALARS = (str, int, float, bool)


class Entity:
    """One remote entity being read: typed access to its fields, and the error that names it."""

    def __init__(self, raw: Any, endpoint: str, what: str, ident: str, prefix: str = "") -> None:
        self.endpoint = endpoint
        self.prefix = prefix
        if prefix:
            self.label = what
        else:
            if not isinstance(raw, Mapping):
                self.label = f"a {what}"
                raise self.fail("", f"is {kind_of(raw)}, not an object")
            name, rid = raw.get(ident), raw.get(FIELDS.id)
            if isinstance(name, str):
                self.label = f"{what} {shown(name)}"
            elif isinstance(rid, str):
                self.label = f"a {what} with id {shown(rid)}"
            else:
                self.label = f"a {what}"
        self.raw: Mapping[str, Any] = raw

    def fail(self, field: str, problem: str) -> ProtocolError:
        where = f"{self.prefix}{field} " if field else ""
        return ProtocolError(
            "GET", self.endpoint, None, None, clip(f"{self.label}: {where}{problem}", TRIM)
        )

    def _get(self, field: str, types: tuple[type, ...], expected: str) -> Any:
        value = self.raw.get(field)
        if value is None:
            return None
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise self.fail(field, f"is {shown(value)}, not {expected}")
        return value

    def required(self, field: str, value: Any) -> Any:
        if value is None:
            raise self.fail(
                field,
                "is missing (if this gateway names it otherwise, see reconciler/endpoints.py)",
            )
        return value

    def string(self, field: str) -> str | None:
        value: str | None = self._get(field, (str,), "a string")
        return value

    def identity(self, field: str) -> str:
        """A required id that a later request will put in its path."""
        value = self.required(field, self.string(field))
        problem = segment_problem(value)
        if problem:
            raise self.fail(field, f"{shown(value)} {problem}, so it cannot be part of a path")
        return str(value)

    def etag(self, field: str) -> str | None:
        value = self.string(field)
        if value is not None and not visible_ascii(value, ETAG_MAX):
            raise self.fail(field, f"is {shown(value)}, not an entity tag (visible ASCII)")
        return value

    def boolean(self, field: str) -> bool | None:
        value: bool | None = self._get(field, (bool,), "true or false")
        return value

    def integer(self, field: str) -> int | None:
        value: int | None = self._get(field, (int,), "an integer")
        return value

    def number(self, field: str) -> int | float | None:
        value: int | float | None = self._get(field, (int, float), "a number")
        return value

    def strings(self, field: str) -> list[str] | None:
        value: list[Any] | None = self._get(field, (list,), "a list of strings")
        for i, item in enumerate(value or ()):
            if not isinstance(item, str):
                raise self.fail(f"{field}[{i}]", f"is {shown(item)}, not a string")
        return value

    def items(self, field: str) -> list[Any] | None:
        value: list[Any] | None = self._get(field, (list,), "a list")
        return value

    def mapping(self, field: str) -> Mapping[str, Any] | None:
        value: Mapping[str, Any] | None = self._get(field, (dict,), "an object")
        return value

    def string_map(self, field: str) -> dict[str, str] | None:
        value = self.mapping(field)
        for k, v in (value or {}).items():
            if not isinstance(v, str):
                raise self.fail(f"{field}.{k}", f"is {shown(v)}, not a string")
        return dict(value) if value is not None else None

    def sub(self, field: str) -> Entity | None:
        """A nested object, checked the same way (messages name ``field.inner``)."""
        value = self.mapping(field)
        if value is None:
            return None
        return Entity(value, self.endpoint, self.label, "", f"{self.prefix}{field}.")

    @functools.cached_property
    def _labels(self) -> dict[str, str]:
        """Every label, checked and sorted once (``labels``, ``state_labels`` and ``managed``
        all read them)."""
        return labels_of(self.string_map("labels"), managed=False)

    def labels(self) -> dict[str, str]:
        """The object's labels but llmgw's own state (``llmgw.io/``), which is never diffed."""
        return {k: v for k, v in self._labels.items() if not k.startswith(STATE_LABEL_PREFIX)}

    def state_labels(self) -> dict[str, str]:
        """llmgw's state on the object: labels under ``llmgw.io/`` (a rollout's step)."""
        return {k: v for k, v in self._labels.items() if k.startswith(STATE_LABEL_PREFIX)}

    def managed(self) -> bool:
        return self._labels.get(MANAGED_LABEL) == MANAGED_VALUE


class Unique:
    """Identities seen in one listing; a second entity with one of them is an error."""

    def __init__(self, endpoint: str, what: str) -> None:
        self.endpoint = endpoint
        self.what = what
        self.seen: dict[tuple[str, str], str] = {}

    def add(self, field: str, value: str, rid: str | None = None) -> None:
        """Note ``value`` of ``field``; ``rid``, the entity's id, is named in the error."""
        key = (field, value)
        other = shown(rid) if rid is not None else ""
        if key in self.seen:
            both = f" (ids {self.seen[key]} and {other})" if other else ""
            raise ProtocolError(
                "GET",
                self.endpoint,
                None,
                None,
                clip(
                    f"two {self.what} have the {field} {shown(value)}{both}: a plan over them "
                    "would be ambiguous",
                    300,
                ),
            )
        self.seen[key] = other


@dataclass
class LiveState:
    """What the org holds, normalised, keyed by ref (``Kind/key``). Pure data.

    ``listed`` names, per kind that is listed under a parent (versions under their template),
    the parents whose listing was read: that kind's objects under other parents are unknown, not
    absent. ``models`` maps a model id to its remote record (the gateway's model catalogue);
    ``stores`` lists the vector store ids.
    """

    objects: dict[str, Obj] = field(default_factory=dict)
    listed: dict[str, set[str]] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    stores: set[str] = field(default_factory=set)
    requests: int = 0

    def get(self, ref: str) -> Obj | None:
        return self.objects.get(ref)

    def of_kind(self, kind: str) -> list[Obj]:
        return [o for o in self.objects.values() if o.kind == kind]


def with_ignores(desired: Obj, live: Obj | None, ignored: Iterable[str]) -> Obj:
    """Desired with each ignored field set to its live value: never shown, never reverted
    (``desired`` itself when nothing is ignored or nothing is live: no copy on the hot path)."""
    ignored = tuple(ignored)
    if live is None or not ignored:
        return desired
    fields = deepcopy_json(desired.fields)
    for path in ignored:
        parts = parse_path(path)
        src: Any = live.fields
        dst: Any = fields
        for p in parts[:-1]:
            src = src.get(p) if isinstance(src, dict) else None
            if not isinstance(dst.get(p), dict):
                dst[p] = {}
            dst = dst[p]
        last = parts[-1] if parts else ""
        if isinstance(src, dict) and last in src:
            dst[last] = deepcopy_json(src[last])
        elif isinstance(dst, dict):
            dst.pop(last, None)
    return replace(desired, fields=fields)


def deepcopy_json(value: Any) -> Any:
    """A copy of a JSON-like value (dicts and lists copied, leaves shared)."""
    if isinstance(value, dict):
        return {k: deepcopy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [deepcopy_json(v) for v in value]
    return value
