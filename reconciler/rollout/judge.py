"""The statistics of a rollout: each gate's verdict on one step's window, with its evidence.

A step's window is the analytics of ``[since, now)`` for the stable version and the canary. The
runner looks at it on every tick (cron: arbitrary, unbounded looks), so a fixed-sample test
would roll back healthy canaries far more often than it says. The rate gates (``errorRate``,
``guardrailBlockRate``) therefore use a **time-uniform confidence sequence** for the difference
of rates ``d = canary rate - stable rate``: an interval valid at every look at once.

The method: the normal-mixture boundary (Robbins 1970; Howard, Ramdas, McAuliffe, Sekhon 2021,
"Time-uniform, nonparametric, nonasymptotic confidence sequences"), in the plug-in form of the
asymptotic confidence sequences of Waudby-Smith, Arbour, Sinha, Kennedy, Ramdas (2024,
"Time-uniform central limit theory and asymptotic confidence sequences"). With ``n`` the
effective sample size ``1 / (1/nc + 1/ns)`` and ``V(d)`` the variance of ``d^`` at the rates
likeliest under ``d`` (Farrington-Manning restricted rates, of regularised counts
``(x + 0.5) / (n + 1)``: a score form, as Wilson's interval is for one rate; the plug-in of the
rates seen, Wald's form, missed the true difference in 9.5 % of simulated A/A rollouts, since 0
events in 500 claim a rate known to 0.1 points), the confidence sequence is::

    { d : |d^ - d| <= sqrt(V(d)) * B(n) },   B(n) = sqrt((n + rho) / n * log((n + rho) / (rho a^2)))

and it holds for every ``n`` simultaneously with probability at least ``1 - a``. ``rho`` is
fixed in sample-size units before any data (the variance is unknown, so it cannot be fixed in
information units) and tuned to make the interval tightest at ``minInvocations`` per version,
where the first verdict may come. ``a`` is ``FALSE_ROLLBACK_RATE`` split evenly (Bonferroni)
across the steps and rate gates, each step's window its own sequence: the probability that
*any* rate interval of *any* step misses its true difference is at most 5 %.

A rate gate **fails** when the interval's lower end is above ``maxIncrease`` (the canary is
worse than allowed: a rollback that is wrong at most 5 % of the time over the whole rollout),
**passes** when its upper end is at most ``maxIncrease``, and is **inconclusive** otherwise.
Its confidence is ``1 - p`` with ``p`` the always-valid p-value of the side tested (the mixture
martingale's inverse, Bonferroni-adjusted to the rollout), so a verdict comes exactly when its
confidence reaches ``1 - FALSE_ROLLBACK_RATE``.

The ratio gates (``latencyP95Ms``, ``outputTokensPerInvocation``): analytics gives a p95 and
sums, no variance, so there is no honest interval. With both versions at ``minInvocations``,
the gate fails when canary / stable exceeds ``maxRatio`` and passes otherwise; below that, no
verdict. A stable value of 0 makes the ratio undefined: equal zeros pass, a canary above 0 fails
(fail closed: it does what stable never did). No data is never a pass.

Pure: no I/O, no clock; the standard library's ``math`` only.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from reconciler.rollout.spec import FALSE_ROLLBACK_RATE, Gate, Rollout

PASS, FAIL, INCONCLUSIVE, NO_DATA = "pass", "fail", "inconclusive", "no data"
VERDICTS = (PASS, FAIL, INCONCLUSIVE, NO_DATA)


@dataclass(frozen=True)
class Sample:
    """One version's figures over a window, as an analytics row gives them (a missing row is
    ``Sample(0, 0, 0, 0, None)``)."""

    invocations: int
    errors: int
    guardrail_blocks: int
    output_tokens: int
    latency_p95_ms: float | None


EMPTY = Sample(0, 0, 0, 0, None)


@dataclass(frozen=True)
class Evidence:
    """One gate's verdict on one window, with everything it was drawn from."""

    gate: str  # the metric
    limit: float
    limit_word: str  # maxIncrease or maxRatio
    stable_n: int  # invocations in the window, per version
    canary_n: int
    stable_value: float | None  # the metric per version (a rate, a p95, tokens per invocation)
    canary_value: float | None
    difference: float | None  # rate gates: canary - stable
    low: float | None  # rate gates: the confidence sequence's interval for the difference
    high: float | None
    ratio: float | None  # ratio gates: canary / stable (None when undefined)
    verdict: str  # one of VERDICTS
    confidence: float | None  # 1 - the rollout-wide always-valid p-value of the side tested
    summary: str  # one line a person reads

    def as_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "limit": _finite(self.limit),
            "limitWord": self.limit_word,
            "stableInvocations": self.stable_n,
            "canaryInvocations": self.canary_n,
            "stableValue": _finite(self.stable_value),
            "canaryValue": _finite(self.canary_value),
            "difference": _finite(self.difference),
            "interval": (
                None
                if self.low is None or self.high is None
                else [_finite(self.low), _finite(self.high)]
            ),
            "ratio": _finite(self.ratio),
            "verdict": self.verdict,
            "confidence": _finite(self.confidence),
            "summary": self.summary,
        }


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


