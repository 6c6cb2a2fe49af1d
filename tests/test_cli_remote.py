"""The command line against a real emulator on loopback, and the README kept true.

Covers: exit codes of plan (0, 2 with --detailed-exitcode, 1 on invalid manifests with nothing
sent, 1 on missing credentials naming every variable), apply (refused without a terminal unless
--auto-approve; --dry-run sends nothing and masks the secret; a stale saved plan refused), drift
(0 in sync, 2 drift, JSON and Markdown), export (0, then 1 without --force), audit verify (0
intact, 1 torn); the secret never in any output. The README's example session is replayed
command by command and must match, the audit records' hashes (which change with their
timestamps) replaced by stable stand-ins (set UPDATE_README=1 to rewrite it from a real run).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.server import running

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
SECRET = "emulator-secret"


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    with running(EmulatorConfig(port=0, ingest_delay=0.0, admin=True)) as url:
        monkeypatch.setenv("GENESYS_CLOUD_API_URL", url)
        monkeypatch.setenv("GENESYS_CLOUD_CLIENT_ID", "emulator-client")
        monkeypatch.setenv("GENESYS_CLOUD_CLIENT_SECRET", SECRET)
        yield url


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    out = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert SECRET not in out
    return result.exit_code, out


def test_plan_exit_codes_and_formats(emulator: str, tmp_path: Path) -> None:
    code, out = run("plan", "manifests/")
    assert code == 0 and "8 to create" in out and f"Target: {emulator}" in out
    code, out = run("plan", "manifests/", "--detailed-exitcode", "--out", "plan.json")
    assert code == 2
    saved = json.loads((tmp_path / "plan.json").read_text())
    assert saved["target"] == emulator and saved["manifests"]["paths"] == ["manifests/"]
    code, out = run("plan", "manifests/", "-o", "json")
    assert code == 0 and json.loads(out)["summary"]["create"] == 8
    code, out = run("plan", "manifests/", "-o", "markdown")
    assert code == 0 and out.startswith("### llmgw plan")


def test_invalid_manifests_send_nothing(emulator: str, tmp_path: Path) -> None:
    bad = tmp_path / "manifests" / "prompts" / "ticket-triage.yaml"
    bad.write_text(bad.read_text().replace("temperature: 0.0", "temperature: 9.0"))
    code, out = run("plan", "manifests/")
    assert code == 1 and "ticket-triage.yaml" in out and "temperature" in out
    import httpx

    log = httpx.get(f"{emulator}/__emulator/requests").json()["requests"]
    assert log == []


def test_missing_credentials_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    code, out = run("plan", "manifests/")
    assert code == 1
    assert "GENESYS_CLOUD_CLIENT_ID" in out and "GENESYS_CLOUD_CLIENT_SECRET" in out


def test_apply_confirmation_dry_run_and_stale_plan(emulator: str, tmp_path: Path) -> None:
    code, out = run("apply", "manifests/")
    assert code == 1 and "--auto-approve" in out and "no terminal" in out
    code, out = run("apply", "manifests/", "--dry-run")
    assert (
        code == 0
        and "Nothing was sent" in out
        and "POST /api/v2/llm-gateway/prompt-templates" in out
    )
    assert run("plan", "manifests/", "--detailed-exitcode")[0] == 2  # still nothing applied
    assert run("plan", "manifests/", "--out", "plan.json")[0] == 0
    code, out = run("apply", "plan.json", "--auto-approve")
    assert code == 0 and "Verified" in out
    assert (tmp_path / ".llmgw" / "audit.jsonl").exists()
    code, out = run("apply", "plan.json", "--auto-approve")
    assert code == 1 and "stale" in out and "created in the org since the plan" in out


def test_drift_export_and_audit_verify(emulator: str, tmp_path: Path) -> None:
    assert run("apply", "manifests/", "--auto-approve")[0] == 0
    code, out = run("drift", "manifests/")
    assert code == 0 and "In sync" in out
    subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts/out_of_band.py"),
            "ticket-triage",
            "temperature",
            "0.9",
        ],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    code, out = run("drift", "manifests/")
    assert code == 2 and "temperature: git 0.0 -> live 0.9" in out
    code, out = run("plan", "manifests/", "--detailed-exitcode")
    assert code == 2 and "Plan: 0 to create, 1 to update," in out, out
    changed = [line for line in out.splitlines() if line.startswith("    ~ ")]
    assert changed == ["    ~ temperature: 0.9 -> 0.0"], out
    code, out = run("drift", "manifests/", "-o", "json")
    assert code == 2 and json.loads(out)["counts"]["modified"] == 1
    code, out = run("drift", "manifests/", "-o", "markdown", "--metrics-file", "drift.prom")
    assert code == 2 and "| modified |" in out and (tmp_path / "drift.prom").exists()
    code, out = run("export", "--out", "exported")
    assert code == 0 and "Exported 10 objects" in out
    code, out = run("export", "--out", "exported")
    assert code == 1 and "--force" in out
    assert run("validate", "exported")[0] == 0
    code, out = run("audit", "verify", ".llmgw/audit.jsonl")
    assert code == 0 and "intact" in out
    with open(".llmgw/audit.jsonl", "a") as f:
        f.write('{"torn')
    code, out = run("audit", "verify", ".llmgw/audit.jsonl")
    assert code == 1 and "torn" in out


# -- the README's example session ------------------------------------------------------------
START, END = "<!-- session:start -->", "<!-- session:end -->"
PAIR = "manifests/templates/support-ticket-classifier.yaml manifests/prompts/ticket-triage.yaml"
SESSION = [
    f"llmgw plan {PAIR} --detailed-exitcode",
    f"llmgw apply {PAIR} --auto-approve",
    "python scripts/out_of_band.py ticket-triage temperature 0.9",
    f"llmgw drift {PAIR}",
    f"llmgw apply {PAIR} --auto-approve",
    f"llmgw drift {PAIR}",
]


def _example_hash(m: re.Match[str]) -> str:
    """A record's hash changes with its timestamp: the README shows a stable stand-in."""
    return m.group(1) + hashlib.sha256(f"README record {m.group(2)}".encode()).hexdigest()


def _normalise(text: str, url: str) -> str:
    text = text.replace(url, "http://127.0.0.1:8787")
    text = re.sub(r"\d+\.\d s\)", "0.1 s)", text)
    text = re.sub(r"(last record (\d+): )[0-9a-f]{64}", _example_hash, text)
    return text.rstrip()


def test_readme_session_is_true(emulator: str, tmp_path: Path) -> None:
    shutil.copytree(REPO / "scripts", tmp_path / "scripts")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "NO_COLOR": "1",
    }
    blocks = []
    for command in SESSION:
        done = subprocess.run(
            command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        body = _normalise(done.stdout, emulator)
        blocks.append(f"$ {command}\n{body}\n# exit {done.returncode}")
    session = "```console\n" + "\n\n".join(blocks) + "\n```"
    readme = (REPO / "README.md").read_text()
    if os.environ.get("UPDATE_README"):
        head, _, rest = readme.partition(START)
        _, _, tail = rest.partition(END)
        (REPO / "README.md").write_text(f"{head}{START}\n{session}\n{END}{tail}")
        return
    current = readme.partition(START)[2].partition(END)[0].strip()
    assert current == session, "README example session is stale: run with UPDATE_README=1"
