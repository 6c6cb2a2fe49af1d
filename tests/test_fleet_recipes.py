"""The fleet recipes users copy: GitHub Actions, GitLab CI and the Kubernetes base, checked
against their schemas and run as written as far as this machine allows.

Covers: the kustomize base rendered by a reading of its kustomization.yaml (resources, the
ConfigMap generated from the environments file, labels) and, when kubectl is installed, by
`kubectl kustomize`, the two giving the same objects; every object valid against the Kubernetes
schemas (kubernetes-validate, offline, strict); the jobs Indexed with LLMGW_SHARDS equal to
their completions, every credential variable the ConfigMap's environments file names supplied
by a secretKeyRef and no literal value that could be a secret, a non-root user matching the
Dockerfile's, which installs the wheel on a Python requires-python accepts and holds no secret;
the ConfigMap's file is a valid fleet. The GitHub workflow and the GitLab file validate against
their schemas (check-jsonschema's vendored github-workflows and gitlab-ci) and install llmgw
with the same line as the examples tests/test_ci_examples.py installs for real. Then run, with
`llmgw` on PATH, against two emulators on loopback (one environment with a wrong secret): the
GitHub list job's output feeds the matrix, each matrix job runs its drift step in a fresh
checkout with only its environment's two secrets, its results are uploaded, and the report job
merges them (exit 1: the wrong secret); GitLab's four parallel jobs each run their shard
(CI_NODE_INDEX 1-based) and the report job merges the artifacts; each Kubernetes pod's command,
run by sh with its container's env and JOB_COMPLETION_INDEX, takes its shard, every environment
exactly once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import tomllib
import yaml

from reconciler import fleet
from reconciler.emulator.config import ClientSpec, EmulatorConfig
from reconciler.emulator.server import running

REPO = Path(__file__).resolve().parent.parent
GITHUB = REPO / "examples/ci/fleet-github.yml"
GITLAB = REPO / "examples/ci/fleet-gitlab.yml"
KUBE = REPO / "examples/kubernetes"
KUBERNETES_VERSION = "1.30"
BASH = shutil.which("bash") or "/bin/bash"
CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")


# -- Kubernetes ---------------------------------------------------------------------------------
def render() -> list[dict[str, Any]]:
    """The base as kustomize builds it, for what it uses: plain resources, a ConfigMap generated
    from files (no name suffix), labels on every object's metadata."""
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    assert set(kustomization) <= {
        "apiVersion",
        "kind",
        "labels",
        "resources",
        "configMapGenerator",
        "generatorOptions",
    }, "the in-test renderer reads only these: keep the base simple"
    assert kustomization["generatorOptions"] == {"disableNameSuffixHash": True}
    objects = [
        doc
        for resource in kustomization["resources"]
        for doc in yaml.safe_load_all((KUBE / resource).read_text())
    ]
    for generator in kustomization["configMapGenerator"]:
        data = {Path(f).name: (KUBE / f).read_text() for f in generator["files"]}
        objects.insert(
            0,
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": generator["name"]},
                "data": data,
            },
        )
    for group in kustomization.get("labels", []):
        assert set(group) == {"pairs"}
        for obj in objects:
            obj["metadata"].setdefault("labels", {}).update(group["pairs"])
    return objects


OBJECTS = render()


def _by_kind(kind: str) -> list[dict[str, Any]]:
    return [o for o in OBJECTS if o["kind"] == kind]


def _pod_specs() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(job spec, pod spec) of the CronJob's job template and of the Job."""
    (cron,) = _by_kind("CronJob")
    (job,) = _by_kind("Job")
    specs = [cron["spec"]["jobTemplate"]["spec"], job["spec"]]
    return [(s, s["template"]["spec"]) for s in specs]


def _environments_text() -> str:
    (cm,) = _by_kind("ConfigMap")
    text: str = cm["data"][fleet.DEFAULT_FILE]
    return text


