"""Judging documents with policy rules (``reconciler/policy/engine.py``), exceptions and expiry.

Covers: every rule of examples/policies/org-guardrails.yaml passing and failing on purpose-made
documents beyond the pack's own tests (boundaries, defaults, messages); matching by kinds,
environments and labels, with env "" skipping environment-scoped rules; what a rule sees:
defaults filled (a Prompt without temperature is judged at 0.7, without safetyGuardrails has
contentFiltering []), an absent rollout stays absent, number fields are doubles whether written
1 or 1.0, metadata has labels and annotations; the line of a violation (the first field the rule
reads that the document has, else the document's line); evaluation errors (an unguarded
optional field: spec.fewShot, spec.version) reported at the rule's severity with a has() fix
naming the field, never passing silently; a messageExpression that fails falls back to message;
exceptions: active (suppressed, listed in Outcome.excepted), expiring today (still active),
expired yesterday (warning policy.exception-expired, the rule applies again), malformed,
a bad date (2027-02-30), an unknown rule id (warning), allowExceptions: false (error); the
packs' own tests (selftest) including a failing one; validate_paths: policies judged only on
schema-valid documents, warning rules failing only with strict; robustness: a document with
10,000 few-shot examples and a rule looping over them, non-ASCII and control characters in
messages escaped in the one-line output.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.loader import load_paths
from reconciler.model import Document
from reconciler.policy import engine, pack, selftest
from reconciler.validate import validate_paths

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "policies"
TODAY = dt.date(2026, 12, 1)
HEAD = "apiVersion: llmgw/v1\nkind: PolicySet\nmetadata: {name: t}\n"

BASE_PROMPT: dict[str, Any] = {
    "template": "escalation-routing",
    "model": "anthropic/claude-3-sonnet",
    "fallbackModels": ["model-gen-4"],
    "systemPrompt": "You help.",
    "temperature": 0.3,
    "safetyGuardrails": {"contentFiltering": ["pii"]},
}


def manifest(
    kind: str = "Prompt",
    name: str = "billing-agent",
    spec: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> str:
    """A manifest in block YAML, one spec field a line (values as JSON, which is YAML)."""
    lines = ["apiVersion: llmgw/v1", f"kind: {kind}", "metadata:", f"  name: {name}"]
    for key, table in (("labels", labels), ("annotations", annotations)):
        if table:
            lines.append(f"  {key}:")
            lines += [f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in table.items()]
    lines.append("spec:")
    lines += [f"  {k}: {json.dumps(v)}" for k, v in (spec or {}).items()]
    return "\n".join(lines) + "\n"


def prompt(**changes: Any) -> dict[str, Any]:
    spec = {**BASE_PROMPT, **changes}
    return {k: v for k, v in spec.items() if v is not None}


def docs(tmp_path: Path, *texts: str) -> list[Document]:
    f = tmp_path / "m.yaml"
    f.write_text("---\n".join(texts), encoding="utf-8")
    loaded = load_paths([str(f)])
    assert loaded.problems == []
    return loaded.documents


@pytest.fixture(scope="module")
def examples() -> pack.Policies:
    loaded = pack.load([str(EXAMPLES)])
    assert loaded.problems == []
    return loaded


def verdicts(
    policies: pack.Policies, tmp_path: Path, text: str, env: str = "prod"
) -> tuple[dict[str, str], engine.Outcome]:
    outcome = engine.judge(policies.rules, docs(tmp_path, text), env, TODAY)
    return {rid: v for (_, rid), v in outcome.verdicts.items()}, outcome


def rules(tmp_path: Path, text: str) -> pack.Policies:
    f = tmp_path / "rules.yaml"
    f.write_text(HEAD + text, encoding="utf-8")
    loaded = pack.load([str(f)])
    assert loaded.problems == [], [str(p) for p in loaded.problems]
    return loaded


# --- the example rules, on purpose-made documents ------------------------------------------------

EXAMPLE_CASES = [
    # (rule, env, kind, spec, expected verdict, text in the message)
    ("prod-pii-filter", "prod", "Prompt", prompt(), "pass", ""),
    (
        "prod-pii-filter",
        "prod",
        "Prompt",
        prompt(safetyGuardrails={"contentFiltering": ["toxicity", "jailbreak"]}),
        "fail",
        "keep the PII filter on",
    ),
    ("prod-pii-filter", "prod", "Prompt", prompt(safetyGuardrails=None), "fail", "add pii"),
    (
        "prod-pii-filter",
        "prod",
        "Prompt",
        prompt(safetyGuardrails={"maxTokens": 100}),
        "fail",
        "add pii",
    ),
    ("prod-pii-filter", "dev", "Prompt", prompt(safetyGuardrails=None), None, ""),
    ("prod-pii-filter", "", "Prompt", prompt(safetyGuardrails=None), None, ""),
    ("prod-low-temperature", "prod", "Prompt", prompt(temperature=0.5), "pass", ""),
    ("prod-low-temperature", "prod", "Prompt", prompt(temperature=0), "pass", ""),
    (
        "prod-low-temperature",
        "prod",
        "Prompt",
        prompt(temperature=0.51),
        "fail",
        "this one runs at 0.51",
    ),
    (
        "prod-low-temperature",
        "prod",
        "Prompt",
        prompt(temperature=None),
        "fail",
        "this one runs at 0.7",
    ),
    ("prod-low-temperature", "prod", "Prompt", prompt(temperature=2), "fail", "runs at 2"),
    ("prod-low-temperature", "staging", "Prompt", prompt(temperature=2), None, ""),
    ("fallback-model", "", "Prompt", prompt(), "pass", ""),
    (
        "fallback-model",
        "",
        "Prompt",
        prompt(fallbackModels=None),
        "fail",
        "add spec.fallbackModels",
    ),
    ("fallback-model", "", "Prompt", prompt(fallbackModels=[]), "fail", "at least one fallback"),
    (
        "fallback-model",
        "",
        "Prompt",
        prompt(fallbackModels=["anthropic/claude-3-sonnet"]),
        "fail",
        "other than its own",
    ),
    (
        "fallback-model",
        "dev",
        "Prompt",
        prompt(fallbackModels=["model-gen-4", "anthropic/claude-3-sonnet"]),
        "fail",
        "",
    ),
    ("approved-models", "", "Prompt", prompt(), "pass", ""),
    ("approved-models", "", "Prompt", prompt(fallbackModels=[]), "pass", ""),
    (
        "approved-models",
        "",
        "Prompt",
        prompt(model="vendor-x/experimental-9"),
        "fail",
        "model vendor-x/experimental-9 is not approved",
    ),
    (
        "approved-models",
        "",
        "Prompt",
        prompt(fallbackModels=["model-fallback-3", "vendor-x/experimental-9"]),
        "fail",
        "a fallback model is outside the approved list",
    ),
    (
        "prod-canary-rollout",
        "prod",
        "TrafficSplit",
        {"prompt": "support-agent", "defaultVersion": "2.1.0"},
        "fail",
        "add spec.rollout",
    ),
    (
        "prod-canary-rollout",
        "prod",
        "TrafficSplit",
        {
            "prompt": "support-agent",
            "defaultVersion": "2.1.0",
            "rollout": {"from": "2.0.0", "steps": [0.1, 0.5], "gates": {}},
        },
        "pass",
        "",
    ),
    (
        "prod-canary-rollout",
        "dev",
        "TrafficSplit",
        {"prompt": "support-agent", "defaultVersion": "2.1.0"},
        None,
        "",
    ),
]


@pytest.mark.parametrize(
    ("rule", "env", "kind", "spec", "expected", "says"),
    EXAMPLE_CASES,
    ids=[f"{c[0]}-{c[4] or 'skipped'}-{i}" for i, c in enumerate(EXAMPLE_CASES)],
)
def test_every_example_rule_passes_and_fails(
    examples: pack.Policies,
    tmp_path: Path,
    rule: str,
    env: str,
    kind: str,
    spec: dict[str, Any],
    expected: str | None,
    says: str,
) -> None:
    got, outcome = verdicts(examples, tmp_path, manifest(kind, spec=spec), env)
    assert got.get(rule) == expected, [str(p) for p in outcome.problems]
    mine = [p for p in outcome.problems if p.rule == f"policy/{rule}"]
    if expected == "fail":
        (problem,) = mine
        assert problem.severity == "error" and says in problem.message
        assert problem.message.startswith(f"policy {rule}: ")
        assert problem.kind == kind and problem.name == "billing-agent"
    else:
        assert mine == []
    assert "error" not in got.values()


def test_every_example_rule_is_exercised_both_ways() -> None:
    ids = {c[0] for c in EXAMPLE_CASES}
    assert ids == {
        "prod-pii-filter",
        "prod-low-temperature",
        "fallback-model",
        "approved-models",
        "prod-canary-rollout",
    }
    for rid in ids:
        outcomes = {c[4] for c in EXAMPLE_CASES if c[0] == rid}
        assert {"pass", "fail"} <= outcomes, rid


def test_the_example_packs_own_tests_pass(examples: pack.Policies) -> None:
    results = selftest.run(examples, TODAY)
    assert results.ok, [str(f) for f in results.failures]
    assert results.cases == 8 and results.checks == 16


def test_the_pii_rule_allows_no_exception(examples: pack.Policies, tmp_path: Path) -> None:
    text = manifest(
        spec=prompt(safetyGuardrails=None),
        annotations={"exceptions.llmgw.io/prod-pii-filter": "until 2099-01-01: pilot"},
    )
    got, outcome = verdicts(examples, tmp_path, text)
    assert got["prod-pii-filter"] == "fail"
    (exc,) = [p for p in outcome.problems if p.rule == "policy.exception"]
    assert exc.severity == "error" and "allows no exceptions" in exc.message


# --- matching ------------------------------------------------------------------------------------

MATCHING = """rules:
  - {id: any, expr: 'true', message: m}
  - {id: prompts, match: {kinds: [Prompt]}, expr: 'true', message: m}
  - {id: splits, match: {kinds: [TrafficSplit]}, expr: 'true', message: m}
  - {id: prod, match: {environments: [prod, live]}, expr: 'true', message: m}
  - {id: team, match: {labels: {team: billing}}, expr: 'true', message: m}
  - {id: team-tier, match: {labels: {team: billing, tier: gold}}, expr: 'true', message: m}
  - {id: all, match: {kinds: [Prompt], environments: [live], labels: {team: billing}},
     expr: 'true', message: m}
