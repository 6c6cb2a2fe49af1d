"""Where a rollout's state lives: labels under ``llmgw.io/`` on the live prompt itself.

Like Argo Rollouts keeping status on its object, so any CI runner can advance a rollout, a run
killed at any point leaves the org consistent (one write moves the weights and the labels
together), and two runs at once cannot both step (every write carries the prompt's ETag):

- ``llmgw.io/rollout``: the rollout's id (``Rollout.id``: the hash of its block and end state);
- ``llmgw.io/rollout-step``: 0 (all traffic on stable), 1..n (the canary at ``steps[k-1]``);
- ``llmgw.io/rollout-since``: when the step began, on the server's clock (ISO 8601 UTC);
- ``llmgw.io/rollout-state``: progressing, paused, aborted or done;
- ``llmgw.io/rollout-history``: the steps so far, ``STEP@TIME`` (or ``ACTION@TIME``) joined by
  spaces, the newest last, at most ``HISTORY`` entries;
- on a version the rollout withdrew: ``llmgw.io/withdrawn-by``, the prompt's name.

Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.model import STATE_LABEL_PREFIX
from reconciler.text import iso_utc, parse_iso_utc

ID = f"{STATE_LABEL_PREFIX}rollout"
STEP = f"{STATE_LABEL_PREFIX}rollout-step"
SINCE = f"{STATE_LABEL_PREFIX}rollout-since"
STATE = f"{STATE_LABEL_PREFIX}rollout-state"
HISTORY_LABEL = f"{STATE_LABEL_PREFIX}rollout-history"
WITHDRAWN_BY = f"{STATE_LABEL_PREFIX}withdrawn-by"
ROLLOUT_LABELS = (ID, STEP, SINCE, STATE, HISTORY_LABEL)
HISTORY = 24  # entries kept (a rollout has at most 20 steps, and a few overrides)

PROGRESSING, PAUSED, ABORTED, DONE = "progressing", "paused", "aborted", "done"
STATES = (PROGRESSING, PAUSED, ABORTED, DONE)


@dataclass(frozen=True)
class Position:
    """What the live prompt's labels say of its rollout."""

    rollout_id: str
    step: int  # 0: all traffic on stable, not started; 1..n: the canary at steps[step-1]
    since: float  # epoch seconds on the server's clock, when this step began
    state: str  # one of STATES
    history: tuple[tuple[str, float], ...] = ()  # (step or action, when), the newest last

    def as_dict(self) -> dict[str, Any]:
        return {
            "rolloutId": self.rollout_id,
            "step": self.step,
            "since": iso_utc(self.since),
            "state": self.state,
            "history": [{"step": s, "at": iso_utc(t)} for s, t in self.history],
        }


def position(labels: Mapping[str, str]) -> Position | None:
    """The position the labels record, or None when they record none (or a broken one: a
    person edited them; the rollout then starts again from its first step)."""
    rid, step, since, state = (labels.get(k) for k in (ID, STEP, SINCE, STATE))
    if not rid or state not in STATES or not isinstance(step, str) or not step.isdigit():
        return None
    when = parse_iso_utc(since)
    if when is None or len(step) > 3:
        return None
    return Position(rid, int(step), when, state, _history(labels.get(HISTORY_LABEL, "")))


def _history(text: str) -> tuple[tuple[str, float], ...]:
    out = []
    for entry in text.split()[-HISTORY:]:
        what, _, at = entry.partition("@")
        when = parse_iso_utc(at)
        if what and when is not None and len(what) <= 16:
            out.append((what, when))
    return tuple(out)


def encode(pos: Position, since: Any = None) -> dict[str, str | Any]:
    """The labels of ``pos``; ``since`` replaces its time (a ``ServerTime`` placeholder when the
    step begins with the write that carries the labels)."""
    history = " ".join(f"{s}@{iso_utc(t)}" for s, t in pos.history[-HISTORY:])
    return {
        ID: pos.rollout_id,
        STEP: str(pos.step),
        SINCE: since if since is not None else iso_utc(pos.since),
        STATE: pos.state,
        HISTORY_LABEL: history,
    }


def moved(pos: Position, what: str, now: float, **changes: Any) -> Position:
    """``pos`` after an action at ``now`` (a new step, a pause ...), with its history entry."""
    history = pos.history
    if pos.step > 0 and (not history or history[-1][1] != pos.since):
        history = (*history, (str(pos.step), pos.since))  # the step apply began
    history = (*history, (what, now))[-HISTORY:]
    return dataclasses.replace(pos, since=now, history=history, **changes)


def without_rollout(labels: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k not in ROLLOUT_LABELS}
