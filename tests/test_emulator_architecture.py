"""The emulator's layering, enforced on its source (``reconciler/emulator/``).

Covers: the emulator imports nothing of the reconciler but the endpoint table, the error tree
and the shared leaf modules (``textrules``, ``urls``): its independence from the core (kinds,
planner, normalize, schema, rules, client) is what catches a misreading of the contract on
either side; the state machine (``state/``) does no I/O (no HTTP, sockets, files, processes,
logging or wall clock) and never imports the HTTP layer; every state module's docstring says
what it must not do; and no error code or status value is spelled as a literal anywhere in the
emulator (outside docstrings): they come from ``CODES`` and ``STATUSES`` in the table.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from reconciler.endpoints import CODES, STATUSES

EMULATOR = Path(__file__).resolve().parent.parent / "reconciler" / "emulator"
MODULES = sorted(EMULATOR.rglob("*.py"))
STATE = sorted((EMULATOR / "state").glob("*.py"))
IDS = [str(p.relative_to(EMULATOR)) for p in MODULES]

ALLOWED = {"reconciler.endpoints", "reconciler.errors", "reconciler.textrules", "reconciler.urls"}
NO_IO = {"starlette", "httpx", "uvicorn", "socket", "os", "time", "pathlib", "io", "shutil"}
NO_IO |= {"subprocess", "asyncio", "logging", "tempfile", "threading", "sys"}
HTTP_LAYER = {f"reconciler.emulator.{m}" for m in ("app", "openapi", "server", "transport")}
HTTP_LAYER |= {"reconciler.emulator.body", "reconciler.emulator.config"}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _imported(path: Path) -> set[str]:
    """Every module ``path`` imports, ``from reconciler import x`` read as ``reconciler.x``."""
    names: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path.name}: relative import"
            names.add(node.module)
            if node.module == "reconciler":
                names.update(f"reconciler.{a.name}" for a in node.names)
    return names


@pytest.mark.parametrize("path", MODULES, ids=IDS)
def test_the_emulator_imports_only_the_table_the_errors_and_the_leaf_modules(path: Path) -> None:
    for name in _imported(path):
        if name == "reconciler" or not name.startswith("reconciler."):
            continue
        assert name.startswith("reconciler.emulator") or name in ALLOWED, (
            f"{path.relative_to(EMULATOR)} imports {name}: the emulator may use only "
            f"{sorted(ALLOWED)} of the reconciler"
        )


@pytest.mark.parametrize("path", STATE, ids=[p.name for p in STATE])
def test_the_state_machine_does_no_io_and_knows_no_http(path: Path) -> None:
    names = _imported(path)
    assert not {n.split(".")[0] for n in names} & NO_IO, path.name
    assert not names & HTTP_LAYER, path.name
    for node in ast.walk(_tree(path)):  # the clock is injected: Org.now
        if isinstance(node, ast.Attribute) and node.attr in ("now", "utcnow", "today"):
            assert not (isinstance(node.value, ast.Name) and node.value.id in ("datetime", "date"))
    assert "must not" in (ast.get_docstring(_tree(path)) or ""), path.name


WIRE = sorted({*CODES.all, STATUSES.processing, STATUSES.active, STATUSES.withdrawn}, key=len)
SPELLED = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, reversed(WIRE))) + r")(?!\w)")


def _docstrings(tree: ast.Module) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


@pytest.mark.parametrize("path", MODULES, ids=IDS)
def test_no_error_code_or_status_is_spelled_in_the_emulator(path: Path) -> None:
    tree = _tree(path)
    docs = _docstrings(tree)
    spelled = [
        (node.lineno, m.group(1))
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
        for m in [SPELLED.search(node.value)]
        if m
    ]
    assert not spelled, f"{path.relative_to(EMULATOR)}: use CODES/STATUSES for {spelled}"


def test_the_wire_scan_sees_a_spelled_code() -> None:
    tree = ast.parse('"""A docstring: not.found is prose."""\nx = "409 name.exists when taken"\n')
    docs = _docstrings(tree)
    found = [
        SPELLED.findall(n.value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs
    ]
    assert found == [["name.exists"]]
