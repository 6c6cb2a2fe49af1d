"""The audit trail: an append-only, hash-chained JSON-lines log of every write apply makes.

Each line holds its record plus ``chain`` (the log's mode), ``seq`` (1-based), ``prev`` (the
previous line's hash, 64 zeros for the first) and ``hash`` over the line's canonical JSON without
``hash``, so editing, removing, inserting or reordering lines breaks the chain where it happened.
The hash is plain sha256, or HMAC-SHA256 when ``LLMGW_AUDIT_KEY`` gives a key (``chain:
"hmac-sha256"``, with ``keyId``, a fingerprint of the key, never the key): then whoever rewrites
the file without the key cannot make it verify again. A log's mode is fixed by its first record;
appending in the other mode is refused. A hash chain cannot show that records were cut from its
end: apply prints the last record's hash, and ``verify(..., last=HASH)`` checks the log ends there.

Each line is written with one ``write`` on an unbuffered descriptor and fsync'ed before
``append`` returns: the caller sends the next write only after that. A line that cannot be
written (ENOSPC, EROFS, EIO) is cut back off the file (best effort) and the log refuses every
later append, so a failure never leaves half a line that later lines would chain onto. Closing
never raises.

One apply at a time per log: ``AuditLock`` is an advisory ``flock`` on the sidecar ``FILE.lock``,
which records the holder (pid, host, actor, start time) for whoever has to wait. It is taken
before the chain's tail is read and held until the log is closed.

A torn last line (the process was killed mid-write) is never silently dropped: the next ``open``
moves its bytes to a sidecar file and records that it did, chained like any record. A chain
broken in the middle is refused for appending. Every string goes through ``reconciler.redact``
before it reaches the disk. This module never prints and never decides what to write: the
executor and ``jobs`` do.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import getpass
import hashlib
import hmac
import json
import os
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler import redact as redact_mod
from reconciler.errors import AuditError, LockError
from reconciler.text import plural

GENESIS = "0" * 64
SHA256, HMAC_SHA256 = "sha256", "hmac-sha256"
KEY_MIN_LENGTH = 16
_KEY_ID_LABEL = b"llmgw audit key id"


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


def key_from_env(env: Mapping[str, str]) -> bytes | None:
    """The chain key from ``LLMGW_AUDIT_KEY`` (None when unset or empty); AuditError when it
    is too short to be a key. The value is never part of a message."""
    value = env.get("LLMGW_AUDIT_KEY", "")
    if not value:
        return None
    if len(value) < KEY_MIN_LENGTH:
        raise AuditError(
            f"LLMGW_AUDIT_KEY is too short ({len(value)} characters): use at least "
            f"{KEY_MIN_LENGTH} random characters, e.g. the output of `openssl rand -hex 32`, "
            "kept as a CI secret"
        )
    redact_mod.register(value)
    return value.encode("utf-8")


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


def key_id(key: bytes) -> str:
    """A fingerprint that tells keys apart without revealing them (an HMAC of a constant)."""
    return hmac.new(key, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]


def line_hash(record: Mapping[str, Any], key: bytes | None = None) -> str:
    body = canonical({k: v for k, v in record.items() if k != "hash"}).encode("utf-8")
    if key is not None:
        return hmac.new(key, body, hashlib.sha256).hexdigest()
    return hashlib.sha256(body).hexdigest()


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _stamp(now: dt.datetime) -> str:
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _mode_name(mode: str | None) -> str:
    return "keyed (HMAC-SHA256)" if mode == HMAC_SHA256 else "unkeyed (sha256)"


# -- verification --------------------------------------------------------------------------------
@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    lines: int
    broken_at: int | None = None
    reason: str | None = None
    torn: bool = False
    mode: str | None = None  # the first record's; None for an empty log
    needs_key: bool = False  # a keyed log read without the key: only its structure was checked
    last_seq: int = 0
    last_hash: str | None = None

    @property
    def keyed(self) -> bool:
        return self.mode == HMAC_SHA256

    def message(self) -> str:
        n = plural(self.lines, "record")
        if self.needs_key and self.broken_at is None:
            return (
                f"keyed (HMAC-SHA256), {n}: its hashes can be checked only with the key it was "
                "written with; set LLMGW_AUDIT_KEY and run again (without it only the sequence "
                "numbers and links were checked, and they are consistent)"
            )
        if self.ok:
            how = (
                "keyed chain (HMAC-SHA256) verified with LLMGW_AUDIT_KEY"
                if self.keyed
                else "chain verified; unkeyed (sha256): whoever can write the file could "
                "rewrite the whole chain, LLMGW_AUDIT_KEY makes it keyed"
            )
            return f"intact: {n}, {how}"
        if self.torn:
            return (
                f"last line {self.broken_at} is torn (an interrupted write) after {n} intact "
                "records; the next apply sets it aside"
            )
        if self.broken_at is None:
            return str(self.reason)
        return f"broken at line {self.broken_at}: {self.reason}"


def _scan(data: bytes, key: bytes | None) -> tuple[list[dict[str, Any]], VerifyResult, int]:
    """Records, the verdict, and the byte offset where intact content ends. A keyed log scanned
    without its key is checked for structure only (``needs_key``)."""
    records: list[dict[str, Any]] = []
    prev = GENESIS
    offset = 0
    mode: str | None = None
    raw_lines = data.split(b"\n")
    complete = raw_lines[:-1]
    tail = raw_lines[-1]

    def verdict(ok: bool, n: int | None = None, reason: str | None = None, **kw: Any) -> Any:
        last = records[-1] if records else {}
        return VerifyResult(
            ok,
            len(records),
            n,
            reason,
            mode=mode,
            needs_key=mode == HMAC_SHA256 and key is None,
            last_seq=int(last.get("seq", 0)),
            last_hash=last.get("hash"),
            **kw,
        )

    for n, raw in enumerate(complete, start=1):
        try:
            rec = json.loads(raw.decode("utf-8"))
            if not isinstance(rec, dict):
                raise ValueError("not an object")
        except (ValueError, UnicodeDecodeError):
            if n == len(complete) and not tail:
                return records, verdict(False, n, "torn", torn=True), offset
            return records, verdict(False, n, "not a JSON record"), offset
        rec_mode = rec.get("chain", SHA256)
        if mode is None:
            if rec_mode not in (SHA256, HMAC_SHA256):
                return records, verdict(False, n, f"unknown chain mode {rec_mode!r}"), offset
            mode = rec_mode
        elif rec_mode != mode:
            why = (
                f"a record of another mode, {_mode_name(rec_mode)}, in a log that began "
                f"{_mode_name(mode)}"
            )
            return records, verdict(False, n, why), offset
        if rec.get("seq") != n:
            why = f"sequence number {rec.get('seq')} where {n} was expected (a line was removed, "
            return records, verdict(False, n, why + "inserted or moved)"), offset
        if rec.get("prev") != prev:
            return records, verdict(False, n, "does not chain to the line before it"), offset
        if mode == HMAC_SHA256 and key is not None and rec.get("keyId") != key_id(key):
            why = (
                "written with another key than LLMGW_AUDIT_KEY (key id "
                f"{rec.get('keyId')}, this key's is {key_id(key)})"
            )
            return records, verdict(False, n, why), offset
        checkable = mode == SHA256 or key is not None
        if checkable and rec.get("hash") != line_hash(rec, key if mode == HMAC_SHA256 else None):
            return records, verdict(False, n, "hash does not match its content (edited)"), offset
        if not isinstance(rec.get("hash"), str):
            return records, verdict(False, n, "has no hash"), offset
        records.append(rec)
        prev = rec["hash"]
        offset += len(raw) + 1
    if tail.strip():
        n = len(complete) + 1
        return records, verdict(False, n, "torn", torn=True), offset
    return records, verdict(mode != HMAC_SHA256 or key is not None), offset


def check_path(path: str) -> bool:
    """True when ``path`` is a regular file, False when there is none yet; AuditError for
    anything else (a device such as /dev/full reads forever, a FIFO blocks, a folder)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise AuditError(f"{path}: cannot read the audit log ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise AuditError(
            f"{path} is not a regular file; the audit log must be a file llmgw can read back "
            "and append to (choose another --audit-log)"
        )
    return True


