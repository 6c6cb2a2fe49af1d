"""Accepted drift recorded in git: the ignore file (``.llmgw-ignore.yaml`` by default).

Each entry names an object (``Kind/identity`` as plan and drift print it), a field path (as plan
and drift print it), a reason, and an expiry date::

    ignore:
      - identity: Prompt/support-agent
        field: temperature
        reason: Ops lowered it during incident INC-4711
        expires: 2026-12-31

Until its expiry date an entry hides that field from drift, plan and apply alike (apply never
reverts it); from the day after, the entry is expired: the field is reported again and the entry
is flagged. Pure apart from reading the file; today's date is passed in.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from typing import Any

from reconciler import kinds
from reconciler.loader import display_path, load_data_file
from reconciler.model import Problem

DEFAULT_FILE = ".llmgw-ignore.yaml"


@dataclass(frozen=True)
class Entry:
    identity: str
    field: str
    reason: str
    expires: dt.date
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "identity": self.identity,
            "field": self.field,
            "reason": self.reason,
            "expires": self.expires.isoformat(),
            "source": self.source,
        }


@dataclass
class IgnoreSet:
    active: list[Entry] = field(default_factory=list)
    expired: list[Entry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    file: str | None = None

    def by_ref(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for e in self.active:
            out.setdefault(e.identity, []).append(e.field)
            # an owned part (a Prompt's traffic split) is diffed under its own identity and
            # shown under its owner's, below the owner's field that holds it
            # (trafficDistribution.*): accept both spellings
            kind, _, key = e.identity.partition("/")
            for part in kinds.REGISTRY:
                prefix = f"{part.shown_under}."
                if part.owner == kind and part.shown_under and e.field.startswith(prefix):
                    out.setdefault(f"{part.kind}/{key}", []).append(e.field[len(prefix) :])
        return out


def _problem(file: str, line: int, path: str, message: str, fix: str) -> Problem:
    return Problem(file, line, "error", "", "", path, message, fix, "ignore-file")


def load(path: str | None, today: dt.date) -> IgnoreSet:
    """The entries of ``path`` (None: the default file, if present) split by expiry."""
    explicit = path is not None
    path = path or DEFAULT_FILE
    if not os.path.exists(path):
        if explicit:
            return IgnoreSet(
                problems=[
                    _problem(path, 0, "", "no such ignore file", "check the --ignore-file path")
                ]
            )
        return IgnoreSet()
    shown = display_path(path)
    data, loc, problems = load_data_file(path, shown)
    result = IgnoreSet(problems=list(problems), file=shown)
    if problems:
        return result
    entries = data.get("ignore") if isinstance(data, dict) else None
    if data is None:
        return result
    if not isinstance(entries, list) or (isinstance(data, dict) and set(data) - {"ignore"}):
        result.problems.append(
            _problem(
                shown,
                1,
                "ignore",
                "must be a mapping with one key `ignore` holding a list of entries",
                "see README: accepted drift",
            )
        )
        return result
    for i, e in enumerate(entries):
        base = ("ignore", i)
        line = loc.line(base)
        if not isinstance(e, dict):
            result.problems.append(
                _problem(
                    shown,
                    line,
                    f"ignore[{i}]",
                    "must be a mapping",
                    "give identity, field, reason and expires",
                )
            )
            continue
        unknown = sorted(set(e) - {"identity", "field", "reason", "expires"})
        for k in unknown:
            result.problems.append(
                _problem(
                    shown,
                    loc.key_line((*base, k)),
                    f"ignore[{i}].{k}",
                    f"unknown field `{k}`",
                    "remove it",
                )
            )
        missing = [k for k in ("identity", "field", "reason", "expires") if not e.get(k)]
        for k in missing:
            result.problems.append(
                _problem(shown, line, f"ignore[{i}]", f"missing required field `{k}`", f"add `{k}`")
            )
        if missing or unknown:
            continue
        identity, fld, reason, expires = e["identity"], e["field"], e["reason"], e["expires"]
        kind = str(identity).partition("/")[0]
        if kind not in kinds.KINDS or "/" not in str(identity):
            result.problems.append(
                _problem(
                    shown,
                    loc.line((*base, "identity")),
                    f"ignore[{i}].identity",
                    f"must be Kind/identity as plan prints it, such as Prompt/support-agent "
                    f"(got {identity!r})",
                    "kinds: " + ", ".join(kinds.KINDS),
                )
            )
            continue
        if isinstance(expires, str):
            try:
                expires = dt.date.fromisoformat(expires)
            except ValueError:
                expires = None
        if isinstance(expires, dt.datetime):
            expires = expires.date()
        if not isinstance(expires, dt.date):
            result.problems.append(
                _problem(
                    shown,
                    loc.line((*base, "expires")),
                    f"ignore[{i}].expires",
                    "must be a date such as 2026-12-31",
                    "write the date as YYYY-MM-DD",
                )
            )
            continue
        entry = Entry(str(identity), str(fld), str(reason), expires, f"{shown}:{line}")
        (result.active if today <= expires else result.expired).append(entry)
    return result
