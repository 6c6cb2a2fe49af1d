"""The audit trail: an append-only, hash-chained JSON-lines log of every write apply makes.

Each line holds its record plus ``seq`` (1-based), ``prev`` (the previous line's hash, 64 zeros
for the first) and ``hash`` (sha256 of the line's canonical JSON without ``hash``), so editing,
removing, inserting or reordering lines breaks the chain where it happened. Each line is flushed
and fsync'ed before ``append`` returns: the caller sends the next write only after that.

A torn last line (the process was killed mid-write) is never silently dropped: the next ``open``
moves its bytes to a sidecar file and records that it did, chained like any record. A chain
broken in the middle is refused for appending. Credentials are never written: every string the
caller names in ``redact`` is replaced before the line reaches the disk.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import os
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.errors import AuditError

GENESIS = "0" * 64


def actor_from_env(env: Mapping[str, str]) -> str:
    """LLMGW_ACTOR, else the CI's user, else the OS user, else "unknown"."""
    for name in (
        "LLMGW_ACTOR",
        "GITHUB_ACTOR",
        "GITLAB_USER_LOGIN",
        "BUILD_REQUESTEDFOREMAIL",
        "BUILD_REQUESTEDFOR",
        "BITBUCKET_STEP_TRIGGERER_UUID",
        "CIRCLE_USERNAME",
        "BUILDKITE_BUILD_CREATOR",
        "USER",
        "USERNAME",
    ):
        value = env.get(name, "").strip()
        if value:
            return value
    try:
        return getpass.getuser()
    except Exception:  # getpass raises whatever the platform raises without a user
        return "unknown"


