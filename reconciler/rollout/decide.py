"""The decision of one look at a rollout: wait, step, finish, pause or roll back.

From the rollout, its position (what the live prompt's labels say: the step, since when, the
state), the server's time and the step's window for both versions. The rules, in order:

- a paused, aborted or done rollout waits (a person resumes a paused one; an aborted one does
  not start again by itself, so it cannot flap);
- step 0 (all traffic on stable) steps to 1 at once: no canary data can exist yet;
- either version below ``minInvocations``: wait, saying how many are missing, until ``maxWait``
  has passed, then pause with "no data" (no data is never a pass);
- any gate fails: roll back (or pause, ``onFailure: pause``), even before ``interval`` ends;
- every gate passes and ``interval`` has passed: the next step, or finish after the last;
- gates inconclusive after ``maxWait``: pause;
- else wait, saying for what (time left, the gates still inconclusive).

Pure: no I/O, no clock (the caller hands in ``now``, from the server's Date header).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from reconciler.rollout import judge as judging
from reconciler.rollout.judge import Evidence, Sample
from reconciler.rollout.labels import ABORTED, DONE, PAUSED, PROGRESSING, Position
from reconciler.rollout.spec import PAUSE, Rollout, percent

WAIT, STEP, FINISH, ROLLBACK = "wait", "step", "finish", "rollback"
ACTIONS = (WAIT, STEP, FINISH, PAUSE, ROLLBACK)


@dataclass(frozen=True)
class Decision:
    action: str  # one of ACTIONS
    reason: str  # a sentence
    evidence: tuple[Evidence, ...] = ()
    next_step: int | None = None  # for step (and finish: len(steps) + 1, the end state)
    missing: str = ""  # for waits and pauses: what is missing (time, invocations, gates)

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "reason": self.reason,
            "nextStep": self.next_step,
            "missing": self.missing,
            "evidence": [e.as_dict() for e in self.evidence],
        }


def decide(rollout: Rollout, pos: Position, now: float, stable: Sample, canary: Sample) -> Decision:
    n = len(rollout.steps)
    if pos.state == PAUSED:
        return Decision(
            WAIT, f"paused at step {pos.step}: `llmgw rollout resume {rollout.prompt}` continues it"
        )
    if pos.state == ABORTED:
        return Decision(
            WAIT,
            "aborted: rolled back to the stable version; a new rollout block or canary starts "
            "a new rollout",
        )
    if pos.state == DONE:
        return Decision(WAIT, "done")
    if pos.state != PROGRESSING:
        return Decision(WAIT, f"state {pos.state!r} is not one llmgw knows: nothing done")
    if pos.step <= 0:
        return Decision(
            STEP, f"starting: canary at {percent(rollout.steps[0])} (step 1 of {n})", next_step=1
        )
    if pos.step > n:
        return Decision(FINISH, f"step {pos.step} is past the last step ({n}): the end state")

    elapsed = max(0.0, now - pos.since) if math.isfinite(now) else 0.0
    at = f"step {pos.step} of {n} (canary at {percent(rollout.steps[pos.step - 1])})"
    spent = _duration(elapsed, up=False)
    clock = f"{spent} of {_duration(rollout.interval_s)}"
    evidence = tuple(judging.judge(rollout, stable, canary))
    m = rollout.min_invocations
    short = [
        (name, s.invocations)
        for name, s in (("canary", canary), ("stable", stable))
        if s.invocations < m
    ]
    if short:
        counts = f"canary {canary.invocations:,} and stable {stable.invocations:,}"
        need = " and ".join(f"{m - k:,} {name}" for name, k in short) + " invocations"
        if elapsed >= rollout.max_wait_s:
            return Decision(
                PAUSE,
                f"no data: after {spent} at {at}, {counts} invocations of the "
                f"{m:,} each version needs (maxWait {_duration(rollout.max_wait_s)})",
                evidence,
                missing=need,
            )
        return Decision(
            WAIT,
            f"waiting: {clock} at {at}, "
            + ", ".join(f"{name} {k:,} of {m:,} invocations" for name, k in short),
            evidence,
            missing=_after_interval(rollout, elapsed, need),
        )

    failed = [e for e in evidence if e.verdict == judging.FAIL]
    if failed:
        action = PAUSE if rollout.on_failure == PAUSE else ROLLBACK
        word = "pausing" if action == PAUSE else "rolling back"
        return Decision(
            action,
            f"{', '.join(e.gate for e in failed)} failed at {at} after {spent}: "
            f"{word}. " + "; ".join(e.summary for e in failed),
            evidence,
        )
    open_ = [e for e in evidence if e.verdict != judging.PASS]
    if not open_:
        if elapsed >= rollout.interval_s:
            if pos.step >= n:
                return Decision(
                    FINISH,
                    f"every gate passed at {at} after {spent}: the end state",
                    evidence,
                    next_step=n + 1,
                )
            return Decision(
                STEP,
                f"every gate passed at {at} after {spent}: step {pos.step + 1} "
                f"(canary at {percent(rollout.steps[pos.step])})",
                evidence,
                next_step=pos.step + 1,
            )
        left = rollout.interval_s - elapsed
        return Decision(
            WAIT,
            f"waiting: every gate passes, {clock} at {at}",
            evidence,
            missing=_duration(left),
        )
    names = ", ".join(f"{e.gate} ({e.verdict})" for e in open_)
    if elapsed >= rollout.max_wait_s:
        nodata = [e for e in open_ if e.verdict == judging.NO_DATA]
        if not nodata:
            word = "inconclusive"
        else:
            word = "no data" if len(nodata) == len(open_) else "no data and inconclusive"
        return Decision(
            PAUSE,
            f"{word} after {spent} at {at} (maxWait "
            f"{_duration(rollout.max_wait_s)}): {names}. " + "; ".join(e.summary for e in open_),
            evidence,
            missing=f"a verdict on {names}",
        )
    return Decision(
        WAIT,
        f"waiting: {clock} at {at}, not yet conclusive: {names}",
        evidence,
        missing=_after_interval(rollout, elapsed, f"a verdict on {names}"),
    )


def _after_interval(rollout: Rollout, elapsed: float, what: str) -> str:
    """What a wait is missing: the time left of the interval (if any) and ``what``."""
    time_left = max(0.0, rollout.interval_s - elapsed)
    return (f"{_duration(time_left)} and " if time_left > 0 else "") + what


def _duration(seconds: float, up: bool = True) -> str:
    """``45 s``, ``18 m``, ``1 h 5 m``, ``2 d 3 h``: rounded up (a time still to wait) or down
    (a time passed) to the minute."""
    r = math.ceil if up else math.floor
    s = max(0, r(seconds))
    if s < 60:
        return f"{s} s"
    m = r(s / 60)
    if m < 60:
        return f"{m} m"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h} h {m} m" if m else f"{h} h"
    d, h = divmod(h, 24)
    return f"{d} d {h} h" if h else f"{d} d"
