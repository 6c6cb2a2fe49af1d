"""validate and policies, where the two meet.

Covers: a PolicySet document among the manifest paths is one clear error (where packs belong),
never "unknown kind"; the examples' pack judges manifests/ differently for dev and prod
(environment-scoped rules); documents that failed their schema are not judged by policies;
the summary line counts the rules loaded.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from reconciler.policy import pack
from reconciler.validate import validate_paths

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "policies"


def test_a_pack_among_the_manifests_says_where_packs_belong(tmp_path: Path) -> None:
    shutil.copytree(REPO / "manifests", tmp_path / "m")
    shutil.copy(EXAMPLES / "org-guardrails.yaml", tmp_path / "m")
    report = validate_paths([str(tmp_path / "m")])
    (problem,) = report.errors
    assert problem.rule == "policy.kind" and "among the manifests" in problem.message
    assert "--policies" in problem.fix and problem.line > 1


def test_environment_rules_apply_only_to_their_environment() -> None:
    policies = pack.load([str(EXAMPLES)])
    assert not policies.problems
    dev = validate_paths([str(REPO / "manifests")], policies=policies, env="dev")
    assert dev.ok() and dev.rules == 5
    prod = validate_paths([str(REPO / "manifests")], policies=policies, env="prod")
    assert {p.rule for p in prod.errors} == {"policy/prod-canary-rollout"}
    assert sorted(p.name for p in prod.errors) == ["support-agent", "ticket-triage"]
    unnamed = validate_paths([str(REPO / "manifests")], policies=policies, env="")
    assert unnamed.ok()


def test_a_document_that_failed_its_schema_is_not_judged(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "apiVersion: llmgw/v1\nkind: Prompt\nmetadata: {name: warm-agent}\n"
        "spec: {template: t-1, model: m, systemPrompt: s, temperature: hot}\n"
    )
    policies = pack.load([str(EXAMPLES)])
    report = validate_paths([str(tmp_path)], policies=policies, env="prod")
    assert report.errors and not [p for p in report.problems if p.rule.startswith("policy/")]