def _read_log(path: str) -> bytes:
    """The log's bytes (none when there is no log yet); AuditError when it cannot be read."""
    if not check_path(path):
        return b""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise AuditError(f"{path}: cannot read the audit log ({exc.strerror})") from None


def verify(path: str, *, key: bytes | None = None, last: str | None = None) -> VerifyResult:
    """Check the chain (with ``key`` for a keyed log). With ``last``, also that the log ends at
    the record whose hash that is (a chain alone cannot show that its tail was cut)."""
    if not os.path.lexists(path):
        raise AuditError(f"{path}: no such audit log")
    records, result, _ = _scan(_read_log(path), key)
    if key is not None and result.mode == SHA256:
        result = VerifyResult(
            False,
            result.lines,
            None,
            "the log is unkeyed (sha256) although LLMGW_AUDIT_KEY is set: it was written "
            "without the key, or rewritten by someone who does not have it",
            mode=result.mode,
            last_seq=result.last_seq,
            last_hash=result.last_hash,
        )
    if last is None or not result.ok:
        return result
    want = last.strip().lower()
    if result.last_hash == want:
        return result
    at = next((r["seq"] for r in records if r.get("hash") == want), None)
    why = (
        f"the log does not end at {want}: that is record {at}, followed by "
        f"{result.lines - int(at)} later record(s)"
        if at is not None
        else f"{want} is not in the log: records were cut from its end, or it is another log"
    )
    return VerifyResult(
        False,
        result.lines,
        None,
        why,
        mode=result.mode,
        last_seq=result.last_seq,
        last_hash=result.last_hash,
    )


