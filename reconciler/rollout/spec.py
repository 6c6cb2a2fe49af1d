"""A TrafficSplit's ``rollout`` block, read once into typed values.

The manifest says where a split ends (``versions`` / ``defaultVersion``) and the block says how
to get there from the one version live traffic uses now (``from``): the canary's weight at each
step, how long each step lasts at least (on the server's clock), how much data a verdict needs,
how long a step may wait for it, and the gates the canary is judged by against the stable
version. The schema checks each field's shape; ``problems`` checks what spans fields (steps
increasing in (0, 1) and below the canary's end weight, maxWait at least interval, one canary).

Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

DURATION_PATTERN = r"^(?=[0-9])([0-9]{1,5}d)?([0-9]{1,5}h)?([0-9]{1,5}m)?([0-9]{1,6}s)?$"
_DURATION = re.compile(
    r"(?=[0-9])(?:([0-9]{1,5})d)?(?:([0-9]{1,5})h)?(?:([0-9]{1,5})m)?(?:([0-9]{1,6})s)?"
)
MAX_DURATION_S = 90 * 86400  # a step of more than 90 days is a typo

# the gates: each a metric of one version over the step's window, judged canary against stable
RATE_GATES = ("errorRate", "guardrailBlockRate")  # a difference of rates: maxIncrease
RATIO_GATES = ("latencyP95Ms", "outputTokensPerInvocation")  # a ratio of values: maxRatio
GATES = RATE_GATES + RATIO_GATES
ROLLBACK, PAUSE = "rollback", "pause"
FALSE_ROLLBACK_RATE = 0.05  # over the whole rollout, every look of every step and rate gate


def percent(weight: float) -> str:
    """A share of traffic as people read it: ``0.05`` -> ``5 %``."""
    return f"{weight * 100:g} %"


def parse_duration(text: Any) -> float | None:
    """``30m``, ``6h``, ``1h30m``, ``2d``, ``90s`` in seconds; None when ``text`` is not one
    (or is zero, or over 90 days)."""
    if not isinstance(text, str):
        return None
    m = _DURATION.fullmatch(text)
    if m is None:
        return None
    d, h, mi, s = (int(x) if x else 0 for x in m.groups())
    seconds = float(d * 86400 + h * 3600 + mi * 60 + s)
    return seconds if 0 < seconds <= MAX_DURATION_S else None


@dataclass(frozen=True)
class Gate:
    metric: str  # one of GATES
    limit: float  # maxIncrease for a rate gate, maxRatio for a ratio gate

    @property
    def is_rate(self) -> bool:
        return self.metric in RATE_GATES

    @property
    def limit_word(self) -> str:
        return "maxIncrease" if self.is_rate else "maxRatio"


@dataclass(frozen=True)
class Rollout:
    """One rollout: from ``stable`` to the end state, whose new version is ``canary``."""

    prompt: str
    stable: str
    canary: str
    steps: tuple[float, ...]  # the canary's weight at steps 1..n
    interval_s: float
    min_invocations: int
    max_wait_s: float
    gates: tuple[Gate, ...]
    on_failure: str  # ROLLBACK or PAUSE
    withdraw_on_rollback: bool
    end: Mapping[str, Any]  # the end state, as TrafficSplit.normal gives it
    block: Mapping[str, Any]  # the manifest's block as written (its hash is the id)

    @property
    def id(self) -> str:
        """The hash of the block and the end state: a new block or a new canary is a new
        rollout; the same ones are the same rollout, whichever runner reads them."""
        data = json.dumps(
            {"prompt": self.prompt, "block": self.block, "end": self.end},
            sort_keys=True,
            separators=(",", ":"),
            default=str,
        )
        return hashlib.sha256(data.encode()).hexdigest()[:12]

    def weights(self, step: int) -> dict[str, float]:
        """The split's versions at ``step``: 0 is all traffic on stable, 1..n the steps."""
        if step <= 0:
            return {self.stable: 1.0}
        w = self.steps[min(step, len(self.steps)) - 1]
        return {self.stable: round(1.0 - w, 6), self.canary: w}

    def canary_weight(self, step: int) -> float:
        """The canary's share of traffic at ``step`` (past the last step: the end state's)."""
        if step > len(self.steps):
            return end_versions(self.end).get(self.canary, 0.0)
        return self.weights(step).get(self.canary, 0.0)

    def split(self, step: int) -> dict[str, Any]:
        """The split's fields (TrafficSplit.normal's shape) at ``step``; past the last step,
        the end state."""
        if step > len(self.steps):
            return dict(self.end)
        if step <= 0:
            return {"defaultVersion": self.stable}
        strategy = self.end.get("strategy", "random")
        return {"strategy": strategy, "versions": dict(sorted(self.weights(step).items()))}

    @property
    def rate_gates(self) -> int:
        return sum(1 for g in self.gates if g.is_rate)


