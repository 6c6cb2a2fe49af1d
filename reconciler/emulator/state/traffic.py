"""Simulated traffic and the emulator's clock (``docs/contract.md``, "The emulator's traffic and
clock"; assumed, test-only, under ``--admin``).

The setting says, per prompt name, how many invocations a minute arrive and how each version
behaves (error, guardrail-block and fallback rates, latency and its jitter, output tokens).
Traffic is simulated lazily: ``simulate`` makes the invocations from where it last stopped up to
the org's clock, and the HTTP layer calls it before handling every request, so each invocation
is routed by the prompt's split as it stood at that moment (``runtime.route``/``pick``, the
org's seeded generator: the same seed and the same calls give the same rows). Advancing the
clock makes the traffic of the period skipped.

The count is exact, not random: a prompt at N a minute gets one invocation every 60/N seconds
(from when its rate was set), so a period of M minutes holds N x M of them give or take one.
When a period holds more invocations than the ledger keeps, only the newest that fit are made
(the older would be dropped at once). A name no prompt carries makes no rows (its traffic starts
when a prompt takes the name); a deleted prompt's traffic stops.

What this module must not do: change a prompt, a template, a version or an index, route
differently from ``/invocations``, or move the clock backwards.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from reconciler.emulator.state import persistence as snap
from reconciler.emulator.state.common import (
    NAME_MAX_CHARS,
    NAME_MIN_CHARS,
    Answer,
    invalid,
    is_int,
    is_num,
    iso,
    require_object,
)
from reconciler.emulator.state.ledger import BLOCKED, ERROR, FALLBACK, SIMULATED, to_ms
from reconciler.emulator.state.org import MODELS, Obj, Org
from reconciler.emulator.state.persistence import Step
from reconciler.emulator.state.runtime import pick, route
from reconciler.endpoints import FIELDS, RUNTIME

PF, MF, TEL = FIELDS.prompt, FIELDS.model, RUNTIME.telemetry


@dataclass(frozen=True)
class TrafficFields:
    """The admin bodies' names (the emulator's own, not the gateway's: not in the endpoint
    table, but for the two a telemetry entity also carries)."""

    prompts: str = "prompts"
    per_minute: str = "perMinute"
    versions: str = "versions"
    error_rate: str = "errorRate"
    latency_ms: str = TEL.latency_ms
    jitter_ms: str = "latencyJitterMs"
    output_tokens: str = TEL.output_tokens
    block_rate: str = "guardrailBlockRate"
    fallback_rate: str = "fallbackRate"
    advance: str = "advanceSeconds"  # the clock
    now: str = "now"


TF = TrafficFields()
RATES = (TF.error_rate, TF.block_rate, TF.fallback_rate)  # probabilities, 0..1
BEHAVIOUR: Mapping[str, float] = {  # a version's behaviour, and its defaults
    TF.error_rate: 0.0,
    TF.latency_ms: 200.0,
    TF.jitter_ms: 0.0,
    TF.output_tokens: 100,
    TF.block_rate: 0.0,
    TF.fallback_rate: 0.0,
}
MAX_PROMPTS = 100  # prompts a setting names
MAX_VERSIONS = 50  # versions a prompt's setting names
MAX_VERSION_CHARS = NAME_MAX_CHARS
MAX_PER_MINUTE = 100_000
MAX_LATENCY_MS = 3_600_000  # latency and jitter: at most an hour
MAX_OUTPUT_TOKENS = 1_000_000
MAX_ADVANCE_SECONDS = 400 * 86400  # one advance
MAX_OFFSET_SECONDS = 100 * 365 * 86400  # all advances together (the calendar ends in 9999)
SIMULATED_ERROR = "simulated error"
INPUT_PADDING = 40  # characters of an invented user input, for the input tokens


def _number(value: Any, where: str, most: float, *, integer: bool = False) -> float:
    kind = "an integer" if integer else "a number"
    ok = is_int(value) if integer else is_num(value)
    if not (ok and math.isfinite(value) and 0 <= value <= most):
        raise invalid(f"{where} must be {kind} from 0 to {most:g}, not {value!r:.40}")
    return value


def _object(value: Any, where: str, allowed: Iterable[str] | None = None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(f"{where} must be an object")
    if allowed is not None:
        extra = sorted(set(value) - set(allowed))
        if extra:
            raise invalid(f"unknown field(s) of {where}: " + ", ".join(extra))
    return value


def _key(name: Any, where: str, low: int, high: int) -> None:
    if not low <= len(name) <= high:
        raise invalid(f"{where} {name[:40]!r}: a name of {low} to {high} characters")


def read_setting(body: Any) -> dict[str, Obj]:
    """A traffic setting, checked (``400`` naming the field): prompt name -> its traffic."""
    body = require_object(body)
    _object(body, "the body", (TF.prompts,))
    if TF.prompts not in body:
        raise invalid(f"{TF.prompts} is required (an object: prompt name -> its traffic)")
    prompts = _object(body[TF.prompts], TF.prompts)
    if len(prompts) > MAX_PROMPTS:
        raise invalid(f"{TF.prompts} names {len(prompts)} prompts; at most {MAX_PROMPTS}")
    out: dict[str, Obj] = {}
    for name, given in prompts.items():
        where = f"{TF.prompts}.{name[:60]}"
        _key(name, f"{TF.prompts}: prompt name", NAME_MIN_CHARS, NAME_MAX_CHARS)
        given = _object(given, where, (TF.per_minute, TF.versions))
        if TF.per_minute not in given:
            raise invalid(f"{where}.{TF.per_minute} is required")
        _number(given[TF.per_minute], f"{where}.{TF.per_minute}", MAX_PER_MINUTE)
        versions = _object(given.get(TF.versions, {}), f"{where}.{TF.versions}")
        if len(versions) > MAX_VERSIONS:
            raise invalid(f"{where}.{TF.versions} names {len(versions)}; at most {MAX_VERSIONS}")
        for version, behaviour in versions.items():
            at = f"{where}.{TF.versions}.{version[:60]}"
            _key(version, f"{where}.{TF.versions}: version", 1, MAX_VERSION_CHARS)
            behaviour = _object(behaviour, at, BEHAVIOUR)
            for field, value in behaviour.items():
                most = 1 if field in RATES else MAX_LATENCY_MS
                if field == TF.output_tokens:
                    most = MAX_OUTPUT_TOKENS
                _number(value, f"{at}.{field}", most, integer=field == TF.output_tokens)
        out[name] = given
    return out


class _Plan:
    """One prompt's traffic in one period: what each invocation is made of."""

    def __init__(self, org: Org, p: Obj, setting: Obj) -> None:
        ledger = org.telemetry
        self.route = route(p)
        self.pid = p[PF.id]
        self.codes = (ledger.code(p[PF.id]), ledger.code(SIMULATED_ERROR))
        primary = p[PF.model]
        fallback = next(iter(p.get(PF.fallbacks) or []), None)
        if fallback is None:  # the first other model of the list serves a simulated fallback
            fallback = next(m[MF.id] for m in MODELS if m[MF.id] != primary)
        self.models = (ledger.code(primary), ledger.code(fallback))
        self.n_in = max(1, (len(p.get(PF.system_prompt) or "") + INPUT_PADDING) // 4)
        given: dict[str, Obj] = setting.get(TF.versions) or {}
        first = next(iter(given.values()), {})
        self.behaviour: dict[str | None, tuple[float, ...]] = {}
        for v in {*self.route.versions, self.route.fixed, *given}:
            b = {**BEHAVIOUR, **given.get(v or "", first)}
            self.behaviour[v] = (ledger.code(v), *(b[f] for f in BEHAVIOUR))

    def rows(self, org: Org, times: Iterable[float], columns: list[list[Any]]) -> None:
        """Append one simulated invocation per time to ``columns`` (the ledger's order)."""
        rng = org.rng
        rand, gauss = rng.random, rng.gauss
        r, pid, behaviour = self.route, self.pid, self.behaviour
        p_code, e_code = self.codes
        primary, fallback = self.models
        ts, prompt, version, model, error, latency, n_in, n_out, flags = columns
        for t in times:
            code, err, lat, jitter, out, block, fall = behaviour[pick(r, rng, pid)]
            bits = SIMULATED
            if err and rand() < err:
                bits |= ERROR
            if block and rand() < block:
                bits |= BLOCKED
            if fall and rand() < fall:
                bits |= FALLBACK
            if jitter:
                lat = max(1.0, round(gauss(lat, jitter), 1))
            ts.append(to_ms(t))
            prompt.append(p_code)
            version.append(code)
            model.append(fallback if bits & FALLBACK else primary)
            error.append(e_code if bits & ERROR else -1)
            latency.append(float(lat))
            n_in.append(self.n_in)
            n_out.append(0 if bits & (ERROR | BLOCKED) else int(out))
            flags.append(bits)


class Traffic:
    """The traffic and clock handlers of one org (test-only, under ``--admin``)."""

    def __init__(self, org: Org) -> None:
        self.org = org

    # -- the clock ------------------------------------------------------------------------------
    def get_clock(self) -> Answer:
        return Answer(200, {TF.now: iso(self.org.now())})

    def advance_clock(self, body: Any) -> Answer:
        """Move the clock forward and make the traffic of the period skipped."""
        body = require_object(body)
        _object(body, "the body", (TF.advance,))
        if TF.advance not in body:
            raise invalid(f"{TF.advance} is required (seconds, a number)")
        seconds = _number(body[TF.advance], TF.advance, MAX_ADVANCE_SECONDS)
        if self.org.clock_offset + seconds > MAX_OFFSET_SECONDS:
            raise invalid(
                f"{TF.advance}: the clock may be advanced {MAX_OFFSET_SECONDS // 86400} days "
                f"in all; it already is {self.org.clock_offset / 86400:.1f} days ahead"
            )
        self.simulate()
        self.org.clock_offset += float(seconds)
        self.simulate()
        return self.get_clock()

    # -- the traffic setting --------------------------------------------------------------------
    def get_traffic(self) -> Answer:
        return Answer(200, {TF.prompts: self.org.traffic})

    def put_traffic(self, body: Any) -> Answer:
        """Replace the setting; the traffic until now is made under the previous one."""
        setting = read_setting(body)
        self.simulate()
        org, now = self.org, self.org.now()
        kept = {
            name: org.traffic_next[name]
            for name, s in setting.items()
            if name in org.traffic_next
            and org.traffic.get(name, {}).get(TF.per_minute) == s[TF.per_minute]
        }
        org.traffic = setting
        org.traffic_next = {name: kept.get(name, now) for name in setting}
        org.traffic_until = now
        return self.get_traffic()

    # -- simulation -----------------------------------------------------------------------------
    def simulate(self) -> int:
        """Make the invocations from where the last call stopped up to the clock; how many."""
        org = self.org
        now, since = org.now(), org.traffic_until
        if not org.traffic or since is None or now < since:
            org.traffic_until = now if since is None or now > since else since
            return 0
        plans: list[tuple[str, Obj, float]] = []
        per_second = 0.0
        for name, setting in org.traffic.items():
            per_minute = float(setting[TF.per_minute])
            pid = org.prompt_names.get(name)
            p = org.prompts.get(pid) if pid is not None else None
            if per_minute <= 0:
                continue
            step = 60.0 / per_minute
            if p is None:  # no prompt has the name: its clock still runs, nothing is made
                org.traffic_next[name] = _after(org.traffic_next.get(name, since), step, now)
                continue
            plans.append((name, p, step))
            per_second += 1 / step
        cutoff = now - org.telemetry.cap / per_second if per_second else now
        columns: list[list[Any]] = [[] for _ in org.telemetry.columns]
        for name, p, step in plans:
            first = org.traffic_next.get(name, since)
            if first < cutoff:  # older rows would be dropped at once: skip them
                first = _after(first, step, cutoff)
            end = _after(first, step, now)
            n = round((end - first) / step)
            org.traffic_next[name] = end
            _Plan(org, p, org.traffic[name]).rows(
                org, (first + k * step for k in range(n)), columns
            )
        org.traffic_until = now
        if len(plans) > 1:  # the prompts' rows, interleaved in time
            order = sorted(range(len(columns[0])), key=columns[0].__getitem__)
            columns = [[c[i] for i in order] for c in columns]
        made = len(columns[0])
        if made:
            org.telemetry.extend(columns)
        return made

    # -- persistence ----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        org = self.org
        return {
            "traffic": {
                TF.prompts: org.traffic,
                "next": org.traffic_next,
                "until": org.traffic_until,
            },
            "clock": {"offsetSeconds": org.clock_offset},
        }

    def replay(self, data: Mapping[str, Any]) -> Iterable[Step]:
        traffic = snap.mapping(data.get("traffic"), "traffic")
        yield "traffic", partial(self._restore, traffic)
        clock = snap.mapping(data.get("clock"), "clock")
        yield "clock", partial(self._restore_clock, clock.get("offsetSeconds", 0.0))

    def _restore(self, traffic: Mapping[str, Any]) -> None:
        org = self.org
        org.traffic = read_setting({TF.prompts: traffic.get(TF.prompts) or {}})
        nxt = snap.mapping(traffic.get("next"), "traffic.next")
        org.traffic_next = {n: snap.finite_number(nxt[n]) for n in org.traffic if n in nxt}
        until = traffic.get("until")
        org.traffic_until = None if until is None else snap.finite_number(until)

    def _restore_clock(self, offset: Any) -> None:
        offset = snap.finite_number(offset)
        if not 0 <= offset <= MAX_OFFSET_SECONDS:
            raise ValueError(f"clock.offsetSeconds {offset} is outside 0..{MAX_OFFSET_SECONDS}")
        self.org.clock_offset = offset


def _after(first: float, step: float, t: float) -> float:
    """The first invocation time at or after ``t`` of those ``first + k * step`` (k >= 0)."""
    if t <= first:
        return first
    return first + math.ceil((t - first) / step - 1e-9) * step