"""


@pytest.mark.parametrize(
    ("env", "labels", "applies"),
    [
        ("", {}, {"any", "prompts"}),
        ("prod", {}, {"any", "prompts", "prod"}),
        ("live", {"team": "billing"}, {"any", "prompts", "prod", "team", "all"}),
        ("dev", {"team": "billing", "tier": "gold"}, {"any", "prompts", "team", "team-tier"}),
        ("dev", {"team": "Billing"}, {"any", "prompts"}),
        ("PROD", {"tier": "gold"}, {"any", "prompts"}),
    ],
)
def test_match_by_kinds_environments_and_labels(
    tmp_path: Path, env: str, labels: dict[str, str], applies: set[str]
) -> None:
    policies = rules(tmp_path, MATCHING)
    got, _ = verdicts(policies, tmp_path, manifest(spec=prompt(), labels=labels), env)
    assert set(got) == applies


def test_documents_of_no_rule_are_not_judged(tmp_path: Path) -> None:
    policies = rules(
        tmp_path, "rules:\n  - {id: prompts, match: {kinds: [Prompt]}, expr: 'false', message: m}\n"
    )
    split = manifest("TrafficSplit", spec={"prompt": "abc", "defaultVersion": "1.0.0"})
    outcome = engine.judge(policies.rules, docs(tmp_path, split), "", TODAY)
    assert outcome.judged == 0 and outcome.verdicts == {} and outcome.problems == []


# --- what a rule sees ----------------------------------------------------------------------------


def test_what_a_rule_sees(tmp_path: Path) -> None:
    (doc,) = docs(tmp_path, manifest(spec=prompt(temperature=None, safetyGuardrails=None)))
    seen = engine.variables(doc, "prod")
    assert seen["kind"] == "Prompt" and seen["apiVersion"] == "llmgw/v1" and seen["env"] == "prod"
    metadata = seen["metadata"]
    assert isinstance(metadata, dict)
    assert metadata["labels"] == {} and metadata["annotations"] == {}
    spec = seen["spec"]
    assert isinstance(spec, dict)
    assert spec["temperature"] == 0.7 and spec["topP"] == 0.95 and spec["maxTokens"] == 2048
    assert spec["safetyGuardrails"]["contentFiltering"] == []
    assert "fewShot" not in spec and "version" not in spec
    assert doc.spec.get("temperature") is None  # the document itself is untouched


@pytest.mark.parametrize(
    "expr",
    [
        "spec.temperature == 0.7",
        "spec.safetyGuardrails.contentFiltering == []",
        "size(spec.safetyGuardrails.blockedCategories) == 0",
        "spec.safetyGuardrails.maxTokens == 4096",
        "!has(spec.fewShot) && !has(spec.version)",
        "metadata.labels.size() == 0 && metadata.annotations.size() == 0",
    ],
)
def test_defaults_are_filled(tmp_path: Path, expr: str) -> None:
    policies = rules(
        tmp_path, f"rules:\n  - {{id: r, match: {{kinds: [Prompt]}}, expr: {expr!r}, message: m}}\n"
    )
    text = manifest(spec=prompt(temperature=None, safetyGuardrails=None))
    got, outcome = verdicts(policies, tmp_path, text)
    assert got == {"r": "pass"}, [str(p) for p in outcome.problems]


def test_an_absent_rollout_stays_absent(tmp_path: Path) -> None:
    policies = rules(
        tmp_path,
        "rules:\n  - {id: r, match: {kinds: [TrafficSplit]}, expr: '!has(spec.rollout)',"
        " message: m}\n",
    )
    split = manifest("TrafficSplit", spec={"prompt": "abc", "defaultVersion": "1.0.0"})
    got, _ = verdicts(policies, tmp_path, split)
    assert got == {"r": "pass"}
    (doc,) = docs(tmp_path, split)
    spec = engine.variables(doc, "")["spec"]
    assert isinstance(spec, dict) and "rollout" not in spec and spec["strategy"] == "random"


@pytest.mark.parametrize("written", ["1", "1.0", "0", "2"])
def test_a_number_field_is_a_double_however_written(tmp_path: Path, written: str) -> None:
    policies = rules(
        tmp_path,
        "rules:\n  - {id: r, match: {kinds: [Prompt]}, expr: 'spec.temperature + 0.5 > 0.4',"
        " message: m}\n  - {id: w, match: {kinds: [TrafficSplit]},"
        " expr: 'spec.versions.all(v, v.weight * 100.0 >= 0.0)', message: m}\n",
    )
    text = manifest(spec=prompt()).replace("temperature: 0.3", f"temperature: {written}")
    split = manifest(
        "TrafficSplit",
        spec={"prompt": "abc", "versions": [{"version": "1.0.0", "weight": 1}]},
    )
    outcome = engine.judge(policies.rules, docs(tmp_path, text, split), "", TODAY)
    assert outcome.problems == [], [str(p) for p in outcome.problems]
    (doc,) = docs(tmp_path, text)
    spec = engine.variables(doc, "")["spec"]
    assert isinstance(spec, dict) and isinstance(spec["temperature"], float)
    assert isinstance(spec["maxTokens"], int)


# --- where a violation is reported ---------------------------------------------------------------


def test_a_violation_is_at_the_first_field_the_rule_reads(tmp_path: Path) -> None:
    policies = rules(
        tmp_path,
        "rules:\n  - {id: r, match: {kinds: [Prompt]},"
        " expr: 'spec.maxTokens < 10 && spec.temperature < 0.1', message: m}\n",
    )
    text = manifest(spec=prompt(maxTokens=100))
    _, outcome = verdicts(policies, tmp_path, text)
    (problem,) = outcome.problems
    line = text.splitlines().index("  maxTokens: 100") + 1
    assert problem.line == line and str(problem).startswith(
        f"m.yaml:{line}: Prompt/billing-agent: policy r: m"
    )
    # maxTokens absent: the next field it reads, temperature
    _, outcome = verdicts(policies, tmp_path, manifest(spec=prompt()))
    (problem,) = outcome.problems
    assert problem.line == manifest(spec=prompt()).splitlines().index("  temperature: 0.3") + 1


def test_a_violation_on_fields_the_document_lacks_is_at_the_document(tmp_path: Path) -> None:
    policies = rules(
        tmp_path,
        "rules:\n  - {id: r, match: {kinds: [Prompt]}, expr: 'spec.topP < 0.5', message: m}\n",
    )
    text = manifest(spec=prompt())
    outcome = engine.judge(policies.rules, docs(tmp_path, "# c\n" + text, text), "", TODAY)
    second = len(("# c\n" + text).splitlines()) + 2  # after the `---` line
    assert [p.line for p in outcome.problems] == [2, second]


# --- evaluation errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "field", "severity"),
    [
        ("spec.fewShot.examples.size() > 0", "spec.fewShot", "error"),
        ("spec.version.startsWith('1.')", "spec.version", "warning"),
        ("metadata.labels.team == 'billing'", "metadata.labels.team", "error"),
    ],
)
def test_an_unguarded_optional_field_is_reported_not_passed(
    tmp_path: Path, expr: str, field: str, severity: str
) -> None:
    policies = rules(
        tmp_path,
        f"rules:\n  - {{id: r, match: {{kinds: [Prompt]}}, expr: {expr!r}, message: m,"
        f" severity: {severity}}}\n",
    )
    got, outcome = verdicts(policies, tmp_path, manifest(spec=prompt()))
    assert got == {"r": "error"}
    (problem,) = outcome.problems
    assert problem.severity == severity and problem.rule == "policy/r"
    assert problem.message.startswith("policy r: could not be evaluated: no such field")
    assert f"`!has({field}) || ...`" in problem.fix


def test_the_guarded_form_passes(tmp_path: Path) -> None:
    policies = rules(
        tmp_path,
        "rules:\n  - {id: r, match: {kinds: [Prompt]},"
        " expr: '!has(spec.version) || spec.version.startsWith(\"1.\")', message: m}\n",
    )
    got, _ = verdicts(policies, tmp_path, manifest(spec=prompt()))
    assert got == {"r": "pass"}
    got, _ = verdicts(policies, tmp_path, manifest(spec=prompt(version="2.0.0")))
    assert got == {"r": "fail"}


def test_a_run_time_error_is_reported(tmp_path: Path) -> None:
    policies = rules(
        tmp_path,
        "rules:\n  - {id: r, match: {kinds: [Prompt]},"
        " expr: '100 / (spec.maxTokens - 2048) > 0', message: m}\n",
    )
    got, outcome = verdicts(policies, tmp_path, manifest(spec=prompt()))
    assert got == {"r": "error"}
    assert "could not be evaluated: division by zero" in outcome.problems[0].message


def test_a_failing_message_expression_falls_back_to_message(tmp_path: Path) -> None:
    policies = rules(
        tmp_path,
        "rules:\n  - id: r\n    match: {kinds: [Prompt]}\n    expr: 'spec.temperature < 0.1'\n"
        "    message: too warm\n    messageExpression: \"'version ' + spec.version\"\n",
    )
    _, outcome = verdicts(policies, tmp_path, manifest(spec=prompt()))
    (problem,) = outcome.problems
    assert problem.message.startswith("policy r: too warm (its messageExpression failed: ")
    _, outcome = verdicts(policies, tmp_path, manifest(spec=prompt(version="1.2.3")))
    assert outcome.problems[0].message == "policy r: version 1.2.3"


def test_an_empty_message_expression_falls_back_to_message(tmp_path: Path) -> None:
    policies = rules(
        tmp_path,
        "rules:\n  - {id: r, expr: 'false', message: said, messageExpression: \"''\"}\n",
    )
    _, outcome = verdicts(policies, tmp_path, manifest(spec=prompt()))
    assert outcome.problems[0].message == "policy r: said"


# --- exceptions ----------------------------------------------------------------------------------

EXC_RULES = """rules:
  - {id: cool, match: {kinds: [Prompt]}, expr: 'spec.temperature <= 0.5', message: too warm}
  - {id: strict, match: {kinds: [Prompt]}, expr: 'spec.temperature <= 0.5', message: 'no',
     allowExceptions: false}
