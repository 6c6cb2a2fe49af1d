"""`llmgw fleet run` end to end: real child processes against two emulators on loopback (one
client each), four environments: two good ones, one with the wrong secret, one whose variable
is unset.

Covers: drift over the two good ones before anything is applied (2: drift found, nothing worse);
the whole fleet (1: the two failures, each its own result with its reason in the fleet's
variable names, the good ones still drift); apply through the fleet with --auto-approve, one
audit log per environment, then each org in sync (0), and the children never saw another org's
client; two shards' result folders merged by `fleet report` into one report of the four, in
text and JSON; no secret value in any output or result file; SIGTERM to a running `fleet run`
(exit 143): the running environment gets it and is interrupted, the others are not started, and
every result is written.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler import fleet
from reconciler.cli import cli
from reconciler.emulator.config import ClientSpec, EmulatorConfig
from reconciler.emulator.server import running
from tests.processes import child_env, requests_log, set_faults, wait_for

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
SECRETS = {
    "ALPHA_ID": "alpha-client",
    "ALPHA_SECRET": "alpha-secret-value-1",
    "BETA_ID": "beta-client",
    "BETA_SECRET": "beta-secret-value-2",
    "GAMMA_ID": "beta-client",
    "GAMMA_SECRET": "not-the-secret-3",
    "DELTA_ID": "alpha-client",  # DELTA_SECRET is never set
}


def _config(client: str, secret: str) -> EmulatorConfig:
    return EmulatorConfig(
        port=0, ingest_delay=0.0, rate_limit=0, admin=True, clients=[ClientSpec(client, secret)]
    )


@pytest.fixture(scope="module")
def orgs() -> Iterator[tuple[str, str]]:
    with (
        running(_config("alpha-client", SECRETS["ALPHA_SECRET"])) as a,
        running(_config("beta-client", SECRETS["BETA_SECRET"])) as b,
    ):
        yield a, b


@pytest.fixture(scope="module")
def workspace(orgs: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    a, b = orgs
    root = tmp_path_factory.mktemp("fleet")
    shutil.copytree(REPO / "manifests", root / "manifests")
    entries = [("alpha", a), ("beta", b), ("gamma", b), ("delta", a)]
    text = "environments:\n" + "".join(
        f"  - name: {name}\n    apiUrl: {url}\n    clientIdEnv: {name.upper()}_ID\n"
        f"    clientSecretEnv: {name.upper()}_SECRET\n    paths: [manifests]\n"
        for name, url in entries
    )
    (root / fleet.DEFAULT_FILE).write_text(text)
    return root


def _fleet(workspace: Path, *args: str) -> tuple[int, str, str]:
    """`llmgw fleet ARGS` in-process (its children are real processes) in ``workspace``."""
    env = {**SECRETS, "GENESYS_CLOUD_CLIENT_SECRET": "", "LLMGW_ENVIRONMENT": ""}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(workspace)
        result = CliRunner().invoke(cli, ["fleet", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def _results(folder: Path) -> dict[str, dict[str, object]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def _no_secret(*texts: str) -> None:
    for text in texts:
        for name, value in SECRETS.items():
            if "SECRET" in name:
                assert value not in text, name


def test_a_fleet_run_its_failures_apply_and_shards(orgs: tuple[str, str], workspace: Path) -> None:
    code, out, err = _fleet(workspace, "run", "drift", "--name", "alpha", "--name", "beta")
    assert code == 2, out + err  # drift found in both, nothing worse

    code, out, err = _fleet(workspace, "run", "drift", "--results", "all", "--parallel", "4")
    assert code == 1, out + err
    results = _results(workspace / "all")
    assert sorted(results) == ["alpha", "beta", "delta", "gamma"]
    status = {n: (r["status"], r["exitCode"]) for n, r in results.items()}
    assert status == {
        "alpha": ("drift", 2),
        "beta": ("drift", 2),
        "gamma": ("failed", 1),
        "delta": ("failed", 1),
    }
    alpha = results["alpha"]
    assert alpha["summary"]["drifted"] == alpha["summary"]["checked"] == 10  # type: ignore[index]
    assert alpha["output"]["document"] == "drift"  # type: ignore[index]
    assert alpha["output"]["environment"] == "alpha"  # type: ignore[index]
    assert "GAMMA_SECRET (its GENESYS_CLOUD_CLIENT_SECRET)" in str(results["gamma"]["error"])
    assert "401" in str(results["gamma"]["error"])
    assert results["delta"]["processExitCode"] is None
    assert str(results["delta"]["error"]).startswith("variable DELTA_SECRET is not set")
    assert "Fleet: 4 environments (2 drift, 2 failed); exit 1." in out
    _no_secret(out, err, *((workspace / "all" / f"{n}.json").read_text() for n in results))

    code, out, err = _fleet(
        workspace, "run", "apply", "--name", "alpha", "--name", "beta", "--", "--auto-approve"
    )
    assert code == 0, out + err
    for name in ("alpha", "beta"):
        assert (workspace / ".llmgw" / "audit" / f"{name}.jsonl").exists()
    code, out, err = _fleet(workspace, "run", "drift", "--name", "alpha", "--name", "beta")
    assert code == 0, out + err
    for url, client in zip(orgs, ("alpha-client", "beta-client"), strict=True):
        clients = {r["client"] for r in requests_log(url) if r["client"]}
        assert clients == {client}  # each org saw its own environment's client only
    refused = [r for r in requests_log(orgs[1]) if r["path"] == "/oauth/token"]
    assert any(r["status"] == 401 for r in refused)  # gamma's wrong secret

    shard_dirs = []
    for i in range(2):
        folder = f"shard-{i}"
        code, out, err = _fleet(workspace, "run", "drift", "--shard", f"{i}/2", "--results", folder)
        assert code in (0, 1), out + err
        shard_dirs.append(folder)
    held = [sorted(_results(workspace / d)) for d in shard_dirs]
    assert sorted(held[0] + held[1]) == ["alpha", "beta", "delta", "gamma"]
    code, out, err = _fleet(workspace, "report", *(str(workspace / d) for d in shard_dirs))
    assert code == 1, out + err
    assert out.splitlines()[0].split() == ["ENVIRONMENT", "STATUS", "EXIT", "DETAIL"]
    assert "alpha        ok      0     0 of 10 drifted" in out
    code, out, _ = _fleet(
        workspace, "report", *(str(workspace / d) for d in shard_dirs), "-o", "json"
    )
    report = json.loads(out)
    assert report["counts"] == {"ok": 2, "failed": 2}
    assert {e["name"]: e["environment"]["shard"] for e in report["environments"]} == {
        n: f"{fleet.shard_of(n, 2)}/2" for n in ("alpha", "beta", "delta", "gamma")
    }


def test_sigterm_stops_the_fleet_and_writes_what_is_known(
    orgs: tuple[str, str], workspace: Path
) -> None:
    a, _b = orgs

    def tokens() -> int:
        return sum(1 for r in requests_log(a) if r["path"] == "/oauth/token")

    before = tokens()
    set_faults(a, latencyMs=1500)  # 1.5 s per request of alpha's: the signal comes mid-read
    try:
        env = {**child_env(), **SECRETS}
        out, err = workspace / "term.out", workspace / "term.err"
        argv = ["fleet", "run", "drift", "-v", "--parallel", "1", "--results", "term"]
        with out.open("w") as o, err.open("w") as e:
            proc = subprocess.Popen(
                [sys.executable, "-m", "reconciler", *argv],
                cwd=workspace,
                env=env,
                stdout=o,
                stderr=e,
            )
        try:
            # alpha's own token request: its signal handlers are in place by then
            wait_for(lambda: tokens() > before, what="alpha's token request", proc=proc)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    finally:
        set_faults(a, latencyMs=0)
    said = err.read_text()
    assert code == 143, out.read_text() + said
    assert "SIGTERM received: starting no further environment" in said
    assert "Traceback" not in said
    results = _results(workspace / "term")
    assert {n: r["status"] for n, r in results.items()} == {
        "alpha": "interrupted",
        "beta": "not-started",
        "gamma": "not-started",
        "delta": "not-started",
    }
    assert results["alpha"]["processExitCode"] == 143, results["alpha"]
    assert "stopped by SIGTERM" in said and "3 environments not started" in said