# --- the boundary ------------------------------------------------------------------------


def sequences_per_rollout(rollout: Rollout) -> int:
    """How many confidence sequences share the false-rollback budget: one per step and rate
    gate (at least 1)."""
    return max(1, len(rollout.steps) * rollout.rate_gates)


def alpha_per_test(rollout: Rollout) -> float:
    """Each rate gate's level at each step: ``FALSE_ROLLBACK_RATE`` split evenly (Bonferroni)."""
    return FALSE_ROLLBACK_RATE / sequences_per_rollout(rollout)


@functools.lru_cache(maxsize=256)
def tuned_rho(n_star: float, alpha: float) -> float:
    """The mixture's ``rho`` that makes the two-sided boundary tightest at ``n_star``.

    Minimising ``(n + rho) * log((n + rho) / (rho * alpha^2))`` over rho at ``n = n_star``
    gives ``x = n_star / rho`` with ``x = log(1 / alpha^2) + log(1 + x)``: a contraction,
    solved by iteration (the first iterate is Howard et al.'s closed form)."""
    if n_star <= 0 or not 0 < alpha < 1:
        raise ValueError("n_star > 0 and 0 < alpha < 1")
    c = -2.0 * math.log(alpha)
    x = c
    for _ in range(60):
        x_new = c + math.log1p(x)
        if abs(x_new - x) < 1e-12:
            break
        x = x_new
    return n_star / x


def boundary(n: float, rho: float, alpha: float) -> float:
    """The normal-mixture boundary in standard units: a standardised mean at effective sample
    size ``n`` stays within ``boundary(n)`` of its mean at every ``n`` with probability
    ``1 - alpha`` (two-sided). A fixed-sample interval would use ``z_(1-alpha/2)``."""
    return math.sqrt((n + rho) / n * math.log((n + rho) / (rho * alpha * alpha)))


def mixture_p_value(z: float, n: float, rho: float) -> float:
    """The always-valid p-value of ``d = limit`` given the z-statistic ``(d^ - limit) / sd``:
    the smallest ``alpha`` whose confidence sequence excludes the limit (the inverse of the
    mixture martingale), in closed form ``sqrt((n + rho) / rho) * exp(-z^2 n / (2 (n + rho)))``."""
    log_p = 0.5 * math.log((n + rho) / rho) - z * z * n / (2.0 * (n + rho))
    return 1.0 if log_p >= 0 else math.exp(log_p)


def _regularised(x: int, n: int) -> float:
    return (x + 0.5) / (n + 1)


def restricted_rates(
    ps: float, ns: float, pc: float, nc: float, delta: float
) -> tuple[float, float]:
    """The maximum-likelihood rates (stable, canary) under ``canary - stable = delta``, from
    the rates ``ps``, ``pc`` seen on ``ns``, ``nc`` invocations: the closed form (the root of
    a cubic) of Farrington & Manning (1990) and Miettinen & Nurminen (1985)."""
    t = ns / nc
    a = 1 + t
    b = -(1 + t + pc + t * ps + delta * (t + 2))
    c = delta * delta + delta * (2 * pc + t + 1) + pc + t * ps
    d = -pc * delta * (1 + delta)
    v = b**3 / (3 * a) ** 3 - b * c / (6 * a * a) + d / (2 * a)
    u = math.copysign(math.sqrt(max(0.0, b * b / (3 * a) ** 2 - c / (3 * a))), v)
    cos_arg = v / u**3 if u else 0.0
    w = (math.pi + math.acos(max(-1.0, min(1.0, cos_arg)))) / 3
    canary = min(1.0, max(0.0, 2 * u * math.cos(w) - b / (3 * a)))
    return min(1.0, max(0.0, canary - delta)), canary


