"""Loading policy packs (``reconciler/policy/pack.py``): where they come from, and every load
problem at its file and line.

Covers: the example pack loads (five rules, their match, severity and defaults, its tests);
``sources``: --policies first, else LLMGW_POLICIES split on os.pathsep, else ./policies when it
exists and nothing when it does not; a missing path is a problem naming it; load problems, each
at file:line with the column inside the expression in its message: a YAML error, a document
that is not a PolicySet (a manifest, or no kind), schema errors (an unknown key, a bad severity,
a bad id, an expression longer than 4,096 characters), a CEL syntax error in expr and in
messageExpression, on the third line of a `|` block scalar (mid-line, and an expression that
ends too early), duplicate ids within a pack and across packs (both places named), a missing
message, tests naming unknown rules, a test both passing and failing a rule, an invalid test
document (its paths prefixed tests[i].document); every problem of a pack reported at once, each
once; a broken pack contributes no rule while the others load; 1,000 rules and an expression of
4,096 characters load.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.policy import pack

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "policies"
HEAD = "apiVersion: llmgw/v1\nkind: PolicySet\nmetadata: {name: t}\n"


def write(folder: Path, text: str, name: str = "p.yaml") -> Path:
    f = folder / name
    f.write_text(text, encoding="utf-8")
    return f


def problems(*paths: Path) -> list[str]:
    return [str(p) for p in pack.load([str(p) for p in paths]).problems]


# --- the example pack ----------------------------------------------------------------------------


def test_the_example_pack_loads() -> None:
    loaded = pack.load([str(EXAMPLES)])
    assert loaded.problems == []
    by_id = {r.id: r for r in loaded.rules}
    assert list(by_id) == [
        "prod-pii-filter",
        "prod-low-temperature",
        "fallback-model",
        "approved-models",
        "prod-canary-rollout",
    ]
    pii = by_id["prod-pii-filter"]
    assert pii.kinds == ("Prompt",) and pii.environments == ("prod",)
    assert (
        pii.severity == "error" and pii.allow_exceptions is False and pii.pack == "org-guardrails"
    )
    assert pii.line == 15 and pii.file.endswith("org-guardrails.yaml")
    assert pii.fields == (("spec", "safetyGuardrails", "contentFiltering"),)
    assert by_id["prod-low-temperature"].message_expr is not None
    assert by_id["fallback-model"].environments == () and by_id["fallback-model"].allow_exceptions
    assert by_id["prod-canary-rollout"].kinds == ("TrafficSplit",)
    assert len(loaded.cases) == 8 and loaded.files and loaded.ids == set(by_id)


# --- sources -------------------------------------------------------------------------------------


def test_explicit_paths_come_first(tmp_path: Path) -> None:
    env = {pack.ENV_VAR: "a"}
    (tmp_path / "policies").mkdir()
    assert pack.sources(["x", "y"], env) == ["x", "y"]


def test_the_environment_variable_splits_on_the_path_separator() -> None:
    env = {pack.ENV_VAR: os.pathsep.join(["one", "", "two/three", " "])}
    assert pack.sources([], env) == ["one", "two/three"]


def test_the_default_folder_when_present(tmp_path: Path) -> None:
    # the working directory is tmp_path (tests/conftest.py)
    assert pack.sources([], {}) == []
    (tmp_path / "policies").mkdir()
    assert pack.sources([], {}) == ["policies"]
    assert pack.sources([], {pack.ENV_VAR: ""}) == ["policies"]


def test_no_sources_no_rules_no_problems() -> None:
    loaded = pack.load([])
    assert loaded.rules == [] and loaded.problems == [] and loaded.files == []


def test_a_missing_path_is_a_problem(tmp_path: Path) -> None:
    good = write(tmp_path, HEAD + "rules:\n  - {id: ok, expr: 'true', message: m}\n")
    loaded = pack.load([str(good), "nowhere/policies"])
    (problem,) = loaded.problems
    assert str(problem) == (
        "nowhere/policies: no such policy file or folder "
        "(check the --policies path or LLMGW_POLICIES)"
    )
    assert problem.rule == "policy.load" and problem.severity == "error"
    assert [r.id for r in loaded.rules] == ["ok"]


def test_a_folder_is_read_recursively(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    write(tmp_path / "a", HEAD + "rules:\n  - {id: one, expr: 'true', message: m}\n", "x.yaml")
    write(
        tmp_path / "a" / "b",
        HEAD.replace("name: t", "name: u") + "rules:\n  - {id: two, expr: 'true', message: m}\n",
        "y.yml",
    )
    loaded = pack.load([str(tmp_path / "a")])
    assert sorted(r.id for r in loaded.rules) == ["one", "two"] and loaded.problems == []


# --- load problems, located ---------------------------------------------------------------------


def test_a_yaml_error(tmp_path: Path) -> None:
    f = write(tmp_path, HEAD.replace("{name: t}", "{name: t") + "rules: []\n")
    (text,) = problems(f)
    assert text.startswith("p.yaml:4: YAML syntax error")


def test_a_manifest_is_not_a_policy_set(tmp_path: Path) -> None:
    f = write(tmp_path, "apiVersion: llmgw/v1\nkind: Prompt\nmetadata: {name: abc}\n")
    loaded = pack.load([str(f)])
    (problem,) = loaded.problems
    assert str(problem).startswith(
        "p.yaml:2: PolicySet/abc: kind: a policy file holds `kind: PolicySet` documents, "
        "not kind Prompt (a manifest: keep it among the manifests)"
    )
    assert problem.rule == "policy.kind"


def test_a_document_without_kind(tmp_path: Path) -> None:
    f = write(tmp_path, "apiVersion: llmgw/v1\nmetadata: {name: abc}\n")
    (text,) = problems(f)
    assert "not a document without a kind" in text and "write `kind: PolicySet`" in text


RULE = "rules:\n  - id: r\n    match: {kinds: [Prompt]}\n    expr: 'true'\n    message: m\n"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("    message: m\n", "    message: m\n    bogus: 1\n"),
            "p.yaml:9: PolicySet/t: rules[0].bogus: unknown field `bogus`",
        ),
        (
            ("    message: m\n", "    message: m\n    severity: fatal\n"),
            'p.yaml:9: PolicySet/t: rules[0].severity: must be one of: error, warning (got "fatal"',
        ),
        (
            ("id: r", "id: Bad_Id"),
            "p.yaml:5: PolicySet/t: rules[0].id: must be lower-case letters, digits and `-`",
        ),
        (
            ("kinds: [Prompt]", "kinds: [Promt]"),
            "p.yaml:6: PolicySet/t: rules[0].match.kinds[0]: must be one of",
        ),
        (
            ("    expr: 'true'\n", "    expr: 'true'\n    allowExceptions: maybe\n"),
            "p.yaml:8: PolicySet/t: rules[0].allowExceptions:",
        ),
        (("    expr: 'true'\n", ""), "rules[0].expr: missing required field `expr`"),
    ],
    ids=["unknown-key", "bad-severity", "bad-id", "bad-kind", "bad-bool", "no-expr"],
)
def test_schema_errors(tmp_path: Path, edit: tuple[str, str], expected: str) -> None:
    f = write(tmp_path, HEAD + RULE.replace(*edit))
    loaded = pack.load([str(f)])
    assert loaded.rules == []
    assert any(str(p).startswith(expected) or expected in str(p) for p in loaded.problems), [
        str(p) for p in loaded.problems
    ]


def test_an_expression_longer_than_4096_characters(tmp_path: Path) -> None:
    long = "true" + " && true" * 512
    assert len(long) > 4096
    f = write(tmp_path, HEAD + RULE.replace("'true'", f"'{long}'"))
    (text,) = problems(f)
    assert text.startswith("p.yaml:7: PolicySet/t: rules[0].expr: must be 1 to 4096 characters")


def test_an_expression_of_4096_characters_loads(tmp_path: Path) -> None:
    expr = "spec.model != 'x'" + " && spec.model != 'x'" * 194
    expr += " " * (4096 - len(expr))
    assert len(expr) == 4096
    f = write(tmp_path, HEAD + RULE.replace("'true'", "'" + expr.replace("'", "''") + "'"))
    loaded = pack.load([str(f)])
    assert loaded.problems == [] and len(loaded.rules) == 1


def test_a_syntax_error_in_expr(tmp_path: Path) -> None:
    f = write(tmp_path, HEAD + RULE.replace("'true'", "'spec.model == == 1'"))
    loaded = pack.load([str(f)])
    (problem,) = loaded.problems
    assert str(problem).startswith("p.yaml:7: PolicySet/t: rules[0].expr: column 15: syntax error")
    assert problem.rule == "policy.syntax" and loaded.rules == []


def test_a_syntax_error_in_a_message_expression(tmp_path: Path) -> None:
    f = write(
        tmp_path, HEAD + RULE.replace("    message: m\n", "    messageExpression: \"'a' + \"\n")
    )
    (problem,) = pack.load([str(f)]).problems
    assert str(problem).startswith("p.yaml:8: PolicySet/t: rules[0].messageExpression: column 6: ")
    assert "the expression ends too early" in problem.message


BLOCK = """rules:
  - id: r
    match: {kinds: [Prompt]}
    expr: |
      spec.model == 'x'
      && spec.temperature < 0.5
      THIRD
    message: m