# -- the lock ------------------------------------------------------------------------------------
def lock_path(path: str) -> str:
    return f"{path}.lock"


def _describe_holder(raw: bytes) -> str:
    try:
        h = json.loads(raw.decode("utf-8") or "{}")
    except (ValueError, UnicodeDecodeError):
        h = None
    if not isinstance(h, dict) or not h:
        return "a process that has not recorded itself in the lock file yet"
    parts = [f"pid {h.get('pid')} on {h.get('host')}"]
    if h.get("actor"):
        parts.append(f"actor {h.get('actor')}")
    if h.get("since"):
        parts.append(f"since {h.get('since')}")
    if h.get("command"):
        parts.append(str(h.get("command")))
    return redact_mod.redact(", ".join(str(p) for p in parts))


class AuditLock:
    """An exclusive advisory lock on ``FILE.lock`` (``flock``: released by the kernel when the
    holder dies, so a crashed run never leaves a stale lock)."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(
        cls,
        log: str,
        *,
        actor: str,
        timeout: float = 10.0,
        command: str = "llmgw apply",
        now: Callable[[], dt.datetime] = _utc_now,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        poll: float = 0.1,
        on_wait: Callable[[str], None] | None = None,
    ) -> AuditLock:
        """Wait at most ``timeout`` seconds for the lock (``on_wait(holder)`` once, when it has
        to wait); LockError naming the holder after."""
        path = lock_path(log)
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise AuditError(
                f"{path}: cannot create the audit log's lock file ({exc.strerror}); choose a "
                "writable --audit-log path"
            ) from None
        deadline = clock() + max(0.0, timeout)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    left = deadline - clock()
                    if left <= 0 or on_wait is not None:
                        try:
                            holder = _describe_holder(os.pread(fd, 4096, 0))
                        except OSError:
                            holder = "another process"
                        if left <= 0:
                            raise LockError(log, holder, _seconds(timeout)) from None
                        if on_wait is not None:
                            on_wait(holder)
                            on_wait = None
                    sleep(min(poll, left))
                except OSError as exc:
                    raise AuditError(
                        f"{path}: cannot lock the audit log ({exc.strerror})"
                    ) from None
        except BaseException:  # refused, or a signal while waiting: nothing is held
            os.close(fd)
            raise
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "actor": actor,
            "since": _stamp(now()),
            "command": command,
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise AuditError(
                f"{path}: cannot write the audit log's lock file ({exc.strerror}); nothing was "
                "sent. Free space on that file system, or choose another --audit-log"
            ) from None
        return cls(path, fd)

    def release(self) -> None:
        """Never raises: the kernel drops the lock with the descriptor anyway."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        with contextlib.suppress(OSError):
            os.close(fd)

    def __enter__(self) -> AuditLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _seconds(s: float) -> str:
    return f"{s:g} s"


