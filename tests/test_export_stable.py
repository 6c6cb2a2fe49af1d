"""Exports that diff clean: two exports of one org are byte-identical trees, whatever order the
server answers in.

Covers: a generated org with every list and map filled (``tests/generated.py``) applied to the
emulator's state machine, then read twice through readers that answer each listing in another
order, with every JSON object's keys in another order and every list that is a set permuted (a
template's variables, a prompt's content filters and blocked categories, a split's entries):
the two exports are the same files with the same bytes, written as trees; an ordered list (a
prompt's fallback models) answered in another order is another export, never sorted away. End
to end, ``llmgw export`` against the in-process emulator twice, with the org's set-valued fields
and labels rewritten in another order between the two, writes identical trees, which
``llmgw validate`` accepts and ``llmgw plan`` finds to be "No changes". Text holding what YAML
1.1 calls line breaks (NEL, U+2028, U+2029), which the export wrote raw and indented after, is
written so that it reads back as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler import cli as climod
from reconciler import kinds
from reconciler.emulator.state import MODELS, STORES, Gateway
from reconciler.endpoints import FIELDS, PATHS
from reconciler.executor import concrete_path, resolve
from reconciler.export import render, write
from reconciler.live import read_live
from reconciler.loader import dump_yaml, load_text
from reconciler.objects import LiveState
from reconciler.planner import plan
from reconciler.validate import validate_paths
from tests.generated import write_varied_org
from tests.test_e2e import Org
from tests.test_roundtrip import _call, _Reader

N = 12
# lists whose order means nothing: the server may answer them in any order
SETS = {
    FIELDS.template.variables,
    FIELDS.prompt.content_filtering,
    FIELDS.prompt.blocked_categories,
    FIELDS.prompt.td_versions,
}


def _permuted(value: Any, rng: random.Random, key: str = "") -> Any:
    """``value`` with every object's keys and every set-valued list in another order."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _permuted(v, rng, k) for k, v in items}
    if isinstance(value, list):
        out = [_permuted(v, rng) for v in value]
        if key in SETS:
            rng.shuffle(out)
        return out
    return value


