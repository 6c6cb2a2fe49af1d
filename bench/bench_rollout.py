"""Rollouts simulated in virtual time, each look made by the real ``decide()``.

A cron tick every 5 simulated minutes reads both versions' window of the current step (from the
step's start to the tick) and acts on the decision: step (the split moves, a new window starts),
finish, roll back, pause, or wait. Traffic comes from one small interface, ``Traffic``
(``route(t, weights)``, ``window(version, t0, t1) -> Sample``); ``SimTraffic`` generates it
in-process from a seeded RNG (the emulator's traffic generator may stand in for it later):

- invocations: ``perMinute`` a minute (Poisson, normal approximation: they are large), split
  between the versions by the step's weight (binomial, normal approximation);
- errors and guardrail blocks: exact binomial draws per chunk (the small counts are what the
  judgement is about, so no approximation there);
- p95 latency: a log-normal latency per version; the window's sample p95 is simulated through
  its asymptotic linear form, from the (binomial) count of invocations below the true p95, so
  consecutive looks at growing windows see consistent, correlated estimates;
- output tokens: a sum with the per-invocation mean and spread (normal approximation).

Scenarios (1,000 rollouts each, seeded): A/A (canary = stable), a bad canary (error rate stable +
2 x maxIncrease), the worst case a false rollback can have (both rates exactly at stable +
maxIncrease, where the rollback test is at its limit), a canary whose p95 is 1.5 x stable's, and
no traffic at all. Rates come with a Wilson 95 % interval.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import random
import statistics
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from reconciler.emulator.state import Gateway
from reconciler.endpoints import PATHS
from reconciler.rollout import spec
from reconciler.rollout.decide import PROGRESSING, Decision, Position, decide
from reconciler.rollout.judge import Sample
from reconciler.text import iso_utc

SEED = 20261201
# through the emulator's own traffic engine and analytics query (each look a real query over
# every row of the step's window: about 0.45 s of CPU per A/A rollout), on both cores
EMULATOR_ROLLOUTS = 100
TICK_S = 300.0  # a cron tick every 5 minutes
P95_Z = statistics.NormalDist().inv_cdf(0.95)
P95_DENSITY = statistics.NormalDist().pdf(P95_Z)

BLOCK = {
    "from": "1.0.0",
    "steps": [0.05, 0.25, 0.5],
    "interval": "30m",
    "minInvocations": 500,
    "maxWait": "6h",
    "gates": {
        "errorRate": {"maxIncrease": 0.02},
        "latencyP95Ms": {"maxRatio": 1.25},
        "outputTokensPerInvocation": {"maxRatio": 1.3},
        "guardrailBlockRate": {"maxIncrease": 0.01},
    },
}
END = {"strategy": "random", "versions": {"2.0.0": 1.0}}


@dataclass(frozen=True)
class Profile:
    """How one version behaves."""

    error_rate: float = 0.01
    block_rate: float = 0.005
    p95_ms: float = 1200.0
    latency_sigma: float = 0.5  # of log latency
    tokens_mean: float = 400.0
    tokens_sd: float = 150.0


class Traffic(Protocol):
    """Where the simulated runner's analytics come from."""

    def route(self, t: float, weights: Mapping[str, float]) -> None:
        """From ``t`` on, live traffic splits by ``weights``."""

    def window(self, version: str, t0: float, t1: float) -> Sample:
        """One version's analytics row over ``[t0, t1)``."""


def binomial(rng: random.Random, n: int, p: float) -> int:
    """An exact binomial draw, by geometric gaps between successes (cost ~ n * min(p, 1-p))."""
    if n <= 0 or p <= 0:
        return 0
    if p >= 1:
        return n
    if p > 0.5:
        return n - binomial(rng, n, 1 - p)
    log_q = math.log1p(-p)
    x, i = 0, 0
    while True:
        i += int(math.log(1.0 - rng.random()) / log_q) + 1
        if i > n:
            return x
        x += 1


def _normal_count(rng: random.Random, mean: float, var: float, top: int | None = None) -> int:
    x = max(0, round(rng.gauss(mean, math.sqrt(var)))) if var > 0 else max(0, round(mean))
    return x if top is None else min(top, x)