@pytest.mark.slow
def test_kubectl_kustomize_renders_the_same_objects() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    done = subprocess.run(
        [kubectl, "kustomize", str(KUBE)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    assert sorted(yaml.safe_load_all(done.stdout), key=key) == sorted(OBJECTS, key=key)


@pytest.mark.parametrize(
    "obj", OBJECTS, ids=[f"{o['kind']}/{o['metadata']['name']}" for o in OBJECTS]
)
def test_every_object_is_valid_kubernetes(obj: dict[str, Any]) -> None:
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_the_jobs_are_indexed_by_shard() -> None:
    assert len(_pod_specs()) == 2
    for job, pod in _pod_specs():
        assert job["completionMode"] == "Indexed"
        (container,) = pod["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env["LLMGW_SHARDS"]["value"] == str(job["completions"]) == str(job["parallelism"])
        assert container["command"][:2] == ["sh", "-c"]
        line = container["command"][2]
        assert line.startswith("exec llmgw fleet run ")  # exec: llmgw itself gets SIGTERM
        assert '--shard "$JOB_COMPLETION_INDEX/$LLMGW_SHARDS"' in line


def test_every_credential_comes_from_a_secret_and_none_is_written() -> None:
    path = KUBE / fleet.DEFAULT_FILE
    loaded = fleet.load(str(path))
    assert loaded.problems == [] and len(loaded.environments) == 3
    assert path.read_text() == _environments_text()
    wanted = {v for e in loaded.environments for v in (e.client_id_env, e.client_secret_env)}
    for _job, pod in _pod_specs():
        (container,) = pod["containers"]
        refs = {
            e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e
        }
        assert set(refs) == wanted
        for e in container["env"]:
            if "value" in e:
                assert re.fullmatch(r"[0-9]+", e["value"]), e  # numbers only, nothing secret
    assert not _by_kind("Secret")


def _dockerfile() -> list[str]:
    text = (KUBE / "Dockerfile").read_text().replace("\\\n", " ")
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def test_the_image_runs_as_the_pods_user_and_holds_no_secret() -> None:
    lines = _dockerfile()
    (base,) = [ln for ln in lines if ln.startswith("FROM ")]
    version = re.fullmatch(r"FROM python:(\d+)\.(\d+)-slim", base)
    assert version, base
    required = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    floor = tuple(int(x) for x in required.removeprefix(">=").split("."))
    assert (int(version[1]), int(version[2])) >= floor
    assert any(re.search(r"pip install /tmp/wheels/llmgw-\*\.whl", ln) for ln in lines)
    (user,) = [ln for ln in lines if ln.startswith("USER ")]
    uid, gid = user.removeprefix("USER ").split(":")
    for _job, pod in _pod_specs():
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True
        assert (str(context["runAsUser"]), str(context["runAsGroup"])) == (uid, gid)
    for ln in lines:
        if ln.startswith(("ENV ", "ARG ")):
            assert not re.search(r"SECRET|TOKEN|PASSWORD|CLIENT_ID", ln), ln


# -- CI files -------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "builtin"),
    [(GITHUB, "vendor.github-workflows"), (GITLAB, "vendor.gitlab-ci")],
    ids=["github", "gitlab"],
)
def test_the_ci_files_match_their_schemas(path: Path, builtin: str) -> None:
    done = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", builtin, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _github() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(GITHUB.read_text())
    return data


def _gitlab() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(GITLAB.read_text())
    return data


def test_they_install_llmgw_as_the_tested_examples_do() -> None:
    """tests/test_ci_examples.py runs this install line for real."""
    examples = yaml.safe_load((REPO / "examples/ci/github-actions.yml").read_text())
    (line,) = {
        s["run"]
        for j in examples["jobs"].values()
        for s in j["steps"]
        if "Install" in s.get("name", "")
    }
    mine = {
        s["run"]
        for j in _github()["jobs"].values()
        for s in j["steps"]
        if "Install" in s.get("name", "")
    }
    assert mine == {line}
    gitlab = yaml.safe_load((REPO / "examples/ci/gitlab-ci.yml").read_text())
    assert _gitlab()["default"] == gitlab["default"]


# -- run as written -----------------------------------------------------------------------------
SECRETS = {
    "ALPHA_CLIENT_ID": "alpha-client",
    "ALPHA_CLIENT_SECRET": "alpha-secret-value",
    "BETA_CLIENT_ID": "beta-client",
    "BETA_CLIENT_SECRET": "beta-secret-value",
    "GAMMA_CLIENT_ID": "beta-client",
    "GAMMA_CLIENT_SECRET": "a-wrong-secret",
}


@pytest.fixture(scope="module")
def orgs() -> Iterator[tuple[str, str]]:
    def config(client: str, secret: str) -> EmulatorConfig:
        return EmulatorConfig(
            port=0, ingest_delay=0.0, rate_limit=0, clients=[ClientSpec(client, secret)]
        )

    with (
        running(config("alpha-client", "alpha-secret-value")) as a,
        running(config("beta-client", "beta-secret-value")) as b,
    ):
        yield a, b


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`llmgw` on PATH: this checkout's (the examples' install line is tested elsewhere)."""
    folder = tmp_path_factory.mktemp("bin")
    shim = folder / "llmgw"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m reconciler "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    return folder


def _checkout(root: Path, name: str, environments: str) -> Path:
    """A fresh checkout of the user's repository: manifests and the environments file."""
    ws = root / name
    shutil.copytree(REPO / "manifests", ws / "manifests")
    (ws / fleet.DEFAULT_FILE).write_text(environments)
    return ws


def _fleet_file(orgs: tuple[str, str]) -> str:
    a, b = orgs
    return "environments:\n" + "".join(
        f"  - name: {n}\n    apiUrl: {url}\n    clientIdEnv: {n.upper()}_CLIENT_ID\n"
        f"    clientSecretEnv: {n.upper()}_CLIENT_SECRET\n    paths: [manifests]\n"
        for n, url in (("alpha", a), ("beta", b), ("gamma", b))
    )


def _env(bin_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GENESYS_CLOUD_", "LLMGW_", "GITHUB_", "CI_"))
    }
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", NO_COLOR="1")
    env.update(extra)
    return env


def _bash(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BASH, "-eo", "pipefail", "-c", script],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


_MATRIX = re.compile(r"\$\{\{\s*matrix\.(\w+)\s*\}\}")
_SECRET_OF = re.compile(r"\$\{\{\s*secrets\[matrix\.(\w+)\]\s*\}\}")


def _expand(value: str, matrix: dict[str, Any]) -> str:
    """The expressions the recipe uses, as GitHub evaluates them; any other one fails the test
    (it would need simulating)."""
    secret = _SECRET_OF.fullmatch(value)
    if secret:
        return SECRETS.get(str(matrix[secret[1]]), "")
    out = _MATRIX.sub(lambda m: str(matrix[m[1]]), value)
    assert "${{" not in out, f"an expression the test does not simulate: {value}"
    return out


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if "run" in s and not s.get("name", "").startswith("Install")]


