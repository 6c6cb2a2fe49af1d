"""Rollouts end to end: real `llmgw` processes against `llmgw emulator serve` on loopback, the
emulator's traffic and clock moving virtual time.

Covers: apply starts a rollout at step 1; `rollout advance` with the clock moved steps it to the
end state on A/A traffic, drift staying 0 all the while; a canary with +10 points of errors is
rolled back (exit 2), withdrawn, and `plan` says it stays aborted (apply changes nothing); two
advances at once step once; a `kill -9` mid-advance then a rerun converges; a dry run and status
write nothing; the overrides (pause, resume, abort, promote), each an audit record; status's
Markdown carries the evidence table and the Mermaid chart; the cron recipe in examples/ci runs
as written.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from reconciler.rollout import labels
from tests.processes import (
    Llmgw,
    child_env,
    emulator,
    llmgw,
    requests_log,
    set_faults,
    wait_for,
    writes,
)
from tests.rollout_manifests import rollout_manifests

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
GATES = """    gates:
      errorRate: {maxIncrease: 0.02}
      latencyP95Ms: {maxRatio: 1.25}
"""


def manifests(tmp: Path) -> Path:
    return rollout_manifests(tmp, GATES)


def traffic(url: str, canary_errors: float, stable_errors: float = 0.01) -> None:
    body = {
        "prompts": {
            "support-agent": {
                "perMinute": 600,
                "versions": {
                    "2.0.0": {"errorRate": stable_errors},
                    "2.1.0": {"errorRate": canary_errors},
                },
            }
        }
    }
    r = httpx.put(f"{url}/__emulator/traffic", json=body)
    assert r.status_code == 200, r.text


def advance_clock(url: str, minutes: float) -> None:
    r = httpx.post(f"{url}/__emulator/clock", json={"advanceSeconds": minutes * 60})
    assert r.status_code == 200, r.text


def state(url: str) -> dict[str, Any]:
    data: dict[str, Any] = httpx.get(f"{url}/__emulator/state").json()
    return data


def prompt(url: str, name: str = "support-agent") -> dict[str, Any]:
    (p,) = [p for p in state(url)["prompts"].values() if p["name"] == name]
    return dict(p)


def canary_version(url: str) -> dict[str, Any]:
    for versions in state(url)["versions"].values():
        v = versions.get("2.1.0")
        if v is not None:
            return dict(v)
    raise AssertionError("no version 2.1.0")


def position(url: str) -> labels.Position | None:
    return labels.position(prompt(url).get("labels") or {})


def weights(url: str) -> dict[str, float]:
    td = prompt(url)["trafficDistribution"]
    if "defaultVersion" in td:
        return {td["defaultVersion"]: 1.0}
    return {e["version"]: e["weight"] for e in td["versions"]}


def started(tmp: Path, url: str) -> Path:
    """The example org applied, then the rollout manifests: the rollout at step 1."""
    m = manifests(tmp)
    code, out = llmgw(tmp, url, "apply", str(REPO / "manifests"), "--auto-approve")
    assert code == 0, out
    code, out = llmgw(tmp, url, "apply", str(m), "--auto-approve")
    assert code == 0, out
    assert "start rollout 2.0.0 -> 2.1.0 at 5 %" in out
    assert weights(url) == {"2.0.0": 0.95, "2.1.0": 0.05}
    return m


def advance(tmp: Path, url: str, m: Path, *args: str) -> tuple[int, dict[str, Any]]:
    code, out = llmgw(tmp, url, "rollout", "advance", str(m), "--output", "json", *args)
    data = json.loads(out[: out.rindex("}") + 1])
    return code, data


def test_a_healthy_rollout_reaches_its_end_state_and_drift_stays_zero(tmp_path: Path) -> None:
    with emulator(tmp_path, "--seed", "7") as url:
        m = started(tmp_path, url)
        traffic(url, canary_errors=0.01)
        seen_steps = []
        for _ in range(30):
            advance_clock(url, 10)
            code, data = advance(tmp_path, url, m)
            assert code == 0, data
            (o,) = data["rollouts"]
            assert o["error"] is None
            pos = position(url)
            assert pos is not None
            seen_steps.append(pos.step)
            if pos.state == labels.PROGRESSING and pos.step == 2:
                code, out = llmgw(tmp_path, url, "drift", str(m))
                assert code == 0, out  # a rollout in progress is never drift
                assert "rollout 2.0.0 -> 2.1.0 progressing at step 2" in out
            if pos.state == labels.DONE:
                break
        assert position(url).state == labels.DONE, seen_steps
        assert weights(url) == {"2.1.0": 1.0}
        assert sorted(set(seen_steps)) == [1, 2, 3, 4]  # every step, in order, then the end
        assert seen_steps == sorted(seen_steps)
        code, out = llmgw(tmp_path, url, "plan", str(m), "--detailed-exitcode")
        assert code == 0, out
        code, out = llmgw(tmp_path, url, "audit", "verify", ".llmgw/audit.jsonl")
        assert code == 0, out
        records = [
            json.loads(x) for x in (tmp_path / ".llmgw/audit.jsonl").read_text().split("\n") if x
        ]
        acts = [r["action"] for r in records if r.get("event") == "rollout"]
        assert [a for a in acts if a != "wait"] == ["step", "step", "finish"]
        assert acts.count("wait") >= 3  # every decision is a record, with its evidence
        assert all(
            r["evidence"] for r in records if r.get("event") == "rollout" and r["action"] != "wait"
        )


def test_a_bad_canary_is_rolled_back_withdrawn_and_stays_aborted(tmp_path: Path) -> None:
    with emulator(tmp_path, "--seed", "7") as url:
        m = started(tmp_path, url)
        traffic(url, canary_errors=0.11)
        codes = []
        for _ in range(12):
            advance_clock(url, 10)
            code, data = advance(tmp_path, url, m)
            codes.append(code)
            if code == 2:
                break
        assert codes[-1] == 2, codes
        assert set(codes[:-1]) <= {0}
        (o,) = data["rollouts"]
        assert o["decision"]["action"] == "rollback"
        assert "2.1.0 withdrawn" in o["acted"]
        (gate,) = [e for e in o["decision"]["evidence"] if e["gate"] == "errorRate"]
        assert gate["verdict"] == "fail" and gate["interval"][0] > 0.02
        assert weights(url) == {"2.0.0": 1.0}
        version = canary_version(url)
        assert version["rollbackDirective"] is True
        assert version["labels"][labels.WITHDRAWN_BY] == "support-agent"
        # it stays aborted: plan says so, apply sends nothing, drift is 0, advance waits
        code, out = llmgw(tmp_path, url, "plan", str(m), "--detailed-exitcode")
        assert code == 0, out
        assert "stays aborted" in out and "withdrawn by the rollout of support-agent" in out
        before = len(writes(url))
        code, out = llmgw(tmp_path, url, "apply", str(m), "--auto-approve")
        assert code == 0, out
        assert len(writes(url)) == before
        code, out = llmgw(tmp_path, url, "drift", str(m))
        assert code == 0, out
        advance_clock(url, 60)
        code, data = advance(tmp_path, url, m)
        assert code == 0 and data["rollouts"][0]["decision"]["action"] == "wait"
        assert len(writes(url)) == before


def _ready_to_step(tmp_path: Path, url: str) -> Path:
    m = started(tmp_path, url)
    traffic(url, canary_errors=0.01)
    advance_clock(url, 60)  # an hour at step 1: 1,800 canary invocations, the interval passed
    return m


def test_two_advances_at_once_step_once(tmp_path: Path) -> None:
    with emulator(tmp_path, "--seed", "7") as url:
        m = _ready_to_step(tmp_path, url)
        set_faults(url, latencyMs=400)  # both read before either writes
        before = len(writes(url))
        runs = [
            Llmgw(
                tmp_path, f"adv{i}", url, "rollout", "advance", str(m), "--audit-log", f"a{i}.jsonl"
            )
            for i in range(2)
        ]
        codes = [r.wait() for r in runs]
        assert codes == [0, 0], [r.report() for r in runs]
        puts = [
            w for w in writes(url)[before:] if w["method"] == "PUT" and "/prompts/" in w["path"]
        ]
        statuses = sorted(w["status"] for w in puts)
        assert statuses in ([200], [200, 412]), statuses
        assert position(url).step == 2
        assert weights(url) == {"2.0.0": 0.75, "2.1.0": 0.25}
        outputs = " ".join(r.stdout() for r in runs)
        assert "stepped to 2 of 3" in outputs
        if statuses == [200, 412]:
            assert "another run moved this rollout first" in outputs


def test_kill_9_mid_advance_then_a_rerun_converges(tmp_path: Path) -> None:
    with emulator(tmp_path, "--seed", "7") as url:
        m = _ready_to_step(tmp_path, url)
        set_faults(url, latencyMs=500)
        run = Llmgw(tmp_path, "killed", url, "rollout", "advance", str(m))

        def analytics_sent() -> bool:
            return any("/analytics/" in r["path"] for r in requests_log(url))

        wait_for(analytics_sent, what="the advance to query analytics", proc=run.proc)
        time.sleep(0.7)  # the answer arrives after 0.5 s; the PUT is then on its way
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
        set_faults(url, latencyMs=0)
        code, data = advance(tmp_path, url, m)
        assert code == 0, data
        pos = position(url)
        assert pos is not None and pos.step == 2 and pos.state == labels.PROGRESSING
        assert weights(url) == {"2.0.0": 0.75, "2.1.0": 0.25}
        # and the next one waits at step 2: the step happened exactly once
        code, data = advance(tmp_path, url, m)
        assert data["rollouts"][0]["decision"]["action"] == "wait"


def test_dry_run_and_status_write_nothing(tmp_path: Path) -> None:
    with emulator(tmp_path, "--seed", "7") as url:
        m = _ready_to_step(tmp_path, url)
        before = len(writes(url))
        code, data = advance(tmp_path, url, m, "--dry-run")
        assert code == 0
        assert data["rollouts"][0]["acted"].startswith("dry run, not done: stepped to 2")
        code, out = llmgw(tmp_path, url, "rollout", "status", str(m), "--output", "markdown")
        assert code == 0, out
        assert "| gate | stable | canary | limit | verdict | confidence |" in out
        assert "```mermaid" in out and "xychart-beta" in out
        assert [w for w in writes(url)[before:] if "/analytics/" not in w["path"]] == []
        assert not (tmp_path / ".llmgw" / "audit.jsonl").read_text().count('"event":"rollout"')


def test_overrides_are_audited_and_honoured(tmp_path: Path) -> None:
    with emulator(tmp_path, "--seed", "7") as url:
        m = _ready_to_step(tmp_path, url)
        code, out = llmgw(tmp_path, url, "rollout", "pause", "support-agent", str(m))
        assert code == 0, out
        assert position(url).state == labels.PAUSED
        code, data = advance(tmp_path, url, m)
        assert code == 0 and data["rollouts"][0]["decision"]["action"] == "wait"
        assert "resume" in data["rollouts"][0]["decision"]["reason"]
        code, out = llmgw(tmp_path, url, "rollout", "pause", "support-agent", str(m))
        assert code == 1 and "not progressing" in out
        code, out = llmgw(tmp_path, url, "rollout", "resume", "support-agent", str(m))
        assert code == 0, out
        assert position(url).state == labels.PROGRESSING
        code, out = llmgw(tmp_path, url, "rollout", "abort", "support-agent", str(m))
        assert code == 0, out
        assert weights(url) == {"2.0.0": 1.0} and position(url).state == labels.ABORTED
        assert (
            canary_version(url)["rollbackDirective"] is False
        )  # a person's abort withdraws nothing
        code, out = llmgw(tmp_path, url, "rollout", "promote", "support-agent", str(m))
        assert code == 0, out
        assert weights(url) == {"2.1.0": 1.0} and position(url).state == labels.DONE
        code, out = llmgw(tmp_path, url, "rollout", "promote", "nobody", str(m))
        assert code == 1 and "no TrafficSplit for prompt" in out
        records = [
            json.loads(x) for x in (tmp_path / ".llmgw/audit.jsonl").read_text().split("\n") if x
        ]
        acts = [r["action"] for r in records if r.get("event") == "rollout"]
        assert acts == ["pause", "wait", "resume", "abort", "promote"]
        assert all(r["actor"] for r in records)


def test_no_rollout_and_bad_manifests_are_clear_errors_with_nothing_sent(tmp_path: Path) -> None:
    with emulator(tmp_path) as url:
        code, out = llmgw(tmp_path, url, "rollout", "advance", str(REPO / "manifests"))
        assert code == 1 and "no TrafficSplit in the manifests has a rollout block" in out
        bad = manifests(tmp_path)
        f = bad / "prompts" / "support-agent.yaml"
        f.write_text(f.read_text().replace("interval: 30m", "interval: soon"))
        code, out = llmgw(tmp_path, url, "rollout", "advance", str(bad))
        assert code == 1 and "spec.rollout.interval" in out
        assert "Traceback" not in out
        assert [r for r in requests_log(url) if not r["path"].startswith("/__")] == []


def test_the_cron_recipe_runs_as_written(tmp_path: Path) -> None:
    """examples/ci/rollout-advance.yml: one job, concurrency 1 never cancelled, its advance
    step run as written (llmgw from this checkout) with the job's environment."""
    workflow = yaml.safe_load((REPO / "examples/ci/rollout-advance.yml").read_text())
    (job,) = workflow["jobs"].values()
    assert job["concurrency"]["cancel-in-progress"] is False
    assert workflow[True]["schedule"]  # yaml reads `on:` as True
    steps = [s for s in job["steps"] if "run" in s and not s["name"].startswith("Install")]
    with emulator(tmp_path, "--seed", "7") as url:
        _ready_to_step(tmp_path, url)
        shutil.copytree(tmp_path / "m", tmp_path / "manifests", dirs_exist_ok=True)
        summary = tmp_path / "summary.md"
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        shim = bin_dir / "llmgw"
        shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m reconciler "$@"\n')
        shim.chmod(0o755)
        env = child_env(url, GITHUB_STEP_SUMMARY=str(summary), LLMGW_ENVIRONMENT="prod")
        env["PATH"] = f"{bin_dir}:{env['PATH']}"
        for step in steps:
            done = subprocess.run(
                ["bash", "-eo", "pipefail", "-c", step["run"]],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, (step["name"], done.stdout, done.stderr)
        text = summary.read_text()
        assert "stepped to 2 of 3" in text and "```mermaid" in text
        assert "llmgw_rollout_canary_weight" in (tmp_path / "rollout.prom").read_text()