@dataclass(frozen=True)
class RateTest:
    """The confidence sequence of one rate gate at one look."""

    difference: float
    low: float
    high: float
    z: float  # the score statistic of "d = limit" (positive: the canary is worse)
    bound: float  # the boundary, in z units, of a window of these sizes
    p_fail: float  # always-valid p-value of "d <= limit" (small: the canary is worse)
    p_pass: float  # always-valid p-value of "d >= limit" (small: the canary is within)


class _Score:
    """The score statistic of ``d = delta`` for one window: ``(d^ - delta) / sd(delta)``, the
    standard deviation taken at the rates that are likeliest under ``delta`` (regularised
    counts), not at the rates seen. A plug-in of the rates seen (Wald) is far too narrow when a
    version saw almost no events: 0 errors in 500 claims the canary's rate is known to +-0.1
    points. The score form keeps its coverage down to a handful of events, as Wilson's interval
    does for one rate."""

    def __init__(self, xs: int, ns: int, xc: int, nc: int) -> None:
        self.ns, self.nc = ns, nc
        self.ps, self.pc = _regularised(xs, ns), _regularised(xc, nc)
        self.d = xc / nc - xs / ns

    def var(self, delta: float) -> float:
        """The variance of d^ at the rates likeliest under ``delta``."""
        rs, rc = restricted_rates(self.ps, self.ns + 1, self.pc, self.nc + 1, delta)
        return rc * (1 - rc) / self.nc + rs * (1 - rs) / self.ns

    def z(self, delta: float) -> float:
        var, diff = self.var(delta), self.d - delta
        if var <= 0:
            return 0.0 if diff == 0 else math.copysign(math.inf, diff)
        return diff / math.sqrt(var)

    def end(self, bound: float, side: int) -> float:
        """Where ``|z| = bound`` on ``side`` (-1: below d^, +1: above), clipped to [-1, 1]: the
        confidence sequence's end, the root of ``(delta - d^)^2 = bound^2 var(delta)``.
        ``var`` is smooth and nearly linear in delta: each step solves the quadratic with
        ``var`` replaced by its secant through the last two points (3 or 4 steps to 1e-9);
        bisection if that ever fails to settle."""
        b2, d = bound * bound, self.d
        xa, va = d, self.var(d)
        xb = d + side * bound * math.sqrt(va)
        for _ in range(30):
            if side * xb >= 1:
                xb = float(side)
                if (xb - d) ** 2 >= b2 * self.var(xb):
                    break  # the root is inside: settle it below
                return xb
            vb = self.var(xb)
            slope = (vb - va) / (xb - xa) if xb != xa else 0.0
            # (u)^2 = b2 (vb + slope (u - (xb - d))), u = delta - d
            c0 = vb - slope * (xb - d)
            disc = (b2 * slope) ** 2 + 4 * b2 * c0
            if disc < 0:
                break
            x = d + (b2 * slope + side * math.sqrt(disc)) / 2
            if abs(x - xb) < 1e-9:
                return max(-1.0, min(1.0, x))
            xa, va, xb = xb, vb, x
        lo, hi = d, float(side)  # bisection: |z| - bound < 0 at d^, > 0 at the far end
        for _ in range(60):
            mid = (lo + hi) / 2
            if (mid - d) ** 2 < b2 * self.var(mid):
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2