@pytest.mark.slow
def test_the_github_workflow_runs_as_written(
    orgs: tuple[str, str], bin_dir: Path, tmp_path: Path
) -> None:
    wf = _github()
    environments = _fleet_file(orgs)
    # list: its output is the matrix of drift
    ws = _checkout(tmp_path, "list", environments)
    output = tmp_path / "list.output"
    (step,) = _steps(wf["jobs"]["list"])
    done = _bash(step["run"], _env(bin_dir, GITHUB_OUTPUT=str(output)), ws)
    assert done.returncode == 0, done.stderr
    key, _, value = output.read_text().strip().partition("=")
    assert (
        key == "matrix"
        and wf["jobs"]["list"]["outputs"]["matrix"] == "${{ steps.list.outputs.matrix }}"
    )
    drift = wf["jobs"]["drift"]
    assert drift["strategy"]["matrix"] == "${{ fromJSON(needs.list.outputs.matrix) }}"
    assert drift["strategy"]["fail-fast"] is False
    matrix = json.loads(value)
    assert [m["name"] for m in matrix["include"]] == ["alpha", "beta", "gamma"]
    # drift: one job per entry, a fresh checkout each, its own two secrets only
    artifacts = tmp_path / "artifacts"
    codes = {}
    for entry in matrix["include"]:
        ws = _checkout(tmp_path, f"drift-{entry['name']}", environments)
        job_env = {k: _expand(v, entry) for k, v in drift.get("env", {}).items()}
        (step,) = _steps(drift)
        step_env = {k: _expand(v, entry) for k, v in step["env"].items()}
        mine = {entry["clientIdEnv"], entry["clientSecretEnv"]}
        assert {v for k, v in step_env.items() if v in SECRETS.values()} == {
            SECRETS[v] for v in mine
        }
        done = _bash(step["run"], _env(bin_dir, **job_env, **step_env), ws)
        codes[entry["name"]] = done.returncode
        for name, secret in SECRETS.items():
            assert "SECRET" not in name or secret not in done.stdout + done.stderr
        (upload,) = [s for s in drift["steps"] if "upload-artifact" in s.get("uses", "")]
        assert upload["if"] == "always()"
        shutil.copytree(
            ws / upload["with"]["path"], artifacts / _expand(upload["with"]["name"], entry)
        )
    assert codes == {"alpha": 2, "beta": 2, "gamma": 1}  # empty orgs drift; gamma's secret is wrong
    # report: the artifacts downloaded into one folder, merged
    report = wf["jobs"]["report"]
    assert report["if"] == "always()" and report["needs"] == "drift"
    (download,) = [s for s in report["steps"] if "download-artifact" in s.get("uses", "")]
    assert download["with"]["merge-multiple"] is True
    ws = tmp_path / "report"
    results = ws / download["with"]["path"]
    results.mkdir(parents=True)
    for artifact in artifacts.iterdir():
        if artifact.name.startswith(download["with"]["pattern"].rstrip("*")):
            for f in artifact.iterdir():
                shutil.copy(f, results / f.name)
    summary = tmp_path / "summary.md"
    (step,) = _steps(report)
    done = _bash(step["run"], _env(bin_dir, GITHUB_STEP_SUMMARY=str(summary)), ws)
    assert done.returncode == 1, done.stdout + done.stderr
    text = summary.read_text()
    assert "❌ 3 environments: 2 drift, 1 failed; exit 1." in text
    assert "| `gamma` | failed | 1 |" in text and "check GAMMA\\_CLIENT\\_ID (its" in text