"""


def _with_exception(tmp_path: Path, annotations: dict[str, str]) -> engine.Outcome:
    policies = rules(tmp_path, EXC_RULES.split("  - {id: strict")[0])
    text = manifest(spec=prompt(temperature=0.9), annotations=annotations)
    return engine.judge(policies.rules, docs(tmp_path, text), "prod", TODAY)


def test_an_active_exception_suppresses_and_is_listed(tmp_path: Path) -> None:
    key = "exceptions.llmgw.io/cool"
    outcome = _with_exception(tmp_path, {key: "until 2027-01-31: pilot INC-4711"})
    assert outcome.problems == []
    (excepted,) = outcome.excepted
    assert excepted.rule == "cool" and excepted.until == dt.date(2027, 1, 31)
    assert excepted.reason == "pilot INC-4711" and excepted.subject == "Prompt/billing-agent"
    assert excepted.line == 6 and excepted.file == "m.yaml"  # the annotation's line
    assert outcome.verdicts[0, "cool"] == "excepted"


def test_an_exception_expiring_today_is_still_active(tmp_path: Path) -> None:
    outcome = _with_exception(
        tmp_path, {"exceptions.llmgw.io/cool": f"until {TODAY.isoformat()}: last day"}
    )
    assert outcome.problems == [] and len(outcome.excepted) == 1


def test_an_exception_expired_yesterday_warns_and_the_rule_applies(tmp_path: Path) -> None:
    yesterday = (TODAY - dt.timedelta(days=1)).isoformat()
    outcome = _with_exception(tmp_path, {"exceptions.llmgw.io/cool": f"until {yesterday}: old"})
    assert outcome.excepted == []
    by_rule = {p.rule: p for p in outcome.problems}
    expired = by_rule["policy.exception-expired"]
    assert expired.severity == "warning" and f"expired on {yesterday}" in expired.message
    assert expired.line == 6 and expired.path == "metadata.annotations.exceptions.llmgw.io/cool"
    assert by_rule["policy/cool"].severity == "error"


@pytest.mark.parametrize(
    "value",
    [
        "2027-01-31: no until",
        "until 2027-01-31",
        "until 2027-01-31:   ",
        "until 27-01-31: short year",
        "until 2027-02-30: no such day",
        "until 2027-13-01: no such month",
        "until tomorrow: words",
        "",
    ],
)
def test_a_malformed_exception_is_an_error_and_the_rule_applies(tmp_path: Path, value: str) -> None:
    outcome = _with_exception(tmp_path, {"exceptions.llmgw.io/cool": value})
    by_rule = {p.rule: p for p in outcome.problems}
    malformed = by_rule["policy.exception"]
    assert malformed.severity == "error" and "until YYYY-MM-DD: reason" in malformed.message
    assert "policy/cool" in by_rule and outcome.excepted == []


def test_an_exception_that_is_not_a_string(tmp_path: Path) -> None:
    text = manifest(spec=prompt(temperature=0.9)).replace(
        "  name: billing-agent\n",
        "  name: billing-agent\n  annotations:\n    exceptions.llmgw.io/cool: 20270131\n",
    )
    policies = rules(tmp_path, EXC_RULES.split("  - {id: strict")[0])
    outcome = engine.judge(policies.rules, docs(tmp_path, text), "", TODAY)
    assert {p.rule for p in outcome.problems} == {"policy.exception", "policy/cool"}


def test_an_exception_for_an_unknown_rule_warns(tmp_path: Path) -> None:
    outcome = _with_exception(tmp_path, {"exceptions.llmgw.io/nosuch": "until 2027-01-31: x"})
    unknown = next(p for p in outcome.problems if p.rule == "policy.exception")
    assert unknown.severity == "warning" and "names no policy rule loaded: `nosuch`" in (
        unknown.message
    )


def test_an_exception_to_a_rule_that_allows_none_is_an_error(tmp_path: Path) -> None:
    policies = rules(tmp_path, EXC_RULES)
    text = manifest(
        spec=prompt(temperature=0.9),
        annotations={"exceptions.llmgw.io/strict": "until 2027-01-31: please"},
    )
    outcome = engine.judge(policies.rules, docs(tmp_path, text), "", TODAY)
    by_rule = {p.rule: p for p in outcome.problems}
    assert by_rule["policy.exception"].severity == "error"
    assert "policy strict allows no exceptions" in by_rule["policy.exception"].message
    assert by_rule["policy/strict"].severity == "error" and by_rule["policy/cool"]


def test_an_exception_is_checked_even_where_no_rule_matches(tmp_path: Path) -> None:
    policies = rules(tmp_path, EXC_RULES)
    split = manifest(
        "TrafficSplit",
        spec={"prompt": "abc", "defaultVersion": "1.0.0"},
        annotations={"exceptions.llmgw.io/cool": "until 2027-02-30: x"},
    )
    outcome = engine.judge(policies.rules, docs(tmp_path, split), "", TODAY)
    assert [p.rule for p in outcome.problems] == ["policy.exception"]


def test_a_passing_document_with_an_exception_lists_nothing(tmp_path: Path) -> None:
    policies = rules(tmp_path, EXC_RULES.split("  - {id: strict")[0])
    text = manifest(spec=prompt(), annotations={"exceptions.llmgw.io/cool": "until 2027-01-31: x"})
    outcome = engine.judge(policies.rules, docs(tmp_path, text), "", TODAY)
    assert outcome.problems == [] and outcome.excepted == []


def test_a_violation_fix_offers_an_exception_only_when_allowed(tmp_path: Path) -> None:
    policies = rules(tmp_path, EXC_RULES)
    outcome = engine.judge(
        policies.rules, docs(tmp_path, manifest(spec=prompt(temperature=0.9))), "", TODAY
    )
    fixes = {p.rule: p.fix for p in outcome.problems}
    assert fixes == {
        "policy/cool": "or record an exception: exceptions.llmgw.io/cool",
        "policy/strict": "",
    }


# --- the packs' own tests ------------------------------------------------------------------------


def test_a_failing_pack_test_is_reported(tmp_path: Path) -> None:
    spec = json.dumps(prompt(temperature=0.9))
    text = (
        EXC_RULES
        + "tests:\n  - name: warm prompt\n    document: {apiVersion: llmgw/v1, kind: Prompt,"
        f" metadata: {{name: abc}}, spec: {spec}}}\n    pass: [cool]\n    fail: [strict]\n"
        "  - name: cool prompt\n    document: {apiVersion: llmgw/v1, kind: Prompt,"
        f" metadata: {{name: abc}}, spec: {json.dumps(prompt())}}}\n    fail: [cool]\n"
    )
    results = selftest.run(rules(tmp_path, text), TODAY)
    assert results.cases == 2 and results.checks == 3 and not results.ok
    assert [(f.case.name, f.rule, f.expected, f.got) for f in results.failures] == [
        ("warm prompt", "cool", "pass", "fail"),
        ("cool prompt", "cool", "fail", "pass"),
    ]
    assert str(results.failures[0]).startswith(
        "rules.yaml:9: test 'warm prompt': rule cool should pass but failed"
    )


def test_a_pack_test_on_a_rule_that_cannot_be_evaluated(tmp_path: Path) -> None:
    text = (
        "rules:\n  - {id: v, match: {kinds: [Prompt]}, expr: 'spec.version != \"\"', message: m}\n"
        "tests:\n  - name: no version\n    document: {apiVersion: llmgw/v1, kind: Prompt,"
        f" metadata: {{name: abc}}, spec: {json.dumps(prompt())}}}\n    fail: [v]\n"
    )
    (failure,) = selftest.run(rules(tmp_path, text), TODAY).failures
    assert failure.got == "error" and "no such field `version`" in failure.detail


# --- validate ------------------------------------------------------------------------------------


def test_validate_judges_only_schema_valid_documents(tmp_path: Path) -> None:
    policies = rules(tmp_path, EXC_RULES.split("  - {id: strict")[0])
    bad = manifest(name="broken-agent", spec=prompt(temperature=9))
    warm = manifest(spec=prompt(temperature=0.9))
    f = tmp_path / "m.yaml"
    f.write_text(bad + "---\n" + warm, encoding="utf-8")
    report = validate_paths([str(f)], policies=policies, env="prod", today=TODAY)
    subjects = {(p.name, p.rule) for p in report.problems}
    assert ("broken-agent", "schema.maximum") in subjects
    assert ("billing-agent", "policy/cool") in subjects
    assert ("broken-agent", "policy/cool") not in subjects
    assert report.rules == 1 and not report.ok()


def test_a_warning_rule_fails_validate_only_when_strict(tmp_path: Path) -> None:
    policies = rules(
        tmp_path,
        "rules:\n  - {id: w, match: {kinds: [Prompt]}, expr: 'spec.temperature < 0.1',"
        " message: m, severity: warning}\n",
    )
    f = tmp_path / "m.yaml"
    f.write_text(manifest(spec=prompt()), encoding="utf-8")
    report = validate_paths([str(f)], policies=policies, today=TODAY)
    (problem,) = [p for p in report.problems if p.rule.startswith("policy")]
    assert problem.severity == "warning" and problem.rule == "policy/w"
    assert report.ok() and not report.ok(strict=True)
    assert not report.errors


def test_validate_reports_pack_problems(tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(manifest(spec=prompt()), encoding="utf-8")
    policies = pack.load(["no/such/pack"])
    report = validate_paths([str(f)], policies=policies, today=TODAY)
    assert [p.rule for p in report.errors] == ["policy.load"] and not report.ok()


# --- robustness ----------------------------------------------------------------------------------


def test_ten_thousand_few_shot_examples_and_a_loop_over_them(tmp_path: Path) -> None:
    policies = rules(
        tmp_path,
        "rules:\n  - {id: short, match: {kinds: [Prompt]}, expr: '!has(spec.fewShot) ||"
        ' spec.fewShot.examples.all(e, size(e.input) < 100 && e.output != "")\', message: m}\n'
        "  - {id: one, match: {kinds: [Prompt]}, expr: 'spec.fewShot.examples.exists_one(e,"
        ' e.input == "q9999")\', message: m}\n',
    )
    examples = [{"input": f"q{i}", "output": f"a{i}"} for i in range(10_000)]
    spec = prompt(fewShot={"contextWindowLimit": 100_000, "examples": examples})
    got, outcome = verdicts(policies, tmp_path, manifest(spec=spec))
    assert got == {"short": "pass", "one": "pass"}, [str(p) for p in outcome.problems]
    examples[5_000]["output"] = ""
    spec = prompt(fewShot={"contextWindowLimit": 100_000, "examples": examples})
    got, _ = verdicts(policies, tmp_path, manifest(spec=spec))
    assert got == {"short": "fail", "one": "pass"}


def test_control_and_non_ascii_characters_in_messages_are_escaped(tmp_path: Path) -> None:
    policies = rules(
        tmp_path,
        "rules:\n  - id: r\n    match: {kinds: [Prompt]}\n    expr: 'false'\n"
        '    message: "caf\\u00e9 \\u202e evil\\nsecond line\\ttab \\x1b[31m"\n'
        "    messageExpression: \"metadata.name + ' \\u2028 ' + spec.model\"\n",
    )
    text = manifest(spec=prompt(model="m\u0007odel"))
    _, outcome = verdicts(policies, tmp_path, text)
    (problem,) = outcome.problems
    assert "\u2028" in problem.message and "\u0007" in problem.message  # kept as data
    line = str(problem)
    assert "\n" not in line and "\u2028" not in line and "\u0007" not in line
    assert "billing-agent" in line
    policies = rules(
        tmp_path,
        "rules:\n  - id: r\n    expr: 'false'\n"
        '    message: "caf\\u00e9 \\u202e evil\\nsecond line\\ttab \\x1b[31m"\n',
    )
    _, outcome = verdicts(policies, tmp_path, text)
    line = str(outcome.problems[0])
    assert "café" in line  # printable non-ASCII stays readable
    for bad in ("\u202e", "\n", "\t", "\x1b"):
        assert bad not in line