"""


@pytest.mark.parametrize(
    ("third", "column", "says"),
    [
        ("&& spec.model === 'y'", 17, "syntax error"),
        ("&& spec.model ==", 17, "the expression ends too early"),
        ("&& spec.modle == 'y'", 9, "no field `modle`"),
        ("&& spec.model.startsWith(1)", 4, "does not take (int)"),
    ],
    ids=["syntax-mid-line", "ends-too-early", "check", "check-call"],
)
def test_an_error_on_the_third_line_of_a_block_scalar(
    tmp_path: Path, third: str, column: int, says: str
) -> None:
    f = write(tmp_path, HEAD + BLOCK.replace("THIRD", third))
    (problem,) = pack.load([str(f)]).problems
    # lines: 1-3 head, 4 rules, 5 id, 6 match, 7 expr: |, 8-10 the expression
    assert problem.line == 10, str(problem)
    assert problem.message.startswith(f"column {column}: ") and says in problem.message


def test_a_syntax_error_on_the_first_line_of_a_block_scalar(tmp_path: Path) -> None:
    f = write(tmp_path, HEAD + BLOCK.replace("spec.model == 'x'", "spec.model = 'x'"))
    (problem,) = pack.load([str(f)]).problems
    assert problem.line == 8 and problem.message.startswith("column 12: ")


def test_duplicate_ids_within_a_pack_name_both(tmp_path: Path) -> None:
    rules = "rules:\n" + "  - {id: same, expr: 'true', message: m}\n" * 2
    (problem,) = pack.load([str(write(tmp_path, HEAD + rules))]).problems
    assert str(problem).startswith(
        "p.yaml:6: PolicySet/t: rules[1].id: rule id `same` is used twice in this pack: "
        "also rules[0] at line 5"
    )
    assert problem.rule == "policy.duplicate-id"


def test_duplicate_ids_across_packs_name_both(tmp_path: Path) -> None:
    rule = "rules:\n  - {id: same, expr: 'true', message: m}\n"
    a = write(tmp_path, HEAD + rule, "a.yaml")
    b = write(tmp_path, HEAD.replace("name: t", "name: u") + rule, "b.yaml")
    loaded = pack.load([str(a), str(b)])
    (problem,) = loaded.problems
    assert str(problem).startswith(
        "b.yaml:5: PolicySet/u: rules[same]: rule id `same` is also defined at a.yaml:5"
    )
    assert [r.pack for r in loaded.rules] == ["t"]


def test_a_rule_without_message(tmp_path: Path) -> None:
    f = write(tmp_path, HEAD + RULE.replace("    message: m\n", ""))
    (problem,) = pack.load([str(f)]).problems
    assert str(problem).startswith(
        "p.yaml:5: PolicySet/t: rules[0]: a rule needs a `message` or a `messageExpression`"
    )
    assert problem.rule == "policy.message"


def test_a_message_expression_alone_is_enough(tmp_path: Path) -> None:
    f = write(tmp_path, HEAD + RULE.replace("message: m", "messageExpression: \"'m'\""))
    loaded = pack.load([str(f)])
    assert loaded.problems == [] and loaded.rules[0].message == "fails policy r"


DOC = (
    "{apiVersion: llmgw/v1, kind: Prompt, metadata: {name: abc},"
    " spec: {template: tpl, model: m, systemPrompt: s}}"
)


def test_tests_naming_unknown_rules(tmp_path: Path) -> None:
    tests = f"tests:\n  - name: t\n    document: {DOC}\n    pass: [r, nosuch]\n    fail: [other]\n"
    loaded = pack.load([str(write(tmp_path, HEAD + RULE + tests))])
    texts = [str(p) for p in loaded.problems]
    assert texts == [
        "p.yaml:12: PolicySet/t: tests[0].pass[1]: names no rule of this pack: `nosuch` (rules: r)",
        "p.yaml:13: PolicySet/t: tests[0].fail[0]: names no rule of this pack: `other` (rules: r)",
    ]
    assert {p.rule for p in loaded.problems} == {"policy.test"} and loaded.rules == []


def test_a_test_both_passing_and_failing(tmp_path: Path) -> None:
    tests = f"tests:\n  - name: t\n    document: {DOC}\n    pass: [r]\n    fail: [r]\n"
    (problem,) = pack.load([str(write(tmp_path, HEAD + RULE + tests))]).problems
    assert str(problem).startswith(
        "p.yaml:10: PolicySet/t: tests[0]: a rule cannot both pass and fail: r"
    )


def test_an_invalid_test_document(tmp_path: Path) -> None:
    bad = DOC.replace("model: m, ", "model: m, temperature: 9, ")
    tests = f"tests:\n  - name: t\n    document: {bad}\n    pass: [r]\n"
    (problem,) = pack.load([str(write(tmp_path, HEAD + RULE + tests))]).problems
    assert problem.path == "tests[0].document.spec.temperature"
    assert str(problem).startswith("p.yaml:11: Prompt/abc: tests[0].document.spec.temperature:")


def test_an_invalid_test_document_is_reported_once_per_problem(tmp_path: Path) -> None:
    bad = DOC.replace("template: tpl, ", "").replace(", systemPrompt: s", "")
    tests = f"tests:\n  - name: t\n    document: {bad}\n    pass: [r]\n"
    texts = problems(write(tmp_path, HEAD + RULE + tests))
    assert texts and len(texts) == len(set(texts))
    assert all("tests[0].document.spec" in t for t in texts)


def test_a_test_document_of_a_block_keeps_its_lines(tmp_path: Path) -> None:
    tests = (
        "tests:\n  - name: t\n    document:\n      apiVersion: llmgw/v1\n      kind: Prompt\n"
        "      metadata: {name: abc}\n      spec:\n        template: tpl\n        model: m\n"
        "        systemPrompt: s\n        topP: 7\n    pass: [r]\n"
    )
    loaded = pack.load([str(write(tmp_path, HEAD + RULE + tests))])
    (problem,) = loaded.problems
    assert problem.line == 19 and problem.path == "tests[0].document.spec.topP"


def test_every_problem_of_a_pack_at_once(tmp_path: Path) -> None:
    rules = """rules:
  - id: one
    match: {kinds: [Prompt]}
    expr: "spec.modle == 'x'"
    message: m
  - id: two
    expr: "1 +"
    message: m
  - id: three
    expr: "true"
  - id: four
    match: {kinds: [Prompt]}
    expr: "spec.model < 1"
    message: m
  - id: five
    expr: "true"
    message: m
    severity: high
  - id: one
    expr: "true"
    message: m
