"""Signals and deadlines, with real processes: `llmgw emulator serve --port 0 --latency-ms 500`
and `llmgw apply ... --auto-approve --parallelism 1` as children.

Covers: SIGTERM mid-apply: exit 143, no new write after the signal (every write the emulator
saw has its audit line), the summary printed with the stop and the last record's hash, `audit
verify --last HASH` intact, a rerun converging and verified; Ctrl+C (SIGINT) stops the same
way with 130; a second SIGTERM while a write is in flight exits at once (no summary); plan,
drift and export exit 143 on SIGTERM during their read (plan 130 on SIGINT), without a
traceback. --timeout: apply stops cleanly (exit 1, the timeout
named, the summary, the chain intact); plan gives up its read with exit 1 naming the timeout;
durations are parsed (90s, 10m, 1h30m, 500ms, plain seconds, 0 for none) and a bad one is a
usage error (64).
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import DURATION, cli
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.server import running
from tests.generated import write_org
from tests.processes import Llmgw, emulator, llmgw, requests_log, set_faults, wait_for, writes

pytestmark = pytest.mark.slow

APPLY = ("apply", "org", "--auto-approve", "--parallelism", "1", "--audit-log", "audit.jsonl")


def _last_record(text: str) -> tuple[int, str]:
    m = re.search(r"Audit log: audit\.jsonl \(last record (\d+): ([0-9a-f]{64})\)", text)
    assert m, text
    return int(m.group(1)), m.group(2)


def _records(tmp: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (tmp / "audit.jsonl").read_text().splitlines()]


def test_sigterm_mid_apply_stops_cleanly_and_a_rerun_converges(tmp_path: Path) -> None:
    write_org(tmp_path / "org", 3, prefix="term")
    with emulator(tmp_path, "--latency-ms", "300", "--rate-limit", "0") as url:
        apply = Llmgw(tmp_path, "apply", url, *APPLY)
        wait_for(lambda: len(writes(url)) >= 2, what="two writes", proc=apply.proc)
        apply.signal(signal.SIGTERM)
        code = apply.wait()
        out = apply.stdout()
        assert code == 143, apply.report()
        assert "SIGTERM received: finishing the writes in flight" in apply.stderr()
        assert "Stopped: interrupted by SIGTERM; no further write was sent." in out
        assert "Apply FAILED" in out and "not attempted" in out
        seq, last = _last_record(out)
        sent = writes(url)
        assert 2 <= len(sent) < 9  # 3 templates, versions, prompts, indexes: 12 writes
        records = _records(tmp_path)
        audited = [r for r in records if "requestId" in r]
        assert sorted(str(r["requestId"]) for r in audited) == sorted(
            str(r["requestId"]) for r in sent
        )
        assert records[-1]["event"] == "run-end" and records[-1]["outcome"] == "stopped"
        assert (seq, last) == (records[-1]["seq"], records[-1]["hash"])
        code, text = llmgw(tmp_path, url, "audit", "verify", "audit.jsonl", "--last", last)
        assert code == 0, text
        set_faults(url, latencyMs=0)
        code, text = llmgw(tmp_path, url, *APPLY)
        assert code == 0 and "Verified: live matches the manifests" in text, text
        assert f"Apply complete: {12 - len(sent)} of {12 - len(sent)} applied" in text


def test_ctrl_c_mid_apply_stops_the_same_way_with_130(tmp_path: Path) -> None:
    write_org(tmp_path / "org", 2, prefix="intr")
    with emulator(tmp_path, "--latency-ms", "200", "--rate-limit", "0") as url:
        apply = Llmgw(tmp_path, "apply", url, *APPLY)
        wait_for(lambda: len(writes(url)) >= 1, what="a write", proc=apply.proc)
        apply.signal(signal.SIGINT)
        code = apply.wait()
        assert code == 130, apply.report()
        assert "SIGINT received: finishing the writes in flight" in apply.stderr()
        assert "Stopped: interrupted by SIGINT; no further write was sent." in apply.stdout()
        _seq, last = _last_record(apply.stdout())
        assert len([r for r in _records(tmp_path) if "requestId" in r]) == len(writes(url))
        code, text = llmgw(tmp_path, url, "audit", "verify", "audit.jsonl", "--last", last)
        assert code == 0, text


def test_a_second_sigterm_exits_at_once(tmp_path: Path) -> None:
    write_org(tmp_path / "org", 3, prefix="twice")
    with emulator(tmp_path, "--latency-ms", "150", "--rate-limit", "0") as url:
        apply = Llmgw(tmp_path, "apply", url, *APPLY)
        wait_for(lambda: len(writes(url)) >= 1, what="a write", proc=apply.proc)
        set_faults(url, latencyMs=60_000)  # from now on a write hangs in flight
        time.sleep(1.0)  # the write sent before the change is answered; the next one hangs
        assert apply.proc.poll() is None
        apply.signal(signal.SIGTERM)
        wait_for(lambda: "SIGTERM received" in apply.stderr(), what="the first signal")
        apply.signal(signal.SIGTERM)
        code = apply.wait()
        assert code == 143, apply.report()
        assert "SIGTERM again: exiting at once" in apply.stderr()
        assert "Apply " not in apply.stdout()  # no summary: it did not wait for the write


@pytest.fixture(scope="module")
def slow_org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with emulator(tmp_path_factory.mktemp("emulator"), "--latency-ms", "300") as url:
        yield url


@pytest.mark.parametrize(
    ("command", "signum", "expected", "said"),
    [
        (("plan", "org"), signal.SIGTERM, 143, "terminated (SIGTERM)"),
        (("drift", "org"), signal.SIGTERM, 143, "terminated (SIGTERM)"),
        (("export", "--out", "exported"), signal.SIGTERM, 143, "terminated (SIGTERM)"),
        (("plan", "org"), signal.SIGINT, 130, "interrupted"),
    ],
    ids=["plan", "drift", "export", "plan-ctrl-c"],
)
def test_read_only_commands_end_at_once_on_a_signal(
    slow_org: str,
    tmp_path: Path,
    command: tuple[str, ...],
    signum: signal.Signals,
    expected: int,
    said: str,
) -> None:
    write_org(tmp_path / "org", 1, prefix="ro")

    def tokens() -> int:
        return sum(1 for r in requests_log(slow_org) if r["path"] == "/oauth/token")

    # This process's own token request, not any request: the previous case's process was cut
    # off mid-read, and the emulator (300 ms latency) logs its last requests after it ended,
    # which could let the signal reach this process before it had even installed its handlers.
    before = tokens()
    proc = Llmgw(tmp_path, "read", slow_org, *command)
    wait_for(lambda: tokens() > before, what="its token request", proc=proc.proc)
    proc.signal(signum)
    code = proc.wait()
    assert code == expected, proc.report()
    assert said in proc.stderr()
    assert "Traceback" not in proc.report() and "internal error" not in proc.report()
    assert not (tmp_path / "exported").exists()


# -- deadlines -------------------------------------------------------------------------------
def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


@pytest.fixture
def slow(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    with running(EmulatorConfig(port=0, ingest_delay=0.0, admin=True, rate_limit=0)) as url:
        monkeypatch.setenv("GENESYS_CLOUD_API_URL", url)
        monkeypatch.setenv("GENESYS_CLOUD_CLIENT_ID", "emulator-client")
        monkeypatch.setenv("GENESYS_CLOUD_CLIENT_SECRET", "emulator-secret")
        yield url


def test_apply_timeout_stops_cleanly(slow: str, tmp_path: Path) -> None:
    write_org(tmp_path / "org", 6, prefix="slow")
    set_faults(slow, latencyMs=150)
    code, out = _invoke(*APPLY, "--timeout", "2s")
    assert code == 1, out
    assert "Stopped: the run did not finish within --timeout 2s" in out
    assert "re-run apply to converge" in out and "or pass a longer --timeout" in out
    _seq, last = _last_record(out)
    assert 0 < len(writes(slow)) < 30
    assert _invoke("audit", "verify", "audit.jsonl", "--last", last)[0] == 0


def test_plan_timeout_gives_up_the_read(slow: str, tmp_path: Path) -> None:
    write_org(tmp_path / "org", 1, prefix="slow")
    set_faults(slow, latencyMs=1500)
    code, out = _invoke("plan", "org", "--timeout", "300ms")
    assert code == 1, out
    assert "plan did not finish within --timeout 300ms" in out and "nothing was written" in out


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90.0), ("10m", 600.0), ("1h30m", 5400.0), ("500ms", 0.5), ("45", 45.0), ("0", None)],
)
def test_durations(text: str, seconds: float | None) -> None:
    assert DURATION.convert(text, None, None).seconds == seconds


def test_a_bad_duration_is_a_usage_error(tmp_path: Path) -> None:
    code, out = _invoke("plan", "org", "--timeout", "soon")
    assert code == 64 and "is not a duration" in out
