"""The gateway at run time: invocations following a prompt's traffic split (seed 003), routed
dispatch with fallbacks in order (seed 001), the telemetry they leave (cursor paging, seed 003),
usage analytics over it (seed 002; the richer, filtered row is assumed: ``docs/contract.md``)
and compliance audit records (seed 003).

Invocations, real and simulated (``traffic``), are rows of the org's ``Ledger``: telemetry and
analytics read them alike, bisecting the time window. How an invocation is routed
(``route``/``pick``) is this module's, and simulated traffic routes the same way.

Invented but reproducible: replies, token counts and latencies come from the org's seeded
generator, and which models fail or refuse is a test hook (``failing_models``,
``refusing_models``), so a test can drive every fallback path.

What this module must not do: change a prompt, a template, a version or an index (it only
reads prompts), or change a telemetry row or an audit record once kept.
"""

from __future__ import annotations

import hashlib
import math
import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from functools import partial
from random import Random
from typing import Any, NamedTuple

from reconciler import textrules as tr
from reconciler.emulator.state import persistence as snap
from reconciler.emulator.state.common import (
    NAME_MAX_CHARS,
    Answer,
    ApiError,
    clean,
    invalid,
    is_int,
    is_num,
    iso,
    names_in,
    page_size,
    parse_time,
    refuse_unknown,
    require_object,
    string_map,
)
from reconciler.emulator.state.ledger import (
    BLOCKED,
    ERROR,
    FALLBACK,
    SIMULATED,
    Ledger,
    ceil_ms,
    to_ms,
)
from reconciler.emulator.state.org import MODEL_IDS, Obj, Org
from reconciler.emulator.state.persistence import Step
from reconciler.emulator.state.prompts import CONTENT_FILTERS, SPLIT_VERSION, SPLIT_WEIGHT, Prompts
from reconciler.endpoints import CODES, FIELDS, PAGING, RUNTIME

PF = FIELDS.prompt
INV, DSP, TEL = RUNTIME.invocation, RUNTIME.dispatch, RUNTIME.telemetry
ANA, AUD = RUNTIME.analytics, RUNTIME.audit

ANALYTICS_METRICS = (
    ANA.total_tokens,
    ANA.input_tokens,
    ANA.output_tokens,
    ANA.latency_ms,
    ANA.error_count,
    ANA.invocations,
    ANA.latency_p50_ms,
    ANA.latency_p95_ms,
    ANA.latency_p99_ms,
    ANA.guardrail_blocks,
    ANA.fallback_count,
)
ANALYTICS_FLOAT_METRICS = frozenset(
    {ANA.latency_ms, ANA.latency_p50_ms, ANA.latency_p95_ms, ANA.latency_p99_ms}
)  # the others are counts
ANALYTICS_GROUPS = (ANA.prompt_id, ANA.version, ANA.model_id, ANA.gateway_id)
ANALYTICS_FIELDS = (ANA.date_from, ANA.date_to, ANA.group_by, ANA.metrics, ANA.filter)
FILTER_FIELDS = (ANA.prompt_id, ANA.filter_versions)
MAX_FILTER_VERSIONS = 100
MAX_FILTER_CHARS = NAME_MAX_CHARS  # of a prompt id or a version in a filter
DISPATCH_FIELDS = (
    DSP.model_id,
    DSP.prompt,
    DSP.parameters,
    DSP.fallbacks,
    DSP.safety_filters,
    DSP.metadata,
)
AUDIT_FIELDS = frozenset(
    {AUD.prompt_id, AUD.action, AUD.timestamp, AUD.details, AUD.compliance_status, AUD.metadata}
)
KEPT = 10000  # telemetry rows and audit records a snapshot keeps (the latest)
# a snapshot's telemetry rows also say what analytics counts and an entity does not show
SNAP_BLOCKED, SNAP_FALLBACK = "guardrailBlocked", "servedByFallback"


def _telemetry_row(row: Any) -> Obj:
    """A telemetry entity as telemetry paging and analytics read it."""
    row = snap.entry(row, "row")
    if parse_time(row.get(TEL.timestamp), TEL.timestamp) is None:
        raise ValueError(f"{TEL.timestamp} is required")
    if not isinstance(row.get(TEL.prompt_id), str):
        raise ValueError(f"{TEL.prompt_id} must be a string")
    for name in (TEL.version, TEL.model_id, TEL.error):
        if row.get(name) is not None and not isinstance(row[name], str):
            raise ValueError(f"{name} must be a string or null")
    if not (is_num(row.get(TEL.latency_ms)) and math.isfinite(row[TEL.latency_ms])):
        raise ValueError(f"{TEL.latency_ms} must be a finite number")
    for name in (TEL.input_tokens, TEL.output_tokens):
        if not (is_int(row.get(name)) and 0 <= row[name] < 2**63):
            raise ValueError(f"{name} must be a non-negative integer")
    for name in (TEL.simulated, SNAP_BLOCKED, SNAP_FALLBACK):
        if row.get(name) is not None and not isinstance(row[name], bool):
            raise ValueError(f"{name} must be true or false")
    return row


