"""Policies through the command line (click's CliRunner, in process).

Covers: `validate --policies PATH --env prod`: violations as `file:line: Kind/name: policy ID:
message` lines, exit 0 clean and 1 on an error rule; --strict with a warning rule; the
environment from LLMGW_ENVIRONMENT and the packs from LLMGW_POLICIES and ./policies; a pack
that does not load fails validate; `-o json` has `policies` (rules, files, excepted); `-o sarif`
has the policy results with ruleId policy/ID and their rule descriptions; `policy test`: exit 0
on examples/policies, 1 on a failing test and on a pack that does not load, `-o json`, no packs
at all; `plan` and `apply` against an in-process emulator: an error-severity violation sends
nothing at all (not even a token request) and exits 1 with the violation listed; a warning rule
shows in plan's output and does not stop it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler import jobs
from reconciler.cli import cli
from tests.test_e2e import Org

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "policies"
HEAD = "apiVersion: llmgw/v1\nkind: PolicySet\nmetadata: {name: t}\n"

PROMPT = """apiVersion: llmgw/v1
kind: Prompt
metadata:
  name: billing-agent
spec:
  template: escalation-routing
  model: model-gen-4
  fallbackModels: [model-fallback-3]
  systemPrompt: You help with billing questions.
  temperature: 0.9
  safetyGuardrails: {contentFiltering: [pii]}
"""
TEMPLATE = """apiVersion: llmgw/v1
kind: PromptTemplate
metadata:
  name: escalation-routing
spec:
  description: Routes escalations.
  systemInstruction: You route escalations.
  userTemplate: "Issue: {{issue}}"
  variables: [issue]