"""
    loaded = pack.load([str(write(tmp_path, HEAD + rules))])
    got = [(p.line, p.path, p.rule) for p in loaded.problems]
    assert got == [
        (7, "rules[0].expr", "policy.check"),
        (10, "rules[1].expr", "policy.syntax"),
        (12, "rules[2]", "policy.message"),
        (16, "rules[3].expr", "policy.check"),
        (21, "rules[4].severity", "schema.enum"),
        (22, "rules[5].id", "policy.duplicate-id"),
    ]
    assert loaded.rules == []


def test_a_broken_pack_contributes_no_rule_and_others_load(tmp_path: Path) -> None:
    good = write(tmp_path, HEAD + RULE, "good.yaml")
    broken = HEAD.replace("name: t", "name: u") + RULE.replace("id: r", "id: s")
    broken += "  - {id: bad, expr: 'nope', message: m}\n"
    bad = write(tmp_path, broken, "bad.yaml")
    loaded = pack.load([str(good), str(bad)])
    assert [r.id for r in loaded.rules] == ["r"]
    assert [p.path for p in loaded.problems] == ["rules[1].expr"]


def test_two_packs_in_one_file(tmp_path: Path) -> None:
    text = HEAD + RULE + "---\n" + HEAD.replace("name: t", "name: u") + RULE.replace("r\n", "s\n")
    loaded = pack.load([str(write(tmp_path, text))])
    assert loaded.problems == [] and [r.id for r in loaded.rules] == ["r", "s"]
    assert loaded.rules[1].line == 14


def test_a_thousand_rules_load(tmp_path: Path) -> None:
    rules = "rules:\n" + "".join(
        f"  - {{id: r{i}, match: {{kinds: [Prompt]}}, expr: 'spec.maxTokens > {i}', message: m}}\n"
        for i in range(1000)
    )
    loaded = pack.load([str(write(tmp_path, HEAD + rules))])
    assert loaded.problems == [] and len(loaded.rules) == 1000
    assert loaded.rules[999].line == 1004


def test_a_thousand_and_one_rules_do_not(tmp_path: Path) -> None:
    rules = "rules:\n" + "".join(
        f"  - {{id: r{i}, expr: 'true', message: m}}\n" for i in range(1001)
    )
    loaded = pack.load([str(write(tmp_path, HEAD + rules))])
    assert loaded.rules == [] and any(p.path == "rules" for p in loaded.problems)
