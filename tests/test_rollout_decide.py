"""The decision of one look (``reconciler/rollout/decide.py``): every branch of the table.

Covers: paused / aborted / done / unknown states wait (the resume command named); step 0 steps
to 1 without gates; below minInvocations a wait that says what is missing (time and invocations
per version), then after maxWait a pause saying "no data" with both versions' counts; a failing
gate rolls back (or pauses with onFailure: pause) even before the interval; every gate passing
steps after the interval (finish at the last step), waits before it; inconclusive gates wait,
then pause after maxWait; a clock behind ``since`` counts as no time; decisions JSON-safe.
"""

from __future__ import annotations

import json

import pytest

from reconciler.rollout import spec
from reconciler.rollout.decide import Position, decide
from reconciler.rollout.judge import EMPTY, Sample

BLOCK = {
    "from": "1.0.0",
    "steps": [0.05, 0.25, 0.5],
    "interval": "30m",
    "minInvocations": 500,
    "maxWait": "6h",
    "gates": {"errorRate": {"maxIncrease": 0.02}, "latencyP95Ms": {"maxRatio": 1.25}},
}
END = {"strategy": "random", "versions": {"2.0.0": 1.0}}
T0 = 1_800_000_000.0
M = 60.0


def _rollout(**changes: object) -> spec.Rollout:
    r = spec.read("support-bot", {**BLOCK, **changes}, END)
    assert r is not None
    return r


R = _rollout()
GOOD_S = Sample(20_000, 200, 0, 8_000_000, 1000.0)
GOOD_C = Sample(5_000, 50, 0, 2_000_000, 1010.0)
BAD_C = Sample(5_000, 400, 0, 2_000_000, 1010.0)  # 8 % errors
UNSURE_C = Sample(600, 12, 0, 240_000, 1000.0)  # 2 %: cannot rule out 2 points yet


def _at(step: int, minutes: float, state: str = "progressing", r: spec.Rollout = R):
    return Position(r.id, step, T0, state), T0 + minutes * M


@pytest.mark.parametrize(
    ("state", "words"),
    [
        ("paused", "`llmgw rollout resume support-bot` continues it"),
        ("aborted", "aborted"),
        ("done", "done"),
        ("mystery", "not one llmgw knows"),
    ],
)
def test_states_that_wait(state: str, words: str) -> None:
    pos, now = _at(2, 600, state)
    d = decide(R, pos, now, GOOD_S, BAD_C)  # even a failing canary: nothing is done again
    assert d.action == "wait" and words in d.reason and d.evidence == ()


def test_step_zero_starts_at_once_without_gates() -> None:
    pos, now = _at(0, 0)
    d = decide(R, pos, now, EMPTY, EMPTY)
    assert (d.action, d.next_step, d.evidence) == ("step", 1, ())
    assert "5 %" in d.reason


def test_below_the_minimum_waits_saying_what_is_missing() -> None:
    pos, now = _at(1, 12)
    d = decide(R, pos, now, Sample(5_000, 50, 0, 0, 900.0), Sample(312, 3, 0, 0, 900.0))
    assert d.action == "wait"
    assert d.reason.startswith("waiting: 12 m of 30 m at step 1 of 3")
    assert "canary 312 of 500 invocations" in d.reason
    assert d.missing == "18 m and 188 canary invocations"
    assert len(d.evidence) == 2  # the evidence so far is shown, even without a verdict
    both = decide(R, pos, T0 + 40 * M, Sample(450, 0, 0, 0, None), Sample(20, 0, 0, 0, None))
    assert both.missing == "480 canary and 50 stable invocations"


def test_no_data_after_max_wait_pauses() -> None:
    pos, now = _at(1, 6 * 60)
    d = decide(R, pos, now, Sample(4_000, 10, 0, 0, 900.0), EMPTY)
    assert d.action == "pause" and "no data" in d.reason
    assert "canary 0 and stable 4,000 invocations" in d.reason
    assert d.missing == "500 canary invocations"
    never = decide(R, pos, now, EMPTY, EMPTY)
    assert never.action == "pause" and "no data" in never.reason