"""


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.output


def write(folder: Path, name: str, text: str) -> Path:
    f = folder / name
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(text, encoding="utf-8")
    return f


def pack_file(folder: Path, rules: str, name: str = "rules.yaml") -> Path:
    """The pack, written; its path relative to the working directory (tmp_path), as a user
    would name it."""
    return write(folder, name, HEAD + "rules:\n" + rules).relative_to(Path.cwd())


WARM = "  - {id: cool, match: {kinds: [Prompt], environments: [prod]}, expr: 'spec.temperature <= 0.5', message: too warm}\n"  # noqa: E501
WARN = "  - {id: top-p, match: {kinds: [Prompt]}, expr: 'spec.topP < 0.9', message: narrow topP, severity: warning}\n"  # noqa: E501


# --- validate ------------------------------------------------------------------------------------


def test_validate_reports_violations_as_lines(tmp_path: Path) -> None:
    write(tmp_path, "m/prompt.yaml", PROMPT)
    code, out = run("validate", "--policies", str(EXAMPLES), "--env", "prod", "m/")
    assert code == 1
    lines = out.splitlines()
    assert (
        "m/prompt.yaml:10: Prompt/billing-agent: policy prod-low-temperature: production "
        "prompts run at temperature 0.5 or lower; this one runs at 0.9 "
        "(or record an exception: exceptions.llmgw.io/prod-low-temperature)"
    ) in lines
    # the other warning: the template is not among the manifests (plan checks the org)
    assert lines[-1] == "1 error, 1 warning in 1 document (1 file), 5 policy rules"


def test_validate_passes_in_another_environment(tmp_path: Path) -> None:
    write(tmp_path, "m/prompt.yaml", PROMPT)
    code, out = run("validate", "--policies", str(EXAMPLES), "--env", "dev", "m/")
    assert code == 0, out
    code, _ = run("validate", "--policies", str(EXAMPLES), "m/")
    assert code == 0


def test_validate_takes_the_environment_from_llmgw_environment(tmp_path: Path) -> None:
    write(tmp_path, "m/prompt.yaml", PROMPT)
    code, out = run(
        "validate", "--policies", str(EXAMPLES), "m/", env={"LLMGW_ENVIRONMENT": "prod"}
    )
    assert code == 1 and "policy prod-low-temperature" in out
    code, _ = run(
        "validate",
        "--policies",
        str(EXAMPLES),
        "--env",
        "dev",
        "m/",
        env={"LLMGW_ENVIRONMENT": "prod"},
    )
    assert code == 0  # --env wins


def test_validate_finds_packs_in_llmgw_policies_and_policies(tmp_path: Path) -> None:
    write(tmp_path, "m/prompt.yaml", PROMPT)
    a = pack_file(tmp_path / "a", WARM)
    b = pack_file(tmp_path / "b", WARN.replace("name: t", "name: u"))
    code, out = run(
        "validate", "m/", env={"LLMGW_POLICIES": os.pathsep.join([str(a), str(b.parent)])}
    )
    assert code == 0 and "warning: Prompt/billing-agent: policy top-p" in out
    assert "2 policy rules" in out
    code, out = run("validate", "--env", "prod", "m/")
    assert code == 0 and "policy" not in out.splitlines()[-1]  # no ./policies: no rules
    shutil.copytree(tmp_path / "a", tmp_path / "policies")
    code, out = run("validate", "--env", "prod", "m/")
    assert code == 1 and "policy cool: too warm" in out


def test_a_warning_rule_fails_only_with_strict(tmp_path: Path) -> None:
    write(tmp_path, "m/prompt.yaml", PROMPT)
    rules = pack_file(tmp_path / "p", WARN)
    code, out = run("validate", "--policies", str(rules), "m/")
    assert code == 0
    assert "m/prompt.yaml:1: warning: Prompt/billing-agent: policy top-p: narrow topP" in out
    code, _ = run("validate", "--strict", "--policies", str(rules), "m/")
    assert code == 1


def test_a_pack_that_does_not_load_fails_validate(tmp_path: Path) -> None:
    write(tmp_path, "m/prompt.yaml", PROMPT)
    rules = pack_file(tmp_path / "p", WARM.replace("temperature", "temprature"))
    code, out = run("validate", "--policies", str(rules), "m/")
    assert code == 1
    assert "p/rules.yaml:5: PolicySet/t: rules[0].expr: column 6: no field `temprature`" in out
    code, out = run("validate", "--policies", "missing/", "m/")
    assert code == 1 and "missing: no such policy file or folder" in out


def test_validate_json_has_policies(tmp_path: Path) -> None:
    write(
        tmp_path,
        "m/prompt.yaml",
        PROMPT.replace(
            "  name: billing-agent\n",
            "  name: billing-agent\n  annotations:\n"
            "    exceptions.llmgw.io/cool: 'until 2999-01-01: pilot'\n",
        ),
    )
    rules = pack_file(tmp_path / "p", WARM + WARN)
    code, out = run("validate", "--policies", str(rules), "--env", "prod", "-o", "json", "m/")
    assert code == 0, out
    data = json.loads(out)
    assert data["policies"]["rules"] == 2 and data["policies"]["files"] == ["p/rules.yaml"]
    (excepted,) = data["policies"]["excepted"]
    assert excepted["rule"] == "cool" and excepted["until"] == "2999-01-01"
    assert [p["rule"] for p in data["problems"] if p["rule"].startswith("policy")] == [
        "policy/top-p"
    ]


def test_validate_sarif_has_policy_results(tmp_path: Path) -> None:
    write(tmp_path, "m/prompt.yaml", PROMPT)
    rules = pack_file(tmp_path / "p", WARM + WARN)
    code, out = run("validate", "--policies", str(rules), "--env", "prod", "-o", "sarif", "m/")
    assert code == 1
    sarif = json.loads(out)
    run_ = sarif["runs"][0]
    by_rule = {r["ruleId"]: r for r in run_["results"]}
    assert set(by_rule) == {"policy/cool", "policy/top-p", "reference.missing"}
    assert by_rule["policy/cool"]["level"] == "error"
    assert by_rule["policy/top-p"]["level"] == "warning"
    region = by_rule["policy/cool"]["locations"][0]["physicalLocation"]
    assert region["artifactLocation"]["uri"] == "m/prompt.yaml"
    assert region["region"]["startLine"] == 10
    assert "too warm" in by_rule["policy/cool"]["message"]["text"]
    rule_ids = [r["id"] for r in run_["tool"]["driver"]["rules"]]
    assert {"policy/cool", "policy/top-p"} <= set(rule_ids)


def test_validate_sarif_has_pack_load_problems(tmp_path: Path) -> None:
    write(tmp_path, "m/prompt.yaml", PROMPT)
    rules = pack_file(tmp_path / "p", WARM.replace("<= 0.5", "<= "))
    code, out = run("validate", "--policies", str(rules), "-o", "sarif", "m/")
    assert code == 1
    results = json.loads(out)["runs"][0]["results"]
    (result,) = [r for r in results if r["ruleId"].startswith("policy")]
    assert result["ruleId"] == "policy.syntax" and result["level"] == "error"
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == ("p/rules.yaml")


# --- policy test ---------------------------------------------------------------------------------


def test_policy_test_passes_on_the_examples() -> None:
    code, out = run("policy", "test", str(EXAMPLES))
    assert code == 0
    assert out.strip().endswith("passed: 8 tests, 16 rule checks, 0 failures (5 rules in 1 file)")


def test_policy_test_json() -> None:
    code, out = run("policy", "test", "-o", "json", str(EXAMPLES))
    data = json.loads(out)
    assert code == 0 and data["document"] == "policy-test" and data["passed"] is True
    assert (data["rules"], data["tests"], data["checks"], data["failures"]) == (5, 8, 16, [])


FAILING = (
    "tests:\n  - name: warm\n    env: prod\n    document:\n      apiVersion: llmgw/v1\n"
    "      kind: Prompt\n      metadata: {name: abc}\n      spec: {template: tpl, model: m,"
    " systemPrompt: s, temperature: 0.9}\n    pass: [cool]\n"
)


def test_policy_test_fails_on_a_failing_test(tmp_path: Path) -> None:
    rules = write(tmp_path, "p/rules.yaml", HEAD + "rules:\n" + WARM + FAILING)
    code, out = run("policy", "test", str(rules))
    assert code == 1
    assert "p/rules.yaml:7: test 'warm': rule cool should pass but failed" in out
    assert out.strip().endswith("failed: 1 test, 1 rule check, 1 failure (1 rule in 1 file)")
    code, out = run("policy", "test", "-o", "json", str(rules))
    data = json.loads(out)
    assert code == 1 and data["passed"] is False
    assert data["failures"][0] | {"file": ""} == {
        "file": "",
        "line": 7,
        "test": "warm",
        "rule": "cool",
        "expected": "pass",
        "got": "fail",
        "detail": "",
    }


def test_policy_test_fails_on_a_pack_that_does_not_load(tmp_path: Path) -> None:
    rules = write(tmp_path, "p/rules.yaml", HEAD + "rules:\n" + WARM.replace("<= 0.5", "<="))
    code, out = run("policy", "test", str(rules))
    assert code == 1
    assert "p/rules.yaml:5: PolicySet/t: rules[0].expr: column " in out
    assert "the policy packs do not load" in out
    code, out = run("policy", "test", "-o", "json", str(rules))
    assert code == 1 and json.loads(out)["passed"] is False


def test_policy_test_without_packs(tmp_path: Path) -> None:
    code, out = run("policy", "test")
    assert code == 1 and "no policy packs to test" in out
    shutil.copytree(EXAMPLES, tmp_path / "policies")
    code, out = run("policy", "test")
    assert code == 0 and "passed: 8 tests" in out


def test_policy_test_on_a_pack_without_tests(tmp_path: Path) -> None:
    rules = pack_file(tmp_path / "p", WARM)
    code, out = run("policy", "test", str(rules))
    assert code == 0 and "no tests: 1 rule in 1 file; add `tests:`" in out


# --- plan and apply against an emulator ----------------------------------------------------------


@pytest.fixture
def org(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Org]:
    """An in-process emulator every command of the CLI talks to."""
    emulator = Org()

    def target(environ: Any, environment: str | None = None, **_: Any) -> jobs.Target:
        return emulator.target(environment=environment)

    monkeypatch.setattr(jobs, "target_from_env", target)
    write(tmp_path, "m/prompt.yaml", PROMPT)
    write(tmp_path, "m/template.yaml", TEMPLATE)
    yield emulator


def test_plan_with_an_error_violation_sends_nothing(org: Org, tmp_path: Path) -> None:
    rules = pack_file(tmp_path / "p", WARM)
    code, out = run("plan", "--policies", str(rules), "--env", "prod", "m/")
    assert code == 1
    assert "m/prompt.yaml:10: Prompt/billing-agent: policy cool: too warm" in out
    assert org.app.log == []


def test_apply_with_an_error_violation_sends_nothing(org: Org, tmp_path: Path) -> None:
    rules = pack_file(tmp_path / "p", WARM)
    code, out = run("apply", "--auto-approve", "--policies", str(rules), "--env", "prod", "m/")
    assert code == 1 and "policy cool: too warm" in out
    code, out = run("apply", "--dry-run", "--policies", str(rules), "--env", "prod", "m/")
    assert code == 1 and "policy cool: too warm" in out
    assert org.app.log == []
    assert not (tmp_path / ".llmgw" / "audit.jsonl").exists()


def test_a_pack_that_does_not_load_stops_plan(org: Org, tmp_path: Path) -> None:
    rules = pack_file(tmp_path / "p", WARN.replace("topP", "topp"))
    code, out = run("plan", "--policies", str(rules), "m/")
    assert code == 1 and "no field `topp`" in out
    assert org.app.log == []


def test_a_warning_rule_shows_in_plan_and_does_not_stop_it(org: Org, tmp_path: Path) -> None:
    rules = pack_file(tmp_path / "p", WARN + WARM)
    code, out = run("plan", "--policies", str(rules), "--env", "dev", "m/")
    assert code == 0, out
    assert "policy top-p: narrow topP" in out
    assert "2 to create" in out
    assert org.app.log != []  # the plan did read the org
    code, out = run("apply", "--auto-approve", "--policies", str(rules), "--env", "dev", "m/")
    assert code == 0 and "policy top-p: narrow topP" in out, out
