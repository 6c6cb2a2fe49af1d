"""Rollouts at run time: ``rollout advance`` (the cron job), ``rollout status`` and a person's
overrides (``pause``, ``resume``, ``abort``, ``promote``).

For every TrafficSplit with a rollout block in the manifests: read the live prompt (one listing
for all of them), its position from its ``llmgw.io/`` labels (``rollout.labels``), the step's
window from the analytics query (one request per prompt, ``[since, now)`` on the server's
clock), decide (``rollout.decide``, pure) and act with one write that moves the weights and the
labels together, conditional on the prompt's ETag: a run killed at any point leaves the org
consistent, and of two runs at once the second's write fails its precondition, re-reads, and
finds the work done. A rollback moves all traffic to stable first, then withdraws the canary
when asked (a withdrawal missed by a killed run is done by the next one). Every write is
audited before the next, with its evidence.

What this module must not do: decide anything itself (``rollout.decide`` does), print, or read
this machine's clock for a step's time (the server's ``Date`` is the clock).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler import audit as auditlog
from reconciler import metrics as metricsmod
from reconciler import redact as redact_mod
from reconciler.endpoints import FIELDS, HEADERS, PARAMS, PATHS, RUNTIME
from reconciler.errors import (
    ConfigError,
    FileError,
    PreconditionFailedError,
    ProtocolError,
    RemoteError,
    RunStopped,
)
from reconciler.executor import Stop
from reconciler.jobs import Desired, Target, check_metrics, git_commit
from reconciler.kinds import prompt as prompt_kind
from reconciler.remote import GatewayClient, post_webhook
from reconciler.rollout import labels
from reconciler.rollout.decide import FINISH, ROLLBACK, STEP, WAIT, Decision, decide
from reconciler.rollout.judge import EMPTY, Sample
from reconciler.rollout.spec import PAUSE, Rollout, percent
from reconciler.text import iso_utc, shown

F, ANA = FIELDS.prompt, RUNTIME.analytics
MAX_ROWS = 1000  # analytics rows of one prompt's window (it is grouped by version)
OVERRIDES = ("pause", "resume", "abort", "promote")


@dataclass
class Outcome:
    """One rollout's look: what was read, decided and done."""

    prompt: str
    rollout: Rollout
    before: labels.Position | None = None
    after: labels.Position | None = None
    decision: Decision | None = None
    acted: str = ""  # what this run did (or, dry, would do): "" when nothing
    note: str = ""  # not started, moved by another run, the canary withdrawn ...
    error: str | None = None
    now: float | None = None
    stable: Sample = EMPTY
    canary: Sample = EMPTY
    # status: per step of the history, (label, canary weight, stable's and canary's error rate)
    steps: list[tuple[str, float, float | None, float | None]] = field(default_factory=list)

    @property
    def action(self) -> str:
        return self.decision.action if self.decision is not None else WAIT

    @property
    def alarming(self) -> bool:
        """Rolled back or paused by this run: the job turns red (exit 2)."""
        return bool(self.acted) and self.action in (ROLLBACK, PAUSE)

    @property
    def position(self) -> labels.Position | None:
        return self.after or self.before

    def canary_weight(self) -> float:
        pos = self.position
        if pos is None or pos.state == labels.ABORTED:
            return 0.0
        return self.rollout.canary_weight(pos.step)

    def as_dict(self) -> dict[str, Any]:
        r = self.rollout
        return {
            "prompt": self.prompt,
            "rolloutId": r.id,
            "from": r.stable,
            "canary": r.canary,
            "steps": list(r.steps),
            "before": self.before.as_dict() if self.before else None,
            "after": self.after.as_dict() if self.after else None,
            "canaryWeight": self.canary_weight(),
            "decision": self.decision.as_dict() if self.decision else None,
            "acted": self.acted,
            "note": self.note,
            "error": self.error,
            "serverTime": iso_utc(self.now) if self.now is not None else None,
            "samples": {
                "stable": _sample_dict(self.stable),
                "canary": _sample_dict(self.canary),
            },
        }


def _sample_dict(s: Sample) -> dict[str, Any]:
    return {
        "invocations": s.invocations,
        "errors": s.errors,
        "blocked": s.guardrail_blocks,  # by a guardrail
        "tokensOut": s.output_tokens,
        "p95Ms": s.latency_p95_ms,
    }