def test_a_fail_rolls_back_before_the_interval() -> None:
    pos, now = _at(1, 5)
    d = decide(R, pos, now, GOOD_S, BAD_C)
    assert d.action == "rollback" and d.next_step is None
    assert d.reason.startswith("errorRate failed at step 1 of 3")
    assert "fail, confidence" in d.reason  # the evidence in the reason


def test_a_fail_pauses_when_on_failure_is_pause() -> None:
    r = _rollout(onFailure="pause")
    pos, now = _at(2, 5, r=r)
    assert decide(r, pos, now, GOOD_S, BAD_C).action == "pause"


def test_a_ratio_fail_rolls_back() -> None:
    pos, now = _at(1, 31)
    slow = Sample(5_000, 50, 0, 2_000_000, 1400.0)
    d = decide(R, pos, now, GOOD_S, slow)
    assert d.action == "rollback" and "latencyP95Ms" in d.reason


def test_all_pass_waits_for_the_interval_then_steps() -> None:
    pos, now = _at(1, 20)
    d = decide(R, pos, now, GOOD_S, GOOD_C)
    assert d.action == "wait" and d.missing == "10 m" and "every gate passes" in d.reason
    pos, now = _at(1, 30)
    d = decide(R, pos, now, GOOD_S, GOOD_C)
    assert (d.action, d.next_step) == ("step", 2) and "25 %" in d.reason


def test_all_pass_at_the_last_step_finishes() -> None:
    pos, now = _at(3, 45)
    d = decide(R, pos, now, GOOD_S, GOOD_C)
    assert (d.action, d.next_step) == ("finish", 4)


def test_inconclusive_waits_then_pauses_after_max_wait() -> None:
    pos, now = _at(1, 31)
    d = decide(R, pos, now, GOOD_S, UNSURE_C)
    assert d.action == "wait" and "errorRate (inconclusive)" in d.reason
    assert d.missing == "a verdict on errorRate (inconclusive)"
    early = decide(R, pos, T0 + 10 * M, GOOD_S, UNSURE_C)
    assert early.missing == "20 m and a verdict on errorRate (inconclusive)"
    pos, now = _at(1, 6 * 60 + 1)
    d = decide(R, pos, now, GOOD_S, UNSURE_C)
    assert d.action == "pause" and d.reason.startswith("inconclusive after 6 h 1 m at step 1")


def test_a_gate_without_data_pauses_saying_no_data() -> None:
    pos, now = _at(1, 6 * 60)
    no_p95 = Sample(5_000, 50, 0, 2_000_000, None)
    d = decide(R, pos, now, GOOD_S, no_p95)
    assert d.action == "pause" and d.reason.startswith("no data after 6 h")
    assert "latencyP95Ms (no data)" in d.reason


def test_a_clock_behind_since_counts_as_no_time() -> None:
    pos = Position(R.id, 1, T0, "progressing")
    d = decide(R, pos, T0 - 3600, GOOD_S, GOOD_C)
    assert d.action == "wait" and "0 s of 30 m" in d.reason
    assert decide(R, pos, float("nan"), GOOD_S, GOOD_C).action == "wait"


def test_past_the_last_step_finishes() -> None:
    pos, now = _at(7, 1)
    assert decide(R, pos, now, EMPTY, EMPTY).action == "finish"


@pytest.mark.parametrize("canary", [EMPTY, GOOD_C, BAD_C, UNSURE_C])
def test_decisions_are_json_safe(canary: Sample) -> None:
    for minutes in (0, 12, 31, 400):
        pos, now = _at(1, minutes)
        d = decide(R, pos, now, GOOD_S, canary)
        out = json.loads(json.dumps(d.as_dict(), allow_nan=False))
        assert out["action"] == d.action and len(out["evidence"]) == len(d.evidence)