def _keep_row(ledger: Ledger, row: Any) -> None:
    row = _telemetry_row(row)
    flags = SIMULATED if row.get(TEL.simulated) else 0
    flags |= BLOCKED if row.get(SNAP_BLOCKED) else 0
    flags |= FALLBACK if row.get(SNAP_FALLBACK) else 0
    ledger.add(
        parse_time(row[TEL.timestamp], TEL.timestamp) or 0.0,
        row[TEL.prompt_id],
        row.get(TEL.version),
        row.get(TEL.model_id),
        row[TEL.latency_ms],
        row[TEL.input_tokens],
        row[TEL.output_tokens],
        row.get(TEL.error),
        flags,
    )


def _snapshot_row(ledger: Ledger, i: int) -> Obj:
    row = ledger.entity(i)
    if ledger.flags[i] & BLOCKED:
        row[SNAP_BLOCKED] = True
    if ledger.flags[i] & FALLBACK:
        row[SNAP_FALLBACK] = True
    return row


def _record(rec: Any) -> Obj:
    return snap.entry(rec, "record")


def _keep(rows: list[Obj], check: Any, row: Any) -> None:
    rows.append(check(row))


class Route(NamedTuple):
    """Where a prompt's split sends an invocation: ``fixed`` when no draw is needed, else the
    versions with positive weights and their cumulative shares."""

    fixed: str | None
    versions: tuple[str, ...] = ()
    bounds: tuple[float, ...] = ()
    sticky: bool = False


def route(p: Obj) -> Route:
    """The routing of prompt ``p``'s live split (``defaultVersion`` first, then the weights;
    no weight: the prompt's own version)."""
    td = p.get(PF.traffic) or {}
    if td.get(PF.td_default):
        return Route(str(td[PF.td_default]))
    entries = [e for e in td.get(PF.td_versions) or [] if e.get(SPLIT_WEIGHT, 0) > 0]
    if not entries:
        v = p.get(PF.version)
        return Route(str(v) if v is not None else None)
    total = sum(float(e[SPLIT_WEIGHT]) for e in entries)
    acc, bounds = 0.0, []
    for e in entries:
        acc += float(e[SPLIT_WEIGHT]) / total
        bounds.append(acc)
    versions = tuple(str(e[SPLIT_VERSION]) for e in entries)
    return Route(None, versions, tuple(bounds), td.get(PF.td_strategy) == "sticky")


def pick(r: Route, rng: Random, pid: str, session: str | None = None) -> str | None:
    """The version an invocation is served by: sticky by ``session`` when the split asks,
    else a draw of ``rng``."""
    if not r.versions:
        return r.fixed
    if r.sticky and session:
        digest = hashlib.sha256(f"{pid}:{session}".encode()).digest()
        x = int.from_bytes(digest[:8], "big") / 2**64
    else:
        x = rng.random()
    return r.versions[min(bisect_right(r.bounds, x), len(r.versions) - 1)]


def nearest_rank(ordered: list[float], q: float) -> float:
    """The ``q`` quantile (0 < q <= 1) of sorted values, by the nearest-rank method."""
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