class SimTraffic:
    """Traffic generated in chunks of ``chunk_s`` as simulated time passes, kept as cumulative
    sums per version so that a window is two look-ups."""

    def __init__(
        self,
        rng: random.Random,
        per_minute: float,
        profiles: Mapping[str, Profile],
        chunk_s: float = TICK_S,
    ) -> None:
        self.rng, self.per_minute, self.profiles, self.chunk_s = rng, per_minute, profiles, chunk_s
        self.t = 0.0
        self.weights: dict[str, float] = {}
        self.times = [0.0]
        # per version: cumulative invocations, errors, blocks, tokens, invocations below true p95
        self.cum = {v: [(0, 0, 0, 0.0, 0)] for v in profiles}

    def _generate(self, t1: float) -> None:
        while self.t + self.chunk_s <= t1 + 1e-9:
            lam = self.per_minute * self.chunk_s / 60.0
            total = _normal_count(self.rng, lam, lam)
            left, share = total, 1.0  # what is still to split, and its weight
            for v, p in self.profiles.items():
                w = min(1.0, self.weights.get(v, 0.0) / share) if share > 0 else 0.0
                n = _normal_count(self.rng, left * w, left * w * (1 - w), left)
                left, share = left - n, share - self.weights.get(v, 0.0)
                e = binomial(self.rng, n, p.error_rate)
                b = binomial(self.rng, n, p.block_rate)
                tok = max(0.0, self.rng.gauss(n * p.tokens_mean, math.sqrt(n) * p.tokens_sd))
                below = _normal_count(self.rng, n * 0.95, n * 0.95 * 0.05, n)
                c = self.cum[v][-1]
                self.cum[v].append((c[0] + n, c[1] + e, c[2] + b, c[3] + tok, c[4] + below))
            self.t += self.chunk_s
            self.times.append(self.t)

    def route(self, t: float, weights: Mapping[str, float]) -> None:
        self._generate(t)
        self.weights = dict(weights)

    def window(self, version: str, t0: float, t1: float) -> Sample:
        self._generate(t1)
        i0 = bisect_right(self.times, t0 + 1e-9) - 1
        i1 = bisect_right(self.times, t1 + 1e-9) - 1
        a, b = self.cum[version][i0], self.cum[version][i1]
        n = b[0] - a[0]
        p95: float | None = None
        if n:
            p = self.profiles[version]
            below = (b[4] - a[4]) / n
            p95 = p.p95_ms * math.exp(p.latency_sigma * (0.95 - below) / P95_DENSITY)
        return Sample(n, b[1] - a[1], b[2] - a[2], round(b[3] - a[3]), p95)


EMULATOR_T0 = 1_800_000_000.0  # the emulator's clock at the rollout's start (a fixed epoch)
URL = "http://emulator.bench"