@dataclass
class RolloutRun:
    command: str  # advance, status, or an override
    dry_run: bool
    outcomes: list[Outcome] = field(default_factory=list)
    requests: int = 0
    duration_s: float = 0.0
    audit_path: str | None = None
    audit_error: str | None = None
    audit_tail: tuple[int, str] | None = None
    webhook_error: str | None = None
    metrics_error: str | None = None

    @property
    def exit_code(self) -> int:
        """1 on any error, 2 when this run rolled back or paused a rollout, else 0."""
        if any(o.error for o in self.outcomes) or self.audit_error:
            return 1
        return 2 if any(o.alarming for o in self.outcomes) else 0

    def as_dict(self, target: Target) -> dict[str, Any]:
        return {
            "command": self.command,
            "dryRun": self.dry_run,
            "target": target.url,
            "environment": target.environment,
            "exitCode": self.exit_code,
            "requests": self.requests,
            "rollouts": [o.as_dict() for o in self.outcomes],
            "auditError": self.audit_error,
            "webhookError": self.webhook_error,
            "metricsError": self.metrics_error,
        }


def rollouts_of(desired: Desired, only: str | None = None) -> list[tuple[str, Rollout]]:
    """The manifests' rollouts by prompt name (``only``: that prompt's alone)."""
    found = []
    for obj in desired.objects.values():
        r = obj.settings.get("rollout")
        if isinstance(r, Rollout) and (only is None or obj.key == only):
            found.append((obj.key, r))
    if not found:
        if only is not None:
            raise ConfigError(
                f"no TrafficSplit for prompt {shown(only)} with a rollout block in the manifests",
                "name a prompt whose TrafficSplit has spec.rollout, and pass its manifests",
            )
        raise ConfigError(
            "no TrafficSplit in the manifests has a rollout block",
            "add spec.rollout to a TrafficSplit (see README, Rollouts)",
        )
    return sorted(found, key=lambda kv: kv[0])


# -- reading -------------------------------------------------------------------------------------
@dataclass
class _Live:
    raw: Mapping[str, Any]
    prompt: Any  # Obj
    etag: str | None

    @property
    def id(self) -> str:
        return str(self.prompt.remote_id)

    @property
    def path(self) -> str:
        return PATHS.prompt.format(**{PARAMS.prompt_id: self.id})


async def _read_prompts(client: GatewayClient) -> dict[str, _Live]:
    out = {}
    for raw in await client.list_pages(PATHS.prompts):
        prompt, _ = prompt_kind.RESOURCE.live(raw, {})
        out[prompt.key] = _Live(raw, prompt, _etag(prompt.precondition))
    return out


async def _read_prompt(client: GatewayClient, live: _Live) -> _Live:
    resp = await client.request("GET", live.path)
    raw = resp.body if isinstance(resp.body, dict) else {}
    prompt, _ = prompt_kind.RESOURCE.live(raw, {}, endpoint=live.path)
    return _Live(raw, prompt, resp.etag or _etag(prompt.precondition))