def git_commit(cwd: str | None = None) -> str | None:
    """The HEAD commit when ``cwd`` is inside a git work tree; None otherwise. Never raises."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    out = done.stdout.strip()
    return out if done.returncode == 0 and len(out) >= 40 else None


def canonical(record: Mapping[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def line_hash(record: Mapping[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    lines: int
    broken_at: int | None = None
    reason: str | None = None
    torn: bool = False

    def message(self) -> str:
        if self.ok:
            return f"intact: {self.lines} record{'s' if self.lines != 1 else ''}, chain verified"
        if self.torn:
            return (
                f"last line {self.broken_at} is torn (an interrupted write) after {self.lines} "
                "intact records; the next apply sets it aside"
            )
        return f"broken at line {self.broken_at}: {self.reason}"


def _scan(data: bytes) -> tuple[list[dict[str, Any]], VerifyResult, int]:
    """Records, the verdict, and the byte offset where intact content ends."""
    records: list[dict[str, Any]] = []
    prev = GENESIS
    offset = 0
    raw_lines = data.split(b"\n")
    complete = raw_lines[:-1]
    tail = raw_lines[-1]
    for n, raw in enumerate(complete, start=1):
        try:
            rec = json.loads(raw.decode("utf-8"))
            if not isinstance(rec, dict):
                raise ValueError("not an object")
        except (ValueError, UnicodeDecodeError):
            if n == len(complete) and not tail:
                return records, VerifyResult(False, len(records), n, "torn", True), offset
            return records, VerifyResult(False, len(records), n, "not a JSON record"), offset
        if rec.get("seq") != n:
            why = f"sequence number {rec.get('seq')} where {n} was expected (a line was removed, "
            return records, VerifyResult(False, len(records), n, why + "inserted or moved)"), offset
        if rec.get("prev") != prev:
            return (
                records,
                VerifyResult(False, len(records), n, "does not chain to the line before it"),
                offset,
            )
        if rec.get("hash") != line_hash(rec):
            return (
                records,
                VerifyResult(False, len(records), n, "hash does not match its content (edited)"),
                offset,
            )
        records.append(rec)
        prev = rec["hash"]
        offset += len(raw) + 1
    if tail.strip():
        n = len(complete) + 1
        return records, VerifyResult(False, len(records), n, "torn", True), offset
    return records, VerifyResult(True, len(records)), offset


def verify(path: str) -> VerifyResult:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise AuditError(f"{path}: no such audit log") from None
    except OSError as exc:
        raise AuditError(f"{path}: cannot read the audit log ({exc.strerror})") from None
    return _scan(data)[1]


@dataclass
class AuditLog:
    path: str
    actor: str
    git_commit: str | None
    now: Callable[[], dt.datetime]
    redact: tuple[str, ...]
    seq: int = 0
    prev: str = GENESIS
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._file: Any = None

    @classmethod
    def open(
        cls,
        path: str,
        *,
        actor: str,
        git_commit: str | None = None,
        now: Callable[[], dt.datetime] = _utc_now,
        redact: Sequence[str] = (),
    ) -> AuditLog:
        log = cls(path, actor, git_commit, now, tuple(s for s in redact if s and len(s) >= 4))
        try:
            folder = os.path.dirname(os.path.abspath(path))
            os.makedirs(folder, exist_ok=True)
            data = b""
            if os.path.exists(path):
                with open(path, "rb") as f:
                    data = f.read()
            records, verdict, offset = _scan(data)
            torn = data[offset:] if verdict.torn else b""
            if not verdict.ok and not verdict.torn:
                raise AuditError(
                    f"{path}: the hash chain is broken at line {verdict.broken_at} "
                    f"({verdict.reason}); refusing to append. Run `llmgw audit verify {path}`, "
                    "keep the file as evidence and start a new log (--audit-log)"
                )
            if records:
                log.seq, log.prev = records[-1]["seq"], records[-1]["hash"]
            if torn:
                stamp = log.now().strftime("%Y%m%dT%H%M%S%fZ")
                sidecar = f"{path}.torn-{stamp}"
                with open(sidecar, "wb") as f:
                    f.write(torn)
                    f.flush()
                    os.fsync(f.fileno())
                with open(path, "r+b") as f:
                    f.truncate(offset)
                    f.flush()
                    os.fsync(f.fileno())
            log._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - held for the run
            if torn:
                log.append(
                    {
                        "event": "torn-line-set-aside",
                        "sidecar": os.path.basename(sidecar),
                        "tornBytes": len(torn),
                        "tornSha256": hashlib.sha256(torn).hexdigest(),
                    }
                )
                log.notes.append(
                    f"the audit log's last line was torn (an interrupted run); it was moved to "
                    f"{sidecar} and the event recorded"
                )
        except OSError as exc:
            raise AuditError(
                f"{path}: cannot open the audit log ({exc.strerror}); "
                "choose a writable --audit-log path"
            ) from None
        return log

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            if self._file is None:
                raise AuditError(f"{self.path}: the audit log is closed")
            line: dict[str, Any] = {
                "ts": self.now().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "actor": self.actor,
                "gitCommit": self.git_commit,
                **{k: v for k, v in record.items() if k not in ("seq", "prev", "hash")},
            }
            if self.redact:
                line = json.loads(self._scrub(json.dumps(line, ensure_ascii=False)))
            line["seq"] = self.seq + 1
            line["prev"] = self.prev
            line["hash"] = line_hash(line)
            try:
                self._file.write(canonical(line) + "\n")
                self._file.flush()
                os.fsync(self._file.fileno())
            except OSError as exc:
                raise AuditError(
                    f"{self.path}: cannot append to the audit log ({exc.strerror}); the write "
                    "was made but its record may be missing"
                ) from None
            self.seq, self.prev = line["seq"], line["hash"]
            return line

    def _scrub(self, text: str) -> str:
        for s in self.redact:
            text = text.replace(json.dumps(s)[1:-1], "***")
        return text

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def summary(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts of a run's records by outcome and by kind (for a webhook or a report)."""
    by_outcome: dict[str, int] = {}
    by_kind: dict[str, int] = {}
    for r in records:
        by_outcome[str(r.get("outcome"))] = by_outcome.get(str(r.get("outcome")), 0) + 1
        by_kind[str(r.get("kind"))] = by_kind.get(str(r.get("kind")), 0) + 1
    return {"records": len(records), "byOutcome": by_outcome, "byKind": by_kind}
