"""Drift detection and the ignore file, as pure functions.

Covers: a live copy is in sync; an out-of-band change is `modified` with the field shown git ->
live; a deleted object is `missing`; a managed object no manifest names is `orphaned`; an
unlabelled one is `unmanaged` and not drift; a split removed from its prompt is `modified`; the
ignore file's entries hide a field until their expiry date, after which they are reported as
expired; malformed ignore files give located errors.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from reconciler import ignores
from reconciler.drift import MISSING, MODIFIED, ORPHANED, UNMANAGED, detect
from tests.test_planner import desired, live_copy


def _edit_temp(kind: str, key: str, raw: dict[str, Any]) -> None:
    if kind == "Prompt" and key == "support-agent":
        raw["temperature"] = 0.9


def test_in_sync() -> None:
    want = desired()
    report = detect(want, live_copy(want))
    assert report.in_sync and report.checked == len(want)


def test_modified_missing_orphaned_unmanaged() -> None:
    want = desired()
    live = live_copy(want, edit=_edit_temp)
    del live.objects["PromptVersion/escalation-routing@2.1.0"]
    orphan = live.objects["PromptTemplate/support-ticket-classifier"]
    del want["PromptTemplate/support-ticket-classifier"]
    live.objects["PromptTemplate/hand-made"] = type(orphan)(
        "PromptTemplate", "hand-made", dict(orphan.fields), remote_id="x", managed=False
    )
    report = detect(want, live)
    states = {(f.state, f.ref) for f in report.findings}
    assert (MODIFIED, "Prompt/support-agent") in states
    assert (MISSING, "PromptVersion/escalation-routing@2.1.0") in states
    assert (ORPHANED, "PromptTemplate/support-ticket-classifier") in states
    assert (UNMANAGED, "PromptTemplate/hand-made") in states
    assert not report.in_sync
    modified = next(f for f in report.findings if f.state == MODIFIED)
    assert [(d.path, d.old, d.new) for d in modified.diff] == [("temperature", 0.2, 0.9)]


def test_unmanaged_alone_is_not_drift() -> None:
    want = desired()
    live = live_copy(want)
    tpl = live.objects["PromptTemplate/escalation-routing"]
    live.objects["PromptTemplate/other"] = type(tpl)("PromptTemplate", "other", {}, managed=False)
    assert detect(want, live).in_sync


def test_split_removed_from_prompt_is_modified() -> None:
    want = desired()
    live = live_copy(want)
    del live.objects["TrafficSplit/support-agent"]
    (finding,) = detect(want, live).drifted
    assert (finding.state, finding.ref) == (MODIFIED, "TrafficSplit/support-agent")


def write_ignore(tmp_path: Path, expires: str, field: str = "temperature") -> str:
    f = tmp_path / ".llmgw-ignore.yaml"
    f.write_text(f"""ignore:
  - identity: Prompt/support-agent
    field: {field}
    reason: lowered during incident INC-4711
    expires: {expires}
""")
    return str(f)


def test_ignore_entry_hides_field_until_expiry(tmp_path: Path) -> None:
    want = desired()
    live = live_copy(want, edit=_edit_temp)
    path = write_ignore(tmp_path, "2026-12-31")
    active = ignores.load(path, dt.date(2026, 12, 31))
    assert not active.problems and len(active.active) == 1
    assert detect(want, live, active.by_ref()).in_sync
    expired = ignores.load(path, dt.date(2027, 1, 1))
    assert expired.active == [] and expired.expired[0].field == "temperature"
    assert not detect(want, live, expired.by_ref()).in_sync


def test_default_ignore_file_is_optional(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    assert ignores.load(None, dt.date(2026, 1, 1)).active == []
    missing = ignores.load("nope.yaml", dt.date(2026, 1, 1))
    assert missing.problems and "no such ignore file" in missing.problems[0].message


def test_malformed_ignore_entries(tmp_path: Path) -> None:
    f = tmp_path / "ign.yaml"
    f.write_text("""ignore:
  - identity: support-agent
    field: temperature
    reason: x
    expires: 2026-12-31
  - identity: Prompt/a
    field: topP
    expires: soon
  - identity: Prompt/a
    field: topP
    reason: r
    expires: someday
    owner: me
""")
    result = ignores.load(str(f), dt.date(2026, 1, 1))
    text = "\n".join(str(p) for p in result.problems)
    assert "ign.yaml:2: ignore[0].identity: must be Kind/identity" in text
    assert "ign.yaml:6: ignore[1]: missing required field `reason`" in text
    assert "ign.yaml:13: ignore[2].owner: unknown field `owner`" in text