class Runtime:
    """The run-time handlers of one org."""

    def __init__(self, org: Org, prompts: Prompts) -> None:
        self.org = org
        self.prompts = prompts

    def _pick_version(self, p: Obj, session: str | None) -> str | None:
        return pick(route(p), self.org.rng, p[PF.id], session)

    def _serve(self, chain: list[str]) -> tuple[str | None, list[Obj]]:
        """Try the models in order; a failing (5xx) or refusing model passes to the next."""
        attempts: list[Obj] = []
        for model in chain:
            if model in self.org.failing_models:
                attempts.append({DSP.model_id: model, DSP.status: 503, DSP.outcome: "unavailable"})
            elif model in self.org.refusing_models:
                attempts.append(
                    {DSP.model_id: model, DSP.status: 422, DSP.outcome: "policy refusal"}
                )
            else:
                attempts.append({DSP.model_id: model, DSP.status: 200, DSP.outcome: "served"})
                return model, attempts
        return None, attempts

    def invoke(self, body: Any) -> Answer:
        """Seed 003: the version served follows the split (sticky by sessionId when asked)."""
        body = require_object(body)
        refuse_unknown(body, (INV.prompt_id, INV.user_input, INV.session_id, INV.options))
        body = clean(body, ())
        if not isinstance(body.get(INV.prompt_id), str):
            raise invalid(f"{INV.prompt_id} is required (a string)")
        if not isinstance(body.get(INV.user_input, ""), str):
            raise invalid(f"{INV.user_input} must be a string")
        session = body.get(INV.session_id)
        if session is not None and not isinstance(session, str):
            raise invalid(f"{INV.session_id} must be a string")
        if body.get(INV.options) is not None and not isinstance(body[INV.options], dict):
            raise invalid(f"{INV.options} must be an object")
        p = self.prompts.lookup(body[INV.prompt_id])
        text = str(body.get(INV.user_input) or "")
        version = self._pick_version(p, session)
        served, attempts = self._serve([p[PF.model], *p.get(PF.fallbacks, [])])
        prompt_tokens = max(1, (len(p[PF.system_prompt]) + len(text)) // 4)
        latency = round(40 + self.org.rng.random() * 160, 1) * len(attempts)
        now, pid, primary = self.org.now(), p[PF.id], p[PF.model]
        if served is None:
            error = "every model failed: " + ", ".join(a[DSP.model_id] for a in attempts)
            self.org.telemetry.add(now, pid, version, None, latency, prompt_tokens, 0, error, 0)
            raise ApiError(503, CODES.models_unavailable, error)
        output = f"[{served}] reply to: {text[:200]}"
        completion = max(1, len(output) // 4)
        flags = FALLBACK if served != primary else 0  # a guardrail never refuses a real one
        self.org.telemetry.add(
            now, pid, version, served, latency, prompt_tokens, completion, None, flags
        )
        return Answer(
            200,
            {
                INV.response_id: self.org.new_id(),
                INV.output: output,
                INV.version: version,
                INV.model_id: served,
                INV.token_usage: {
                    INV.usage_prompt: prompt_tokens,
                    INV.usage_completion: completion,
                },
            },
        )

    def dispatch(self, body: Any) -> Answer:
        """Seed 001's routed dispatch: the primary model, then the fallbacks in order."""
        body = require_object(body)
        refuse_unknown(body, DISPATCH_FIELDS)
        body = clean(body, ())
        problems: list[str] = []
        if not isinstance(body.get(DSP.model_id), str):
            problems.append(f"{DSP.model_id} is required (a string)")
        prompt = body.get(DSP.prompt)
        if not isinstance(prompt, str) or not prompt:
            problems.append(f"{DSP.prompt} is required (a non-empty string)")
        elif len(prompt) > tr.PROMPT_MAX_CHARS:
            problems.append(
                f"{DSP.prompt} is {len(prompt)} characters; at most {tr.PROMPT_MAX_CHARS} "
                "(seed 001)"
            )
        fallbacks = body.get(DSP.fallbacks, [])
        if not isinstance(fallbacks, list) or not all(isinstance(m, str) for m in fallbacks):
            problems.append(f"{DSP.fallbacks} must be a list of model ids")
            fallbacks = []
        if not names_in(body.get(DSP.safety_filters, []), CONTENT_FILTERS):
            problems.append(f"{DSP.safety_filters} allows {', '.join(CONTENT_FILTERS)}")
        params = body.get(DSP.parameters, {})
        if not isinstance(params, dict):
            problems.append(f"{DSP.parameters} must be an object")
            params = {}
        t = params.get(DSP.temperature)
        if t is not None and not (is_num(t) and 0 <= t <= 2):
            problems.append(f"{DSP.parameters}.{DSP.temperature} must be a number from 0.0 to 2.0")
        metadata: dict[str, str] | None = None
        if DSP.metadata in body:
            try:
                metadata = string_map(body[DSP.metadata], DSP.metadata)
            except ApiError as exc:
                problems.append(exc.message)
        if problems:
            raise invalid("; ".join(problems), details=problems)
        chain = [body[DSP.model_id], *fallbacks]
        unknown = [m for m in chain if m not in MODEL_IDS]
        if unknown:
            raise invalid("model(s) not in the models list: " + ", ".join(map(repr, unknown)))
        served, attempts = self._serve(chain)
        if served is None:
            raise ApiError(
                503,
                CODES.models_unavailable,
                "the primary model and every fallback failed",
                [f"{a[DSP.model_id]}: {a[DSP.outcome]}" for a in attempts],
            )
        answer: Obj = {
            DSP.response_id: self.org.new_id(),
            DSP.model_id: served,
            DSP.output: f"[{served}] {body[DSP.prompt][:200]}",
            DSP.fallback_used: served != body[DSP.model_id],
            DSP.attempts: attempts,
        }
        if metadata is not None:  # seed 001's routing metadata, echoed for its audit entries
            answer[DSP.metadata] = metadata
        return Answer(200, answer)

    def telemetry_page(self, query: Mapping[str, str]) -> Answer:
        """Cursor paging (seed 003), oldest first; ``startTime`` and ``endTime`` both count.
        The cursor (opaque to clients) is the sequence number of the next row to look at, so
        a page costs the rows it looks at, never a scan of the whole ledger."""
        start_t = parse_time(query.get(TEL.start_time), TEL.start_time)
        end_t = parse_time(query.get(TEL.end_time), TEL.end_time)
        pid = query.get(TEL.prompt_id)
        size = page_size(query)
        cursor = query.get(PAGING.cursor) or ""
        ledger = self.org.telemetry
        window = ledger.span(
            None if start_t is None else ceil_ms(start_t),
            None if end_t is None else to_ms(end_t) + 1,
        )
        first = window.start
        if cursor:
            m = re.fullmatch(r"c([0-9]{1,12})", cursor)
            if not m:
                raise invalid(f"{PAGING.cursor} {cursor!r} is not a cursor this server gave")
            first = max(first, ledger.index_of(int(m.group(1))))
        code = ledger.known(pid) if pid else None
        if pid and code is None:
            return Answer(200, {PAGING.entities: []})
        prompts = ledger.prompt
        found: list[int] = []
        for i in range(first, window.stop):
            if code is None or prompts[i] == code:
                found.append(i)
                if len(found) > size:
                    break
        out: Obj = {PAGING.entities: [ledger.entity(i) for i in found[:size]]}
        if len(found) > size:
            out[PAGING.next_cursor] = f"c{ledger.seq(found[size])}"
        return Answer(200, out)

    @staticmethod
    def _filter(value: Any) -> tuple[str | None, list[str] | None]:
        """The analytics filter (assumed): a prompt id and a list of versions, both optional."""
        if value is None:
            return None, None
        where = ANA.filter
        if not isinstance(value, dict):
            raise invalid(f"{where} must be an object with {', '.join(FILTER_FIELDS)}")
        extra = sorted(set(value) - set(FILTER_FIELDS))
        if extra:
            raise invalid(f"unknown field(s) of {where}: " + ", ".join(extra))
        pid, versions = value.get(ANA.prompt_id), value.get(ANA.filter_versions)
        problems = []
        if pid is not None and not (isinstance(pid, str) and 0 < len(pid) <= MAX_FILTER_CHARS):
            problems.append(
                f"{where}.{ANA.prompt_id} must be a prompt id (1 to {MAX_FILTER_CHARS} characters)"
            )
        if versions is not None and not (
            isinstance(versions, list)
            and len(versions) <= MAX_FILTER_VERSIONS
            and all(isinstance(v, str) and 0 < len(v) <= MAX_FILTER_CHARS for v in versions)
        ):
            problems.append(
                f"{where}.{ANA.filter_versions} must be a list of at most {MAX_FILTER_VERSIONS} "
                f"versions (strings of 1 to {MAX_FILTER_CHARS} characters)"
            )
        if problems:
            raise invalid("; ".join(problems), details=problems)
        return pid, versions

    def analytics(self, body: Any) -> Answer:
        """Seed 002's usage query: rows grouped by the keys asked, with the metrics asked, over
        the half-open window ``[dateFrom, dateTo)``, optionally filtered by prompt and versions
        (assumed). No metric asked: all of them."""
        body = require_object(body)
        refuse_unknown(body, ANALYTICS_FIELDS)
        body = clean(body, ())
        group_by = body.get(ANA.group_by, [])
        if not names_in(group_by, ANALYTICS_GROUPS):
            raise invalid(f"{ANA.group_by} is a list of {', '.join(ANALYTICS_GROUPS)}")
        metrics = body.get(ANA.metrics, [])
        if not names_in(metrics, ANALYTICS_METRICS):
            raise invalid(f"{ANA.metrics} is a list of {', '.join(ANALYTICS_METRICS)}")
        metrics = metrics or list(ANALYTICS_METRICS)  # none asked: all of them
        for f in (ANA.date_from, ANA.date_to):
            if f in body and not isinstance(body[f], str):
                raise invalid(f"{f} must be an ISO 8601 date-time string")
        date_from = parse_time(body.get(ANA.date_from), ANA.date_from)
        date_to = parse_time(body.get(ANA.date_to), ANA.date_to)
        pid, versions = self._filter(body.get(ANA.filter))
        ledger = self.org.telemetry
        window = ledger.span(
            None if date_from is None else ceil_ms(date_from),
            None if date_to is None else ceil_ms(date_to),
        )
        # a filter naming what no row carries matches nothing
        p_code = None if pid is None else ledger.known(pid)
        v_codes = None if versions is None else {ledger.known(v) for v in versions} - {None}
        if (pid is not None and p_code is None) or v_codes == set():
            window = range(0)
        by = {
            ANA.prompt_id: ledger.prompt,
            ANA.gateway_id: ledger.prompt,
            ANA.version: ledger.version,
            ANA.model_id: ledger.model,
        }
        keys = [by[g] for g in group_by]
        prompts, vers, lat, flags = ledger.prompt, ledger.version, ledger.latency, ledger.flags
        n_in, n_out = ledger.n_in, ledger.n_out
        # per group: latencies, input and output tokens, errors, blocks, fallbacks
        groups: dict[tuple[int, ...], list[Any]] = {}
        for i in window:
            if p_code is not None and prompts[i] != p_code:
                continue
            if v_codes is not None and vers[i] not in v_codes:
                continue
            key = tuple(k[i] for k in keys)
            g = groups.get(key)
            if g is None:
                g = groups[key] = [[], 0, 0, 0, 0, 0]
            g[0].append(lat[i])
            g[1] += n_in[i]
            g[2] += n_out[i]
            bits = flags[i]
            if bits:
                g[3] += 1 if bits & ERROR else 0
                g[4] += 1 if bits & BLOCKED else 0
                g[5] += 1 if bits & FALLBACK else 0
        data = []
        for key, (latencies, tokens_in, tokens_out, errors, blocks, fallbacks) in groups.items():
            ordered = sorted(latencies)
            all_metrics = {
                ANA.total_tokens: tokens_in + tokens_out,
                ANA.input_tokens: tokens_in,
                ANA.output_tokens: tokens_out,
                ANA.latency_ms: round(sum(ordered) / len(ordered), 1),  # the mean
                ANA.error_count: errors,
                ANA.invocations: len(ordered),
                ANA.latency_p50_ms: nearest_rank(ordered, 0.50),
                ANA.latency_p95_ms: nearest_rank(ordered, 0.95),
                ANA.latency_p99_ms: nearest_rank(ordered, 0.99),
                ANA.guardrail_blocks: blocks,
                ANA.fallback_count: fallbacks,
            }
            data.append(
                {
                    **{g: ledger.text(c) for g, c in zip(group_by, key, strict=True)},
                    **{m: all_metrics[m] for m in metrics},
                }
            )
        data.sort(key=lambda r: [str(r.get(g)) for g in group_by])
        return Answer(200, {ANA.data: data})

    def audit_log(self, body: Any) -> Answer:
        """Seed 003's compliance records: kept, never changed."""
        body = require_object(body)
        refuse_unknown(body, AUDIT_FIELDS)
        body = clean(body, ())
        problems = []
        if not isinstance(body.get(AUD.action), str) or not body[AUD.action]:
            problems.append(f"{AUD.action} is required (a string)")
        for f in (AUD.prompt_id, AUD.timestamp, AUD.compliance_status):
            if body.get(f) is not None and not isinstance(body[f], str):
                problems.append(f"{f} must be a string")
        for f in (AUD.details, AUD.metadata):
            if body.get(f) is not None and not isinstance(body[f], dict):
                problems.append(f"{f} must be an object")
        if problems:
            raise invalid("; ".join(problems), details=problems)
        rec = {AUD.id: self.org.new_id(), **body, AUD.received_at: iso(self.org.now())}
        self.org.audit_logs.append(rec)
        return Answer(201, rec)

    # -- persistence ----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        ledger = self.org.telemetry
        return {
            "telemetry": [_snapshot_row(ledger, i) for i in ledger.newest(KEPT)],
            "auditLogs": self.org.audit_logs[-KEPT:],
        }

    def replay(self, data: Mapping[str, Any]) -> Iterable[Step]:
        ledger = self.org.telemetry
        for n, row in enumerate(snap.listing(data.get("telemetry"), "telemetry")):
            yield f"telemetry[{n}]", partial(_keep_row, ledger, row)
        records = self.org.audit_logs
        for n, rec in enumerate(snap.listing(data.get("auditLogs"), "auditLogs")):
            yield f"auditLogs[{n}]", partial(_keep, records, _record, rec)
