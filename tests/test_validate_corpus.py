"""The malformed-manifest corpus: every load-time refusal and every validation rule.

Each file under tests/corpus/invalid/ marks what it must produce: a trailing `#! text` comment
means "an error on this line whose text contains `text`"; a header `# expect N: text` does the
same for line N (for lines that cannot carry a comment, such as block-scalar text). Covers:
exit code 1 through the CLI, the exact line, the message, and that nothing else is reported as
an error in an unexpected file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler import loader, schema
from reconciler.cli import cli
from reconciler.model import Document
from reconciler.validate import validate_paths

CORPUS = Path(__file__).parent / "corpus" / "invalid"
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
    roots = [CORPUS, CORPUS.parent.parent.parent / "manifests"]
    out = []
    for root in roots:
        for path in sorted(root.rglob("*.yaml")):
            for i, doc in enumerate(loader.load_paths([str(path)]).documents):
                kind = doc.body.get("kind")
                if kind in schema.SCHEMA_FILES:
                    out.append((f"{path.name}#{i}", doc))
    return out


DOCS = _documents()


def test_fast_path_never_passes_what_jsonschema_refuses() -> None:
    """The compiled validator only short-cuts documents jsonschema also accepts; on the corpus
    (every schema rule broken at least once) and the example manifests, both agree."""
    assert schema._fast_validator("Prompt") is not None, "jsonschema-rs is a dependency"
    refused = 0
    for name, doc in DOCS:
        kind = doc.body["kind"]
        slow_ok = not list(schema._validator(kind).iter_errors(doc.body))
        fast_ok = schema.is_valid_fast(kind, doc.body)
        assert fast_ok == slow_ok, f"{name}: jsonschema-rs says {fast_ok}, jsonschema {slow_ok}"
        refused += not slow_ok
    assert refused >= 10  # the corpus does exercise the slow path


def test_fast_path_edge_values_agree() -> None:
    """Values where Python and Rust semantics could differ: a trailing newline against `$`,
    booleans against integers and numbers, 1.0 as an integer, non-ASCII text, huge numbers."""
    base = {
        "apiVersion": "llmgw/v1",
        "kind": "VectorIndex",
        "metadata": {"name": "edge-index"},
        "spec": {
            "vectorStore": "6d1f2c1e-0b7a-4a55-9d1e-3f3f8a2b9c10",
            "dimensions": 8,
            "similarityMetric": "cosine",
            "embeddingFormat": "int8",
        },
    }
    edits = [
        ("metadata", "name", "edge-index\n"),
        ("metadata", "name", "édge-index"),
        ("spec", "dimensions", True),
        ("spec", "dimensions", 8.0),
        ("spec", "dimensions", 8.5),
        ("spec", "dimensions", 10**30),
        ("spec", "dimensions", "8"),
        ("spec", "similarityMetric", "cosine\n"),
        ("metadata", "labels", {"team": "x\n"}),
        ("metadata", "labels", {"bad key": "x"}),
    ]
    for section, key, value in edits:
        body = {**base, section: {**base[section], key: value}}  # type: ignore[dict-item]
        slow_ok = not list(schema._validator("VectorIndex").iter_errors(body))
        fast_ok = schema.is_valid_fast("VectorIndex", body)
        assert not (fast_ok and not slow_ok), f"{section}.{key}={value!r}: fast path passed it"
