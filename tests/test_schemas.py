"""The JSON Schemas as files: one copy, shipped in the package, standard enough for any tool.

Covers: the top-level schemas/ that editors point at is the package's reconciler/schemas/ (a
link, same files, same bytes), so the two can never drift apart; schema.py reads them through
importlib.resources; every `$schema` modeline in manifests/ and examples/ names a schema file
that exists; every schema has a unique `$id` (its file name); every keyword belongs to the
2020-12 vocabulary or its annotations (no private `x-` keywords, no union types, which ajv's
strict mode refuses); every `$ref` resolves through a `referencing` registry by `$id`, and the
manifest schema really applies the kind's schema; every pattern has words for its message in
schema.py; the files are canonically formatted. The judge's semantics: patterns follow ECMA-262
(`$`, `.`, `\\d`, `\\w`, `\\s`, `[]`); NaN and the infinities are not numbers; a document the
fast path refuses and the judge accepts is reported as an error naming it; without jsonschema-rs
the judge decides alone. The field rules, through both checkers: every identity and URL-path
value refuses ASCII controls, spaces, `/`, `?`, `#` and `\\` (the vector store id allows only
unreserved characters); every semver field uses semver.org's own expression, 64 characters at
most; every integer has an upper bound JSON carries (2**53 - 1 at most). A whole float in an
integer field (1536.0) becomes an int in schema.with_defaults, and so in the desired state, the
request bodies and an apply against the in-process emulator (which refuses floats). A value or
key the loader reported as a YAML 1.1 coercion (`locations.coerced`) gets no second schema
error; one it did not report still gets "YAML read `2.10` as the number 2.1" and "quote it".
The shipped .vscode/settings.json maps every manifest file to the manifest schema.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from reconciler import defaults, fleet, formats, jobs, kinds, loader, normalize, schema
from reconciler.emulator.app import create_app
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.state import STORE_ID
from reconciler.emulator.transport import in_process_transport
from reconciler.model import Document, Locations
from reconciler.policy import pack
from reconciler.remote import Settings
from reconciler.validate import validate_paths

REPO = Path(__file__).resolve().parent.parent
PACKAGED = REPO / "reconciler" / "schemas"
TOP = REPO / "schemas"
# the manifest schemas (one per kind, and manifest.schema.json over them); plan.schema.json,
# beside them, describes llmgw's JSON outputs (tests/test_plan_schema.py): the rules for a
# manifest schema's words and $refs are not its rules; environments.schema.json describes a
# fleet's environments file (tests/test_fleet.py), policy-set.schema.json a policy pack
MANIFEST_SCHEMAS = {*schema.SCHEMA_FILES.values(), "manifest.schema.json", pack.SCHEMA_FILE}
MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$", re.MULTILINE)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_top_level_schemas_is_the_package_folder() -> None:
    assert TOP.is_symlink(), "schemas/ must link to reconciler/schemas/, not be a second copy"
    assert os.readlink(TOP) == os.path.join("reconciler", "schemas")
    packaged = _files(PACKAGED)
    assert packaged.keys() == {*MANIFEST_SCHEMAS, formats.SCHEMA_FILE, fleet.SCHEMA_FILE}
    assert _files(TOP) == packaged


def test_schema_module_reads_the_package_data() -> None:
    assert Path(str(defaults.SCHEMA_DIR)).resolve() == PACKAGED.resolve()
    for kind in schema.SCHEMA_FILES:
        assert schema.load_schema(kind)["title"] == f"llmgw {kind}"


def test_every_modeline_names_an_existing_schema() -> None:
    checked = 0
    for root in (REPO / "manifests", REPO / "examples"):
        for path in sorted(root.rglob("*.y*ml")):
            for target in MODELINE.findall(path.read_text(encoding="utf-8")):
                assert (path.parent / target).is_file(), f"{path}: {target} does not exist"
                checked += 1
    assert checked >= 5


# ---------------------------------------------------------------------------------------------
# Standard JSON Schema only, so a second implementation (ajv in strict mode, editors) loads them.

CORE = {"$schema", "$id", "$ref", "$anchor", "$dynamicRef", "$dynamicAnchor", "$vocabulary"}
CORE |= {"$comment", "$defs"}
APPLICATOR = {"allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas"}
APPLICATOR |= {"prefixItems", "items", "contains", "properties", "patternProperties"}
APPLICATOR |= {"additionalProperties", "propertyNames"}
UNEVALUATED = {"unevaluatedItems", "unevaluatedProperties"}
VALIDATION = {"type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum"}
VALIDATION |= {"exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems"}
VALIDATION |= {"uniqueItems", "maxContains", "minContains", "maxProperties", "minProperties"}
VALIDATION |= {"required", "dependentRequired"}
ANNOTATIONS = {"title", "description", "default", "examples", "deprecated", "readOnly"}
ANNOTATIONS |= {"writeOnly", "format", "contentEncoding", "contentMediaType", "contentSchema"}
VOCABULARY = CORE | APPLICATOR | UNEVALUATED | VALIDATION | ANNOTATIONS

_ONE = ("items", "additionalProperties", "propertyNames", "not", "if", "then", "else")
_ONE += ("contains", "unevaluatedItems", "unevaluatedProperties", "contentSchema")
_MANY = ("allOf", "anyOf", "oneOf", "prefixItems")
_MAP = ("properties", "patternProperties", "$defs", "dependentSchemas")


def _load_all() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text("utf-8")) for p in sorted(PACKAGED.glob("*.json"))}


SCHEMAS = _load_all()


def _subschemas(node: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema object inside ``node`` (itself included), with its JSON pointer."""
    if not isinstance(node, dict):
        return
    yield where, node
    for key in _ONE:
        if key in node:
            yield from _subschemas(node[key], f"{where}/{key}")
    for key in _MANY:
        for i, sub in enumerate(node.get(key, [])):
            yield from _subschemas(sub, f"{where}/{key}/{i}")
    for key in _MAP:
        for name, sub in node.get(key, {}).items():
            yield from _subschemas(sub, f"{where}/{key}/{name}")


