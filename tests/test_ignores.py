"""Accepted drift: the ignore file (reconciler/ignores.py).

Covers: an entry hides a field until its expiry date (inclusive), then is expired; entries for
an owned part can be spelled under the owner (``Prompt/x`` + ``trafficDistribution.*``) or the
part (``TrafficSplit/x``); every malformed entry is a located problem (not a mapping, an unknown
field, a missing field, an identity that is not Kind/identity, a date that is not a date); a
missing default file is nothing, a missing explicit one a problem; dates are read as dates in
this file (unlike manifests).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from reconciler import ignores

TODAY = dt.date(2026, 12, 1)


def _load(tmp_path: Path, text: str) -> ignores.IgnoreSet:
    path = tmp_path / ".llmgw-ignore.yaml"
    path.write_text(text, encoding="utf-8")
    return ignores.load(str(path), TODAY)


def test_active_until_the_expiry_date_then_expired(tmp_path: Path) -> None:
    result = _load(
        tmp_path,
        "ignore:\n"
        "  - {identity: Prompt/a, field: temperature, reason: r, expires: 2026-12-01}\n"
        "  - {identity: Prompt/b, field: temperature, reason: r, expires: 2026-11-30}\n",
    )
    assert result.problems == []
    assert [e.identity for e in result.active] == ["Prompt/a"]
    assert [e.identity for e in result.expired] == ["Prompt/b"]
    assert result.by_ref() == {"Prompt/a": ["temperature"]}


def test_an_owned_part_under_its_owner(tmp_path: Path) -> None:
    result = _load(
        tmp_path,
        "ignore:\n"
        "  - identity: Prompt/a\n"
        "    field: trafficDistribution.versions\n"
        "    reason: canary by hand\n"
        "    expires: 2027-01-01\n",
    )
    assert result.by_ref() == {
        "Prompt/a": ["trafficDistribution.versions"],
        "TrafficSplit/a": ["versions"],
    }


def test_malformed_entries_are_located(tmp_path: Path) -> None:
    result = _load(
        tmp_path,
        "ignore:\n"
        "  - just a string\n"
        "  - {identity: Prompt/a, field: t, reason: r, expires: 2027-01-01, extra: 1}\n"
        "  - {identity: Prompt/a, field: t, expires: 2027-01-01}\n"
        "  - {identity: Nope/a, field: t, reason: r, expires: 2027-01-01}\n"
        "  - {identity: Prompt/a, field: t, reason: r, expires: someday}\n",
    )
    said = sorted((p.line, p.message) for p in result.problems)
    assert said == [
        (2, "must be a mapping"),
        (3, "unknown field `extra`"),
        (4, "missing required field `reason`"),
        (5, "must be Kind/identity as plan prints it, such as Prompt/support-agent (got 'Nope/a')"),
        (6, "must be a date such as 2026-12-31"),
    ]
    assert all(
        p.rule == "ignore-file" and p.file.endswith(".llmgw-ignore.yaml") for p in result.problems
    )


def test_missing_files(tmp_path: Path) -> None:
    assert ignores.load(None, TODAY).problems == []  # no default file: nothing ignored
    (problem,) = ignores.load(str(tmp_path / "nope.yaml"), TODAY).problems
    assert problem.message == "no such ignore file"
