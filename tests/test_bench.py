"""The benchmarks still run: their scenarios on a tiny org, in process (no timing asserted).

Covers: ``bench/bench_plan.py`` writes an org, seeds the emulator with it through llmgw, and its
per-object baseline reader (one GET per object, the kinds' ``Reader`` protocol) reads the same
live state as llmgw's own reader, so the baseline plans no change either; the planner CPU
scenario runs. The redesign made the reader generic and broke the baseline without any test
noticing: this is that test. ``bench/bench_validate.py`` generates valid documents; the policy
bench's packs load and judge them.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

from reconciler.emulator.app import create_app
from reconciler.emulator.config import EmulatorConfig
from reconciler.gateway import GatewayReader
from reconciler.live import read_live
from reconciler.planner import plan
from reconciler.validate import validate_paths

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_plan_bench_baseline_reads_what_llmgw_reads(tmp_path: Path) -> None:
    bp = _load("bench_plan")
    manifests, state, objects, org = bp.prepare(tmp_path, "tiny", (3, 2, 2, 2))
    assert objects == 3 * 3 + 2 * 2 + 2 and "3 templates" in org
    ids = bp.object_ids(state)
    desired = bp.jobs.load_desired([str(manifests)])

    async def both() -> tuple[object, object, int]:
        app = create_app(EmulatorConfig(rate_limit=0, ingest_delay=0.0))
        app.emulator.restore(json.loads(state.read_text()))
        target = bp._target(app)
        async with target.client(read_only=True) as client:
            ours = await read_live(GatewayReader(client), desired.objects.values())
        async with target.client(read_only=True) as client:
            theirs = await read_live(bp.PerObjectReader(client, ids), desired.objects.values())
            sent = client.requests_sent
        return ours, theirs, sent

    ours, theirs, sent = asyncio.run(both())
    assert set(theirs.objects) == set(ours.objects) == set(desired.objects)  # type: ignore[attr-defined]
    assert plan(desired.objects, theirs).changes == []  # type: ignore[arg-type]
    # one GET per object (a split's prompt read again), the models and the stores listed once
    assert sent == 3 + 3 * 2 + 2 * 2 + 2 + 2
    cpu = asyncio.run(bp.planner_cpu(manifests, state))
    assert set(cpu) == {"load", "plan"}


def test_validate_bench_documents_are_valid(tmp_path: Path) -> None:
    bv = _load("bench_validate")
    count = bv.generate(tmp_path, n=40, files=5)  # five documents each
    report = validate_paths([str(tmp_path)])
    assert report.errors == [] and len(report.documents) == count == 200


def test_rollout_bench_runs_the_real_decisions() -> None:
    """``bench/bench_rollout.py`` on 20 rollouts a scenario (2 through the emulator's traffic):
    every scenario runs, no traffic never promotes and always pauses with "no data", a bad
    canary never reaches the end, on either traffic."""
    br = _load("bench_rollout")
    rows = {str(r["benchmark"]): r for r in br.main(rollouts=20, emulator_rollouts=2)}
    assert len(rows) == len(br.SCENARIOS) + len(br.EMULATOR_SCENARIOS)
    for prefix, n in (
        ("rollout simulation: ", 20),
        ("rollout simulation on the emulator's traffic: ", 20),
    ):
        none = rows[f"{prefix}no traffic"]
        assert none["promotions (step 2+ or finish)"] == 0
        assert none["pauses saying 'no data'"] == n
        bad = next(r for k, r in rows.items() if k.startswith(f"{prefix}bad canary"))
        assert str(bad["finished"]).startswith("0/")
        assert str(bad["rolled back"]).startswith(f"{bad['rollouts']}/")


def test_policy_bench_packs_load_and_judge(tmp_path: Path) -> None:
    """bench/bench_policy.py's two packs load with no problem (50 rules each, as its rows
    claim) and judge documents."""
    import datetime as dt

    from reconciler.loader import load_paths
    from reconciler.policy import engine, pack

    bp = _load("bench_policy")
    bv = _load("bench_validate")
    manifests = tmp_path / "m"
    manifests.mkdir()
    bv.generate(manifests, n=4, files=2)
    docs = load_paths([str(manifests)]).documents
    for path in (bp.write_pack(tmp_path), bp.write_universal(tmp_path)):
        loaded = pack.load([str(path)])
        assert not loaded.problems and len(loaded.rules) == 50
        outcome = engine.judge(loaded.rules, docs, "prod", dt.date(2026, 12, 1))
        assert outcome.verdicts and "error" not in outcome.verdicts.values()