def test_every_schema_has_a_unique_id_naming_its_file() -> None:
    ids = [s.get("$id") for s in SCHEMAS.values()]
    assert ids == list(SCHEMAS), "each $id is its own file name (see README: editors offline)"
    assert len(set(ids)) == len(ids)
    for s in SCHEMAS.values():
        assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_every_keyword_is_standard() -> None:
    for name, root in SCHEMAS.items():
        for where, node in _subschemas(root):
            unknown = set(node) - VOCABULARY
            assert not unknown, f"{name}{where}: not a 2020-12 keyword: {sorted(unknown)}"
            # ajv's strict mode refuses union types: a union is written as anyOf
            assert not isinstance(node.get("type"), list), f"{name}{where}: union type"


def test_every_ref_resolves_through_a_registry() -> None:
    registry: Registry[Any] = Registry().with_resources(
        (s["$id"], Resource.from_contents(s, default_specification=DRAFT202012))
        for s in SCHEMAS.values()
    )
    refs = 0
    for name, root in SCHEMAS.items():
        resolver = registry.resolver(base_uri=root["$id"])
        for _, node in _subschemas(root):
            if "$ref" in node:
                assert resolver.lookup(node["$ref"]).contents, f"{name}: {node['$ref']}"
                refs += name in MANIFEST_SCHEMAS
    assert refs == len(schema.SCHEMA_FILES)  # manifest.schema.json -> each kind


def test_manifest_schema_applies_the_kind_schema_by_ref() -> None:
    """Resolved by $id, the kind's schema really applies: an example validates, and the same
    document with a kind-specific mistake does not."""
    registry: Registry[Any] = Registry().with_resources(
        (s["$id"], DRAFT202012.create_resource(s)) for s in SCHEMAS.values()
    )
    validator = Draft202012Validator(SCHEMAS["manifest.schema.json"], registry=registry)
    good = {
        "apiVersion": "llmgw/v1",
        "kind": "VectorIndex",
        "metadata": {"name": "idx"},
        "spec": {
            "vectorStore": "store",
            "dimensions": 8,
            "similarityMetric": "cosine",
            "embeddingFormat": "int8",
        },
    }
    assert not list(validator.iter_errors(good))
    bad = {**good, "spec": {**good["spec"], "dimensions": 5000}}
    errors = [(e.validator, list(e.absolute_path)) for e in validator.iter_errors(bad)]
    assert errors == [("maximum", ["spec", "dimensions"])]


def test_every_pattern_has_words_for_its_message() -> None:
    # no message quotes plan.schema.json's patterns; the environments file's are explained
    for name in sorted({*MANIFEST_SCHEMAS, fleet.SCHEMA_FILE}):
        root = SCHEMAS[name]
        for where, node in _subschemas(root):
            if "pattern" in node:
                assert node["pattern"] in schema.PATTERN_WORDS, f"{name}{where}"


