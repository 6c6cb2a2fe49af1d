"""Architecture rules from style.md, enforced on the source: one choke point per outside thing.

Covers: only the loader imports yaml, only the token module imports tiktoken, only the CLI imports
click, only the client package ``remote/`` imports httpx (the emulator, a separate server, may use
httpx for its in-process transport), only the schema module imports jsonschema (and
jsonschema-rs), only diffing imports deepdiff, and the pure planner imports no I/O module. The
rest of the package uses ``remote/`` through its public names only (``reconciler.remote``, not
its modules).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from reconciler import remote

PACKAGE = Path(__file__).resolve().parent.parent / "reconciler"

# third-party top-level module -> the modules (relative to reconciler/) allowed to import it
CHOKE_POINTS = {
    "yaml": {"loader.py"},
    "tiktoken": {"tokens.py"},
    "click": {"cli.py"},
    "httpx": {"remote/", "emulator/transport.py"},
    "jsonschema": {"schema.py"},
    "jsonschema_rs": {"schema.py"},
    "deepdiff": {"diffing.py"},
    "starlette": {"emulator/"},
    "uvicorn": {"emulator/"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _allowed(rel: str, allowed: set[str]) -> bool:
    return any(rel == a or (a.endswith("/") and rel.startswith(a)) for a in allowed)


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PACKAGE)) for p in MODULES])
def test_choke_points(path: Path) -> None:
    rel = str(path.relative_to(PACKAGE))
    for module in _imports(path):
        allowed = CHOKE_POINTS.get(module)
        if allowed is not None:
            assert _allowed(rel, allowed), f"{rel} imports {module}; only {sorted(allowed)} may"


def test_every_module_has_a_docstring() -> None:
    for path in MODULES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), f"{path.relative_to(PACKAGE)} has no module docstring"


def test_planner_is_pure() -> None:
    planner = PACKAGE / "planner.py"
    forbidden = {"httpx", "os", "time", "datetime", "random", "socket", "subprocess", "logging"}
    assert not (_imports(planner) & forbidden)
    assert "reconciler.remote" not in planner.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PACKAGE)) for p in MODULES])
def test_remote_is_used_through_its_package(path: Path) -> None:
    rel = str(path.relative_to(PACKAGE))
    if rel.startswith("remote/"):
        return
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            assert not node.module.startswith("reconciler.remote."), (
                f"{rel} imports {node.module}; import its public names from reconciler.remote"
            )
            if node.module == "reconciler.remote":
                other = [a.name for a in node.names if a.name not in remote.__all__]
                assert not other, f"{rel} imports {other}, not public names of reconciler.remote"
        elif isinstance(node, ast.Import):
            for a in node.names:
                assert not a.name.startswith("reconciler.remote."), f"{rel} imports {a.name}"
