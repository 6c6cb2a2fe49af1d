"""The static checks of policy rules (``reconciler/policy/check.py``), through the pack loader.

Covers: the function table (``check.functions()``): every overload called through the CEL
library with sample arguments of its types, which must succeed and give the promised result
type (the table names only what the library has); load-time type errors, each with its column
and fix: a string compared with a number, `&&` on a string, an unknown function with a
suggestion, a wrong argument count, a missing field with did-you-mean, a selection on a string,
an enum literal outside the enum, a bad literal regex, `in` on a map with a non-string and on a
string, int + uint, int * double, a number field with an int literal, `%` on doubles, unary
minus on a uint, duration + timestamp, a non-boolean rule, a non-string messageExpression, an
undeclared name; the cost budget (nested loops over unbounded lists are an error naming both
loops; loops over maxItems-bounded and enum-bounded lists are fine; a single loop is fine); a
rule matching every kind with a field some kinds lack (the fix names the kinds that have it);
and expressions that must check clean (each also evaluated on a real document, so the checker
does not refuse what works).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from reconciler import cel
from reconciler.policy import check, pack
from reconciler.policy.check import T

# --- the function table against the library -----------------------------------------------------

_STRING_FOR = {
    "timestamp": "'2024-01-01T00:00:00Z'",
    "duration": "'90s'",
    "int": "'12'",
    "uint": "'12'",
    "double": "'1.5'",
}
_SAMPLES = {
    "bytes": ["b'ab'"],
    "list": ["[1, 2]"],
    "map": ["{'a': 1}"],
    "number": ["3", "3u", "2.5"],
    "timestamp": ["timestamp('2024-01-01T00:00:00Z')"],
    "duration": ["duration('3600s')"],
    "dyn": ["1", "'a'", "[1]"],
}
_TYPE_NAMES = {
    "int": "int",
    "uint": "uint",
    "double": "double",
    "string": "string",
    "bytes": "bytes",
    "bool": "bool",
    "type": "type",
    "timestamp": "google.protobuf.Timestamp",
    "duration": "google.protobuf.Duration",
}


def _samples(t: T, function: str) -> list[str]:
    if t.tag == "string":
        return [_STRING_FOR.get(function, "'abc'")]
    return _SAMPLES[t.tag]


def _calls() -> list[tuple[str, str]]:
    out = []
    for name, overloads in check.functions().items():
        for target, args, result in overloads:
            targets = [None] if target is None else _samples(target, name)
            for on in targets:
                for combo in itertools.product(*(_samples(a, name) for a in args)):
                    head = name if on is None else f"{on}.{name}"
                    out.append((f"{head}({', '.join(combo)})", result.tag))
    return out


CALLS = _calls()


def _run(source: str) -> object:
    return cel.evaluate(cel.compile_expression(source), cel.context({}))


@pytest.mark.parametrize(("call", "result"), CALLS, ids=[c for c, _ in CALLS])
def test_every_overload_in_the_table_is_in_the_library(call: str, result: str) -> None:
    _run(call)  # an ExpressionError here: the table names what the library does not have
    if result in _TYPE_NAMES:
        assert _run(f"type({call})") == _TYPE_NAMES[result], call


def test_the_table_covers_every_function_and_getter() -> None:
    names = set(check.functions())
    assert {"size", "matches", "startsWith", "endsWith", "contains", "int", "string"} <= names
    assert {"getFullYear", "getHours", "getDayOfWeek"} <= names
    assert len(CALLS) > 40


def test_a_function_the_library_lacks_is_refused_at_load(tmp_path: Path) -> None:
    # int(timestamp) and lowerAscii are not in the library: a rule using them must not load
    for expr, said in [
        ("int(timestamp('2024-01-01T00:00:00Z')) > 0", "`int` does not take (timestamp)"),
        ("spec.model.lowerAscii() == 'x'", "no function `lowerAscii`"),
    ]:
        with pytest.raises(Exception):  # noqa: B017 - proves the library lacks it
            _run(expr.replace("spec.model", "'A'"))
        assert said in _one_problem(tmp_path, expr)


# --- helpers -------------------------------------------------------------------------------------


def write_pack(folder: Path, rules: str, name: str = "p.yaml", pack_name: str = "t") -> Path:
    f = folder / name
    f.write_text(f"apiVersion: llmgw/v1\nkind: PolicySet\nmetadata: {{name: {pack_name}}}\n{rules}")
    return f


def _quote(expr: str) -> str:
    return "'" + expr.replace("'", "''") + "'"


def load_rule(folder: Path, expr: str, kinds: str = "[Prompt]", extra: str = "") -> pack.Policies:
    match = f"    match: {{kinds: {kinds}}}\n" if kinds else ""
    rules = f"rules:\n  - id: r\n{match}    expr: {_quote(expr)}\n    message: m\n{extra}"
    return pack.load([str(write_pack(folder, rules))])


def _one_problem(folder: Path, expr: str, kinds: str = "[Prompt]") -> str:
    loaded = load_rule(folder, expr, kinds)
    assert len(loaded.problems) == 1, [str(p) for p in loaded.problems]
    assert not loaded.rules
    problem = loaded.problems[0]
    assert problem.rule == "policy.check" and problem.severity == "error"
    assert problem.path == "rules[0].expr" and problem.kind == "PolicySet"
    return str(problem)


# --- type errors ---------------------------------------------------------------------------------

TYPE_ERRORS = [
    ("spec.model < 1", "column 1: `<` cannot compare a string with an int", ""),
    ("spec.model == 1", "a string is never equal to an int", ""),
    ("spec.model && true", "`&&` needs true or false, not a string", ""),
    ("true || spec.maxTokens", "`||` needs true or false, not an int", ""),
    ("!spec.model", "`!` needs true or false, not a string", ""),
    ("sise(spec.model) > 0", "no function `sise` in llmgw's CEL", "did you mean `size`?"),
    ("spec.model.startswith('a')", "no function `startswith`", "did you mean `startsWith`?"),
    ("spec.model.startsWith()", "`startsWith` on a string does not take ()", ""),
    ("spec.model.startsWith('a', 'b')", "does not take (string, string)", ""),
    ("size(spec.model, 1) > 0", "`size` does not take (string, int)", ""),
    ("spec.temprature < 0.5", "column 6: no field `temprature` in `spec` of Prompt", "temperature"),
    ("spec.safetyGuardrails.contentFilter == []", "no field `contentFilter`", "contentFiltering"),
    ("spec.model.name == 'x'", "column 12: `.name` selects a field of a string", ""),
    ("spec.maxTokens.value > 1", "`.value` selects a field of an int", ""),
    ("'pi' in spec.safetyGuardrails.contentFiltering", "'pi' is never a value of", "pii"),
    (
        "spec.safetyGuardrails.blockedCategories.exists(c, c == 'gore')",
        "'gore' is never a value of",
        "violence",
    ),
    ("spec.model.matches('[a-')", "column 20: not a regular expression", "RE2 syntax"),
    ("spec.model.matches('(')", "not a regular expression", ""),
    ("1 in metadata.labels", "this map's keys are strings, not an int", ""),
    ("'a' in spec.model", "column 8: `in` needs a list or a map, not a string", ""),
    ("1 in spec.fallbackModels", "an int is never in a list of string", ""),
    ("spec.fallbackModels['a'] == 'x'", "a list is indexed by an int, not a string", ""),
    ("metadata.labels[1] == 'x'", "this map's keys are strings, not an int", ""),
    ("spec.maxTokens + 1u > 0", "`+` mixes int and uint", "2u"),
    ("spec.maxTokens * 1.5 > 1.0", "`*` mixes int and double", "2.0"),
    ("spec.temperature * 2 <= 1.0", "`*` mixes double and int", "2.0"),
    ("size(spec.fallbackModels) / 2.0 > 0.5", "`/` mixes int and double", ""),
    ("spec.temperature % 2.0 == 0.0", "`%` takes ints or uints, not doubles", ""),
    ("-1u < 0u", "`-` needs an int or a double, not a uint", ""),
    ("-spec.model == 'x'", "`-` needs an int or a double, not a string", ""),
    (
        "duration('1h') + timestamp('2024-01-01T00:00:00Z') > timestamp('2024-01-01T00:00:00Z')",
        "`+` cannot combine a duration and a timestamp",
        "",
    ),
    ("spec.model - 'a' == ''", "`-` cannot combine a string and a string", ""),
    ("spec.model", "the expression gives a string, not true or false", ""),
    ("spec.maxTokens + 1", "the expression gives an int, not true or false", ""),
    ("nope == 1", "undeclared name `nope`", "names: apiVersion, kind, metadata, spec, env"),
    ("spce.model == 'x'", "undeclared name `spce`", "did you mean `spec`?"),
    ("spec.fallbackModels.all(m, m)", "`all`'s condition gives a string", ""),
    ("spec.fallbackModels.all(m)", "`all` takes a variable name and an expression", ""),
    ("all(spec.fallbackModels, m, true)", "`all` is a method", ""),
    ("string(spec.maxTokens > 1) == 'true'", "`string` does not take (bool)", ""),
    ("string(spec.fallbackModels) == ''", "`string` does not take (list of string)", ""),
    ("has(spec.modle)", "no field `modle`", "did you mean `model`?"),
    ("Foo{a: 1} == Foo{a: 1}", "message construction `Foo{...}` is not available", ""),
    ("spec.model.exists(c, c == 'a')", "`exists` loops over a list or a map, not a string", ""),
    ("(true ? 'a' : 'b') > 1", "`>` cannot compare a string with an int", ""),
]


@pytest.mark.parametrize(
    ("expr", "message", "fix"), TYPE_ERRORS, ids=[e for e, _, _ in TYPE_ERRORS]
)
def test_type_errors_at_load(tmp_path: Path, expr: str, message: str, fix: str) -> None:
    text = _one_problem(tmp_path, expr)
    assert message in text
    assert fix in text
    assert text.startswith("p.yaml:7: PolicySet/t: rules[0].expr: column ")


def test_message_expression_must_give_a_string(tmp_path: Path) -> None:
    loaded = load_rule(tmp_path, "true", extra="    messageExpression: 'spec.maxTokens'\n")
    (problem,) = loaded.problems
    assert problem.path == "rules[0].messageExpression" and problem.line == 9
    assert "the expression gives an int, not a string" in problem.message


def test_a_message_expression_is_checked_like_expr(tmp_path: Path) -> None:
    loaded = load_rule(tmp_path, "true", extra="    messageExpression: \"'t ' + spec.modl\"\n")
    (problem,) = loaded.problems
    assert "no field `modl`" in problem.message and "did you mean `model`?" in problem.fix


def test_a_checked_error_column_is_the_culprits(tmp_path: Path) -> None:
    loaded = load_rule(tmp_path, "spec.model == 'a' && spec.tempreture > 0.1")
    (problem,) = loaded.problems
    assert problem.message.startswith("column 27: no field `tempreture`")


# --- the cost budget -----------------------------------------------------------------------------


def test_nested_loops_over_unbounded_lists_are_an_error_naming_both(tmp_path: Path) -> None:
    text = _one_problem(
        tmp_path, "spec.fewShot.examples.all(e, spec.fallbackModels.all(m, m != e.input))"
    )
    assert "may need 100,000,000 loop iterations per document" in text
    assert "all over spec.fallbackModels (up to 10,000)" in text
    assert "inside all over spec.fewShot.examples (up to 10,000)" in text
    assert "maxItems" in text


def test_the_cost_names_the_inner_loop_first_three_deep(tmp_path: Path) -> None:
    text = _one_problem(
        tmp_path,
        "spec.fallbackModels.exists(a, spec.fallbackModels.map(b, b).exists(c, c == a))",
    )
    assert "exists over a list" in text or "exists over spec.fallbackModels" in text
    assert text.index("map over spec.fallbackModels") < text.index("inside exists over spec.")


def test_a_loop_over_a_max_items_list_nested_in_one_unbounded_loop_is_fine(
    tmp_path: Path,
) -> None:
    loaded = load_rule(
        tmp_path,
        "!has(spec.rollout) || spec.rollout.steps.all(s, "
        "spec.versions.all(v, v.weight != s) && spec.rollout.steps.exists(t, t >= s))",
        kinds="[TrafficSplit]",
    )
    assert loaded.problems == [] and len(loaded.rules) == 1


def test_loops_over_an_enum_bounded_list_are_fine_three_deep(tmp_path: Path) -> None:
    cf = "spec.safetyGuardrails.contentFiltering"
    loaded = load_rule(tmp_path, f"{cf}.all(a, {cf}.all(b, {cf}.all(c, a == b || b != c)))")
    assert loaded.problems == []


def test_a_single_loop_over_an_unbounded_list_is_fine(tmp_path: Path) -> None:
    loaded = load_rule(
        tmp_path, "!has(spec.fewShot) || spec.fewShot.examples.all(e, size(e.input) < 1000)"
    )
    assert loaded.problems == []


def test_two_loops_one_after_the_other_do_not_multiply(tmp_path: Path) -> None:
    loaded = load_rule(
        tmp_path,
        "spec.fallbackModels.all(m, m != '') && spec.fallbackModels.exists_one(m, m == 'a')",
    )
    assert loaded.problems == []


# --- rules over every kind -----------------------------------------------------------------------


def test_a_rule_for_every_kind_names_the_kinds_that_have_the_field(tmp_path: Path) -> None:
    loaded = load_rule(tmp_path, "spec.template != 'legacy'", kinds="")
    (problem,) = loaded.problems
    assert "no field `template` in `spec` of PromptTemplate, TrafficSplit, VectorIndex" in str(
        problem
    )
    assert "match: {kinds: [PromptVersion, Prompt]}" in problem.fix


def test_a_rule_for_every_kind_may_read_metadata(tmp_path: Path) -> None:
    loaded = load_rule(tmp_path, "has(metadata.labels.team) && kind != ''", kinds="")
    assert loaded.problems == [] and loaded.rules[0].kinds == ()


def test_a_field_two_kinds_lack_is_one_problem(tmp_path: Path) -> None:
    loaded = load_rule(tmp_path, "spec.strategy == 'sticky'", kinds="[Prompt, TrafficSplit]")
    (problem,) = loaded.problems
    assert "in `spec` of Prompt" in problem.message
    assert "did you mean" not in problem.fix or "strategy" not in problem.fix


# --- what must check clean (and really works) ----------------------------------------------------

PROMPT = {
    "template": "tpl",
    "model": "model-gen-4",
    "fallbackModels": ["model-fallback-3"],
    "systemPrompt": "Hi",
    "temperature": 0.3,
    "topP": 0.9,
    "maxTokens": 2048,
    "safetyGuardrails": {"contentFiltering": ["pii"], "maxTokens": 4096, "blockedCategories": []},
}

CLEAN = [
    "spec.temperature <= 0.5",
    "spec.temperature == 0.3",
    "spec.temperature < 1",
    "spec.maxTokens > 1 && spec.maxTokens <= 9223372036854775807",
    "spec.maxTokens % 2 == 0",
    "spec.maxTokens / 2 == 1024",
    "double(spec.maxTokens) * 0.5 == 1024.0",
    "spec.temperature * 2.0 < 1.0",
    "spec.temperature + spec.topP < 2.0",
    "-spec.temperature < 0.0",
    "int(spec.temperature) == 0",
    "'pii' in spec.safetyGuardrails.contentFiltering",
    "spec.model in ['model-gen-4', 'model-fallback-3']",
    "spec.model.startsWith('model-') && spec.model.endsWith('-4') && spec.model.contains('gen')",
    "spec.model.matches('^model-[a-z]+-[0-9]$')",
    "size(spec.fallbackModels) > 0 && spec.fallbackModels.size() == 1",
    "spec.fallbackModels.all(m, m != spec.model)",
    "spec.fallbackModels.exists(m, m == 'model-fallback-3')",
    "spec.fallbackModels.exists_one(m, m.startsWith('model'))",
    "spec.fallbackModels.map(m, size(m)).all(n, n > 3)",
    "spec.fallbackModels.map(m, m != '', m + '!').size() == 1",
    "spec.fallbackModels.filter(m, m == spec.model).size() == 0",
    "!has(spec.fewShot) || spec.fewShot.examples.all(e, e.input != '')",
    "!has(spec.version) || spec.version.startsWith('1.')",
    "has(spec.safetyGuardrails.contentFiltering)",
    "!has(metadata.labels.team) || metadata.labels.team == 'billing'",
    "!('team' in metadata.labels) || metadata.labels['team'] != ''",
    "metadata.name.size() > 0 && metadata.annotations.size() == 0",
    "kind == 'Prompt' && apiVersion == 'llmgw/v1' && env == 'prod'",
    "string(spec.maxTokens) == '2048'",
    "type(spec.model) == string",
    "dyn(spec.maxTokens) == 2048",
    "(spec.temperature > 0.5 ? 'hot' : 'cool') == 'cool'",
    "[spec.model, 'x'].size() == 2",
    "{'a': spec.model}['a'] == spec.model",
    "'model' in spec",
    "spec.safetyGuardrails.maxTokens >= spec.maxTokens",
    "timestamp('2024-01-01T00:00:00Z') + duration('1h') > timestamp('2024-01-01T00:00:00Z')",
    "timestamp('2024-03-01T10:00:00Z').getHours() == 10",
    "spec.maxTokens == 2048u",
    "spec.safetyGuardrails.blockedCategories == []",
    "true",
    "spec.model != 'if'",
]


@pytest.mark.parametrize("expr", CLEAN)
def test_clean_rules_load_and_work(tmp_path: Path, expr: str) -> None:
    loaded = load_rule(tmp_path, expr)
    assert loaded.problems == [], [str(p) for p in loaded.problems]
    (rule,) = loaded.rules
    variables = {
        "apiVersion": "llmgw/v1",
        "kind": "Prompt",
        "metadata": {"name": "a", "labels": {}, "annotations": {}},
        "spec": PROMPT,
        "env": "prod",
    }
    assert cel.evaluate(rule.expr, cel.context(variables)) is True, expr


def test_schema_types_of_a_prompt() -> None:
    spec = pack._variables()["Prompt"]["spec"]
    assert spec.fields is not None and spec.fields["temperature"].tag == "number"
    assert spec.fields["maxTokens"].tag == "int"
    assert spec.fields["safetyGuardrails"].fields is not None
    contents = spec.fields["safetyGuardrails"].fields["contentFiltering"]
    assert contents.tag == "list" and contents.bound == 4  # an enum, unique: at most 4
    assert contents.items is not None and contents.items.enum == (
        "pii",
        "profanity",
        "toxicity",
        "jailbreak",
    )
