"""Architecture rules from style.md, enforced on the source: one choke point per outside thing.

Covers: only the loader imports yaml, only the token module imports tiktoken, only the CLI imports
click, only the client package ``remote/`` imports httpx (the emulator, a separate server, may use
httpx for its in-process transport), only the schema module imports jsonschema (and jsonschema-rs),
only diffing imports deepdiff, only ``cel.py`` imports the CEL library, and the pure planner
imports no I/O module. The rest of the package uses ``remote/`` through its public names only
(``reconciler.remote``, not its modules). The views never print, never import click and do no I/O
(no open, no os, sys, io or pathlib, no logging), and the CLI never branches on the output format
(it hands ``--output`` to a view constructor).
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
    "cel": {"cel.py"},
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


VIEWS = sorted((PACKAGE / "views").glob("*.py"))
# modules a view must not import: output, files, processes, terminals and logs are the CLI's
VIEW_FORBIDDEN = {
    "click",
    "os",
    "sys",
    "io",
    "pathlib",
    "shutil",
    "tempfile",
    "subprocess",
    "socket",
    "logging",
    "asyncio",
}
VIEW_FORBIDDEN_CALLS = {"print", "open", "input", "breakpoint", "exec", "eval", "__import__"}


def _all_imports(tree: ast.AST) -> set[str]:
    """Every module imported anywhere in ``tree``, TYPE_CHECKING blocks and functions too."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", VIEWS, ids=[p.name for p in VIEWS])
def test_views_never_print_and_do_no_io(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {name.split(".")[0] for name in _all_imports(tree)}
    assert not imported & VIEW_FORBIDDEN, f"views/{path.name} imports {imported & VIEW_FORBIDDEN}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in VIEW_FORBIDDEN_CALLS, (
                f"views/{path.name}:{node.lineno} calls {node.func.id}()"
            )
        if isinstance(node, ast.Attribute) and node.attr in {"stdout", "stderr", "echo"}:
            raise AssertionError(f"views/{path.name}:{node.lineno} reaches for .{node.attr}")


def test_views_are_found() -> None:
    assert {p.name for p in VIEWS} >= {
        "__init__.py",
        "base.py",
        "validate.py",
        "plan.py",
        "apply.py",
        "drift.py",
        "export.py",
        "audit.py",
    }


def test_cli_never_branches_on_the_output_format() -> None:
    """``--output`` reaches the views' constructors and nothing else: no comparison, no
    ``if``/``match`` on it, in any command."""
    tree = ast.parse((PACKAGE / "cli.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "output_format":
            parent = _parents(tree)[node]
            assert isinstance(parent, ast.Call | ast.arguments | ast.arg | ast.keyword), (
                f"cli.py:{node.lineno} uses output_format outside a call"
            )
            call = parent if isinstance(parent, ast.Call) else None
            assert call is not None and ast.unparse(call.func).startswith("views."), (
                f"cli.py:{node.lineno} passes output_format to {ast.unparse(parent)}"
            )
        if isinstance(node, ast.Constant) and node.value in {"json", "markdown", "github"}:
            raise AssertionError(f"cli.py:{node.lineno} names the {node.value!r} format")


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
