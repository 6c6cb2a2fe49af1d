"""Plan, apply and drift with a rollout block: the pure side.

Covers: a split whose live weights differ starts the rollout at step 1 (never the end state),
with the rollout's labels and the step's start as a ServerTime placeholder (so a saved plan is
the same plan when re-derived later); a prompt created with a rollout starts with all traffic on
from; a rollout in progress, paused or aborted holds the split (plan says so, drift reports it
as a rollout, never as drift); a done rollout whose split is its end state is a no-op; a live
split on a third version is a plan problem; a labels change keeps llmgw's state labels; a
version the rollout withdrew stays withdrawn (plan and drift say why); the labels round-trip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler import drift, planfile
from reconciler.normalize import desired_state
from reconciler.objects import SERVER_TIME, Obj, ServerTime
from reconciler.planner import OpType, plan
from reconciler.rollout import labels
from reconciler.rollout.spec import Rollout
from reconciler.validate import validate_paths
from tests.rollout_manifests import rollout_manifests
from tests.test_planner import live_copy

REPO = Path(__file__).resolve().parent.parent


def manifests(tmp_path: Path) -> Path:
    return rollout_manifests(tmp_path)


def desired_of(path: Path) -> dict[str, Obj]:
    report = validate_paths([str(path)])
    assert not report.errors, report.errors
    return desired_state(report.documents)


def rollout_of(want: dict[str, Obj]) -> Rollout:
    r = want["TrafficSplit/support-agent"].settings["rollout"]
    assert isinstance(r, Rollout)
    return r


def live_with(want: dict[str, Obj], split: dict[str, Any], state: dict[str, str] | None = None):
    """The org after applying ``want``, with the support-agent split and labels replaced."""

    def edit(kind: str, key: str, raw: dict[str, Any]) -> None:
        if kind == "Prompt" and key == "support-agent":
            raw["trafficDistribution"] = split
            if state:
                raw["labels"] = {**raw["labels"], **state}

    return live_copy(want, edit=edit)


OLD_SPLIT = {
    "versions": [{"version": "2.0.0", "weight": 0.8}, {"version": "2.1.0", "weight": 0.2}],
    "splitStrategy": "random",
}


def ops(result: Any) -> dict[str, Any]:
    return {op.ref: op for op in result.operations}


def test_a_changed_split_starts_the_rollout_at_step_one(tmp_path: Path) -> None:
    want = desired_of(manifests(tmp_path))
    r = rollout_of(want)
    result = plan(want, live_with(want, OLD_SPLIT))
    op = ops(result)["TrafficSplit/support-agent"]
    assert op.action == OpType.UPDATE
    assert op.reason == "start rollout 2.0.0 -> 2.1.0 at 5 %"
    (req,) = op.requests
    assert req.body["trafficDistribution"]["versions"] == [
        {"version": "2.0.0", "weight": 0.95},
        {"version": "2.1.0", "weight": 0.05},
    ]
    got = req.body["labels"]
    assert got[labels.ID] == r.id and got[labels.STEP] == "1"
    assert got[labels.STATE] == "progressing"
    assert isinstance(got[labels.SINCE], ServerTime)
    assert got["team"] == "support"  # the prompt's own labels stay
    # the placeholder survives a plan file and is the same plan when re-derived
    doc = planfile.operation_dict(op)
    assert SERVER_TIME in str(doc)
    again = plan(want, live_with(want, OLD_SPLIT))
    assert ops(again)["TrafficSplit/support-agent"].requests == op.requests


def test_the_end_state_is_never_planned_while_the_rollout_runs(tmp_path: Path) -> None:
    want = desired_of(manifests(tmp_path))
    r = rollout_of(want)
    for state, words in (
        ("progressing", "progressing at step 2 of 3 (25 %)"),
        ("paused", "paused at step 2 of 3 (25 %)"),
        ("aborted", "stays aborted until its rollout block or its canary changes"),
    ):
        pos = labels.Position(r.id, 2, 1.7e9, state)
        live = live_with(
            want,
            prompt_body(r.split(2)) if state != "aborted" else {"defaultVersion": "2.0.0"},
            labels.encode(pos),
        )
        op = ops(plan(want, live))["TrafficSplit/support-agent"]
        assert op.action == OpType.NOOP, state
        assert words in op.reason
        report = drift.detect(want, live)
        assert report.in_sync, state
        (held,) = [f for f in report.findings if f.state == drift.ROLLOUT]
        assert held.ref == "TrafficSplit/support-agent" and state in held.note


def prompt_body(split: dict[str, Any]) -> dict[str, Any]:
    from reconciler.kinds import prompt

    return prompt.SPLIT_RESOURCE.body(split)


def test_a_new_rollout_block_starts_a_new_rollout_over_an_aborted_one(tmp_path: Path) -> None:
    want = desired_of(manifests(tmp_path))
    pos = labels.Position("0123456789ab", 2, 1.7e9, "aborted")  # another block's id
    live = live_with(want, {"defaultVersion": "2.0.0"}, labels.encode(pos))
    op = ops(plan(want, live))["TrafficSplit/support-agent"]
    assert op.reason == "start rollout 2.0.0 -> 2.1.0 at 5 %"
    body_labels = op.requests[0].body["labels"]
    assert body_labels[labels.ID] == rollout_of(want).id
    assert body_labels[labels.HISTORY_LABEL] == ""  # the old rollout's history is not carried


def test_a_done_rollout_at_its_end_state_plans_nothing(tmp_path: Path) -> None:
    want = desired_of(manifests(tmp_path))
    r = rollout_of(want)
    live = live_with(
        want, {"defaultVersion": "2.1.0"}, labels.encode(labels.Position(r.id, 4, 1.7e9, "done"))
    )
    result = plan(want, live)
    assert not result.changes
    assert drift.detect(want, live).in_sync


def test_a_split_already_at_the_end_state_plans_nothing(tmp_path: Path) -> None:
    want = desired_of(manifests(tmp_path))
    assert not plan(want, live_with(want, {"defaultVersion": "2.1.0"})).changes


def test_traffic_on_a_third_version_is_a_problem(tmp_path: Path) -> None:
    want = desired_of(manifests(tmp_path))
    from reconciler.errors import PlanError

    with pytest.raises(PlanError) as exc:
        plan(want, live_with(want, {"defaultVersion": "1.0.0"}))
    assert "live traffic goes to 1.0.0" in str(exc.value.problems[0])


def test_a_prompt_created_with_a_rollout_starts_on_from(tmp_path: Path) -> None:
    want = desired_of(manifests(tmp_path))
    from reconciler.objects import LiveState
    from tests.test_planner import MODELS, STORE

    result = plan(want, LiveState(models=dict(MODELS), stores={STORE}))
    op = ops(result)["Prompt/support-agent"]
    assert op.action == OpType.CREATE
    body = op.requests[0].body
    assert body["trafficDistribution"] == {"defaultVersion": "2.0.0"}
    assert body["labels"][labels.STEP] == "0"
    assert "all traffic on 2.0.0" in op.reason


def test_a_labels_change_keeps_the_rollout_labels(tmp_path: Path) -> None:
    path = manifests(tmp_path)
    f = path / "prompts" / "support-agent.yaml"
    f.write_text(f.read_text().replace("team: support", "team: care", 1))
    want = desired_of(path)
    r = rollout_of(want)
    state = labels.encode(labels.Position(r.id, 1, 1.7e9, "progressing"))
    live = live_with(want, prompt_body(r.split(1)), {**state, "team": "support"})
    op = ops(plan(want, live))["Prompt/support-agent"]
    assert op.action == OpType.UPDATE
    sent = op.requests[0].body["labels"]
    assert sent["team"] == "care"
    assert {k: sent[k] for k in state} == state
    assert "trafficDistribution" not in op.requests[0].body


def test_a_version_the_rollout_withdrew_stays_withdrawn(tmp_path: Path) -> None:
    want = desired_of(manifests(tmp_path))
    r = rollout_of(want)
    pos = labels.encode(labels.Position(r.id, 1, 1.7e9, "aborted"))

    def edit(kind: str, key: str, raw: dict[str, Any]) -> None:
        if kind == "Prompt" and key == "support-agent":
            raw["trafficDistribution"] = {"defaultVersion": "2.0.0"}
            raw["labels"] = {**raw["labels"], **pos}
        if kind == "PromptVersion" and key == "escalation-routing@2.1.0":
            raw["rollbackDirective"] = True
            raw["labels"] = {**raw["labels"], labels.WITHDRAWN_BY: "support-agent"}

    live = live_copy(want, edit=edit)
    result = plan(want, live)
    op = ops(result)["PromptVersion/escalation-routing@2.1.0"]
    assert op.action == OpType.NOOP
    assert op.reason == "withdrawn by the rollout of support-agent: it stays withdrawn"
    assert not result.changes
    report = drift.detect(want, live)
    assert report.in_sync
    notes = {f.ref: f.note for f in report.findings if f.state == drift.ROLLOUT}
    assert (
        notes["PromptVersion/escalation-routing@2.1.0"]
        == "withdrawn by the rollout of support-agent"
    )


@pytest.mark.parametrize(
    "edit",
    [
        {},
        {labels.STEP: "two"},
        {labels.STATE: "sideways"},
        {labels.SINCE: "yesterday"},
        {labels.STEP: "12345"},
        {labels.ID: ""},
    ],
)
def test_broken_labels_are_no_position(edit: dict[str, str]) -> None:
    good = labels.encode(labels.Position("abc", 1, 1.7e9, "progressing"))
    if not edit:
        assert labels.position(good) == labels.Position("abc", 1, 1.7e9, "progressing")
        return
    assert labels.position({**good, **edit}) is None


def test_labels_round_trip_with_history() -> None:
    pos = labels.Position("abc", 0, 1.7e9, "progressing")
    for i in range(1, 40):
        pos = labels.moved(pos, str(i), 1.7e9 + i * 60, step=i)
    back = labels.position(labels.encode(pos))
    assert back == pos
    assert len(back.history) == labels.HISTORY  # bounded