# -- the log -------------------------------------------------------------------------------------
@dataclass
class AuditLog:
    path: str
    actor: str
    git_commit: str | None
    now: Callable[[], dt.datetime]
    key: bytes | None = None
    seq: int = 0
    prev: str = GENESIS
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._mutex = threading.Lock()
        self._fd: int | None = None
        self._size = 0
        self._failed: str | None = None
        self._lock: AuditLock | None = None
        self._own_lock = False

    @property
    def mode(self) -> str:
        return HMAC_SHA256 if self.key is not None else SHA256

    @property
    def failed(self) -> str | None:
        """Why the log stopped accepting records (None while it works)."""
        return self._failed

    @property
    def tail(self) -> tuple[int, str]:
        """The last record's sequence number and hash (0 and the genesis for an empty log)."""
        return self.seq, self.prev

    @classmethod
    def open(
        cls,
        path: str,
        *,
        actor: str,
        git_commit: str | None = None,
        now: Callable[[], dt.datetime] = _utc_now,
        redact: Sequence[str] = (),
        key: bytes | None = None,
        lock: AuditLock | None = None,
        lock_timeout: float = 10.0,
    ) -> AuditLog:
        """Lock the log (unless ``lock`` is already held for it), read its tail, set a torn last
        line aside. AuditError (LockError) when it cannot; nothing is appended then."""
        for secret in redact:
            redact_mod.register(secret)
        log = cls(path, actor, git_commit, now, key)
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        except OSError as exc:
            raise AuditError(
                f"{path}: cannot create the audit log's folder ({exc.strerror}); choose a "
                "writable --audit-log path"
            ) from None
        if lock is None:
            lock = AuditLock.acquire(path, actor=actor, timeout=lock_timeout, now=now)
            log._own_lock = True
        log._lock = lock
        try:
            log._load()
        except BaseException:
            log.close()
            raise
        return log

    def _load(self) -> None:
        path = self.path
        data = _read_log(path)
        records, verdict, offset = _scan(data, self.key)
        if records and verdict.mode != self.mode:
            if self.key is None:
                raise AuditError(
                    f"{path} is a keyed audit log (HMAC-SHA256) and LLMGW_AUDIT_KEY is not set; "
                    "refusing to append unkeyed records to it: set LLMGW_AUDIT_KEY to the "
                    "log's key"
                )
            raise AuditError(
                f"{path} is an unkeyed audit log (sha256) and LLMGW_AUDIT_KEY is set; refusing "
                "to mix keyed records into it: start a keyed log with another --audit-log, or "
                "unset LLMGW_AUDIT_KEY for this one"
            )
        torn = data[offset:] if verdict.torn else b""
        if not verdict.ok and not verdict.torn:
            raise AuditError(
                f"{path}: the hash chain is broken at line {verdict.broken_at} "
                f"({verdict.reason}); refusing to append. Run `llmgw audit verify {path}`, "
                "keep the file as evidence and start a new log (--audit-log)"
            )
        if records:
            self.seq, self.prev = records[-1]["seq"], records[-1]["hash"]
        sidecar = ""
        try:
            if torn:
                stamp = self.now().strftime("%Y%m%dT%H%M%S%fZ")
                sidecar = f"{path}.torn-{stamp}"
                with open(sidecar, "wb") as f:
                    f.write(torn)
                    f.flush()
                    os.fsync(f.fileno())
                with open(path, "r+b") as f:
                    f.truncate(offset)
                    f.flush()
                    os.fsync(f.fileno())
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            self._size = os.fstat(self._fd).st_size
        except OSError as exc:
            raise AuditError(
                f"{path}: cannot open the audit log ({exc.strerror}); "
                "choose a writable --audit-log path"
            ) from None
        if torn:
            self.append(
                {
                    "event": "torn-line-set-aside",
                    "sidecar": os.path.basename(sidecar),
                    "tornBytes": len(torn),
                    "tornSha256": hashlib.sha256(torn).hexdigest(),
                }
            )
            self.notes.append(
                f"the audit log's last line was torn (an interrupted run); it was moved to "
                f"{sidecar} and the event recorded"
            )

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Write one record and fsync it. AuditError when it cannot; from then on the log
        refuses every append (the caller must stop writing to the org)."""
        with self._mutex:
            if self._failed is not None:
                raise AuditError(
                    f"{self.path}: the audit log failed earlier ({self._failed}); no record "
                    "can be added"
                )
            if self._fd is None:
                raise AuditError(f"{self.path}: the audit log is closed")
            line: dict[str, Any] = {
                "ts": _stamp(self.now()),
                "actor": self.actor,
                "gitCommit": self.git_commit,
                **{
                    k: v
                    for k, v in record.items()
                    if k not in ("seq", "prev", "hash", "chain", "keyId")
                },
            }
            line = dict(redact_mod.scrub(line))
            line["chain"] = self.mode
            if self.key is not None:
                line["keyId"] = key_id(self.key)
            line["seq"] = self.seq + 1
            line["prev"] = self.prev
            line["hash"] = line_hash(line, self.key)
            data = (canonical(line) + "\n").encode("utf-8")
            try:
                _write_all(self._fd, data)
                os.fsync(self._fd)
            except OSError as exc:
                self._failed = exc.strerror or errno.errorcode.get(exc.errno or 0, "I/O error")
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self._size)  # no half line for later ones to follow
                raise AuditError(
                    f"{self.path}: cannot append to the audit log ({self._failed})"
                ) from None
            self._size += len(data)
            self.seq, self.prev = line["seq"], line["hash"]
            return line

    def close(self) -> None:
        """Close the file and release the lock this log took. Never raises."""
        with self._mutex:
            fd, self._fd = self._fd, None
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
            if self._lock is not None and self._own_lock:
                self._lock.release()
            self._lock = None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise OSError(errno.EIO, "short write")
        view = view[n:]
