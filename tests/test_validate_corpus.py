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

from reconciler.cli import cli
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
