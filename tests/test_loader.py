"""The loader: discovery rules, bounds, locations, and its refusals beyond the corpus.

Covers: recursive discovery of *.yaml/*.yml skipping dot-files and dot-folders, missing paths and
empty folders, the file-size bound, line numbers of values, keys and block-scalar text, raw text of
YAML 1.1 coercions, empty documents, and that nothing in the loader raises for bad bytes.
"""

from __future__ import annotations

from pathlib import Path

from reconciler import loader
from reconciler.loader import discover, load_bytes, load_paths, load_text


def test_discovery_skips_dot_files_and_folders(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / ".github").mkdir()
    (tmp_path / "a" / "x.yaml").write_text("{}")
    (tmp_path / "a" / "y.yml").write_text("{}")
    (tmp_path / "a" / "z.txt").write_text("{}")
    (tmp_path / ".llmgw-ignore.yaml").write_text("{}")
    (tmp_path / ".github" / "w.yaml").write_text("{}")
    files, problems = discover([str(tmp_path)])
    assert [Path(f).name for f in files] == ["x.yaml", "y.yml"]
    assert problems == []


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    _, problems = discover([str(tmp_path / "nope"), str(tmp_path / "empty")])
    messages = sorted(p.message for p in problems)
    assert messages == [
        "no manifest files (*.yaml, *.yml) in this folder",
        "no such file or folder",
    ]


def test_oversize_file_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"a: 1\n" + b"#" * (loader.MAX_FILE_BYTES + 1))
    result = load_paths([str(big)])
    assert result.documents == []
    assert "larger than" in result.problems[0].message


def test_locations() -> None:
    text = (
        "kind: X\nspec:\n  items:\n    - one\n    - two\n  text: |\n    a\n    b {{x}}\n  v: 2.10\n"
    )
    docs, problems = load_text(text, "f.yaml")
    assert problems == []
    loc = docs[0].locations
    assert loc.line(("spec", "items", 1)) == 5
    assert loc.key_line(("spec", "items")) == 3
    body = docs[0].body["spec"]["text"]
    assert loc.text_line(("spec", "text"), body.index("{{x}}")) == 8
    assert loc.raw[("spec", "v")] == "2.10"
    assert docs[0].body["spec"]["v"] == 2.1


def test_empty_documents_are_ignored() -> None:
    docs, problems = load_text("---\n---\nkind: X\n", "f.yaml")
    assert problems == [] and len(docs) == 1 and docs[0].line == 3


def test_bad_bytes_never_raise() -> None:
    for data in [b"\xff\xfe\x00", b"a: \x00", b"\x1b[31m: x", b"a: !!python/object:os.system x"]:
        _, problems = load_bytes(data, "f.yaml")
        assert problems, data


def test_utf8_bom_accepted() -> None:
    docs, problems = load_bytes("\ufeffkind: X\n".encode(), "f.yaml")
    assert problems == [] and docs[0].body == {"kind": "X"}