def test_schema_files_are_canonically_formatted() -> None:
    """Two-space JSON with a final newline, as `json.dumps(indent=2)` writes it: a reviewer sees
    only real changes in a diff."""
    for name, data in SCHEMAS.items():
        text = (PACKAGED / name).read_text("utf-8")
        assert text == json.dumps(data, indent=2, ensure_ascii=False) + "\n", name


# ---------------------------------------------------------------------------------------------
# JSON Schema's semantics, not Python's: ECMA-262 patterns, JSON numbers, one verdict.


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("^abc$", "abc", True),
        ("^abc$", "abc\n", False),  # Python's $ would match before the final newline
        ("^[$]$", "$", True),  # a $ inside a class is a character
        ("^\\$$", "$", True),  # so is an escaped one
        ("^a.c$", "abc", True),
        ("^a.c$", "a\rc", False),  # ECMA's . matches no line terminator
        ("^a.c$", "a\u2028c", False),
        ("^a.c$", "a\nc", False),
        ("^\\d$", "٣", False),  # ECMA's \d is ASCII; Python's is Unicode
        ("^\\d$", "3", True),
        ("^\\w+$", "é", False),
        ("^\\s$", "\u00a0", True),  # ECMA's \s has the Unicode spaces and U+FEFF
        ("^\\s$", "\ufeff", True),
        ("^\\s$", "\x1c", False),  # Python's \s has the information separators
        ("^[\\s,]+$", "\u3000,", True),
        ("^[]$", "", False),  # ECMA's [] matches nothing
        ("^[^]$", "\n", True),  # and [^] any character
        ("^[^a]$", "b", True),
    ],
)
def test_patterns_follow_ecma_262(pattern: str, text: str, matches: bool) -> None:
    assert bool(schema.ecma_regex(pattern).search(text)) is matches


def test_a_pattern_without_faithful_translation_is_refused() -> None:
    with pytest.raises(re.error):
        schema.ecma_regex("[\\S]")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinities_are_not_numbers(value: float) -> None:
    body = _index_body(dimensions=8)
    body["spec"]["dimensions"] = value
    assert not schema.is_valid_judged("VectorIndex", body)
    assert schema.fast_verdict("VectorIndex", body) is False


def _index_body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "llmgw/v1",
        "kind": "VectorIndex",
        "metadata": {"name": "idx"},
        "spec": {
            "vectorStore": "store",
            "dimensions": 8,
            "similarityMetric": "cosine",
            "embeddingFormat": "int8",
            **spec,
        },
    }


class _Refusing:
    """A fast validator that refuses everything: what a bug in jsonschema-rs would look like."""

    def is_valid(self, body: Any) -> bool:
        return False


def test_a_disagreement_between_the_checkers_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = Document(_index_body(), "indexes.yaml", 3, Locations())
    assert schema.check_document(doc) == []
    monkeypatch.setattr(schema, "_fast_validator", lambda kind: _Refusing())
    (problem,) = schema.check_document(doc)
    assert (problem.file, problem.line, problem.severity) == ("indexes.yaml", 3, "error")
    assert problem.subject == "VectorIndex/idx"
    assert "the two schema checkers disagree" in problem.message
    assert "please report this" in problem.message


def test_without_a_fast_verdict_the_judge_decides_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schema, "_fast_validator", lambda kind: None)
    assert schema.check_document(Document(_index_body(), "i.yaml", 1, Locations())) == []
    bad = Document(_index_body(dimensions=5000), "i.yaml", 1, Locations())
    assert [p.path for p in schema.check_document(bad)] == ["spec.dimensions"]


def test_schema_patterns_use_explicit_classes_only() -> None:
    """`.`, `\\d`, `\\w`, `\\s`, `\\b` mean different things in Python, Rust and ECMA-262; the
    schemas spell every class out, and use no patternProperties (read as Python regexes)."""
    for name, root in SCHEMAS.items():
        for where, node in _subschemas(root):
            assert "patternProperties" not in node, f"{name}{where}"
            if "pattern" in node:
                pattern = node["pattern"]
                assert not re.search(r"(?<!\\)\\[dDwWsSbB]", pattern), f"{name}{where}: {pattern}"
                outside = re.sub(r"\\.|\[(?:\\.|[^\]\\])*\]", "", pattern)  # escapes, classes out
                assert "." not in outside, f"{name}{where}: {pattern}"