def _etag(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(row: Mapping[str, Any], name: str) -> int:
    v = row.get(name)
    return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**53 else 0


def _samples(rows: Any, rollout: Rollout) -> tuple[Sample, Sample]:
    """The stable and canary samples of the analytics rows (grouped by version); a version with
    no row had no invocation in the window."""
    found: dict[str, Sample] = {}
    if not isinstance(rows, list):
        raise ProtocolError(
            "POST", PATHS.analytics, 200, None, f"the answer's {ANA.data} is not a list of rows"
        )
    for row in rows[:MAX_ROWS]:
        if not isinstance(row, dict) or not isinstance(row.get(ANA.version), str):
            continue
        p95 = row.get(ANA.latency_p95_ms)
        if not (isinstance(p95, int | float) and not isinstance(p95, bool) and 0 <= p95 < 1e9):
            p95 = None
        found[row[ANA.version]] = Sample(
            _int(row, ANA.invocations),
            _int(row, ANA.error_count),
            _int(row, ANA.guardrail_blocks),
            _int(row, ANA.output_tokens),
            float(p95) if p95 is not None else None,
        )
    return found.get(rollout.stable, EMPTY), found.get(rollout.canary, EMPTY)


async def _window(
    client: GatewayClient, live: _Live, rollout: Rollout, since: float, now: float
) -> tuple[Sample, Sample]:
    body = {
        ANA.date_from: iso_utc(since),
        ANA.date_to: iso_utc(now + 1),  # half-open: the current second included
        ANA.group_by: [ANA.version],
        ANA.filter: {ANA.prompt_id: live.id, ANA.filter_versions: [rollout.stable, rollout.canary]},
    }
    resp = await client.request("POST", PATHS.analytics, json=body)
    data = resp.body.get(ANA.data) if isinstance(resp.body, dict) else None
    return _samples(data, rollout)


def _now(client: GatewayClient) -> float:
    when = client.server_time()
    return when if when is not None else time.time()


def _rate(s: Sample) -> float | None:
    return s.errors / s.invocations if s.invocations else None


async def _step_rows(
    client: GatewayClient, live: _Live, rollout: Rollout, pos: labels.Position, now: float
) -> list[tuple[str, float, float | None, float | None]]:
    """For ``rollout status``: each step of the history with its error rates (one analytics
    request per step, at most ``labels.HISTORY``)."""
    timeline = list(pos.history)
    if not timeline or timeline[-1][1] != pos.since:
        timeline.append((str(pos.step), pos.since))
    rows: list[tuple[str, float, float | None, float | None]] = []
    for i, (what, t0) in enumerate(timeline):
        t1 = timeline[i + 1][1] if i + 1 < len(timeline) else now
        if what.isdigit() and int(what) >= 1:
            label, weight = f"step {what}", rollout.canary_weight(int(what))
        elif what in ("done", "promote"):
            label, weight = "end", rollout.canary_weight(len(rollout.steps) + 1)
        elif what in ("rollback", "abort"):
            label, weight = what, 0.0
        else:
            continue  # a pause or a resume: the weights did not change
        if t1 <= t0:
            rows.append((label, weight, None, None))
            continue
        stable, canary = await _window(client, live, rollout, t0, t1 - 1)
        rows.append((label, weight, _rate(stable), _rate(canary)))
    return rows


# -- writing -------------------------------------------------------------------------------------
class _Writer:
    """The writes of one run: each conditional on the prompt's ETag, each audited before the
    next (``audit`` None: a dry run, nothing is sent)."""

    def __init__(
        self,
        client: GatewayClient,
        audit: Callable[[dict[str, Any]], Any] | None,
        stop: Stop,
    ) -> None:
        self.client = client
        self.audit = audit
        self.stop = stop

    async def _write(
        self, method: str, path: str, body: dict[str, Any], record: dict[str, Any], **kw: Any
    ) -> None:
        """One write, sent only while the run is not stopped (``RunStopped`` otherwise), and
        its audit record (what was asked, the status or why it failed) before anything else."""
        assert self.audit is not None
        status: int | None = None
        error: str | None = None
        try:
            resp = await self.client.request(
                method, path, json=body, may_send=lambda: not self.stop.stopped, **kw
            )
            status = resp.status
        except RemoteError as exc:
            error, status = str(exc), exc.status
            raise
        except RunStopped:
            error = "not sent: the run was stopped"
            raise
        finally:
            self.audit(
                {
                    "event": "rollout",
                    **record,
                    "method": method,
                    "path": path,
                    "status": status,
                    "error": error,
                }
            )

    async def prompt(
        self,
        live: _Live,
        pos: labels.Position,
        split: Mapping[str, Any] | None,
        record: dict[str, Any],
    ) -> None:
        """Move the prompt's weights (``split``; None: unchanged) and its labels together."""
        assert self.audit is not None
        body: dict[str, Any] = {
            FIELDS.labels: {
                **live.prompt.labels,
                **labels.without_rollout(live.prompt.state_labels),
                **labels.encode(pos),
            }
        }
        if split is not None:
            body[F.traffic] = prompt_kind.SPLIT_RESOURCE.body(split)
        headers = {HEADERS.if_match: live.etag} if live.etag else {}
        record = {
            **record,
            "labels": labels.encode(pos),
            "split": dict(split) if split is not None else None,
        }
        await self._write("PUT", live.path, body, record, headers=headers)

    async def withdraw(
        self, live: _Live, rollout: Rollout, record: dict[str, Any], *, undo: bool = False
    ) -> bool:
        """Withdraw the canary (rollbackDirective: true, labelled as the rollout's doing);
        False when it was withdrawn already. ``undo``: put back a canary this rollout withdrew
        (a person resuming it); False when it is not withdrawn, or not by this rollout."""
        assert self.audit is not None
        tid = live.raw.get(F.template_id)
        if not isinstance(tid, str) or not tid:
            return False
        params = {PARAMS.template_id: tid, PARAMS.version: rollout.canary}
        path = PATHS.version.format(**params)
        resp = await self.client.request("GET", path)
        raw = resp.body if isinstance(resp.body, dict) else {}
        V = FIELDS.version
        metadata = raw.get(V.metadata)
        old = raw.get(FIELDS.labels)
        metadata = metadata if isinstance(metadata, dict) else {}
        old = old if isinstance(old, dict) else {}
        if undo:
            if raw.get(V.rollback) is not True or old.get(labels.WITHDRAWN_BY) != rollout.prompt:
                return False
            kept = {k: v for k, v in old.items() if k != labels.WITHDRAWN_BY}
            body = {V.rollback: False, V.metadata: metadata, FIELDS.labels: kept}
        elif raw.get(V.rollback) is True:
            return False
        else:
            body = {
                V.rollback: True,
                V.metadata: metadata,
                FIELDS.labels: {**old, labels.WITHDRAWN_BY: rollout.prompt},
            }
        action = "restore" if undo else "withdraw"
        await self._write(
            "PATCH", path, body, {**record, "action": action, "version": rollout.canary}
        )
        return True


def _record(o: Outcome, action: str, reason: str) -> dict[str, Any]:
    d = o.decision
    return {
        "prompt": o.prompt,
        "rolloutId": o.rollout.id,
        "action": action,
        "reason": reason,
        "fromStep": o.before.step if o.before else None,
        "evidence": [e.as_dict() for e in d.evidence] if d is not None else [],
        "samples": {"stable": _sample_dict(o.stable), "canary": _sample_dict(o.canary)},
        "serverTime": iso_utc(o.now) if o.now is not None else None,
    }


# -- one rollout ---------------------------------------------------------------------------------
async def _advance(
    client: GatewayClient,
    writer: _Writer,
    name: str,
    rollout: Rollout,
    live: _Live | None,
    *,
    dry_run: bool,
    judge_only: bool,
) -> Outcome:
    o = Outcome(name, rollout)
    if live is None:
        o.error = f"Prompt {name} is not in the org: `llmgw apply` creates it, then steps begin"
        return o
    pos = labels.position(live.prompt.state_labels)
    o.before = pos
    if pos is None or pos.rollout_id != rollout.id:
        o.note = (
            "not started: `llmgw apply` starts it (the live split is not this rollout's)"
            if pos is None
            else "not started: the live prompt carries another rollout (`llmgw apply` starts "
            "this one)"
        )
        return o
    o.now = _now(client)
    if pos.state in (labels.PROGRESSING, labels.PAUSED) and pos.step > 0:
        o.stable, o.canary = await _window(client, live, rollout, pos.since, o.now)
        o.now = _now(client)
    o.decision = decide(rollout, pos, o.now, o.stable, o.canary)
    if judge_only:
        o.steps = await _step_rows(client, live, rollout, pos, o.now)
        return o
    # a rollback's withdrawal that a killed run did not get to (a person's abort withdraws none)
    rolled_back = bool(pos.history) and pos.history[-1][0] == "rollback"
    pending = pos.state == labels.ABORTED and rolled_back and rollout.withdraw_on_rollback
    if (
        pending
        and not dry_run
        and await writer.withdraw(live, rollout, _record(o, "withdraw", "after the rollback"))
    ):
        o.acted, o.note = "withdrew the canary", f"{rollout.canary} withdrawn"
        return o
    action = o.decision.action
    if action == WAIT:
        if writer.audit is not None and not dry_run:  # every decision, with its evidence
            writer.audit({"event": "rollout", **_record(o, WAIT, o.decision.reason)})
        return o
    now = o.now
    n = len(rollout.steps)
    if action == STEP:
        nxt = o.decision.next_step or pos.step + 1
        after = labels.moved(pos, str(nxt), now, step=nxt, state=labels.PROGRESSING)
        split: Mapping[str, Any] | None = rollout.split(nxt)
        what = f"stepped to {nxt} of {n} ({percent(rollout.canary_weight(nxt))})"
    elif action == FINISH:
        after = labels.moved(pos, "done", now, step=n + 1, state=labels.DONE)
        split, what = rollout.split(n + 1), "finished: the end state is live"
    elif action == PAUSE:
        after = labels.moved(pos, "pause", now, state=labels.PAUSED)
        split, what = None, f"paused at step {pos.step}"
    else:  # rollback
        after = labels.moved(pos, "rollback", now, state=labels.ABORTED)
        split, what = rollout.split(0), f"rolled back: all traffic on {rollout.stable}"
    if dry_run:
        o.acted, o.after = f"dry run, not done: {what}", after
        return o
    try:
        await writer.prompt(live, after, split, _record(o, action, o.decision.reason))
    except PreconditionFailedError:
        # another run wrote the prompt since it was read: re-read, and report what it did
        fresh = await _read_prompt(client, live)
        now_pos = labels.position(fresh.prompt.state_labels)
        if now_pos != pos:
            o.note = "another run moved this rollout first: " + (
                f"now step {now_pos.step}, {now_pos.state}" if now_pos else "its labels changed"
            )
            o.after = now_pos
            o.decision = Decision(WAIT, o.note)
            return o
        raise
    o.acted, o.after = what, after
    withdraw = action == ROLLBACK and rollout.withdraw_on_rollback
    if withdraw and await writer.withdraw(live, rollout, _record(o, "withdraw", "rollback")):
        o.acted += f"; {rollout.canary} withdrawn"
    return o


# -- overrides -----------------------------------------------------------------------------------
async def _override(
    client: GatewayClient, writer: _Writer, name: str, rollout: Rollout, live: _Live, what: str
) -> Outcome:
    o = Outcome(name, rollout)
    pos = labels.position(live.prompt.state_labels)
    o.before = pos
    o.now = now = _now(client)
    n = len(rollout.steps)
    if pos is None or pos.rollout_id != rollout.id:
        o.error = (
            f"the live prompt {name} carries no position of this rollout: `llmgw apply` starts it"
        )
        return o
    split: Mapping[str, Any] | None = None
    if what == "pause":
        if pos.state != labels.PROGRESSING:
            o.error = f"the rollout is {pos.state}, not progressing: nothing to pause"
            return o
        after, done = labels.moved(pos, "pause", now, state=labels.PAUSED), "paused"
    elif what == "resume":
        if pos.state == labels.PAUSED:
            after = labels.moved(pos, "resume", now, state=labels.PROGRESSING)
            done = f"resumed at step {pos.step}: a new window begins now"
        elif pos.state == labels.ABORTED:
            after = labels.moved(pos, "resume", now, step=1, state=labels.PROGRESSING)
            split, done = rollout.split(1), f"restarted at step 1 ({percent(rollout.steps[0])})"
            # a canary this rollout withdrew comes back first: traffic cannot go to it before
            if await writer.withdraw(live, rollout, _record(o, "restore", "resume"), undo=True):
                done = f"{rollout.canary} restored; {done}"
        else:
            o.error = f"the rollout is {pos.state}: only a paused or aborted one resumes"
            return o
    elif what == "abort":
        if pos.state in (labels.ABORTED, labels.DONE):
            o.error = f"the rollout is {pos.state} already"
            return o
        after = labels.moved(pos, "abort", now, state=labels.ABORTED)
        split, done = rollout.split(0), f"aborted: all traffic on {rollout.stable}"
    else:  # promote
        if pos.state == labels.DONE:
            o.error = "the rollout is done already"
            return o
        after = labels.moved(pos, "promote", now, step=n + 1, state=labels.DONE)
        split, done = rollout.split(n + 1), "promoted: the end state is live"
    await writer.prompt(live, after, split, {**_record(o, what, f"by hand: {what}")})
    o.acted, o.after = done, after
    return o


# -- the runs ------------------------------------------------------------------------------------
async def run(
    target: Target,
    desired: Desired,
    *,
    command: str = "advance",
    prompt: str | None = None,
    dry_run: bool = False,
    audit_path: str = ".llmgw/audit.jsonl",
    lock_timeout: float = 10.0,
    webhook: str | None = None,
    metrics_file: str | None = None,
    env: Mapping[str, str] | None = None,
    stop: Stop | None = None,
) -> RolloutRun:
    """``advance`` (decide and act on every rollout), ``status`` (read and judge, never write),
    or an override of ``prompt``'s rollout. Writes only after the audit log is open; a dry run
    or status opens none and sends no write. Once ``stop`` is set (a signal), no new write is
    sent and the rollouts not yet looked at are left as they are."""
    stop = stop or Stop()
    env = os.environ if env is None else env
    started = time.monotonic()
    judge_only = command == "status"
    read_only = dry_run or judge_only
    chosen = rollouts_of(desired, prompt if command in OVERRIDES else None)
    result = RolloutRun(command, dry_run or judge_only)
    if metrics_file and not read_only:
        check_metrics(metrics_file)
    log = None
    if not read_only:
        result.audit_path = audit_path
        log = auditlog.AuditLog.open(
            audit_path,
            actor=auditlog.actor_from_env(env),
            git_commit=git_commit(),
            key=auditlog.key_from_env(env),
            lock_timeout=lock_timeout,
        )
    context = {"environment": target.environment, "target": target.url, "command": command}
    try:
        async with target.client(read_only=read_only) as client:
            writer = _Writer(
                client, (lambda rec: log.append({**rec, **context})) if log else None, stop
            )
            try:
                live = await _read_prompts(client)
                for name, rollout in chosen:
                    if stop.stopped:
                        note = f"not looked at: {stop.why}"
                        result.outcomes.append(Outcome(name, rollout, note=note))
                        continue
                    try:
                        if command in OVERRIDES:
                            have = live.get(name)
                            if have is None:
                                o = Outcome(name, rollout, error=f"Prompt {name} is not in the org")
                            else:
                                o = await _override(client, writer, name, rollout, have, command)
                        else:
                            o = await _advance(
                                client,
                                writer,
                                name,
                                rollout,
                                live.get(name),
                                dry_run=dry_run,
                                judge_only=judge_only,
                            )
                    except RemoteError as exc:
                        o = Outcome(name, rollout, error=str(exc))
                    except RunStopped:
                        o = Outcome(name, rollout, note=f"not written: {stop.why}")
                    result.outcomes.append(o)
            finally:
                result.requests = client.requests_sent
    finally:
        result.duration_s = time.monotonic() - started
        if log is not None:
            result.audit_error = log.failed
            result.audit_tail = log.tail
            log.close()
    if webhook and not read_only:
        result.webhook_error = await post_webhook(webhook, redact_mod.scrub(result.as_dict(target)))
    if metrics_file and not read_only:
        try:
            metricsmod.write_textfile(metrics_file, rollout_metrics(result.outcomes, time.time()))
        except FileError as exc:
            result.metrics_error = str(exc)
    return result


def rollout_metrics(outcomes: Iterable[Outcome], finished_at: float) -> str:
    """Gauges per prompt: the canary's weight, the step, the state (one sample per state)."""
    weight = metricsmod.Family("llmgw_rollout_canary_weight", "The canary's share of traffic.")
    step = metricsmod.Family("llmgw_rollout_step", "The rollout's step (0: all on stable).")
    state = metricsmod.Family(
        "llmgw_rollout_state", "1 for the rollout's state (progressing, paused, aborted, done)."
    )
    for o in outcomes:
        pos = o.position
        if pos is None:
            continue
        weight.add(o.canary_weight(), prompt=o.prompt)
        step.add(pos.step, prompt=o.prompt)
        for s in labels.STATES:
            state.add(1.0 if pos.state == s else 0.0, prompt=o.prompt, state=s)
    last = metricsmod.Family(
        "llmgw_rollout_last_run_timestamp_seconds", "When rollout advance last finished."
    ).add(finished_at)
    return metricsmod.prometheus_text([weight, step, state, last])
