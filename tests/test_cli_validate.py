"""`llmgw validate` through the CLI: exit codes, output formats, and the error contract.

Covers: the example org validates clean (exit 0), --strict turns warnings into exit 1, usage
errors exit 64 (never click's 2), an internal error exits 3 with one line and a log file, JSON /
Markdown / GitHub output, and `python -m reconciler` running the same CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli

WARN_ONLY = """apiVersion: llmgw/v1
kind: PromptVersion
metadata:
  name: elsewhere@1.0.0
spec:
  template: elsewhere
  version: "1.0.0"
  content: "Hi {{x}}"
  variables: {x: string}
"""


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_example_manifests_are_valid(repo: Path) -> None:
    code, out = run("validate", str(repo / "manifests"))
    assert code == 0, out
    assert "valid: 0 errors, 0 warnings in 10 documents" in out


def test_warnings_fail_only_with_strict(tmp_path: Path) -> None:
    f = tmp_path / "v.yaml"
    f.write_text(WARN_ONLY)
    code, out = run("validate", str(f))
    assert code == 0 and "warning: PromptVersion/elsewhere@1.0.0: spec.template" in out
    assert "plan checks the live org" in out
    code, _ = run("validate", "--strict", str(f))
    assert code == 1


@pytest.mark.parametrize(
    "args", [["validate"], ["validate", "--bogus", "x"], ["nosuch"], ["validate", "-o", "xml", "x"]]
)
def test_usage_errors_exit_64(args: list[str]) -> None:
    code, _ = run(*args)
    assert code == 64


def test_internal_error_exits_3_with_log(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import reconciler.validate as v

    def boom(*_: object, **__: object) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(v, "validate_paths", boom)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = CliRunner().invoke(cli, ["validate", "x.yaml"])
    assert result.exit_code == 3
    assert "internal error: RuntimeError: kaboom" in result.output
    logs = list(tmp_path.glob("llmgw-crash-*.log"))
    assert logs and "Traceback" in logs[0].read_text()


def test_json_output(repo: Path) -> None:
    code, out = run("validate", "-o", "json", str(repo / "tests/corpus/invalid/split-weights.yaml"))
    assert code == 1
    data = json.loads(out)
    assert data["valid"] is False and data["errors"] >= 1
    p = next(p for p in data["problems"] if "weights" in p["message"])
    assert p["line"] == 7 and p["path"] == "spec.versions" and p["kind"] == "TrafficSplit"


def test_github_annotations(repo: Path) -> None:
    code, out = run(
        "validate", "-o", "github", str(repo / "tests/corpus/invalid/index-dimensions.yaml")
    )
    assert code == 1
    line = next(ln for ln in out.splitlines() if ln.startswith("::error"))
    assert "file=" in line and ",line=7," in line and "must be between 1 and 4096" in line


def test_markdown_output(repo: Path) -> None:
    code, out = run("validate", "-o", "markdown", str(repo / "manifests"))
    assert code == 0 and out.startswith("✅ **Manifests are valid**")


def test_python_dash_m(repo: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(repo / "manifests")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
