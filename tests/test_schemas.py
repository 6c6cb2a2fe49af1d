"""The JSON Schemas as files: one copy, shipped in the package, found by editors.

Covers: the top-level schemas/ that editors point at is the package's reconciler/schemas/ (a
link, same files, same bytes), so the two can never drift apart; schema.py reads them through
importlib.resources; every `$schema` modeline in manifests/ and examples/ names a schema file
that exists.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from reconciler import schema

REPO = Path(__file__).resolve().parent.parent
PACKAGED = REPO / "reconciler" / "schemas"
TOP = REPO / "schemas"
MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$", re.MULTILINE)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_top_level_schemas_is_the_package_folder() -> None:
    assert TOP.is_symlink(), "schemas/ must link to reconciler/schemas/, not be a second copy"
    assert os.readlink(TOP) == os.path.join("reconciler", "schemas")
    packaged = _files(PACKAGED)
    assert packaged.keys() == {*schema.SCHEMA_FILES.values(), "manifest.schema.json"}
    assert _files(TOP) == packaged


def test_schema_module_reads_the_package_data() -> None:
    assert Path(str(schema.SCHEMA_DIR)).resolve() == PACKAGED.resolve()
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