@pytest.mark.slow
def test_the_gitlab_jobs_run_as_written(
    orgs: tuple[str, str], bin_dir: Path, tmp_path: Path
) -> None:
    ci = _gitlab()
    environments = _fleet_file(orgs)
    drift = ci["drift"]
    total = drift["parallel"]
    merged = tmp_path / "report"
    held: list[str] = []
    for index in range(1, total + 1):  # CI_NODE_INDEX counts from 1
        ws = _checkout(tmp_path, f"drift-{index}", environments)
        env = _env(bin_dir, CI_NODE_INDEX=str(index), CI_NODE_TOTAL=str(total), **SECRETS)
        for line in drift["script"]:
            done = _bash(line, env, ws)
            assert done.returncode in (0, 1, 2), done.stdout + done.stderr
        for path in drift["artifacts"]["paths"]:
            if (ws / path).exists():
                shutil.copytree(ws / path, merged / path, dirs_exist_ok=True)
                held += [p.stem for p in (ws / path).glob("*.json")]
    assert sorted(held) == ["alpha", "beta", "gamma"]  # each environment in exactly one shard
    report = ci["report"]
    assert report["needs"] == [{"job": "drift", "artifacts": True}]
    merged.mkdir(exist_ok=True)
    outputs = []
    for line in report["script"]:
        done = _bash(line, _env(bin_dir), merged)
        outputs.append(done)
    assert outputs[-1].returncode == 1, outputs[-1].stdout + outputs[-1].stderr
    assert "3 environments: 2 drift, 1 failed; exit 1." in outputs[-1].stdout
    assert (merged / "report.md").exists()


@pytest.mark.slow
def test_each_kubernetes_pod_takes_its_shard(
    orgs: tuple[str, str], bin_dir: Path, tmp_path: Path
) -> None:
    """The drift CronJob's pods' command as written, by sh, with the container's env (each
    secretKeyRef given its Secret's value) and the file of the ConfigMap, its regions pointed
    at an emulator. (The plan Job's differs only in the command: checked above.)"""
    a, _b = orgs
    text = re.sub(r"region: \S+", f"apiUrl: {a}", _environments_text())
    config = tmp_path / "etc" / fleet.DEFAULT_FILE
    config.parent.mkdir()
    config.write_text(text)
    values = {"client-id": "alpha-client", "client-secret": "alpha-secret-value"}
    for job, pod in _pod_specs()[:1]:
        (container,) = pod["containers"]
        line = container["command"][2]
        assert "/etc/llmgw/" in line and "/results" in line
        line = line.replace("/etc/llmgw/", f"{config.parent}/").replace("/results", "{results}")
        env = {
            e["name"]: e.get("value") or values[e["valueFrom"]["secretKeyRef"]["key"]]
            for e in container["env"]
        }
        held: list[str] = []
        for index in range(job["completions"]):
            results = tmp_path / f"results-{index}"
            ws = _checkout(tmp_path, f"pod-{index}", text)
            shell = [*container["command"][:2], line.replace("{results}", str(results))]
            done = subprocess.run(
                shell,
                env=_env(bin_dir, **env, JOB_COMPLETION_INDEX=str(index)),
                cwd=ws,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode in (0, 2), done.stdout + done.stderr
            held += [p.stem for p in results.glob("*.json")]
        assert sorted(held) == ["prod-eu", "prod-us", "staging"]