class EmulatorTraffic:
    """The emulator's own traffic engine and analytics query, in-process: its ``Gateway`` state
    (no HTTP: the same handlers the ASGI layer calls), its clock advanced to each tick, the
    prompt's split written at each step as a PUT would, and each window read with the very
    analytics query ``rollout advance`` sends (grouped by version, filtered to the prompt)."""

    def __init__(self, seed: int, per_minute: float, versions: Mapping[str, Mapping[str, float]]):
        self.at = 0.0
        self.g = Gateway(now=lambda: EMULATOR_T0, ingest_delay=0.0, seed=seed)
        t = self.g.create_template(
            {"name": "bench-template", "user_template": "Q: {{q}}", "variables": ["q"]},
            URL + PATHS.templates,
        ).body
        for v in versions:
            self.g.create_version(
                t["id"], {"version": v, "content": "Q {{q}}", "variables": {"q": 1}}
            )
        first = next(iter(versions))
        self.pid = self.g.create_prompt(
            {
                "name": "bench-agent",
                "templateId": t["id"],
                "modelEndpointRef": "model-gen-4",
                "systemPrompt": "You help.",
                "trafficDistribution": {"defaultVersion": first},
            },
            URL + PATHS.prompts,
        ).body["id"]
        setting = {"perMinute": per_minute, "versions": {v: dict(p) for v, p in versions.items()}}
        answer = self.g.put_traffic({"prompts": {"bench-agent": setting}})
        assert answer.status == 200, answer.body
        self._rows: tuple[tuple[float, float], dict[str, Sample]] | None = None

    def _to(self, t: float) -> None:
        if t > self.at:
            self.g.advance_clock({"advanceSeconds": t - self.at})
            self.at = t

    def route(self, t: float, weights: Mapping[str, float]) -> None:
        self._to(t)
        live = {v: w for v, w in weights.items() if w > 0}
        if len(live) == 1:
            split: dict[str, object] = {"defaultVersion": next(iter(live))}
        else:
            split = {
                "versions": [{"version": v, "weight": w} for v, w in live.items()],
                "splitStrategy": "random",
            }
        answer = self.g.update_prompt(self.pid, {"trafficDistribution": split}, None)
        assert answer.status == 200, answer.body

    def window(self, version: str, t0: float, t1: float) -> Sample:
        self._to(t1)
        if self._rows is None or self._rows[0] != (t0, t1):
            body = {
                "dateFrom": iso_utc(EMULATOR_T0 + t0),
                "dateTo": iso_utc(EMULATOR_T0 + t1),
                "groupBy": ["version"],
                "filter": {"promptId": self.pid},
            }
            rows = self.g.analytics(body).body["data"]
            self._rows = (
                (t0, t1),
                {
                    r["version"]: Sample(
                        r["invocations"],
                        r["errorCount"],
                        r["guardrailBlocks"],
                        r["outputTokens"],
                        r["latencyP95Ms"],
                    )
                    for r in rows
                },
            )
        return self._rows[1].get(version, Sample(0, 0, 0, 0, None))


@dataclass(frozen=True)
class Outcome:
    action: str  # finish, rollback, pause (or wait: the horizon passed)
    step: int  # the step it ended at
    t: float  # virtual seconds from the start
    ticks: int
    reason: str
    promotions: int  # steps past the first, and the finish


Observer = Callable[[Position, Sample, Sample, Decision], None]


def simulate(
    rollout: spec.Rollout,
    traffic: Traffic,
    tick_s: float = TICK_S,
    observe: Observer | None = None,
) -> Outcome:
    """One rollout from step 0, a tick every ``tick_s``, until it finishes, rolls back or pauses
    (``observe`` sees every look)."""
    pos = Position(rollout.id, 0, 0.0, PROGRESSING)
    traffic.route(0.0, rollout.weights(0))
    horizon = (len(rollout.steps) + 1) * (rollout.max_wait_s + tick_s)
    t, ticks, promotions = 0.0, 0, 0
    while t <= horizon:
        t += tick_s
        ticks += 1
        stable = traffic.window(rollout.stable, pos.since, t)
        canary = traffic.window(rollout.canary, pos.since, t)
        d = decide(rollout, pos, t, stable, canary)
        if observe is not None:
            observe(pos, stable, canary, d)
        if d.action == "step":
            assert d.next_step is not None
            promotions += d.next_step > 1
            pos = replace(pos, step=d.next_step, since=t)
            traffic.route(t, rollout.weights(d.next_step))
        elif d.action in ("finish", "rollback", "pause"):
            promotions += d.action == "finish"
            return Outcome(d.action, pos.step, t, ticks, d.reason, promotions)
    return Outcome("wait", pos.step, t, ticks, "horizon", promotions)


def wilson(k: int, n: int) -> tuple[float, float]:
    """The Wilson 95 % interval of a proportion."""
    if n == 0:
        return 0.0, 1.0
    z = statistics.NormalDist().inv_cdf(0.975)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _rate(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k}/{n} = {100 * k / n:.1f} % (95 % CI {100 * lo:.1f}..{100 * hi:.1f} %)"


