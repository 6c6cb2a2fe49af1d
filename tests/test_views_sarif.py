"""`llmgw validate --output sarif`: SARIF 2.1.0 for GitHub code scanning.

Covers: every problem of the invalid corpus (load, schema and semantic rules) gives SARIF that
the official SARIF 2.1.0 schema (tests/data/, checked by its hash) accepts, with its URI formats
checked; one reportingDescriptor per rule, each result pointing at its own by ruleId and
ruleIndex, every rule of the corpus with a description of its own; no problems give a valid
log with empty rules and results; the fields GitHub reads (tool, levels, message with Kind/name,
path and fix, a location with startLine >= 1 for every result, %SRCROOT% and its
originalUriBaseIds, invocations); fingerprints that stay put when lines shift and tell apart
problems that agree on everything but their place; paths with spaces, non-ASCII, `#`, `%` and
`:` as valid percent-encoded URIs, absolute paths outside the working directory as file:// URIs,
`../` paths kept relative; policy problems (`policy/RULE_ID`) with the `policy` tag and no
change to the view; a problem without a rule id; 1,000 problems; and through the CLI, exit 1
on invalid manifests with the whole log on stdout, --strict likewise.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import jsonschema
import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.model import Problem
from reconciler.validate import Report, validate_paths
from reconciler.views import sarif
from reconciler.views.validate import view

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "corpus" / "invalid"
SCHEMA_FILE = REPO / "tests" / "data" / "sarif-schema-2.1.0.json"
SCHEMA_SHA256 = "c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e"

PROMPT = """apiVersion: llmgw/v1
kind: PromptTemplate
metadata:
  name: tpl-a
spec:
  systemInstruction: "Be helpful."
  userTemplate: "{{question}}"
  maxTokens: 0
  variables: [question]
  sytemInstruction: typo
