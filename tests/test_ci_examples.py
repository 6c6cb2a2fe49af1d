"""The CI examples users copy, run as written against a real emulator on loopback.

Covers: every shell step (`run:` in GitHub Actions, `script:` and `before_script:` in GitLab CI)
of the pull-request, merge and drift jobs, in order, with the job's environment (CI secrets
replaced by the emulator's client). The plan job's comment step runs too, against a fake of
GitHub's / GitLab's API on loopback (tests/comment_fakes.py) with the variables a pull-request
run has: the plan job runs twice (two pushes) and leaves exactly one comment. The install steps
run too, literally, with only the repository URL rewritten to a local git repository of the
checkout carrying the tag the line
pins, into a fresh venv whose bin is first on PATH (one venv per example file: every job of a
file has the same install line, checked); the jobs then use that install. The plan job leaves
plan.md and plan.json, the merge job applies and verifies the audit chain, the drift job exits
0 in sync and 2 after an out-of-band change. The plan job's SARIF step leaves llmgw.sarif,
valid against the SARIF 2.1.0 schema, and its exit code in GITHUB_OUTPUT; on invalid manifests
the step still passes (the upload after it runs), the log holds every problem and the Validate
step fails the job; the upload step runs `if: always()` with `security-events: write`. With
the example policy packs in policies/, the policy test step passes (and fails on a pack whose
test fails), and the Validate step, reading policies/ by default in the job's prod
environment, fails on the example's splits that have no rollout.
Statically: no job pairs a -slim or -alpine image (no git) with a git+ install, and the
images' Python satisfies requires-python; the slim-image alternative the GitLab example offers
(the tag's archive) installs with no git on PATH. The pre-commit hook's entry validates and its
`files` takes .yaml/.yml in any case; the multi-environment example validates per environment.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomllib
import yaml

from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.server import running
from tests.comment_fakes import BOT_TOKEN, GITLAB_TOKEN, Fake, serving
from tests.test_install import (
    INSTALL_TIMEOUT,
    TAG,
    clean_env,
    fresh_venv,
    install_root,
    installed_from_wheel,
    source_repository,
)
from tests.test_views_sarif import assert_valid_sarif

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
GITHUB = REPO / "examples/ci/github-actions.yml"
GITLAB = REPO / "examples/ci/gitlab-ci.yml"
# The repository URL the examples install from, and the ref they pin
UPSTREAM = re.compile(r"git\+https://github\.com/your-org/llmgw@(?P<ref>[^\s\"']+)")
BASH = shutil.which("bash") or "/bin/bash"  # found once: a step may run with a bare PATH


def _github() -> dict[str, Any]:
    workflow: dict[str, Any] = yaml.safe_load(GITHUB.read_text())
    return workflow


def _gitlab() -> dict[str, Any]:
    ci: dict[str, Any] = yaml.safe_load(GITLAB.read_text())
    return ci


def _github_install_lines() -> list[str]:
    return [
        s["run"]
        for job in _github()["jobs"].values()
        for s in job["steps"]
        if s.get("name", "").startswith("Install")
    ]


def _gitlab_install_lines() -> list[str]:
    lines: list[str] = _gitlab()["default"]["before_script"]
    return lines


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def git_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A loopback HTTP server standing in for the git host: a bare clone of the checkout's
    repository (git's "dumb" HTTP protocol needs only static files) and the tag's archive.
    Its URL replaces https://github.com/your-org; the scheme stays a URL with a host, as the
    examples' is (the pip of a fresh 3.11 venv refuses `git+file:///...` requirements)."""
    root = install_root(tmp_path_factory)
    served = root / "served"
    served.mkdir(parents=True, exist_ok=True)
    bare = served / "llmgw.git"
    if not bare.exists():
        source = source_repository(root)
        run_git = functools.partial(subprocess.run, check=True, capture_output=True)
        run_git(["git", "clone", "-q", "--bare", str(source), str(bare)])
        run_git(["git", "update-server-info"], cwd=bare)
        archive = served / f"{TAG}.tar.gz"
        prefix = f"--prefix=llmgw-{TAG.removeprefix('v')}/"
        run_git(["git", "archive", "--format=tar.gz", prefix, "-o", str(archive), TAG], cwd=bare)
    handler = functools.partial(_Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@functools.cache
def _installed(root: Path, host: str, example: str, lines: tuple[str, ...]) -> Path:
    """A fresh venv (bin first on PATH) in which ``lines``, an example's install step, ran as
    written but for the git host, now ``host`` serving the checkout's repository."""
    bin_dir = fresh_venv(root / f"ci-{example}-venv")
    env = clean_env(bin_dir)
    for line in lines:
        match = UPSTREAM.search(line)
        assert match and match["ref"] == TAG, f"{example}: {line} pins no {TAG} of llmgw"
        local = UPSTREAM.sub(lambda m: f"git+{host}/llmgw.git@{m['ref']}", line)
        done = _bash(local, env, root, timeout=INSTALL_TIMEOUT)
        assert done.returncode == 0, f"{example}: {local}\n{done.stdout}\n{done.stderr}"
    return bin_dir


@pytest.fixture(scope="session")
def github_bin(tmp_path_factory: pytest.TempPathFactory, git_host: str) -> Path:
    lines = _github_install_lines()
    assert len(lines) == 3 and len(set(lines)) == 1, "every job installs the same way"
    return _installed(install_root(tmp_path_factory), git_host, "github", tuple(lines[:1]))


@pytest.fixture(scope="session")
def gitlab_bin(tmp_path_factory: pytest.TempPathFactory, git_host: str) -> Path:
    lines = tuple(_gitlab_install_lines())
    return _installed(install_root(tmp_path_factory), git_host, "gitlab", lines)


@pytest.fixture(scope="session")
def wheel_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return installed_from_wheel(install_root(tmp_path_factory))


@pytest.fixture
def emulator() -> Iterator[str]:
    with running(EmulatorConfig(port=0, ingest_delay=0.0)) as url:
        yield url


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    return tmp_path


def _env(url: str, job_env: dict[str, str], tmp: Path, bin_dir: Path) -> dict[str, str]:
    env = clean_env(bin_dir)
    for k, v in job_env.items():
        if "${{" in str(v) or str(v).startswith("$"):
            continue  # CI expressions: replaced below
        env[k] = str(v)
    env.update(
        GENESYS_CLOUD_API_URL=url,
        GENESYS_CLOUD_CLIENT_ID="emulator-client",
        GENESYS_CLOUD_CLIENT_SECRET="emulator-secret",
        GITHUB_STEP_SUMMARY=str(tmp / "summary.md"),
        GITHUB_OUTPUT=str(tmp / "github-output.txt"),
    )
    env.pop("GENESYS_CLOUD_REGION", None)
    return env


def _bash(
    script: str, env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BASH, "-eo", "pipefail", "-c", script],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _github_steps(job: str) -> tuple[dict[str, str], list[tuple[str, dict[str, str]]]]:
    """A job's environment and its shell steps after the install step (which the github_bin
    fixture ran as written), each with its own ``env:``."""
    wf = _github()
    spec = wf["jobs"][job]
    env = {**wf.get("env", {}), **spec.get("env", {})}
    runs = [s for s in spec["steps"] if "run" in s]
    assert runs[0].get("name", "").startswith("Install")
    return env, [(s["run"], s.get("env", {})) for s in runs[1:]]


def _step_env(env: dict[str, str], step_env: dict[str, str]) -> dict[str, str]:
    """``env`` with a step's own ``env:`` on top, its CI expressions left to what the test set
    (the runner's variables, the fakes' token)."""
    out = dict(env)
    out.update({k: str(v) for k, v in step_env.items() if "${{" not in str(v)})
    return out


@pytest.fixture
def github_api(workspace: Path) -> Iterator[tuple[Fake, dict[str, str]]]:
    """A fake GitHub API on loopback and the variables a pull_request run has: the plan job's
    comment step talks to it. GITHUB_TOKEN stands in for the step's ${{ github.token }}."""
    with serving("github") as fake:
        fake.comments["your-org/manifests/pull/12"] = []
        event = workspace / "event.json"
        event.write_text(json.dumps({"pull_request": {"number": 12}}))
        yield (
            fake,
            {
                "GITHUB_ACTIONS": "true",
                "GITHUB_API_URL": fake.url,
                "GITHUB_SERVER_URL": "https://github.com",
                "GITHUB_REPOSITORY": "your-org/manifests",
                "GITHUB_EVENT_PATH": str(event),
                "GITHUB_RUN_ID": "4711",
                "GITHUB_TOKEN": BOT_TOKEN,
            },
        )


@pytest.fixture
def gitlab_api() -> Iterator[tuple[Fake, dict[str, str]]]:
    """A fake GitLab API on loopback and the variables of a merge request pipeline."""
    with serving("gitlab") as fake:
        fake.comments["31/merge_requests/8"] = []
        yield (
            fake,
            {
                "GITLAB_CI": "true",
                "CI_API_V4_URL": fake.url,
                "CI_PROJECT_ID": "31",
                "CI_MERGE_REQUEST_IID": "8",
                "CI_JOB_URL": "https://gitlab.example.com/your-org/manifests/-/jobs/99",
                "LLMGW_GITLAB_TOKEN": GITLAB_TOKEN,
            },
        )


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


def test_github_actions_jobs_run_as_written(
    emulator: str,
    workspace: Path,
    github_bin: Path,
    github_api: tuple[Fake, dict[str, str]],
) -> None:
    fake, runner = github_api
    for job in ("plan", "plan", "apply"):  # two pushes to the pull request, then the merge
        job_env, steps = _github_steps(job)
        env = {**_env(emulator, job_env, workspace, github_bin), **runner}
        for script, step_env in steps:
            done = _bash(script, _step_env(env, step_env), workspace)
            assert done.returncode == 0, f"{job}: {script}\n{done.stdout}\n{done.stderr}"
            assert BOT_TOKEN not in done.stdout + done.stderr
        if job == "plan":
            doc = assert_valid_sarif((workspace / "llmgw.sarif").read_text(encoding="utf-8"))
            assert doc["runs"][0]["results"] == []  # the example org is valid
            assert (workspace / "github-output.txt").read_text().splitlines()[-1] == "exit-code=0"
            plan_md = (workspace / "plan.md").read_text()
            assert "### llmgw plan for `prod`" in plan_md
            assert "to create" in plan_md
            assert (workspace / "plan.json").exists()
            (workspace / "plan.json").unlink()
    (note,) = fake.comments["your-org/manifests/pull/12"]  # one comment after two pushes
    assert note["body"].startswith("<!-- llmgw-plan: prod -->\n### llmgw plan for `prod`")
    assert note["user"]["type"] == "Bot"
    assert "intact" in _bash("llmgw audit verify audit/audit.jsonl", env, workspace).stdout
    job_env, steps = _github_steps("drift")
    env = _env(emulator, job_env, workspace, github_bin)
    ((drift_step, _),) = steps
    assert _bash(drift_step, env, workspace).returncode == 0
    _out_of_band(env, workspace)
    done = _bash(drift_step, env, workspace)
    assert done.returncode == 2, done.stderr
    assert "temperature" in done.stdout
    assert "llmgw_drift_objects" in (workspace / "drift.prom").read_text()


def test_github_sarif_step_survives_invalid_manifests(
    workspace: Path, github_bin: Path, github_api: tuple[Fake, dict[str, str]]
) -> None:
    """Invalid manifests: the SARIF step passes with exit-code=1 in GITHUB_OUTPUT, so the
    upload (`if: always()`) gets every problem; the Validate step then fails the job."""
    _, runner = github_api
    shutil.copy(REPO / "tests/corpus/invalid/split-weights.yaml", workspace / "manifests")
    spec = _github()["jobs"]["plan"]
    assert spec["permissions"]["security-events"] == "write"
    steps = spec["steps"]
    (at,) = [i for i, s in enumerate(steps) if s.get("id") == "sarif"]
    upload, validate = steps[at + 1], steps[at + 2]
    assert upload["uses"].startswith("github/codeql-action/upload-sarif@v3")
    assert upload["if"] == "always()" and upload["with"]["sarif_file"] == "llmgw.sarif"
    job_env, _ = _github_steps("plan")
    env = {**_env("http://127.0.0.1:9", job_env, workspace, github_bin), **runner}
    done = _bash(steps[at]["run"], _step_env(env, steps[at].get("env", {})), workspace)
    assert done.returncode == 0, done.stderr
    assert (workspace / "github-output.txt").read_text() == "exit-code=1\n"
    doc = assert_valid_sarif((workspace / "llmgw.sarif").read_text(encoding="utf-8"))
    results = doc["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == ["reference.missing", "split.weights"]
    for r in results:
        assert r["locations"][0]["physicalLocation"]["artifactLocation"] == {
            "uri": "manifests/split-weights.yaml",
            "uriBaseId": "%SRCROOT%",
        }
    done = _bash(validate["run"], _step_env(env, validate.get("env", {})), workspace)
    assert done.returncode == 1
    assert "::error file=manifests/split-weights.yaml" in done.stdout


def test_github_policy_steps_use_the_repositorys_packs(
    workspace: Path, github_bin: Path, github_api: tuple[Fake, dict[str, str]]
) -> None:
    _, runner = github_api
    steps = _github()["jobs"]["plan"]["steps"]
    (policy,) = [s for s in steps if s.get("name") == "Test the policy packs"]
    (validate,) = [s for s in steps if s.get("name") == "Validate"]
    job_env, _ = _github_steps("plan")
    env = {**_env("http://127.0.0.1:9", job_env, workspace, github_bin), **runner}
    assert env["LLMGW_ENVIRONMENT"] == "prod"
    assert _bash(policy["run"], env, workspace).returncode == 0  # no policies/: nothing to test
    shutil.copytree(REPO / "examples" / "policies", workspace / "policies")
    done = _bash(policy["run"], env, workspace)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed: 8 tests" in done.stdout
    done = _bash(validate["run"], _step_env(env, validate.get("env", {})), workspace)
    assert done.returncode == 1
    assert "policy prod-canary-rollout" in done.stdout
    pack = workspace / "policies" / "org-guardrails.yaml"
    pack.write_text(
        pack.read_text().replace("fail: [prod-canary-rollout]", "pass: [prod-canary-rollout]")
    )
    done = _bash(policy["run"], env, workspace)
    assert done.returncode == 1
    assert "rule prod-canary-rollout should pass but failed" in done.stdout


def test_gitlab_ci_jobs_run_as_written(
    emulator: str,
    workspace: Path,
    gitlab_bin: Path,
    gitlab_api: tuple[Fake, dict[str, str]],
) -> None:
    fake, runner = gitlab_api
    ci = _gitlab()
    for job in ("validate", "plan", "plan", "apply", "drift"):  # the plan job on two pushes
        spec = ci[job]
        assert "before_script" not in spec and "image" not in spec  # the default's apply
        job_env = {**ci.get("variables", {}), **spec.get("variables", {})}
        env = {**_env(emulator, job_env, workspace, gitlab_bin), **runner}
        for line in spec["script"]:
            done = _bash(line, env, workspace)
            assert done.returncode == 0, f"{job}: {line}\n{done.stdout}\n{done.stderr}"
            assert GITLAB_TOKEN not in done.stdout + done.stderr
    (note,) = fake.comments["31/merge_requests/8"]  # one note after two pushes
    assert note["body"].startswith("<!-- llmgw-plan: prod -->\n### llmgw plan for `prod`")
    assert (workspace / "audit/audit.jsonl").exists()
    assert "llmgw_drift_objects_checked" in (workspace / "drift.prom").read_text()


def test_pre_commit_hook_runs_on_every_manifest_suffix() -> None:
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    files = re.compile(hook["files"])  # pre-commit matches it with re.search
    for name in ("manifests/a.yaml", "b.yml", ".llmgw-ignore.yaml", "C.YAML", "d.Yml"):
        assert files.search(name), name
    for name in ("a.json", "a.yaml.bak", "yaml"):
        assert not files.search(name), name


def test_pre_commit_hook_entry_validates(workspace: Path, wheel_bin: Path) -> None:
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    env = _env("http://127.0.0.1:9", {}, workspace, wheel_bin)
    done = _bash(" ".join([hook["entry"], *hook["args"]]), env, workspace)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_environment_example_validates(environment: str, wheel_bin: Path) -> None:
    base = REPO / "examples/environments"
    env = _env("http://127.0.0.1:9", {}, base, wheel_bin)
    done = _bash(f"llmgw validate base envs/{environment}", env, base)
    assert done.returncode == 0, done.stdout + done.stderr


# ---------------------------------------------------------------------------------------------
# The examples install on the images they state.

_NO_GIT = re.compile(r"-(slim|alpine)\b|^alpine|^python:[0-9.]+-(slim|alpine)")


def _image(value: Any) -> str:
    return str(value.get("name", "") if isinstance(value, dict) else value or "")


def _jobs_with_images() -> list[tuple[str, str, list[str]]]:
    """(example/job, image, install and script lines) of every job of both examples."""
    out = []
    ci = _gitlab()
    default = ci.get("default", {})
    for name, spec in ci.items():
        if isinstance(spec, dict) and "script" in spec:
            image = _image(spec.get("image", default.get("image", ci.get("image"))))
            lines = [*spec.get("before_script", default.get("before_script", [])), *spec["script"]]
            out.append((f"gitlab/{name}", image, lines))
    for name, spec in _github()["jobs"].items():
        image = _image(spec.get("container", ""))  # a job container replaces the runner's tools
        out.append((f"github/{name}", image, [s["run"] for s in spec["steps"] if "run" in s]))
    return out


def test_no_job_pairs_an_image_without_git_with_a_git_install() -> None:
    jobs = _jobs_with_images()
    assert len(jobs) == 7
    for job, image, lines in jobs:
        if any("git+" in line for line in lines):
            assert not _NO_GIT.search(image), f"{job}: {image} has no git for its git+ install"


def test_the_images_python_satisfies_requires_python() -> None:
    required = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    floor = tuple(int(x) for x in required.removeprefix(">=").split("."))
    versions = [_image(_gitlab()["default"]["image"]).split(":")[1].split("-")[0]]
    for job in _github()["jobs"].values():
        versions += [
            s["with"]["python-version"] for s in job["steps"] if "setup-python" in s.get("uses", "")
        ]
    assert len(versions) == 4
    for v in versions:
        assert tuple(int(x) for x in v.split(".")) >= floor, v


def test_the_slim_image_alternative_installs_without_git(
    tmp_path_factory: pytest.TempPathFactory, git_host: str
) -> None:
    """The GitLab example's comment offers, for slim images, the tag's archive URL (git archive
    of the tag, as the git host serves it): pip builds it with no git on PATH."""
    (line,) = [t for t in GITLAB.read_text().splitlines() if "archive/refs/tags" in t]
    archive = re.compile(r"https://github\.com/your-org/llmgw/archive/refs/tags/(v[^\"]+\.tar\.gz)")
    url = archive.search(line)
    assert url and url[1] == f"{TAG}.tar.gz"
    bin_dir = fresh_venv(install_root(tmp_path_factory) / "ci-archive-venv")
    env = {**clean_env(), "PATH": str(bin_dir)}
    assert shutil.which("git", path=env["PATH"]) is None
    command = line.strip().lstrip("#").strip().replace(url[0], f"{git_host}/{url[1]}")
    done = _bash(command, env, bin_dir.parent, timeout=INSTALL_TIMEOUT)
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    version = subprocess.run(
        [bin_dir / "llmgw", "--version"], capture_output=True, text=True, env=env, check=True
    )
    assert TAG.removeprefix("v") in version.stdout