# The exact expression semver.org 2.0.0 recommends; llmgw's shared module holds the same string.
SEMVER_ORG = (
    r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
IDX = "#/properties/metadata/properties/name"
RENAMED = "llmgw.io/renamed-from"
IDENTITY_FIELDS = {
    ("PromptTemplate", "#/properties/metadata/properties/name"),
    ("PromptVersion", "#/properties/metadata/properties/name"),
    ("PromptVersion", "#/properties/spec/properties/template"),
    ("Prompt", "#/properties/metadata/properties/name"),
    ("Prompt", "#/properties/spec/properties/template"),
    ("TrafficSplit", "#/properties/metadata/properties/name"),
    ("TrafficSplit", "#/properties/spec/properties/prompt"),
    # the name a renamed template or prompt had: a name like the others
    ("PromptTemplate", "#/properties/metadata/properties/annotations/properties/" + RENAMED),
    ("Prompt", "#/properties/metadata/properties/annotations/properties/" + RENAMED),
}
SEMVER_FIELDS = {
    ("PromptVersion", "#/properties/spec/properties/version"),
    ("Prompt", "#/properties/spec/properties/version"),
    ("TrafficSplit", "#/properties/spec/properties/versions/items/properties/version"),
    ("TrafficSplit", "#/properties/spec/properties/defaultVersion"),
    ("TrafficSplit", "#/properties/spec/properties/rollout/properties/from"),
}


def _fields_with(pattern: str) -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for kind, file in schema.SCHEMA_FILES.items():
        for where, node in _subschemas(SCHEMAS[file]):
            if node.get("pattern") == pattern:
                found[(kind, where)] = node
    return found


def test_identities_and_url_path_values_refuse_path_characters() -> None:
    assert schema.IDENTITY == "^[^\\u0000-\\u0020\\u007F/?#%\\\\]+$"
    assert _fields_with(schema.IDENTITY).keys() == IDENTITY_FIELDS
    for (kind, where), node in _fields_with(schema.IDENTITY).items():
        assert node["type"] == "string", (kind, where)
        assert node["maxLength"] == (200 if (kind, where) == ("PromptVersion", IDX) else 128)
    (store,) = _fields_with(schema.VECTOR_STORE)
    assert store == ("VectorIndex", "#/properties/spec/properties/vectorStore")
    (index,) = _fields_with(schema.INDEX_ID)  # already stricter than IDENTITY
    assert index == ("VectorIndex", "#/properties/metadata/properties/name")


def test_every_semver_field_uses_the_semver_org_expression() -> None:
    assert schema.SEMVER == SEMVER_ORG
    assert _fields_with(SEMVER_ORG).keys() == SEMVER_FIELDS
    for node in _fields_with(SEMVER_ORG).values():
        assert (node["type"], node["maxLength"]) == ("string", 64)


def test_every_integer_has_an_upper_bound_json_carries() -> None:
    integers = 0
    for name, root in SCHEMAS.items():
        for where, node in _subschemas(root):
            if node.get("type") == "integer":
                integers += name in MANIFEST_SCHEMAS
                assert "minimum" in node, f"{name}{where}"
                assert node.get("maximum", 2**53) <= 2**53 - 1, f"{name}{where}"
    assert integers == 6  # the manifests' integer fields


def _verdicts(kind: str, body: dict[str, Any]) -> tuple[bool | None, bool]:
    return schema.fast_verdict(kind, body), schema.is_valid_judged(kind, body)


def _version_body(version: str) -> dict[str, Any]:
    return {
        "apiVersion": "llmgw/v1",
        "kind": "PromptVersion",
        "metadata": {"name": f"tpl@{version}"},
        "spec": {"template": "tpl", "version": version, "content": "c", "variables": {}},
    }


SEMVER_VALID = ["0.0.0", "1.2.3", "10.20.30", "1.2.3-rc.1", "1.2.3-0a", "1.2.3-alpha-1"]
SEMVER_VALID += ["1.2.3+build.5", "1.2.3-rc.1+b.02", "1.0.0-x-y-z.--", "1.0.0-0", "1.0.0+0"]
SEMVER_INVALID = ["1.2.3-rc..1", "1.2.3-01", "01.2.3", "1.02.3", "1.2", "1.2.3.4", "1.2.3-"]
SEMVER_INVALID += ["1.2.3+", "1.2.3\n", "1.2.3\r", "v1.2.3", "١.٢.٣", "1.2.3-rc.1+", "1.2.3+a+b"]
SEMVER_INVALID += [
    "1.2.3-é",
    " 1.2.3",
    "1.2.3-rc_1",
    "1.0.0-" + "a" * 59,
]  # the last: 65 characters


@pytest.mark.parametrize("version", SEMVER_VALID + SEMVER_INVALID)
def test_semver_follows_semver_org_exactly(version: str) -> None:
    expected = version in SEMVER_VALID
    assert _verdicts("PromptVersion", _version_body(version)) == (expected, expected)


IDENTITY_VALID = ["abc", "support-agent", "a.b_c~d", "tpl@1.0.0", "ünïcödé", "a:b"]
IDENTITY_INVALID = ["ab c", "abc\n", "abc\r", "a\tbc", "a/bc", "ab?c", "ab#c", "ab\\c", "abc\x00"]
IDENTITY_INVALID += ["abc\x1f", "abc\x7f", " abc", "/abc", "a%b", "50%-off"]


@pytest.mark.parametrize("value", IDENTITY_VALID + IDENTITY_INVALID)
@pytest.mark.parametrize("field", ["metadata.name", "spec.template"])
def test_identity_fields_refuse_path_characters(field: str, value: str) -> None:
    body = {
        "apiVersion": "llmgw/v1",
        "kind": "Prompt",
        "metadata": {"name": "support-agent"},
        "spec": {"template": "tpl-a", "model": "m", "systemPrompt": "s"},
    }
    section, key = field.split(".")
    body[section][key] = value
    expected = value in IDENTITY_VALID
    assert _verdicts("Prompt", body) == (expected, expected)


STORES_VALID = ["6d1f2c1e-0b7a-4a55-9d1e-3f3f8a2b9c10", "a.b_c~d", "A-9"]
STORES_INVALID = ["a b", "a/b", "a%2Fb", "a?b", "a#b", "ü", "a\n", "a@b", "a:b"]


@pytest.mark.parametrize("store", STORES_VALID + STORES_INVALID)
def test_vector_store_ids_are_url_unreserved(store: str) -> None:
    valid = store in STORES_VALID
    assert _verdicts("VectorIndex", _index_body(vectorStore=store)) == (valid, valid)


# ---------------------------------------------------------------------------------------------
# Whole floats in integer fields are sent as integers.

WHOLE_FLOATS = """\
apiVersion: llmgw/v1
kind: PromptTemplate
metadata:
  name: tpl-float
spec:
  systemInstruction: You classify messages.
  userTemplate: "Message: {{msg}}"
  variables: [msg]
  maxTokens: 2048.0
---
apiVersion: llmgw/v1
kind: PromptVersion
metadata:
  name: tpl-float@1.0.0
spec:
  template: tpl-float
  version: "1.0.0"
  content: "Classify {{msg}}"
  variables: {msg: string}
---
apiVersion: llmgw/v1
kind: Prompt
metadata:
  name: prompt-float
spec:
  template: tpl-float
  model: model-gen-4
  systemPrompt: Classify each support message.
  maxTokens: 256.0
  safetyGuardrails: {maxTokens: 4096.0}
---
apiVersion: llmgw/v1
kind: TrafficSplit
metadata:
  name: prompt-float
spec:
  prompt: prompt-float
  defaultVersion: "1.0.0"
---
apiVersion: llmgw/v1
kind: VectorIndex
metadata:
  name: idx-float
spec:
  vectorStore: 6d1f2c1e-0b7a-4a55-9d1e-3f3f8a2b9c10
  dimensions: 1536.0
  similarityMetric: cosine
  embeddingFormat: float32
"""


def test_with_defaults_makes_whole_floats_integers() -> None:
    filled = schema.with_defaults(
        "Prompt", {"maxTokens": 256.0, "fewShot": {"contextWindowLimit": 8.0}}
    )
    assert filled["maxTokens"] == 256 and type(filled["maxTokens"]) is int
    assert type(filled["fewShot"]["contextWindowLimit"]) is int
    assert type(filled["safetyGuardrails"]["maxTokens"]) is int  # the default
    assert type(filled["temperature"]) is float  # a number field stays as written
    assert schema.with_defaults("VectorIndex", {"dimensions": True})["dimensions"] is True


async def test_whole_floats_reach_the_gateway_as_integers(tmp_path: Path) -> None:
    """End to end: validate accepts 1536.0 (an integer to JSON Schema); the desired state, the
    request bodies and the emulator (which, like the gateway, refuses a float) see integers."""
    (tmp_path / "floats.yaml").write_text(WHOLE_FLOATS, encoding="utf-8")
    report = validate_paths([str(tmp_path)])
    assert not report.errors, report.errors
    desired = normalize.desired_state(report.documents)
    integers = {
        "PromptTemplate/tpl-float": desired["PromptTemplate/tpl-float"].fields["maxTokens"],
        "Prompt/prompt-float": desired["Prompt/prompt-float"].fields["maxTokens"],
        "guardrails": desired["Prompt/prompt-float"].fields["safetyGuardrails"]["maxTokens"],
        "VectorIndex": desired[f"VectorIndex/{STORE_ID}/idx-float"].fields["dimensions"],
    }
    assert integers == {
        "PromptTemplate/tpl-float": 2048,
        "Prompt/prompt-float": 256,
        "guardrails": 4096,
        "VectorIndex": 1536,
    }
    assert all(type(v) is int for v in integers.values())
    index = kinds.resource("VectorIndex")
    body = index.body("idx-float", desired[f"VectorIndex/{STORE_ID}/idx-float"].fields)  # type: ignore[attr-defined]
    assert '"dimensions": 1536,' in json.dumps(body)

    app = create_app(EmulatorConfig(ingest_delay=0.0, rate_limit=0))
    url = "http://127.0.0.1:8787"
    target = jobs.Target(
        Settings(url, url, "emulator-client", "emulator-secret"),
        "test",
        transport=in_process_transport(app),
    )
    prepared = await jobs.prepare_apply(target, paths=[str(tmp_path)])
    run = await jobs.execute(target, prepared, audit_path=str(tmp_path / "audit.jsonl"))
    assert run.ok, [r.error for r in run.result.results]
    assert run.verify_plan is not None and not run.verify_plan.changes


# ---------------------------------------------------------------------------------------------
# One report per mistake: what the loader reported as a YAML 1.1 coercion is not reported again.

COERCED = """\
apiVersion: llmgw/v1
kind: PromptVersion
metadata:
  name: tpl-a@2.10
spec:
  template: tpl-a
  version: 2.10
  content: "Classify {{msg}}"
  variables: {msg: string}
  on: later
"""


def _coerced_doc(tmp_path: Path) -> Document:
    (tmp_path / "v.yaml").write_text(COERCED, encoding="utf-8")
    (doc,) = loader.load_paths([str(tmp_path / "v.yaml")]).documents
    return doc


def test_a_coercion_the_loader_reported_is_not_reported_again(tmp_path: Path) -> None:
    doc = _coerced_doc(tmp_path)
    assert ("spec", "on") in doc.locations.coerced  # the loader reported the key `on:`
    doc.locations.coerced.add(("spec", "version"))  # as if it had reported the value too
    assert schema.check_document(doc) == []


def test_an_unreported_coercion_still_says_to_quote_it(tmp_path: Path) -> None:
    doc = _coerced_doc(tmp_path)
    doc.locations.coerced.clear()
    unknown, problem = sorted(schema.check_document(doc), key=lambda p: -p.line)
    assert (unknown.line, unknown.path, unknown.message) == (10, "spec.on", "unknown field `on`")
    assert (problem.line, problem.path) == (7, "spec.version")
    assert problem.message == "must be a string, but YAML read `2.10` as the number 2.1"
    assert problem.fix == 'quote it: "2.10"'


# ---------------------------------------------------------------------------------------------
# The editor setting: every document of every manifest file, not only a modeline's first.


def test_the_editor_setting_maps_every_manifest_file_to_the_schema() -> None:
    settings = json.loads((REPO / ".vscode" / "settings.json").read_text("utf-8"))
    (target, globs), (policy_target, policy_globs) = settings["yaml.schemas"].items()
    assert (REPO / policy_target).resolve() == (PACKAGED / pack.SCHEMA_FILE).resolve()
    packs = {p for pattern in policy_globs for p in REPO.glob(pattern)}
    assert packs == set(REPO.glob("examples/policies/**/*.y*ml")) and packs
    assert {"policies/*.yaml", "policies/**/*.yaml"} <= set(policy_globs)
    assert (REPO / target).resolve() == (PACKAGED / "manifest.schema.json").resolve()
    mapped = {p for pattern in globs for p in REPO.glob(pattern)}
    manifests = {
        p for root in ("manifests", "examples/environments") for p in REPO.glob(f"{root}/**/*.y*ml")
    }
    assert mapped == manifests and len(manifests) >= 8
    # a file directly in manifests/ too: older yaml-language-server globs need a `/` after **
    assert {
        "manifests/*.yaml",
        "manifests/*.yml",
        "manifests/**/*.yaml",
        "manifests/**/*.yml",
    } <= set(globs)