def end_versions(end: Mapping[str, Any]) -> dict[str, float]:
    if "defaultVersion" in end:
        return {str(end["defaultVersion"]): 1.0}
    return {str(v): float(w) for v, w in (end.get("versions") or {}).items()}


def canary_of(stable: str, end: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The one version other than ``stable`` the end state routes traffic to, or why none."""
    others = [v for v, w in end_versions(end).items() if v != stable and w > 0]
    if not others:
        return None, f"the end state routes no traffic to a version other than {stable}"
    if len(others) > 1:
        return None, "the end state routes traffic to several new versions: " + ", ".join(others)
    return others[0], None


def problems(
    block: Mapping[str, Any], end: Mapping[str, Any]
) -> list[tuple[tuple[Any, ...], str, str]]:
    """What spans the block's fields: (path under the block, message, fix)."""
    out: list[tuple[tuple[Any, ...], str, str]] = []
    stable = block.get("from")
    steps = block.get("steps")
    # the schema checks each step is in (0, 1) and each duration's grammar
    if isinstance(steps, list) and steps and all(_num(s) and 0 < s < 1 for s in steps):
        for i in range(1, len(steps)):
            if steps[i] <= steps[i - 1]:
                out.append(
                    (
                        ("steps", i),
                        f"is {steps[i]}, not above the step before ({steps[i - 1]})",
                        "list the steps in increasing order",
                    )
                )
        canary = canary_of(str(stable), end)[0] if isinstance(stable, str) else None
        top = end_versions(end).get(canary, 0.0) if canary else 0.0
        if canary and steps[-1] >= top:
            out.append(
                (
                    ("steps", len(steps) - 1),
                    f"is {steps[-1]}, not below the canary's weight in the end state ({top})",
                    f"end the steps below {top}: the end state is the last step",
                )
            )
    if isinstance(stable, str):
        canary, why = canary_of(stable, end)
        if canary is None and why:
            out.append(
                (("from",), why, "the end state must send traffic to exactly one new version")
            )
    interval, wait = (
        parse_duration(block.get("interval", "30m")),
        parse_duration(block.get("maxWait", "6h")),
    )
    for name, value in (("interval", interval), ("maxWait", wait)):
        grammar = isinstance(block.get(name), str) and _DURATION.fullmatch(block[name])
        if name in block and value is None and grammar:
            out.append(
                (
                    (name,),
                    f"{block[name]!r} is zero or over 90 days",
                    "write e.g. 30m, 6h, 1h30m or 2d",
                )
            )
    if interval is not None and wait is not None and wait < interval:
        out.append(
            (
                ("maxWait",),
                f"is shorter than interval ({block.get('interval', '30m')})",
                "make maxWait at least interval",
            )
        )
    gates = block.get("gates")
    if isinstance(gates, Mapping) and not gates:
        out.append(
            (
                ("gates",),
                "names no gate: a rollout without a gate is never judged",
                f"add one of {', '.join(GATES)}",
            )
        )
    return out


def _num(v: Any) -> TypeGuard[int | float]:
    return isinstance(v, int | float) and not isinstance(v, bool)


def read(prompt: str, block: Mapping[str, Any], end: Mapping[str, Any]) -> Rollout | None:
    """The typed rollout of a block that validated (None when it did not)."""
    stable, steps = block.get("from"), block.get("steps")
    if not isinstance(stable, str) or not isinstance(steps, list) or problems(block, end):
        return None
    if not steps or not all(_num(s) and 0 < s < 1 for s in steps):
        return None
    canary = canary_of(stable, end)[0]
    gates_raw = block.get("gates") or {}
    gates = []
    for metric in GATES:
        g = gates_raw.get(metric)
        if isinstance(g, Mapping):
            limit = g.get("maxIncrease" if metric in RATE_GATES else "maxRatio")
            if _num(limit):
                gates.append(Gate(metric, float(limit)))
    interval = parse_duration(block.get("interval", "30m"))
    wait = parse_duration(block.get("maxWait", "6h"))
    if canary is None or not gates or interval is None or wait is None:
        return None
    return Rollout(
        prompt=prompt,
        stable=stable,
        canary=canary,
        steps=tuple(float(s) for s in steps),
        interval_s=interval,
        min_invocations=int(block.get("minInvocations", 500)),
        max_wait_s=wait,
        gates=tuple(gates),
        on_failure=str(block.get("onFailure", ROLLBACK)),
        withdraw_on_rollback=bool(block.get("withdrawOnRollback", False)),
        end=dict(end),
        block=dict(block),
    )
