"""The CI examples users copy, run as written against a real emulator on loopback.

Covers: every shell step (`run:` in GitHub Actions, `script:` in GitLab CI) of the pull-request,
merge and drift jobs, in order, with the job's environment (CI secrets replaced by the
emulator's client); the plan job leaves plan.md and plan.json, the merge job applies and verifies
the audit chain, the drift job exits 0 in sync and 2 after an out-of-band change; the
pre-commit hook's entry validates; the multi-environment example validates per environment.
Install steps are skipped (the package is already installed in the test environment).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.server import running

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture
def emulator() -> Iterator[str]:
    with running(EmulatorConfig(port=0, ingest_delay=0.0)) as url:
        yield url


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    return tmp_path


def _env(url: str, job_env: dict[str, str], tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENESYS_CLOUD_", "LLMGW_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    for k, v in job_env.items():
        if "${{" in str(v) or str(v).startswith("$"):
            continue  # CI expressions: replaced below
        env[k] = str(v)
    env.update(
        GENESYS_CLOUD_API_URL=url,
        GENESYS_CLOUD_CLIENT_ID="emulator-client",
        GENESYS_CLOUD_CLIENT_SECRET="emulator-secret",
        GITHUB_STEP_SUMMARY=str(tmp / "summary.md"),
    )
    env.pop("GENESYS_CLOUD_REGION", None)
    return env


def _bash(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-eo", "pipefail", "-c", script],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _github_steps(job: str) -> tuple[dict[str, str], list[str]]:
    wf = yaml.safe_load((REPO / "examples/ci/github-actions.yml").read_text())
    spec = wf["jobs"][job]
    env = {**wf.get("env", {}), **spec.get("env", {})}
    steps = [
        s["run"]
        for s in spec["steps"]
        if "run" in s and not s.get("name", "").startswith("Install")
    ]
    return env, steps


def _out_of_band(env: dict[str, str], cwd: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts/out_of_band.py"),
            "support-agent",
            "temperature",
            "1.3",
        ],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_github_actions_jobs_run_as_written(emulator: str, workspace: Path) -> None:
    for job in ("plan", "apply"):
        job_env, steps = _github_steps(job)
        env = _env(emulator, job_env, workspace)
        for script in steps:
            done = _bash(script, env, workspace)
            assert done.returncode == 0, f"{job}: {script}\n{done.stdout}\n{done.stderr}"
        if job == "plan":
            plan_md = (workspace / "plan.md").read_text()
            assert "### llmgw plan for `prod`" in plan_md
            assert "to create" in plan_md
            assert (workspace / "plan.json").exists()
            (workspace / "plan.json").unlink()
    assert "intact" in _bash("llmgw audit verify audit/audit.jsonl", env, workspace).stdout
    job_env, steps = _github_steps("drift")
    env = _env(emulator, job_env, workspace)
    (drift_step,) = steps
    assert _bash(drift_step, env, workspace).returncode == 0
    _out_of_band(env, workspace)
    done = _bash(drift_step, env, workspace)
    assert done.returncode == 2, done.stderr
    assert "temperature" in done.stdout
    assert "llmgw_drift_objects" in (workspace / "drift.prom").read_text()


def test_gitlab_ci_jobs_run_as_written(emulator: str, workspace: Path) -> None:
    ci = yaml.safe_load((REPO / "examples/ci/gitlab-ci.yml").read_text())
    for job in ("validate", "plan", "apply", "drift"):
        spec = ci[job]
        env = _env(emulator, {**ci.get("variables", {}), **spec.get("variables", {})}, workspace)
        for line in spec["script"]:
            done = _bash(line, env, workspace)
            assert done.returncode == 0, f"{job}: {line}\n{done.stdout}\n{done.stderr}"
    assert (workspace / "audit/audit.jsonl").exists()
    assert "llmgw_drift_objects_checked" in (workspace / "drift.prom").read_text()


def test_pre_commit_hook_entry_validates(workspace: Path) -> None:
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    env = _env("http://127.0.0.1:9", {}, workspace)
    done = _bash(" ".join([hook["entry"], *hook["args"]]), env, workspace)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_environment_example_validates(environment: str) -> None:
    base = REPO / "examples/environments"
    env = _env("http://127.0.0.1:9", {}, base)
    done = _bash(f"llmgw validate base envs/{environment}", env, base)
    assert done.returncode == 0, done.stdout + done.stderr