def rate_test(
    x_stable: int, n_stable: int, x_canary: int, n_canary: int, limit: float, rollout: Rollout
) -> RateTest:
    """The confidence sequence for ``canary rate - stable rate`` at this look (both versions
    with at least 1 invocation), at the rollout's per-test level, and the always-valid
    p-values of both sides of ``limit``."""
    alpha = alpha_per_test(rollout)
    rho = tuned_rho(max(rollout.min_invocations, 1) / 2.0, alpha)
    n_eff = 1.0 / (1.0 / n_canary + 1.0 / n_stable)
    bound = boundary(n_eff, rho, alpha)
    score = _Score(x_stable, n_stable, x_canary, n_canary)
    z = score.z(limit)
    p_two = mixture_p_value(z, n_eff, rho) if math.isfinite(z) else 0.0
    return RateTest(
        difference=score.d,
        low=max(-1.0, score.end(bound, -1)),
        high=min(1.0, score.end(bound, +1)),
        z=z,
        bound=bound,
        p_fail=p_two if z > 0 else 1.0,
        p_pass=p_two if z < 0 else 1.0,
    )


# --- the gates ---------------------------------------------------------------------------


def judge(rollout: Rollout, stable: Sample, canary: Sample) -> list[Evidence]:
    """Every gate's evidence on one step's window, in the rollout's gate order."""
    return [_judge_gate(rollout, g, _clean(stable), _clean(canary)) for g in rollout.gates]


def _clean(s: Sample) -> Sample:
    """A row as judged: counts non-negative, parts at most the whole, a p95 finite or None."""
    n = max(0, int(s.invocations))
    p95 = s.latency_p95_ms
    if p95 is not None and (not math.isfinite(p95) or p95 < 0):
        p95 = None
    return Sample(
        invocations=n,
        errors=min(n, max(0, int(s.errors))),
        guardrail_blocks=min(n, max(0, int(s.guardrail_blocks))),
        output_tokens=max(0, int(s.output_tokens)),
        latency_p95_ms=None if p95 is None else float(p95),
    )


def _judge_gate(rollout: Rollout, gate: Gate, stable: Sample, canary: Sample) -> Evidence:
    if gate.is_rate:
        return _judge_rate(rollout, gate, stable, canary)
    return _judge_ratio(rollout, gate, stable, canary)


def _count(gate: Gate, s: Sample) -> int:
    return s.errors if gate.metric == "errorRate" else s.guardrail_blocks


def _short(rollout: Rollout, stable: Sample, canary: Sample) -> str:
    m = rollout.min_invocations
    parts = [
        f"{name} {s.invocations:,} of {m:,}"
        for name, s in (("canary", canary), ("stable", stable))
        if s.invocations < m
    ]
    return ", ".join(parts)


def _judge_rate(rollout: Rollout, gate: Gate, stable: Sample, canary: Sample) -> Evidence:
    ns, nc = stable.invocations, canary.invocations
    vs = _count(gate, stable) / ns if ns else None
    vc = _count(gate, canary) / nc if nc else None
    limit_text = f"{gate.limit_word} {_points(gate.limit)}"
    if not ns or not nc:
        summary = f"{gate.metric}: no data ({_counts(stable, canary)}), {limit_text}: no data"
        return _evidence(gate, stable, canary, vs, vc, NO_DATA, summary)
    assert vs is not None and vc is not None
    t = rate_test(_count(gate, stable), ns, _count(gate, canary), nc, gate.limit, rollout)
    k = sequences_per_rollout(rollout)
    conf_fail, conf_pass = 1 - min(1.0, t.p_fail * k), 1 - min(1.0, t.p_pass * k)
    short = _short(rollout, stable, canary)
    if short:
        verdict = INCONCLUSIVE
    elif t.z > t.bound:
        verdict = FAIL
    elif t.z < -t.bound:
        verdict = PASS
    else:
        verdict = INCONCLUSIVE
    if verdict == FAIL:
        confidence, side = conf_fail, ""
    elif verdict == PASS:
        confidence, side = conf_pass, ""
    elif t.difference > gate.limit:
        confidence, side = conf_fail, " that it fails"
    else:
        confidence, side = conf_pass, " that it passes"
    level = _percent(1 - FALSE_ROLLBACK_RATE, 0)
    where = "over" if t.difference > gate.limit else "within"
    tail = f"{verdict} (below minInvocations: {short})" if short else verdict
    summary = (
        f"{gate.metric}: canary {_percent(vc)} vs stable {_percent(vs)} "
        f"({_signed_points(t.difference)}, {level} CS "
        f"{_signed(t.low)}..{_signed(t.high)}) {where} {limit_text}: {tail}, "
        f"confidence{side} {_confidence(confidence)} ({_counts(stable, canary)})"
    )
    return _evidence(
        gate,
        stable,
        canary,
        vs,
        vc,
        verdict,
        summary,
        difference=t.difference,
        low=t.low,
        high=t.high,
        confidence=confidence,
    )