"""


@cache
def _validator() -> jsonschema.Draft4Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    # FormatChecker(): every format jsonschema knows, uri-reference too (a draft-6 name the
    # schema uses); rfc3986-validator (the test extra) makes uri and uri-reference checked
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())


def assert_valid_sarif(text: str) -> dict[str, Any]:
    """``text`` parsed, after the official SARIF 2.1.0 schema accepted it, formats included;
    and what GitHub needs on top: ruleIndex agreeing with ruleId, a startLine everywhere."""
    doc: dict[str, Any] = json.loads(text)
    errors = sorted(_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])
    assert doc["version"] == "2.1.0"
    (run,) = doc["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert len({r["id"] for r in rules}) == len(rules)
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        (location,) = result["locations"]
        assert location["physicalLocation"]["region"]["startLine"] >= 1
        assert location["physicalLocation"]["artifactLocation"]["uri"]
        assert result["message"]["text"]
    return doc


def _sarif(problems: list[Problem]) -> dict[str, Any]:
    return assert_valid_sarif(view("sarif").show(Report(problems=problems), not problems))


def _problem(**fields: Any) -> Problem:
    base: dict[str, Any] = {
        "file": "manifests/a.yaml",
        "line": 3,
        "severity": "error",
        "kind": "Prompt",
        "name": "support",
        "path": "spec.temperature",
        "message": "must be at most 2 (got 3)",
        "fix": "lower it",
        "rule": "schema.maximum",
    }
    return Problem(**{**base, **fields})


def _results(doc: dict[str, Any]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = doc["runs"][0]["results"]
    return results


def _uri(result: dict[str, Any]) -> dict[str, str]:
    location: dict[str, str] = result["locations"][0]["physicalLocation"]["artifactLocation"]
    return location


def test_the_vendored_schema_is_the_official_one() -> None:
    assert hashlib.sha256(SCHEMA_FILE.read_bytes()).hexdigest() == SCHEMA_SHA256
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert schema["id"] == sarif.SARIF_SCHEMA


def test_the_schema_check_can_fail() -> None:
    doc = _sarif([_problem()])
    _results(doc)[0]["level"] = "fatal"
    with pytest.raises(AssertionError, match="level"):
        assert_valid_sarif(json.dumps(doc))
    _uri(_results(doc)[0])["uri"] = "a b.yaml"  # a space: no URI reference
    _results(doc)[0]["level"] = "error"
    with pytest.raises(AssertionError, match="uri"):
        assert_valid_sarif(json.dumps(doc))


def test_the_invalid_corpus_gives_valid_sarif() -> None:
    report = validate_paths([str(CORPUS)], cwd=str(REPO))
    assert len(report.problems) > 200
    doc = assert_valid_sarif(view("sarif").show(report, False))
    (run,) = doc["runs"]
    results = run["results"]
    assert len(results) == len(report.problems)
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == sorted({p.rule for p in report.problems})
    tags = {r["id"]: r["properties"]["tags"] for r in rules}
    assert tags["load"] == ["load"] and tags["schema.pattern"] == ["schema"]
    assert tags["identity.duplicate"] == ["semantic"]
    for rule in rules:  # each rule of llmgw's own says what it asks for, none the fallback
        assert rule["id"] in sarif.RULES or rule["id"].startswith(sarif.SCHEMA), rule["id"]
        assert rule["shortDescription"]["text"] and rule["help"]["text"]
    levels = {r["level"] for r in results}
    assert levels == {"error", "warning"}
    for result, p in zip(results, report.problems, strict=True):
        assert result["ruleId"] == p.rule
        assert _uri(result) == {"uri": p.file, "uriBaseId": "%SRCROOT%"}  # plain names here
        assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == p.line
    fingerprints = [r["partialFingerprints"][sarif.FINGERPRINT] for r in results]
    assert len(set(fingerprints)) == len(fingerprints)


def test_no_problems_give_an_empty_valid_log(repo: Path) -> None:
    report = validate_paths([str(repo / "manifests")], cwd=str(repo))
    assert report.problems == [] and report.documents
    doc = assert_valid_sarif(view("sarif").show(report, True))
    (run,) = doc["runs"]
    assert run["results"] == [] and run["tool"]["driver"]["rules"] == []
    assert run["invocations"] == [{"executionSuccessful": True}]


def test_the_fields_github_reads() -> None:
    doc = _sarif(
        [
            _problem(),
            _problem(line=0, severity="warning", rule="reference.missing", path=""),
            _problem(severity="info", kind="", name="", path="", rule="load", fix=""),
        ]
    )
    assert doc["$schema"] == sarif.SARIF_SCHEMA
    (run,) = doc["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "llmgw" and driver["version"] == "0.1.0"
    assert driver["informationUri"].startswith("https://")
    assert run["originalUriBaseIds"]["%SRCROOT%"]["description"]["text"]
    assert "uri" not in run["originalUriBaseIds"]["%SRCROOT%"]  # no machine's path
    first, second, third = run["results"]
    assert first["level"] == "error" and second["level"] == "warning"
    assert third["level"] == "note"
    assert first["message"]["text"] == (
        "Prompt/support: spec.temperature: must be at most 2 (got 3) (lower it)"
    )
    assert second["message"]["text"] == "Prompt/support: must be at most 2 (got 3) (lower it)"
    assert third["message"]["text"] == "must be at most 2 (got 3)"
    assert second["locations"][0]["physicalLocation"]["region"] == {"startLine": 1}  # line 0
    assert first["properties"] == {"kind": "Prompt", "name": "support", "path": "spec.temperature"}
    by_id = {r["id"]: r for r in driver["rules"]}
    assert by_id["reference.missing"]["defaultConfiguration"]["level"] == "warning"
    assert by_id["load"]["defaultConfiguration"]["level"] == "note"


def test_a_rule_takes_the_level_of_its_most_severe_result() -> None:
    doc = _sarif([_problem(severity="warning"), _problem(line=9), _problem(severity="x")])
    (rule,) = doc["runs"][0]["tool"]["driver"]["rules"]
    assert rule["defaultConfiguration"]["level"] == "error"


def test_message_text_escapes_what_would_mislead() -> None:
    (result,) = _results(
        _sarif([_problem(name="a\u202eb", message="got [click](https://example.com)")])
    )
    text = result["message"]["text"]
    assert "\u202e" not in text and "\\u202e" in text.lower()
    assert "](" not in text.replace("\\](", "")  # no embedded link (SARIF 3.11.6)


def test_fingerprints_stay_when_lines_shift(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    f = manifests / "tpl.yaml"
    f.write_text(PROMPT)

    def run() -> list[dict[str, Any]]:
        report = validate_paths([str(manifests)], cwd=str(tmp_path))
        assert report.problems
        return _results(assert_valid_sarif(view("sarif").show(report, False)))

    before = run()
    f.write_text("# a comment\n# another\n\n" + PROMPT)
    after = run()
    lines = [r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in before]
    assert [r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in after] == [
        n + 3 for n in lines
    ]
    assert [r["partialFingerprints"] for r in after] == [r["partialFingerprints"] for r in before]
    assert [r["ruleId"] for r in after] == [r["ruleId"] for r in before]


def test_fingerprints_name_what_a_problem_is_about() -> None:
    base = _problem()
    same = [base, _problem(line=40, message="must be at most 2 (got 5)", severity="warning")]
    other = [_problem(path="spec.topP"), _problem(name="other"), _problem(file="b.yaml")]
    other += [_problem(rule="schema.minimum"), _problem(kind="Model")]
    prints = [
        r["partialFingerprints"][sarif.FINGERPRINT] for r in _results(_sarif([*same, *other]))
    ]
    assert len(set(prints)) == len(prints)  # the second of a pair is told apart by its order
    alone = _results(_sarif([same[1]]))[0]["partialFingerprints"][sarif.FINGERPRINT]
    assert alone == prints[0]  # line, message and severity are not part of it


@pytest.mark.parametrize(
    ("file", "expected"),
    [
        ("my manifests/prompt one.yaml", "my%20manifests/prompt%20one.yaml"),
        ("manifests/prömpt-日本.yaml", "manifests/pr%C3%B6mpt-%E6%97%A5%E6%9C%AC.yaml"),
        ("manifests/#1 100%.yaml", "manifests/%231%20100%25.yaml"),
        ("C:weird/x?.yaml", "C%3Aweird/x%3F.yaml"),  # no scheme, no query
        ("../elsewhere/a.yaml", "../elsewhere/a.yaml"),  # outside the cwd, as given
        ('""', "%22%22"),  # the empty path argument, as validate names it
    ],
)
def test_relative_paths_become_uri_references(file: str, expected: str) -> None:
    (result,) = _results(_sarif([_problem(file=file)]))
    assert _uri(result) == {"uri": expected, "uriBaseId": "%SRCROOT%"}
    assert unquote(expected) == file


def test_absolute_paths_outside_the_cwd_become_file_uris() -> None:
    (result,) = _results(_sarif([_problem(file="/srv/other repo/ä.yaml")]))
    assert _uri(result) == {"uri": "file:///srv/other%20repo/%C3%A4.yaml"}  # no uriBaseId


def test_files_with_spaces_and_non_ascii_names_end_to_end(tmp_path: Path) -> None:
    folder = tmp_path / "org manifests" / "präsentation"
    folder.mkdir(parents=True)
    (folder / "tpl #1.yaml").write_text(PROMPT)
    report = validate_paths([str(tmp_path / "org manifests")], cwd=str(tmp_path))
    results = _results(assert_valid_sarif(view("sarif").show(report, False)))
    assert results
    for r in results:
        assert _uri(r)["uri"] == "org%20manifests/pr%C3%A4sentation/tpl%20%231.yaml"


def test_policy_problems_need_no_change_to_the_view() -> None:
    problems = [
        _problem(
            rule="policy/prod-low-temperature",
            message="production prompts run at temperature 0.5 or lower",
            fix="",
        ),
        _problem(rule="policy/fallback-model", severity="warning", line=7),
        _problem(rule=""),
    ]
    doc = _sarif(problems)
    rules = {r["id"]: r for r in doc["runs"][0]["tool"]["driver"]["rules"]}
    assert set(rules) == {"policy/prod-low-temperature", "policy/fallback-model", "unclassified"}
    policy = rules["policy/prod-low-temperature"]
    assert policy["properties"]["tags"] == ["policy"]
    assert "prod-low-temperature" in policy["shortDescription"]["text"]
    assert rules["policy/fallback-model"]["defaultConfiguration"]["level"] == "warning"
    assert rules["unclassified"]["properties"]["tags"] == ["semantic"]
    first, _, last = _results(doc)
    assert first["message"]["text"].endswith("temperature 0.5 or lower")
    assert last["ruleId"] == "unclassified"


def test_a_thousand_problems() -> None:
    problems = [
        _problem(file=f"manifests/p{i % 50}.yaml", name=f"p{i}", line=i % 90, rule=f"r.{i % 7}")
        for i in range(1000)
    ]
    doc = _sarif(problems)
    results = _results(doc)
    assert len(results) == 1000
    assert len(doc["runs"][0]["tool"]["driver"]["rules"]) == 7
    assert len({r["partialFingerprints"][sarif.FINGERPRINT] for r in results}) == 1000


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout


def test_cli_exits_1_on_invalid_manifests_with_the_whole_log(tmp_path: Path) -> None:
    f = tmp_path / "tpl.yaml"
    f.write_text(PROMPT)
    code, out = _cli("validate", "--output", "sarif", str(f))
    assert code == 1
    doc = assert_valid_sarif(out)
    assert {r["ruleId"] for r in _results(doc)} >= {"schema.additionalProperties"}


def test_cli_strict_counts_warnings_and_still_prints_the_log(tmp_path: Path) -> None:
    f = tmp_path / "v.yaml"
    f.write_text(
        "apiVersion: llmgw/v1\nkind: PromptVersion\nmetadata: {name: elsewhere@1.0.0}\n"
        'spec: {template: elsewhere, version: "1.0.0", content: "Hi {{x}}", '
        "variables: {x: string}}\n"
    )
    code, out = _cli("validate", "-o", "sarif", str(f))
    assert code == 0
    (result,) = _results(assert_valid_sarif(out))
    assert result["level"] == "warning"
    code, strict = _cli("validate", "-o", "sarif", "--strict", str(f))
    assert code == 1 and strict == out


def test_cli_help_lists_sarif() -> None:
    result = CliRunner().invoke(cli, ["validate", "--help"])
    assert "sarif" in result.output
