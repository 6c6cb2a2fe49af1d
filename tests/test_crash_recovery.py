"""An apply killed with SIGKILL halfway, then run again: it converges, duplicates nothing, and the
audit log verifies.

The emulator runs on loopback with latency, so the apply (a real `llmgw apply` process) is still
writing when it is killed; the kill lands once about half the planned writes have reached the
emulator, so some of its requests are in flight and their answers are lost. The second apply
re-reads live, plans only what is missing and finishes; the next plan is empty; every object
exists once; `llmgw audit verify` passes, with a torn last line (if the kill tore one) set aside
by the second run and recorded in the chain.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.server import running
from tests.generated import STORE, write_org

pytestmark = pytest.mark.slow

N = 40  # templates; each with two versions, a prompt with a split, and an index
WRITES = N * 5  # template, 2 versions, prompt (with its split), index


@pytest.fixture
def emulator() -> Iterator[str]:
    config = EmulatorConfig(port=0, ingest_delay=0.0, admin=True, rate_limit=0, latency_ms=40)
    with running(config) as url:
        yield url


def _llmgw(url: str, *args: str, out: Path | None = None) -> subprocess.Popen[str]:
    """``llmgw ARGS`` in a child process; its output to a pipe, or to ``out`` (a long plan would
    fill a pipe nobody reads while the child runs)."""
    env = {
        **os.environ,
        "GENESYS_CLOUD_API_URL": url,
        "GENESYS_CLOUD_CLIENT_ID": "emulator-client",
        "GENESYS_CLOUD_CLIENT_SECRET": "emulator-secret",
        "LLMGW_ACTOR": "crash-test",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", *args],
        env=env,
        stdout=subprocess.PIPE if out is None else out.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )


def _writes(url: str) -> list[dict[str, object]]:
    log = httpx.get(f"{url}/__emulator/requests").json()["requests"]
    return [r for r in log if r["method"] in ("POST", "PUT", "PATCH", "DELETE")]


def test_apply_killed_halfway_then_rerun_converges(emulator: str, tmp_path: Path) -> None:
    write_org(tmp_path / "org", N, prefix="crash", versions=("1.0.0", "1.1.0"), split=True)
    audit_log = tmp_path / "audit.jsonl"
    apply_args = ("apply", str(tmp_path / "org"), "--auto-approve", "--parallelism", "4")
    apply_args += ("--audit-log", str(audit_log))

    first = _llmgw(emulator, *apply_args, out=tmp_path / "first.out")
    deadline = time.monotonic() + 60
    while len(_writes(emulator)) < WRITES // 2:
        if first.poll() is not None:
            raise AssertionError(
                f"apply ended before the kill: {(tmp_path / 'first.out').read_text()}"
            )
        assert time.monotonic() < deadline, "apply made no progress"
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert first.returncode == -signal.SIGKILL
    sent_before = len(_writes(emulator))
    assert WRITES // 2 <= sent_before < WRITES

    lines = audit_log.read_bytes()
    if lines.endswith(b"\n"):
        # the kill fell between two lines; make it fall in one, as SIGKILL can
        with audit_log.open("ab") as f:
            f.write(b'{"ts": "2026-11-23T10:00:00Z", "op": "cre')
    verify = _llmgw(emulator, "audit", "verify", str(audit_log))
    out, _ = verify.communicate(timeout=60)
    assert verify.returncode == 1 and "torn" in out, out

    second = _llmgw(emulator, *apply_args)
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 0, out
    assert "torn" in out  # the set-aside is said, not silent
    # the second run planned only what the first did not finish
    assert 0 < len(_writes(emulator)) - sent_before <= WRITES - sent_before + 4 * 4

    again = _llmgw(emulator, "plan", str(tmp_path / "org"), "--detailed-exitcode")
    out, _ = again.communicate(timeout=60)
    assert again.returncode == 0, out

    state = httpx.get(f"{emulator}/__emulator/state").json()
    names = Counter(t["name"] for t in state["templates"].values())
    assert len(names) == N and set(names.values()) == {1}
    prompts = Counter(p["name"] for p in state["prompts"].values())
    assert len(prompts) == N and set(prompts.values()) == {1}
    assert all(set(v) == {"1.0.0", "1.1.0"} for v in state["versions"].values())
    assert len(state["indexes"][STORE]) >= N

    verify = _llmgw(emulator, "audit", "verify", str(audit_log))
    out, _ = verify.communicate(timeout=60)
    assert verify.returncode == 0, out
    records = [json.loads(line) for line in audit_log.read_text().splitlines()]
    assert any(r.get("event") == "torn-line-set-aside" for r in records)
    assert list(tmp_path.glob("audit.jsonl.torn-*"))
