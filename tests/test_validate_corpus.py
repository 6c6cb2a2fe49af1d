"""The malformed-manifest corpus: every load-time refusal and every validation rule.

Each file under tests/corpus/invalid/ marks what it must produce: a trailing `#! text` comment
means "an error on this line whose text contains `text`"; a header `# expect N: text` does the
same for line N (for lines that cannot carry a comment, such as block-scalar text). Covers:
exit code 1 through the CLI, the exact line, the message, and that nothing else is reported as
an error in an unexpected file. And the full proof that the schema fast path (jsonschema-rs) and
the judge (jsonschema with ECMA-262 patterns) agree: the same verdict on every corpus document,
every example manifest, and about 5,000 generated edge documents (each leaf of an example of
each kind replaced by line terminators, Unicode spaces and digits, path characters, semver edge
cases, 1.0 against 1, booleans, integers past 2**53 and 2**64, NaN, very long strings).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler import loader, schema
from reconciler.cli import cli
from reconciler.model import Document
from reconciler.validate import validate_paths

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "corpus" / "invalid"
FILES = sorted(CORPUS.glob("*.yaml"))
_HEADER = re.compile(r"^# expect (\d+): (.+)$")
_MARK = re.compile(r"#! (.+)$")


def expectations(path: Path) -> list[tuple[int, str]]:
    out = []
    text = path.read_bytes().decode("utf-8", errors="replace")
    for n, line in enumerate(text.split("\n"), start=1):
        m = _HEADER.match(line)
        if m:
            out.append((int(m.group(1)), m.group(2).strip()))
            continue
        m = _MARK.search(line)
        if m:
            out.append((n, m.group(1).strip()))
    return out


def test_corpus_is_large_enough() -> None:
    assert len(FILES) >= 30
    # the schema classes (identities and path characters, semver, integers) have their own files
    assert len([f for f in FILES if f.name.startswith("schema-")]) >= 15
    for f in FILES:
        assert expectations(f), f"{f.name} declares no expectation"


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_invalid_manifest(path: Path) -> None:
    report = validate_paths([str(path)])
    errors = [(p.line, str(p)) for p in report.problems if p.severity == "error"]
    for line, text in expectations(path):
        hits = [s for (ln, s) in errors if ln == line and text in s]
        assert hits, f"expected an error at line {line} containing {text!r}; got:\n" + "\n".join(
            f"  {ln}: {s}" for ln, s in errors
        )
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 1, result.output
    assert f"{path.name}:" in result.output


def test_every_error_names_file_and_line() -> None:
    report = validate_paths([str(CORPUS)])
    for p in report.problems:
        assert p.file.endswith(".yaml")
        assert p.line >= 1, p
        assert p.message


def _documents() -> list[tuple[str, Document]]:
    roots = [CORPUS, REPO / "manifests"]
    out = []
    for root in roots:
        for path in sorted(root.rglob("*.yaml")):
            for i, doc in enumerate(loader.load_paths([str(path)]).documents):
                kind = doc.body.get("kind")
                if kind in schema.SCHEMA_FILES:
                    out.append((f"{path.name}#{i}", doc))
    return out


DOCS = _documents()


def test_fast_path_and_judge_agree_on_every_document() -> None:
    """jsonschema-rs (the fast path) and jsonschema (the judge, with ECMA-262 patterns) give the
    same verdict on every corpus document (every schema rule broken at least once) and every
    example manifest: the fast path never passes what the judge refuses, nor the reverse."""
    assert schema._fast_validator("Prompt") is not None, "jsonschema-rs is a dependency"
    refused = 0
    for name, doc in DOCS:
        kind = doc.body["kind"]
        judged = schema.is_valid_judged(kind, doc.body)
        fast = schema.fast_verdict(kind, doc.body)
        assert fast is judged, f"{name}: jsonschema-rs says {fast}, jsonschema {judged}"
        refused += not judged
    assert refused >= 40  # the corpus does exercise the slow path


# Values where Python's and Rust's (and ECMA-262's) semantics could differ: line terminators
# against `$` and `.`, Unicode spaces and digits against \s and \d, 1.0 against integer, booleans
# against numbers, integers past 2**53 and 2**64, NaN and infinities, very long strings.
_TEXT_EDGES = ("\n", "\r\n", "\r", "\u2028", "\u2029", "\u0085", "\u00a0", "\ufeff", "\t", " ")
_TEXT_EDGES += ("\u0000", "\u007f", "\u200b", "\u202e", "/", "?", "#", "\\", "%2F", "..", "@")
_STRINGS = ("", "x", "١.٢.٣", "1.2.3", "1.2.3\n", "1.2.3-rc..1", "1.2.3-01", "1.2.3-0a", "01.2.3")
_STRINGS += ("1.2.3+", "1.2.3-", "1.2.3-a.b+c.d", "x" * 129, "x" * 20_000, "٣", "ab", "abc")
_NUMBERS = (0, 1, -1, 1.0, 0.5, 1.5, 1536, 1536.0, 1536.5, True, False, None, "1", 2**53 - 1)
_NUMBERS += (2**53, 2**63, 2**64, 10**30, -(10**30), 1e308, -0.0, float("nan"), float("inf"))
_NUMBERS += (float("-inf"), 256, 255, 4096, 4097, 128000, 128001, 2.0, 2.5)


def _variants(value: Any) -> list[Any]:
    if isinstance(value, str):
        around = [e + value for e in _TEXT_EDGES] + [value + e for e in _TEXT_EDGES]
        inside = [value[:1] + e + value[1:] for e in _TEXT_EDGES]
        return [*around, *inside, *_STRINGS, 1, True, None]
    if isinstance(value, bool | int | float):
        return [*_NUMBERS, "x"]
    if isinstance(value, dict):  # keys matter too (label keys, variable names)
        return [{f"{k}{e}": v for k, v in value.items()} for e in _TEXT_EDGES[:4]] + [{"": 1}]
    return [[], {}, None]


def _leaves(body: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path] if path else []
    if isinstance(body, dict):
        out += [p for k, v in body.items() for p in _leaves(v, (*path, k))]
    elif isinstance(body, list):
        out += [p for i, v in enumerate(body) for p in _leaves(v, (*path, i))]
    return out


def _replaced(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(body, dict):
        return {**body, head: _replaced(body[head], rest, value)}
    return [_replaced(v, rest, value) if i == head else v for i, v in enumerate(body)]


def _edge_documents() -> list[tuple[str, str, Any]]:
    bases: dict[str, Any] = {}
    for doc in loader.load_paths([str(REPO / "manifests")]).documents:
        bases.setdefault(doc.kind, doc.body)  # the first example of each kind
    assert sorted(bases) == sorted(schema.SCHEMA_FILES)
    out = []
    for kind, body in bases.items():
        for path in _leaves(body):
            current: Any = body
            for part in path:
                current = current[part]
            for value in _variants(current):
                out.append((kind, f"{kind} {path}={value!r:.40}", _replaced(body, path, value)))
    return out


def test_fast_path_and_judge_agree_on_edge_values() -> None:
    refused = 0
    documents = _edge_documents()
    for kind, label, body in documents:
        judged = schema.is_valid_judged(kind, body)
        fast = schema.fast_verdict(kind, body)
        assert fast is judged, f"{label}: jsonschema-rs says {fast}, jsonschema {judged}"
        refused += not judged
    assert len(documents) > 3000 and refused > len(documents) // 2


def test_every_problem_names_its_rule() -> None:
    """JSON consumers group and filter by ``rule``: no finding of any layer leaves it empty."""
    report = validate_paths([str(CORPUS)])
    assert report.problems
    unnamed = [str(p) for p in report.problems if not p.rule]
    assert unnamed == [], unnamed[:5]
