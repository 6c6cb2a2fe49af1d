"""The gateway at run time: invocations following a prompt's traffic split (seed 003), routed
dispatch with fallbacks in order (seed 001), the telemetry they leave (cursor paging, seed 003),
usage analytics over it (seed 002) and compliance audit records (seed 003).

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
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from reconciler import textrules as tr
from reconciler.emulator.state import persistence as snap
from reconciler.emulator.state.common import (
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
)
ANALYTICS_GROUPS = (ANA.prompt_id, ANA.version, ANA.model_id, ANA.gateway_id)
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
        if not is_int(row.get(name)):
            raise ValueError(f"{name} must be an integer")
    return row


def _record(rec: Any) -> Obj:
    return snap.entry(rec, "record")


def _keep(rows: list[Obj], check: Any, row: Any) -> None:
    rows.append(check(row))


class Runtime:
    """The run-time handlers of one org."""

    def __init__(self, org: Org, prompts: Prompts) -> None:
        self.org = org
        self.prompts = prompts

    def _pick_version(self, p: Obj, session: str | None) -> str | None:
        td = p.get(PF.traffic) or {}
        if td.get(PF.td_default):
            return str(td[PF.td_default])
        entries = [e for e in td.get(PF.td_versions) or [] if e.get(SPLIT_WEIGHT, 0) > 0]
        if not entries:
            v = p.get(PF.version)
            return str(v) if v is not None else None
        if td.get(PF.td_strategy) == "sticky" and session:
            digest = hashlib.sha256(f"{p[PF.id]}:{session}".encode()).digest()
            x = int.from_bytes(digest[:8], "big") / 2**64
        else:
            x = self.org.rng.random()
        total = sum(float(e[SPLIT_WEIGHT]) for e in entries)
        acc = 0.0
        for e in entries:
            acc += float(e[SPLIT_WEIGHT]) / total
            if x < acc:
                return str(e[SPLIT_VERSION])
        return str(entries[-1][SPLIT_VERSION])

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
        row: Obj = {
            TEL.timestamp: iso(self.org.now()),
            TEL.prompt_id: p[PF.id],
            TEL.version: version,
            TEL.model_id: served,
            TEL.latency_ms: latency,
            TEL.input_tokens: prompt_tokens,
            TEL.output_tokens: 0,
            TEL.error: None,
        }
        if served is None:
            row[TEL.error] = "every model failed: " + ", ".join(a[DSP.model_id] for a in attempts)
            self.org.telemetry.append(row)
            raise ApiError(503, CODES.models_unavailable, row[TEL.error])
        output = f"[{served}] reply to: {text[:200]}"
        completion = max(1, len(output) // 4)
        row[TEL.output_tokens] = completion
        self.org.telemetry.append(row)
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
        """Cursor paging (seed 003); the cursor is opaque to clients."""
        start_t = parse_time(query.get(TEL.start_time), TEL.start_time)
        end_t = parse_time(query.get(TEL.end_time), TEL.end_time)
        pid = query.get(TEL.prompt_id)
        stamp, prompt_id = TEL.timestamp, TEL.prompt_id
        rows = [
            t
            for t in self.org.telemetry
            if (not pid or t[prompt_id] == pid)
            and (start_t is None or (parse_time(t[stamp], stamp) or 0) >= start_t)
            and (end_t is None or (parse_time(t[stamp], stamp) or 0) <= end_t)
        ]
        size = page_size(query)
        cursor = query.get(PAGING.cursor) or ""
        start = 0
        if cursor:
            m = re.fullmatch(r"c([0-9]{1,12})", cursor)
            if not m:
                raise invalid(f"{PAGING.cursor} {cursor!r} is not a cursor this server gave")
            start = int(m.group(1))
        out: Obj = {PAGING.entities: rows[start : start + size]}
        if start + size < len(rows):
            out[PAGING.next_cursor] = f"c{start + size}"
        return Answer(200, out)

    def analytics(self, body: Any) -> Answer:
        """Seed 002's usage query: rows grouped by the keys asked, with the metrics asked."""
        body = require_object(body)
        refuse_unknown(body, (ANA.date_from, ANA.date_to, ANA.group_by, ANA.metrics))
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
        # per group, the sums of telemetry's counts (the group keys name telemetry fields)
        stamp, by_gateway, prompt_id = TEL.timestamp, ANA.gateway_id, TEL.prompt_id
        n_in, n_out, ms, error = TEL.input_tokens, TEL.output_tokens, TEL.latency_ms, TEL.error
        sums: dict[tuple[Any, ...], dict[str, float]] = {}
        for t in self.org.telemetry:
            ts = parse_time(t[stamp], stamp) or 0.0
            if (date_from is not None and ts < date_from) or (date_to is not None and ts > date_to):
                continue
            key = tuple(t[prompt_id] if g == by_gateway else t.get(g) for g in group_by)
            s = sums.setdefault(key, {n_in: 0, n_out: 0, ms: 0.0, error: 0, "n": 0})
            s[n_in] += t[n_in]
            s[n_out] += t[n_out]
            s[ms] += t[ms]
            s[error] += 1 if t.get(error) else 0
            s["n"] += 1
        data = []
        for key, s in sums.items():
            all_metrics = {
                ANA.total_tokens: int(s[n_in] + s[n_out]),
                ANA.input_tokens: int(s[n_in]),
                ANA.output_tokens: int(s[n_out]),
                ANA.latency_ms: round(s[ms] / s["n"], 1),  # the mean
                ANA.error_count: int(s[error]),
            }
            data.append(
                {
                    **dict(zip(group_by, key, strict=True)),
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
        return {"telemetry": self.org.telemetry[-KEPT:], "auditLogs": self.org.audit_logs[-KEPT:]}

    def replay(self, data: Mapping[str, Any]) -> Iterable[Step]:
        rows = self.org.telemetry
        for n, row in enumerate(snap.listing(data.get("telemetry"), "telemetry")):
            yield f"telemetry[{n}]", partial(_keep, rows, _telemetry_row, row)
        records = self.org.audit_logs
        for n, rec in enumerate(snap.listing(data.get("auditLogs"), "auditLogs")):
            yield f"auditLogs[{n}]", partial(_keep, records, _record, rec)