def _ratio_value(gate: Gate, s: Sample) -> float | None:
    if gate.metric == "latencyP95Ms":
        return s.latency_p95_ms if s.invocations else None
    return s.output_tokens / s.invocations if s.invocations else None


def _judge_ratio(rollout: Rollout, gate: Gate, stable: Sample, canary: Sample) -> Evidence:
    vs, vc = _ratio_value(gate, stable), _ratio_value(gate, canary)
    unit = " ms" if gate.metric == "latencyP95Ms" else ""
    limit_text = f"{gate.limit_word} {gate.limit:g}"
    short = _short(rollout, stable, canary)
    ratio: float | None = None
    if vs is None or vc is None:
        verdict = NO_DATA
        missing = " and ".join(name for name, v in (("canary", vc), ("stable", vs)) if v is None)
        summary = f"{gate.metric}: no data for {missing} ({_counts(stable, canary)}), {limit_text}"
    else:
        values = f"canary {_num(vc)}{unit} vs stable {_num(vs)}{unit}"
        if vs > 0:
            ratio = vc / vs
            over = ratio > gate.limit
            compared = f"(ratio {ratio:.3g}) {'over' if over else 'within'} {limit_text}"
        else:
            over = vc > 0
            compared = (
                "(stable 0: ratio undefined, canary above 0)" if over else "(both 0: no increase)"
            )
        if short:
            verdict = INCONCLUSIVE
            tail = f"{verdict} (below minInvocations: {short})"
        else:
            verdict = FAIL if over else PASS
            tail = verdict
        summary = (
            f"{gate.metric}: {values} {compared}: {tail} "
            f"({_counts(stable, canary)}; no variance in analytics: no confidence)"
        )
    return _evidence(gate, stable, canary, vs, vc, verdict, summary, ratio=ratio)


def _evidence(
    gate: Gate,
    stable: Sample,
    canary: Sample,
    stable_value: float | None,
    canary_value: float | None,
    verdict: str,
    summary: str,
    *,
    difference: float | None = None,
    low: float | None = None,
    high: float | None = None,
    ratio: float | None = None,
    confidence: float | None = None,
) -> Evidence:
    """One gate's evidence: its limit and both samples' sizes, the values and the verdict, and
    what its test gives (``difference``, ``low``, ``high``, ``ratio``, ``confidence``)."""
    return Evidence(
        gate=gate.metric,
        limit=gate.limit,
        limit_word=gate.limit_word,
        stable_n=stable.invocations,
        canary_n=canary.invocations,
        stable_value=stable_value,
        canary_value=canary_value,
        difference=difference,
        low=low,
        high=high,
        ratio=ratio,
        verdict=verdict,
        confidence=confidence,
        summary=summary,
    )


# --- text --------------------------------------------------------------------------------


def _counts(stable: Sample, canary: Sample) -> str:
    return f"canary {canary.invocations:,}, stable {stable.invocations:,} invocations"


def _percent(x: float, digits: int | None = None) -> str:
    v = x * 100
    if digits is None:
        digits = 2 if 0 < abs(v) < 1 else 1
    return f"{v:.{digits}f} %"


def _points(x: float) -> str:
    v = round(x * 100, 6)
    return f"{v:g} point{'' if v == 1 else 's'}"


def _signed(x: float) -> str:
    v = x * 100
    return f"{v:+.2f}" if 0 < abs(v) < 1 else f"{v:+.1f}"


def _signed_points(x: float) -> str:
    return f"{_signed(x)} points"


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _confidence(c: float) -> str:
    """Rounded down, so that a confidence short of a verdict's never reads as one."""
    if c > 0.999:
        return "> 99.9 %"
    return f"{math.floor(c * 1000) / 10:.1f} %"
