"""Nothing lost on the way to disk, and one apply per audit log.

Covers, before the first write (exit 1, not one request sent): an audit log, a metrics file or
a plan's --out that is a symlink to /dev/full (the kernel's ENOSPC device), a --out whose folder
cannot be created. During the run, in a real process whose file-size limit (RLIMIT_FSIZE) makes
the kernel refuse an audit line halfway (EFBIG, SIGXFSZ ignored): the run stops before any
further write, exit 1, the summary names the audit failure and lists the applied writes that
have no audit line, every write the emulator saw is either audited or listed, the half line is
cut back so the chain verifies, and a rerun converges. A metrics file that cannot be written
at the end (fault injected: ENOSPC on rename) is a warning after a successful apply, exit 0.
Two real applies on one audit log: the second waits for the lock and the chain holds both runs,
never interleaved; with a short --lock-timeout the second refuses, naming the holder's pid.
Output that cannot be written (stdout on /dev/full) is exit 1 with a message, not a crash.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler import files
from reconciler.cli import cli
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.server import running
from tests.generated import write_org
from tests.processes import (
    Llmgw,
    child_env,
    emulator,
    llmgw,
    requests_log,
    wait_for,
    writes,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


@pytest.fixture
def org(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    with running(EmulatorConfig(port=0, ingest_delay=0.0, admin=True, rate_limit=0)) as url:
        monkeypatch.setenv("GENESYS_CLOUD_API_URL", url)
        monkeypatch.setenv("GENESYS_CLOUD_CLIENT_ID", "emulator-client")
        monkeypatch.setenv("GENESYS_CLOUD_CLIENT_SECRET", "emulator-secret")
        yield url


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("apply", "manifests/", "--auto-approve", "--audit-log", "full"), "not a regular file"),
        (("apply", "manifests/", "--auto-approve", "--metrics-file", "full"), "not a regular"),
        (("plan", "manifests/", "--out", "full"), "not a regular file (a device)"),
        (("plan", "manifests/", "--out", "full/plan.json"), "a part of its path is not a folder"),
    ],
    ids=["audit-log", "metrics-file", "plan-out", "plan-out-folder"],
)
def test_unwritable_files_are_found_before_anything_is_sent(
    org: str, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    (tmp_path / "full").symlink_to("/dev/full")
    code, out = _invoke(*args)
    assert code == 1, out
    assert message in out and "Traceback" not in out
    assert requests_log(org) == []  # not even a token: the org was not read


def test_a_metrics_file_failing_at_the_end_is_a_warning(
    org: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.replace

    def full(src: str, dst: str) -> None:
        if str(dst).endswith("apply.prom"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(files.os, "replace", full)
    code, out = _invoke("apply", "manifests/", "--auto-approve", "--metrics-file", "apply.prom")
    assert code == 0, out
    assert "Apply complete" in out
    assert "warning: metrics file not written: apply.prom: cannot be written (No space" in out
    assert not (tmp_path / "apply.prom").exists()


def _file_limit(limit: int) -> None:
    """In the child: the kernel refuses to grow any file past ``limit`` bytes (EFBIG)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_an_audit_line_the_kernel_refuses_stops_the_run(tmp_path: Path) -> None:
    write_org(tmp_path / "org", 4, prefix="efbig")
    apply = ("apply", "org", "--auto-approve", "--parallelism", "1", "--audit-log", "audit.jsonl")
    with emulator(tmp_path, "--rate-limit", "0") as url:
        # output to pipes: the limit applies to every file the child writes, its output too
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", *apply],
            env=child_env(url),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=90,
            preexec_fn=lambda: _file_limit(3000),
        )
        out = done.stdout
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Stopped: the audit log could not be written" in out and "File too large" in out
        assert "the run stopped before any further write" in done.stderr
        unaudited = [ln for ln in out.splitlines() if ln.startswith("applied, but no audit line")]
        assert len(unaudited) == 1, out
        log = (tmp_path / "audit.jsonl").read_bytes()
        assert len(log) <= 3000 and log.endswith(b"\n")  # the half line was cut back
        records = [json.loads(line) for line in log.splitlines()]
        audited = {r["requestId"] for r in records if "requestId" in r}
        sent = writes(url)
        assert 2 <= len(sent) < 20
        missing = [w for w in sent if w["requestId"] not in audited]
        assert len(missing) == 1 and missing[0]["path"] in unaudited[0]
        code, text = llmgw(tmp_path, url, "audit", "verify", "audit.jsonl")
        assert code == 0, text
        code, text = llmgw(tmp_path, url, *apply)
        assert code == 0, text


def test_two_applies_on_one_log_never_interleave(tmp_path: Path) -> None:
    write_org(tmp_path / "a", 1, prefix="alpha")
    write_org(tmp_path / "b", 1, prefix="beta")
    common = ("--auto-approve", "--parallelism", "2", "--audit-log", "shared.jsonl")
    with emulator(tmp_path, "--latency-ms", "120", "--rate-limit", "0") as url:
        first = Llmgw(tmp_path, "a", url, "apply", "a", *common, "--env", "a", LLMGW_ACTOR="ana")
        lock = tmp_path / "shared.jsonl.lock"
        wait_for(lambda: lock.exists() and lock.read_text(), what="the lock", proc=first.proc)
        second = Llmgw(
            tmp_path, "b", url, "apply", "b", *common, "--env", "b", "--lock-timeout", "60s"
        )
        assert first.wait() == 0, first.report()
        assert second.wait() == 0, second.report()
        assert f"waiting up to 60s for the audit log's lock, held by pid {first.pid}" in (
            second.stderr()
        )
        code, text = llmgw(tmp_path, url, "audit", "verify", "shared.jsonl")
        assert code == 0, text
    records = [json.loads(x) for x in (tmp_path / "shared.jsonl").read_text().splitlines()]
    envs = [r["environment"] for r in records]
    assert envs == ["a"] * envs.count("a") + ["b"] * envs.count("b"), envs
    assert envs.count("a") == envs.count("b") == 2 + 4  # run-start, 4 writes, run-end


def test_a_second_apply_refuses_after_the_lock_timeout_naming_the_holder(tmp_path: Path) -> None:
    write_org(tmp_path / "a", 2, prefix="alpha")
    write_org(tmp_path / "b", 2, prefix="beta")
    common = ("--auto-approve", "--parallelism", "1", "--audit-log", "shared.jsonl")
    with emulator(tmp_path, "--latency-ms", "300", "--rate-limit", "0") as url:
        first = Llmgw(tmp_path, "a", url, "apply", "a", *common, LLMGW_ACTOR="ana")
        lock = tmp_path / "shared.jsonl.lock"
        wait_for(lambda: lock.exists() and lock.read_text(), what="the lock", proc=first.proc)
        code, out = llmgw(tmp_path, url, "apply", "b", *common, "--lock-timeout", "1s")
        assert code == 1, out
        holder = f"pid {first.pid} on {socket.gethostname()}, actor ana, since "
        assert f"shared.jsonl is locked by another apply ({holder}" in out, out
        assert "waited 1 s" in out and "--lock-timeout" in out
        assert "Read the org" not in out  # refused before reading anything
        first.signal(signal.SIGTERM)  # no need to wait for the rest of it
        assert first.wait() == 143, first.report()


def test_output_that_cannot_be_written_is_exit_1_not_a_crash(tmp_path: Path) -> None:
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", "validate", "manifests/"],
            cwd=tmp_path,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1, done.stderr
    assert "the output could not be written (stdout: No space left on device)" in done.stderr
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr
