"""The redesign's rules, enforced on the source (issue 13): one kind, one file; wire names once.

Covers: outside ``reconciler/kinds/`` (and the emulator, which must stay independent of the
kinds), no module spells a kind's name or a ref of one (``Prompt/...``) in code: the generic
core asks the registry; every kind of the registry lives in its own module of ``kinds/`` and
names a schema that exists; and no string that is a wire name of the endpoint table (a path,
path parameter, header, paging name, error code, status value, scope, region, or a remote field
name) appears as a literal anywhere else in ``reconciler/``, the emulator included.

What counts as a wire name: every value of the table's paths, parameters, headers, paging,
codes, statuses, scopes and regions, and every remote field name except those that are also a
manifest field name (``systemPrompt`` is both: the manifest shape spells it) and a few generic
words llmgw's own formats use too (``id``, ``name``, ``status``, ``version``, ``labels``,
``description``, ``etag``, ``error``, ``action``, ``outcome``...: audit lines, problems, JSON
outputs and Python attributes say them for themselves). The runtime, error and OAuth bodies
are checked as well as the paths, parameters, headers, codes, statuses and scopes.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from reconciler import endpoints, kinds
from reconciler.defaults import SCHEMA_DIR, load_schema_file

PACKAGE = Path(__file__).resolve().parent.parent / "reconciler"
MODULES = sorted(PACKAGE.rglob("*.py"))
GENERIC = {"id", "name", "status", "version", "labels", "description", "etag"}
# words of llmgw's own formats (problem severities, plan and audit records, JSON outputs) that
# the runtime, error and OAuth bodies say too; and OpenAPI's own "parameters" and "bearer"
GENERIC |= {"error", "message", "code", "details", "action", "outcome", "latencyMs"}
GENERIC |= {"timestamp", "parameters", "bearer", "contextId"}
# the apply JSON's per-endpoint latencies and the rollout evidence's sample counts
GENERIC |= {"latencyP50Ms", "latencyP95Ms", "invocations"}
# CEL's own macro names (policy/check.py), which the analytics query also uses as a field
GENERIC |= {"filter"}


def _values(obj: Any) -> set[str]:
    out: set[str] = set()
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            out |= _values(getattr(obj, f.name))
    elif isinstance(obj, str):
        out.add(obj)
    elif isinstance(obj, tuple | list):
        for v in obj:
            out |= _values(v)
    return out


def _properties(schema: Any) -> set[str]:
    out: set[str] = set()
    if not isinstance(schema, dict):
        return out
    for key, sub in schema.get("properties", {}).items():
        out.add(key)
        out |= _properties(sub)
    for key in ("items", "additionalProperties"):
        out |= _properties(schema.get(key))
    for sub in schema.get("$defs", {}).values():
        out |= _properties(sub)
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            out |= _properties(sub)
    return out


def _wire_names() -> set[str]:
    manifest: set[str] = set()
    for r in kinds.REGISTRY:
        manifest |= _properties(load_schema_file(r.schema_file))
    names: set[str] = set(endpoints.REGIONS)
    for table in (
        endpoints.PATHS,
        endpoints.PARAMS,
        endpoints.HEADERS,
        endpoints.PAGING,
        endpoints.CODES,
        endpoints.STATUSES,
        endpoints.SCOPES,
        endpoints.OAUTH,
    ):
        names |= _values(table)
    for fields in (endpoints.FIELDS, endpoints.RUNTIME, endpoints.ERROR_BODY):
        names |= _values(fields) - manifest
    return names - GENERIC


WIRE = _wire_names()


def _literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def _rel(path: Path) -> str:
    return str(path.relative_to(PACKAGE))


@pytest.mark.parametrize("path", MODULES, ids=[_rel(p) for p in MODULES])
def test_no_module_outside_kinds_names_a_kind(path: Path) -> None:
    rel = _rel(path)
    if rel.startswith(("kinds/", "emulator/")):
        return
    named = [
        (n, v)
        for n, v in _literals(path)
        if v in kinds.KINDS or any(v.startswith(f"{k}/") for k in kinds.KINDS)
    ]
    assert named == [], f"{rel} spells kinds {named}: ask the registry (reconciler.kinds)"


@pytest.mark.parametrize("path", MODULES, ids=[_rel(p) for p in MODULES])
def test_wire_names_only_in_the_endpoint_table(path: Path) -> None:
    rel = _rel(path)
    if rel == "endpoints.py":
        return
    spelled = [(n, v) for n, v in _literals(path) if v in WIRE]
    assert spelled == [], f"{rel} spells wire names {spelled}: use reconciler/endpoints.py"


def test_every_kind_is_one_module_with_its_schema() -> None:
    modules = {p.stem for p in (PACKAGE / "kinds").glob("*.py")} - {"__init__", "base", "common"}
    homes = {type(r).__module__.rpartition(".")[2] for r in kinds.REGISTRY}
    assert homes == modules, "each kinds/ module holds registered kinds, each kind one module"
    for r in kinds.REGISTRY:
        assert SCHEMA_DIR.joinpath(r.schema_file).is_file(), r.schema_file
        assert load_schema_file(r.schema_file)["properties"]["kind"]["const"] == r.kind
    assert [r.rank for r in kinds.REGISTRY] == sorted(r.rank for r in kinds.REGISTRY)


def test_the_rule_finds_a_wire_name() -> None:
    """The literal check can fail: an error code spelled in a module is found."""
    assert endpoints.CODES.precondition_failed in WIRE
    assert endpoints.PARAMS.template_id in WIRE
    assert "systemPrompt" not in WIRE  # a manifest field name too