class Coverage:
    """What the looks of one scenario show about the rate gates' confidence sequences: whether
    any interval ever missed the true difference, and whether a fixed-sample one-sided z-test
    at 5 % (what a hand-written check does), looked at on every tick, would have rolled back."""

    def __init__(self, rollout: spec.Rollout, stable: Profile, canary: Profile) -> None:
        self.rollout = rollout
        self.truth = {
            "errorRate": canary.error_rate - stable.error_rate,
            "guardrailBlockRate": canary.block_rate - stable.block_rate,
        }
        self.missed = self.naive = 0
        self._missed = self._naive = False

    def start(self) -> None:
        self.missed += self._missed
        self.naive += self._naive
        self._missed = self._naive = False

    def __call__(self, pos: Position, stable: Sample, canary: Sample, d: Decision) -> None:
        m = self.rollout.min_invocations
        for e in d.evidence:
            if e.low is None or e.high is None:
                continue
            if not e.low <= self.truth[e.gate] <= e.high:
                self._missed = True
            if stable.invocations >= m and canary.invocations >= m:
                xs, xc = (
                    (stable.errors, canary.errors)
                    if e.gate == "errorRate"
                    else (stable.guardrail_blocks, canary.guardrail_blocks)
                )
                ps, pc = xs / stable.invocations, xc / canary.invocations
                var = ps * (1 - ps) / stable.invocations + pc * (1 - pc) / canary.invocations
                if var > 0 and (pc - ps - e.limit) / math.sqrt(var) > NAIVE_Z:
                    self._naive = True


NAIVE_Z = statistics.NormalDist().inv_cdf(0.95)


def scenario(
    name: str,
    canary: Profile,
    rollouts: int,
    seed: int,
    per_minute: float = 600.0,
    tick_s: float = TICK_S,
) -> tuple[list[Outcome], Coverage, float]:
    rollout = spec.read("bench", BLOCK, END)
    assert rollout is not None
    rng = random.Random(f"{seed}:{name}")
    profiles = {rollout.stable: Profile(), rollout.canary: canary}
    coverage = Coverage(rollout, Profile(), canary)
    start = time.perf_counter()
    out = []
    for _ in range(rollouts):
        traffic = SimTraffic(rng, per_minute, profiles, chunk_s=tick_s)
        out.append(simulate(rollout, traffic, tick_s, coverage))
        coverage.start()
    return out, coverage, time.perf_counter() - start


def _row(
    title: str, target: str, out: list[Outcome], coverage: Coverage, wall: float, seed: int
) -> dict[str, object]:
    n = len(out)
    by = Counter(o.action for o in out)
    rollbacks = [o for o in out if o.action == "rollback"]
    row: dict[str, object] = {
        "benchmark": f"rollout simulation: {title}",
        "rollouts": n,
        "seed": seed,
        "target": target,
        "rolled back": _rate(by["rollback"], n),
        "paused": _rate(by["pause"], n),
        "finished": _rate(by["finish"], n),
    }
    if by["wait"]:
        row["still waiting at the horizon"] = by["wait"]
    if rollbacks:
        row["median time to rollback (virtual)"] = (
            f"{statistics.median(o.t for o in rollbacks) / 60:.0f} m"
        )
        steps = Counter(o.step for o in rollbacks)
        row["rolled back at step"] = ", ".join(f"{s}: {steps[s]}" for s in sorted(steps))
    finished = [o for o in out if o.action == "finish"]
    if finished:
        row["median time to finish (virtual)"] = (
            f"{statistics.median(o.t for o in finished) / 60:.0f} m"
        )
    paused = [o for o in out if o.action == "pause"]
    if paused:
        row["pauses saying 'no data'"] = sum("no data" in o.reason for o in paused)
    row["rollouts where a rate gate's CS ever missed the true difference"] = _rate(
        coverage.missed, n
    )
    row["rollouts a fixed-sample z-test (5 %, every tick) would roll back"] = _rate(
        coverage.naive, n
    )
    row["promotions (step 2+ or finish)"] = sum(o.promotions for o in out)
    row["ticks per rollout (mean, max)"] = (
        f"{statistics.mean(o.ticks for o in out):.1f}, {max(o.ticks for o in out)}"
    )
    decisions = sum(o.ticks for o in out)
    row["decisions"] = decisions
    row["wall s"] = round(wall, 2)
    row["us per decision (incl. traffic)"] = round(1e6 * wall / max(1, decisions), 1)
    return row


