"""The audit log and run metrics.

Covers: the hash chain (seq, prev, hash) built and verified; editing, deleting, inserting and
reordering lines detected at the right line; a torn last line reported by verify, set aside by
the next open into a sidecar (bytes kept) with the event recorded, after which the chain
verifies; a broken chain refused for appending; every line fsync'ed before append returns;
credentials redacted; actor precedence; git commit inside and outside a repository; the
Prometheus text format (escaping, parse-back), atomic writes and the last-success carry-over.

Keyed chains (LLMGW_AUDIT_KEY): verified with the key, "needs the key" without it, a chain
rewritten without the key (as keyed or as unkeyed) or checked with another key fails; the mode
is fixed by the first record (no appending in the other mode, no mixed lines); the key is never
written; a short key is refused. ``--last``: the log ends at the hash, or the tail was cut, or
later records follow. The lock: a second open waits, then refuses naming the holder recorded in
the sidecar; released on close. Disk failures: a real ENOSPC (the log's descriptor pointed at
/dev/full) refuses that append and every later one, and closing never raises; a short write
(fault injected) is cut back so the chain still verifies; a path that is not a regular file
(a symlink to /dev/full) is refused for the log and for the metrics file, before writing;
a symlinked metrics file is written where it points.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from reconciler import audit, metrics
from reconciler.errors import AuditError, FileError, LockError

KEY = b"0123456789abcdef-test-key"


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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drift.prom"]  # no temporary left


# -- keyed chains ------------------------------------------------------------------------------
def _rewrite(path: Path, key: bytes | None, chain: str, edit: dict[str, object]) -> None:
    """Rewrite every line as an attacker would, recomputing the chain with ``key``."""
    prev = audit.GENESIS
    out = []
    for n, raw in enumerate(path.read_text().splitlines(), start=1):
        rec = json.loads(raw)
        if n == 2:
            rec.update(edit)
        rec["chain"] = chain
        if chain == audit.SHA256:
            rec.pop("keyId", None)
        rec["prev"] = prev
        rec["hash"] = audit.line_hash(rec, key)
        prev = rec["hash"]
        out.append(audit.canonical(rec))
    path.write_text("\n".join(out) + "\n")


def test_keyed_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write(path, 3, key=KEY)
    assert KEY.decode() not in path.read_text()
    first = json.loads(path.read_text().splitlines()[0])
    assert first["chain"] == "hmac-sha256" and first["keyId"] == audit.key_id(KEY)
    ok = audit.verify(str(path), key=KEY)
    assert ok.ok and ok.keyed and "keyed chain (HMAC-SHA256) verified" in ok.message()
    without = audit.verify(str(path))
    assert not without.ok and without.needs_key
    assert "set LLMGW_AUDIT_KEY" in without.message()
    wrong = audit.verify(str(path), key=b"another-key-of-16-chars")
    assert not wrong.ok and "another key" in wrong.message()


@pytest.mark.parametrize("chain", [audit.HMAC_SHA256, audit.SHA256], ids=["as-keyed", "as-unkeyed"])
def test_keyed_chain_rewritten_without_the_key_fails(tmp_path: Path, chain: str) -> None:
    path = tmp_path / "audit.jsonl"
    write(path, 3, key=KEY)
    _rewrite(path, None, chain, {"status": 500})
    result = audit.verify(str(path), key=KEY)
    assert not result.ok
    if chain == audit.SHA256:
        assert "unkeyed (sha256) although LLMGW_AUDIT_KEY is set" in result.message()
    else:
        assert result.broken_at == 1 and "edited" in result.message()


def test_unkeyed_chain_can_be_rewritten_which_is_why_keys_exist(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write(path, 3)
    _rewrite(path, None, audit.SHA256, {"status": 500})
    result = audit.verify(str(path))
    assert result.ok and "unkeyed" in result.message() and "LLMGW_AUDIT_KEY" in result.message()


def test_a_log_keeps_the_mode_of_its_first_record(tmp_path: Path) -> None:
    keyed, plain = tmp_path / "keyed.jsonl", tmp_path / "plain.jsonl"
    write(keyed, 1, key=KEY)
    write(plain, 1)
    with pytest.raises(AuditError, match=r"keyed audit log .* LLMGW_AUDIT_KEY is not set"):
        audit.AuditLog.open(str(keyed), actor="x")
    with pytest.raises(AuditError, match=r"unkeyed audit log .* start a keyed log"):
        audit.AuditLog.open(str(plain), actor="x", key=KEY)
    # a keyed line appended by hand to an unkeyed log breaks the chain there
    rec = json.loads(plain.read_text().splitlines()[0])
    rec.update(seq=2, prev=rec["hash"], chain=audit.HMAC_SHA256)
    rec["hash"] = audit.line_hash(rec, KEY)
    with plain.open("a") as f:
        f.write(audit.canonical(rec) + "\n")
    result = audit.verify(str(plain))
    assert (
        result.broken_at == 2
        and "a record of another mode, keyed (HMAC-SHA256), in a log that began unkeyed"
        in result.message()
    )


def test_key_from_env() -> None:
    assert audit.key_from_env({}) is None
    assert audit.key_from_env({"LLMGW_AUDIT_KEY": "k" * 16}) == b"k" * 16
    with pytest.raises(AuditError, match="too short") as err:
        audit.key_from_env({"LLMGW_AUDIT_KEY": "short-key"})
    assert "short-key" not in str(err.value)


def test_last_hash_shows_a_cut_tail(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write(path, 3)
    last = audit.verify(str(path)).last_hash
    assert last is not None and audit.verify(str(path), last=last).ok
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))  # the tail cut: the rest still chains
    assert audit.verify(str(path)).ok
    cut = audit.verify(str(path), last=last)
    assert not cut.ok and "records were cut from its end" in cut.message()
    path.write_text("".join(lines))
    write(path, 1)
    later = audit.verify(str(path), last=last)
    assert not later.ok and "that is record 3, followed by 1 later record" in later.message()


# -- the lock ----------------------------------------------------------------------------------
def test_second_open_waits_then_names_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    first = audit.AuditLog.open(str(path), actor="ana", now=fixed)
    holder = json.loads((tmp_path / "audit.jsonl.lock").read_text())
    assert holder["pid"] == os.getpid() and holder["actor"] == "ana"
    assert holder["host"] == socket.gethostname() and holder["since"] == "2026-11-22T12:00:00.000Z"
    slept: list[float] = []
    with pytest.raises(LockError) as err:
        audit.AuditLog.open(str(path), actor="bob", lock_timeout=0.3)
    message = str(err.value)
    assert f"pid {os.getpid()} on {socket.gethostname()}" in message and "actor ana" in message
    assert "--lock-timeout" in message
    lock = None
    try:
        with pytest.raises(LockError):
            audit.AuditLock.acquire(
                str(path),
                actor="bob",
                timeout=1.0,
                sleep=slept.append,
                clock=iter([0.0, 0.0, 0.5, 1.0, 1.5]).__next__,
            )
        assert slept == [0.1, 0.1]  # polled until the deadline, then refused
    finally:
        first.close()
    lock = audit.AuditLock.acquire(str(path), actor="bob", timeout=0)
    lock.release()
    lock.release()  # twice is harmless


# -- disk failures -----------------------------------------------------------------------------
def test_real_enospc_refuses_that_append_and_every_later_one(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = audit.AuditLog.open(str(path), actor="x")
    log.append({"n": 1})
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        os.dup2(full, log._fd)  # type: ignore[arg-type]  # the kernel now answers ENOSPC
    finally:
        os.close(full)
    with pytest.raises(AuditError, match="No space left on device"):
        log.append({"n": 2})
    assert log.failed == "No space left on device"
    with pytest.raises(AuditError, match="failed earlier"):
        log.append({"n": 3})
    log.close()  # never raises
    log.close()
    result = audit.verify(str(path))
    assert result.ok and result.lines == 1 and log.tail[0] == 1


def test_a_short_write_is_cut_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.jsonl"
    log = audit.AuditLog.open(str(path), actor="x")
    log.append({"n": 1})
    real = os.write
    calls: list[int] = []

    def half_then_eio(fd: int, data: bytes) -> int:
        if fd != log._fd:
            return real(fd, data)
        calls.append(len(data))
        if len(calls) == 1:
            return real(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "write", half_then_eio)
    with pytest.raises(AuditError, match="Input/output error"):
        log.append({"n": 2, "pad": "x" * 200})
    monkeypatch.setattr(os, "write", real)
    log.close()
    assert path.read_text().count("\n") == 1 and audit.verify(str(path)).ok


def test_paths_that_are_not_regular_files_are_refused(tmp_path: Path) -> None:
    link = tmp_path / "audit.jsonl"
    link.symlink_to("/dev/full")
    with pytest.raises(AuditError, match="not a regular file"):
        audit.AuditLog.open(str(link), actor="x")
    with pytest.raises(AuditError, match="not a regular file"):
        audit.verify(str(link))
    prom = tmp_path / "apply.prom"
    prom.symlink_to("/dev/full")
    with pytest.raises(FileError, match="not a regular file"):
        metrics.check_writable(str(prom))
    with pytest.raises(FileError, match="not a regular file"):
        metrics.write_textfile(str(prom), "x 1\n")
    assert prom.is_symlink() and os.readlink(prom) == "/dev/full"  # never replaced


def test_a_symlinked_metrics_file_is_written_where_it_points(tmp_path: Path) -> None:
    (tmp_path / "collector").mkdir()
    real = tmp_path / "collector" / "llmgw.prom"
    link = tmp_path / "llmgw.prom"
    link.symlink_to(real)
    metrics.check_writable(str(link))
    metrics.write_textfile(str(link), "llmgw_x 1\n")
    assert link.is_symlink() and real.read_text() == "llmgw_x 1\n"
    assert sorted(p.name for p in (tmp_path / "collector").iterdir()) == ["llmgw.prom"]
