"""The audit log and run metrics.

Covers: the hash chain (seq, prev, hash) built and verified; editing, deleting, inserting and
reordering lines detected at the right line; a torn last line reported by verify, set aside by
the next open into a sidecar (bytes kept) with the event recorded, after which the chain
verifies; a broken chain refused for appending; every line fsync'ed before append returns;
credentials redacted; actor precedence; git commit inside and outside a repository; the
Prometheus text format (escaping, parse-back), atomic writes and the last-success carry-over.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler import audit, metrics
from reconciler.errors import AuditError


def fixed() -> dt.datetime:
    return dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


def write(path: Path, n: int, **kw: object) -> None:
    with audit.AuditLog.open(str(path), actor="ana", git_commit="c" * 40, now=fixed, **kw) as log:
        for i in range(n):
            log.append({"operation": "update", "identity": f"obj-{i}", "status": 200})


def test_chain_built_and_verified(tmp_path: Path) -> None:
    path = tmp_path / "a" / "audit.jsonl"
    write(path, 3)
    write(path, 2)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["seq"] for x in lines] == [1, 2, 3, 4, 5]
    assert lines[0]["prev"] == "0" * 64 and lines[3]["prev"] == lines[2]["hash"]
    assert lines[0]["actor"] == "ana" and lines[0]["ts"] == "2026-11-22T12:00:00.000Z"
    result = audit.verify(str(path))
    assert result.ok and result.lines == 5 and "intact: 5 records" in result.message()


def _mutate(path: Path, how: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    if how == "edit":
        lines[2] = lines[2].replace('"status":200', '"status":201')
    elif how == "delete":
        del lines[1]
    elif how == "reorder":
        lines[1], lines[2] = lines[2], lines[1]
    elif how == "insert":
        lines.insert(2, lines[2])
    path.write_text("".join(lines))


@pytest.mark.parametrize(
    ("how", "line"), [("edit", 3), ("delete", 2), ("reorder", 2), ("insert", 4)]
)
def test_tampering_detected_at_its_line(tmp_path: Path, how: str, line: int) -> None:
    path = tmp_path / "audit.jsonl"
    write(path, 4)
    _mutate(path, how)
    result = audit.verify(str(path))
    assert not result.ok and result.broken_at == line, result
    with pytest.raises(AuditError, match=f"broken at line {line}"):
        audit.AuditLog.open(str(path), actor="x")


def test_torn_last_line_set_aside_and_recorded(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write(path, 2)
    with path.open("a") as f:
        f.write('{"operation": "upd')
    result = audit.verify(str(path))
    assert not result.ok and result.torn and "torn" in result.message()
    log = audit.AuditLog.open(str(path), actor="x", now=fixed)
    log.close()
    (sidecar,) = tmp_path.glob("audit.jsonl.torn-*")
    assert sidecar.read_text() == '{"operation": "upd'
    assert log.notes and "torn" in log.notes[0]
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[-1]["event"] == "torn-line-set-aside" and lines[-1]["seq"] == 3
    assert audit.verify(str(path)).ok


def test_each_line_fsynced_before_append_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    log = audit.AuditLog.open(str(tmp_path / "a.jsonl"), actor="x")
    log.append({"a": 1})
    assert len(synced) == 1
    log.append({"a": 2})
    assert len(synced) == 2
    log.close()


def test_credentials_are_redacted(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    with audit.AuditLog.open(str(path), actor="x", redact=["hunter2-secret"]) as log:
        log.append({"error": "refused with hunter2-secret in it"})
    assert "hunter2-secret" not in path.read_text() and audit.verify(str(path)).ok


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="no such audit log"):
        audit.verify(str(tmp_path / "none.jsonl"))


def test_actor_precedence() -> None:
    assert audit.actor_from_env({"LLMGW_ACTOR": "a", "GITHUB_ACTOR": "b", "USER": "c"}) == "a"
    assert audit.actor_from_env({"GITHUB_ACTOR": "b", "USER": "c"}) == "b"
    assert audit.actor_from_env({"GITLAB_USER_LOGIN": "g", "USER": "c"}) == "g"
    assert audit.actor_from_env({"USER": "c"}) == "c"


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_git_commit(tmp_path: Path) -> None:
    assert audit.git_commit(str(tmp_path)) is None
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@e",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@e",
    }
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, env=env)
    subprocess.run(
        ["git", "-C", str(tmp_path), "commit", "-q", "--allow-empty", "-m", "x"],
        check=True,
        env=env,
    )
    commit = audit.git_commit(str(tmp_path))
    assert commit is not None and len(commit) == 40


def test_prometheus_text_escapes_and_parses_back(tmp_path: Path) -> None:
    fam = metrics.Family("llmgw_x", "help").add(3, kind='a"b\\c\nd')
    text = metrics.prometheus_text([fam])
    assert 'kind="a\\"b\\\\c\\nd"' in text
    assert metrics.parse_textfile(text) == {("llmgw_x", (("kind", 'a"b\\c\nd'),)): 3.0}
    with pytest.raises(ValueError):
        metrics.prometheus_text([metrics.Family("bad-name", "h")])


def test_drift_metrics_carry_last_success_over_a_failure(tmp_path: Path) -> None:
    path = tmp_path / "drift.prom"
    ok = metrics.drift_metrics({("Prompt", "modified"): 1}, {"Prompt": 2}, 0.5, 1000.0, True)
    metrics.write_textfile(str(path), ok)
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    failed = metrics.drift_metrics({}, {}, 0.1, 2000.0, False, previous=path.read_text())
    samples = metrics.parse_textfile(failed)
    assert samples[("llmgw_last_success_timestamp_seconds", (("command", "drift"),))] == 1000.0
    assert samples[("llmgw_run_success", (("command", "drift"),))] == 0.0
    parsed = metrics.parse_textfile(ok)
    assert parsed[("llmgw_drift_objects", (("kind", "Prompt"), ("state", "modified")))] == 1.0
    assert not list(tmp_path.glob(".llmgw-metrics-*"))