SCENARIOS = (
    ("A/A (canary = stable)", Profile(), "rolled back <= 5 %", 600.0),
    (
        "bad canary (error rate 1 % + 2 x maxIncrease = 5 %)",
        Profile(error_rate=0.05),
        "rolled back >= 95 % before the end state",
        600.0,
    ),
    (
        "worst case for false rollbacks (error rate +2 points, block rate +1 point: at the limits)",
        Profile(error_rate=0.03, block_rate=0.015),
        "rolled back <= 5 %",
        600.0,
    ),
    (
        "slow canary (p95 1.5 x stable's)",
        Profile(p95_ms=1800.0),
        "rolled back >= 95 % before the end state",
        600.0,
    ),
    ("no traffic", Profile(), "0 promotions, every one paused after maxWait with 'no data'", 0.0),
)


# The emulator's traffic: latency normal(latencyMs, latencyJitterMs), so p95 = m + 1.645 j
EMU_STABLE = {
    "errorRate": 0.01,
    "guardrailBlockRate": 0.005,
    "latencyMs": 800.0,
    "latencyJitterMs": 240.0,
    "outputTokens": 400,
}
EMULATOR_SCENARIOS = (
    ("A/A (canary = stable)", dict(EMU_STABLE), "rolled back <= 5 %", 600.0),
    (
        "bad canary (error rate 1 % + 2 x maxIncrease = 5 %)",
        {**EMU_STABLE, "errorRate": 0.05},
        "rolled back >= 95 % before the end state",
        600.0,
    ),
    (
        "no traffic",
        dict(EMU_STABLE),
        "0 promotions, every one paused after maxWait with 'no data'",
        0.0,
    ),
)


def _emulator_rollout(args: tuple[Mapping[str, float], int, float]) -> Outcome:
    canary, seed, per_minute = args
    rollout = spec.read("bench", BLOCK, END)
    assert rollout is not None
    versions = {rollout.stable: EMU_STABLE, rollout.canary: canary}
    return simulate(rollout, EmulatorTraffic(seed, per_minute, versions), TICK_S)


def emulator_scenario(
    name: str, canary: Mapping[str, float], rollouts: int, seed: int, per_minute: float
) -> tuple[list[Outcome], float]:
    start = time.perf_counter()
    jobs = [(canary, seed + i, per_minute) for i in range(rollouts)]
    with multiprocessing.get_context("fork").Pool(min(2, os.cpu_count() or 1)) as pool:
        out = pool.map(_emulator_rollout, jobs, chunksize=max(1, rollouts // 8))
    return out, time.perf_counter() - start


def _emulator_row(
    title: str, target: str, out: list[Outcome], wall: float, seed: int
) -> dict[str, object]:
    n = len(out)
    by = Counter(o.action for o in out)
    row: dict[str, object] = {
        "benchmark": f"rollout simulation on the emulator's traffic: {title}",
        "rollouts": n,
        "seed": f"{seed} + rollout number",
        "target": target,
        "rolled back": _rate(by["rollback"], n),
        "paused": _rate(by["pause"], n),
        "finished": _rate(by["finish"], n),
    }
    rollbacks = [o for o in out if o.action == "rollback"]
    if rollbacks:
        row["median time to rollback (virtual)"] = (
            f"{statistics.median(o.t for o in rollbacks) / 60:.0f} m"
        )
    paused = [o for o in out if o.action == "pause"]
    if paused:
        row["pauses saying 'no data'"] = sum("no data" in o.reason for o in paused)
    row["promotions (step 2+ or finish)"] = sum(o.promotions for o in out)
    row["wall s"] = round(wall, 2)
    return row


def main(
    rollouts: int = 1000, seed: int = SEED, emulator_rollouts: int = EMULATOR_ROLLOUTS
) -> list[dict[str, object]]:
    rows = []
    for title, canary, target, per_minute in SCENARIOS:
        out, coverage, wall = scenario(title, canary, rollouts, seed, per_minute)
        rows.append(_row(title, target, out, coverage, wall, seed))
    for title, emu_canary, target, per_minute in EMULATOR_SCENARIOS:
        n = emulator_rollouts if per_minute else 10 * emulator_rollouts  # no traffic is cheap
        emu_out, wall = emulator_scenario(title, emu_canary, n, seed, per_minute)
        rows.append(_emulator_row(title, target, emu_out, wall, seed))
    return rows


if __name__ == "__main__":
    import json

    for r in main():
        print(json.dumps(r))