class _Shuffled(_Reader):
    """The emulator's listings in another order each time, as a server answering pages in any
    order would give them; ``edit`` may change each entity afterwards."""

    def __init__(
        self, gateway: Gateway, seed: int, edit: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        super().__init__(gateway)
        self.rng = random.Random(seed)
        self.edit = edit
        self.orders: list[list[Any]] = []

    async def list(self, path: str) -> list[dict[str, Any]]:
        entities = [_permuted(e, self.rng) for e in await super().list(path)]
        self.rng.shuffle(entities)
        for e in entities:
            if self.edit is not None:
                self.edit(e)
        self.orders.append([e.get(FIELDS.id) or e.get(FIELDS.version.version) for e in entities])
        return entities


def _org(tmp: Path) -> Gateway:
    """The generated org, applied to the emulator's state machine as apply would send it."""
    write_varied_org(tmp / "org", N)
    report = validate_paths([str(tmp / "org")])
    assert not report.problems
    from reconciler.normalize import desired_state

    desired = desired_state(report.documents)
    empty = LiveState(models={m["id"]: dict(m) for m in MODELS}, stores={s["id"] for s in STORES})
    gateway = Gateway(now=lambda: 1.0e9, ingest_delay=0.0, seed=1)
    ids: dict[str, str] = {}
    for wave in plan(desired, empty).waves():
        for op in wave:
            for req in op.requests:
                path = concrete_path(req, ids)
                answer = _call(gateway, req.method, path, resolve(req.body, ids), dict(req.headers))
                body = answer.body if isinstance(answer.body, dict) else {}
                ids.update(kinds.resource(op.kind).record(op, body, None).ids)
    return gateway


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _export(reader: _Reader, out: Path) -> dict[str, bytes]:
    live = asyncio.run(read_live(reader, all_versions=True))
    write(render(live), str(out))
    return _tree(out)


def test_two_exports_in_shuffled_orders_are_byte_identical_trees(tmp_path: Path) -> None:
    gateway = _org(tmp_path)
    first, second = _Shuffled(gateway, 1), _Shuffled(gateway, 2)
    a = _export(first, tmp_path / "a")
    b = _export(second, tmp_path / "b")
    assert first.orders != second.orders  # the server really answered in other orders
    assert len(a) == 2 * N + 1  # a template (with its versions) and a prompt each, one store
    assert a == b
    text = b"".join(a.values()).decode()
    assert "fallbackModels:\n  - model-gen-4\n  - model-fallback-3\n" in text  # as given
    assert "fallbackModels:\n  - model-fallback-3\n  - model-gen-4\n" in text


def test_an_ordered_list_in_another_order_is_another_export(tmp_path: Path) -> None:
    gateway = _org(tmp_path)

    def reverse_fallbacks(entity: dict[str, Any]) -> None:
        if isinstance(entity.get(FIELDS.prompt.fallbacks), list):
            entity[FIELDS.prompt.fallbacks].reverse()

    a = _export(_Shuffled(gateway, 1), tmp_path / "a")
    b = _export(_Shuffled(gateway, 1, reverse_fallbacks), tmp_path / "b")
    differ = sorted(path for path in a if a[path] != b[path])
    assert differ and all(path.startswith("prompts/") for path in differ)


# -- end to end ----------------------------------------------------------------------------------
@contextlib.contextmanager
def _in(root: Path, org: Org) -> Iterator[Callable[..., tuple[int, str]]]:
    """The command line against the in-process emulator, run from ``root``."""
    before = os.getcwd()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(climod, "_target", lambda parallelism, environment: org.target())
        os.chdir(root)
        try:

            def run(*args: str) -> tuple[int, str]:
                result = CliRunner().invoke(climod.cli, list(args), catch_exceptions=False)
                return result.exit_code, result.output

            yield run
        finally:
            os.chdir(before)


def _reversed(value: Any) -> Any:
    """Every object's keys and every list in the reverse order."""
    if isinstance(value, dict):
        return {k: _reversed(v) for k, v in reversed(value.items())}
    if isinstance(value, list):
        return [_reversed(v) for v in reversed(value)]
    return value


async def _reorder(org: Org) -> None:
    """Rewrite every template's variables and every prompt's guardrail lists and labels in
    the reverse order (what another client's writes could leave): the same org."""
    for path, fields in (
        (PATHS.templates, _TEMPLATE_FIELDS),
        (PATHS.prompts, {FIELDS.prompt.guardrails, FIELDS.labels}),
    ):
        page = await org.call("GET", path, params={"pageSize": 100})
        for e in page.json()["entities"]:
            body = {k: _reversed(v) for k, v in e.items() if k in fields}
            r = await org.call("PUT", f"{path}/{e[FIELDS.id]}", json=body)
            assert r.status_code == 200, r.text


_TEMPLATE_FIELDS = {  # a template's PUT replaces the whole object
    FIELDS.template.name,
    FIELDS.template.description,
    FIELDS.template.system_instruction,
    FIELDS.template.user_template,
    FIELDS.template.variables,
    FIELDS.template.max_tokens,
    FIELDS.template.guardrails,
    FIELDS.labels,
}


def test_llmgw_export_twice_writes_identical_trees_that_plan_no_changes(tmp_path: Path) -> None:
    write_varied_org(tmp_path / "org", N)
    org = Org()
    with _in(tmp_path, org) as run:
        assert run("apply", "org", "--auto-approve")[0] == 0
        code, out = run("export", "--out", "first")
        assert code == 0, out
        before = asyncio.run(org.call("GET", PATHS.templates)).json()["entities"][0]
        asyncio.run(_reorder(org))
        after = asyncio.run(org.call("GET", PATHS.templates)).json()["entities"][0]
        field = FIELDS.template.variables
        assert after[field] == before[field][::-1] != before[field]  # really another order
        assert run("export", "--out", "second")[0] == 0
        first, second = _tree(tmp_path / "first"), _tree(tmp_path / "second")
        assert first and first == second
        assert run("validate", "second")[0] == 0
        code, out = run("plan", "second", "--detailed-exitcode")
        assert code == 0 and "No changes" in out, out


@pytest.mark.parametrize(
    "text",
    ["a\u2028b", "a\u2029", "\x85x", "two\nlines\u2028 and a separator", "a\n\u2028b", " x\u2028"],
)
def test_yaml_1_1_line_breaks_are_written_to_read_back_the_same(text: str) -> None:
    doc = {"apiVersion": "llmgw/v1", "kind": "Prompt", "metadata": {"name": "p-1"}}
    written = dump_yaml({**doc, "spec": {"systemPrompt": text, "labels": {"k": text}}})
    (loaded,), problems = load_text(written, "x.yaml")
    assert problems == [] and loaded.spec == {"systemPrompt": text, "labels": {"k": text}}
