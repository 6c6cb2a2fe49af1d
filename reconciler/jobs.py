"""The three jobs (plan, apply, drift) and export, wired from the pure core and the client.

This is the imperative shell around the pure planner: it validates the manifests (nothing is sent
when they are invalid), opens one client per run, reads the live org, calls the pure functions,
executes, audits and verifies. It never prints, never prompts and never exits: the CLI renders
what these functions return and decides the exit code; callbacks carry progress and the
confirmation question. Every outside effect has one owner: HTTP the client, files the audit log,
metrics, planfile and export modules.

A saved plan is checked, never trusted: ``prepare_apply`` derives the operations again from the
manifests the plan records (their hash, and the ignore file's, must still match) and the live
org, refuses a stale plan (an object moved) with ``StalePlanError`` and any other difference with
``PlanMismatchError``, and executes the derivation, never the file's requests. ``execute`` checks
every file it will write before the first write (the audit log by its run-start record, the
metrics file by a probe), holds the audit log's lock for the run, and stops cleanly (``Stop``)
on a signal, the run deadline or an audit line that cannot be written.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler import audit as auditlog
from reconciler import drift as driftmod
from reconciler import export as exportmod
from reconciler import gitdiff, kinds, planfile, renames
from reconciler import ignores as ignoremod
from reconciler import metrics as metricsmod
from reconciler import redact as redact_mod
from reconciler import rules as rules_mod
from reconciler.endpoints import PATHS, RUNTIME, STATUSES
from reconciler.errors import (
    AuditError,
    ConfigError,
    FileError,
    InvariantError,
    LlmgwError,
    LockError,
    ManifestError,
    PlanMismatchError,
    StalePlanError,
)
from reconciler.executor import (
    APPLIED,
    FAILED,
    NOT_ATTEMPTED,
    ApplyResult,
    Executor,
    OpResult,
    Permissions,
    Stop,
    StopReason,
    check_plan,
)
from reconciler.gateway import GatewayReader
from reconciler.live import read_live
from reconciler.model import Problem
from reconciler.normalize import desired_state
from reconciler.objects import LiveState, Obj
from reconciler.planner import Operation, OpType, Plan, plan
from reconciler.policy.pack import Policies
from reconciler.remote import GatewayClient, Settings, TokenStore, post_webhook
from reconciler.validate import Report, validate_paths

log = logging.getLogger("llmgw.run")


@dataclass(frozen=True)
class Target:
    """Where a run goes: the connection settings, the environment's name, and (in tests and the
    in-process emulator) an httpx transport to use instead of the network."""

    settings: Settings
    environment: str | None = None
    transport: Any = None
    parallelism: int = 8
    client_options: Mapping[str, Any] = field(default_factory=dict)
    # one OAuth token for the whole run, whichever clients it opens (apply: a read, then writes)
    tokens: TokenStore = field(default_factory=TokenStore, compare=False, repr=False)

    @property
    def url(self) -> str:
        return self.settings.target

    def client(self, *, read_only: bool) -> GatewayClient:
        return GatewayClient(
            self.settings,
            parallelism=self.parallelism,
            read_only=read_only,
            transport=self.transport,
            tokens=self.tokens,
            **self.client_options,
        )


def target_from_env(
    env: Mapping[str, str], *, environment: str | None = None, parallelism: int = 8
) -> Target:
    if parallelism < 1:
        raise ConfigError(f"--parallelism {parallelism} is not a positive number", "use 1 or more")
    return Target(
        Settings.from_env(env),
        environment or env.get("LLMGW_ENVIRONMENT") or None,
        parallelism=parallelism,
    )


# -- manifests ---------------------------------------------------------------------------------
@dataclass
class Desired:
    report: Report
    objects: dict[str, Obj]
    ignores: ignoremod.IgnoreSet

    @property
    def warnings(self) -> list[Problem]:
        return self.report.warnings


def load_desired(
    paths: Sequence[str],
    *,
    ignore_file: str | None = None,
    today: dt.date | None = None,
    policies: Policies | None = None,
    environment: str | None = None,
) -> Desired:
    """Validate the manifests (and judge ``policies`` for ``environment``) and the ignore file;
    ManifestError (with every problem) if any error. Nothing is ever sent to the gateway before
    this returns."""
    report = validate_paths(
        list(paths), policies=policies, env=environment or "", today=today or dt.date.today()
    )
    ignores = ignoremod.load(ignore_file, today or dt.date.today())
    problems = report.problems + ignores.problems
    if any(p.severity == "error" for p in problems):
        raise ManifestError(problems)
    if not report.documents:
        raise ConfigError(
            "no manifests found in " + ", ".join(paths),
            "pass files or folders holding *.yaml manifests",
        )
    return Desired(report, desired_state(report.documents), ignores)


def git_commit() -> str | None:
    return auditlog.git_commit(os.getcwd())


def ignore_source(ignore_file: str | None) -> str | None:
    """The ignore file a run reads: the one given, else the default one when present."""
    if ignore_file is not None:
        return ignore_file
    return ignoremod.DEFAULT_FILE if os.path.exists(ignoremod.DEFAULT_FILE) else None


# -- plan ----------------------------------------------------------------------------------------
@dataclass
class PlanRun:
    plan: Plan
    live: LiveState
    desired: Desired
    saved: planfile.SavedPlan
    requests: int


async def _read(
    client: GatewayClient, desired: Desired, targeted: planfile.Targeted | None = None
) -> LiveState:
    """The live state the plan needs: for a targeted plan only what its set refers to (the
    collections' listings, the version listings of the templates it touches), as the manifests
    name it (``renames.view``: what plan, apply and drift all see)."""
    before = client.requests_sent
    wanted = _objects(desired, targeted)
    objects = list(wanted.values())
    if targeted is not None:
        for ref in targeted.removed:  # bare: their kind knows what a read of them needs
            kind, _, key = ref.partition("/")
            if kinds.get(kind) is not None:
                objects.append(Obj(kind, key, {}))
    live = await read_live(GatewayReader(client), objects, targeted=targeted is not None)
    live = renames.view(wanted, live)
    live.requests = client.requests_sent - before
    return live


def targeted_set(
    paths: Sequence[str], changed_since: str, desired: Desired, prune: bool
) -> planfile.Targeted:
    """What ``--changed-since REF`` plans: the objects of the documents the change added or
    edited (a prompt and its split together: one remote object), and those it removed (not
    those a manifest renames: they move, with what follows them)."""
    if prune:
        raise ConfigError(
            "--prune cannot be used with --changed-since: finding orphans needs the full read",
            "plan in full with --prune, or leave --prune out",
        )
    change = gitdiff.changed_documents(paths, changed_since, desired.report.documents)
    refs = {f"{kind}/{key}" for kind, key in change.changed}
    for r in kinds.REGISTRY:  # a kind and its owner share one remote object
        if r.owner is not None:
            for ref in list(refs):
                kind, _, key = ref.partition("/")
                if kind == r.kind:
                    refs.add(f"{r.owner}/{key}")
                elif kind == r.owner:
                    refs.add(f"{r.kind}/{key}")
    removed = {
        f"{d.kind}/{ident}" for d in change.removed if (ident := rules_mod.identity(d))
    } - set(desired.objects)
    removed -= set(renames.moved(desired.objects, removed))
    return planfile.Targeted(
        changed_since,
        change.commit,
        tuple(sorted(r for r in refs if r in desired.objects)),
        tuple(sorted(removed)),
    )


def _restricted(result: Plan, targeted: planfile.Targeted | None) -> Plan:
    """A targeted plan reports as orphaned only what its change removed, and no unmanaged
    objects (it did not look at the rest of the org)."""
    if targeted is None:
        return result
    removed = set(targeted.removed)
    return dataclasses.replace(
        result, orphaned=tuple(r for r in result.orphaned if r in removed), unmanaged=()
    )


def _saved(
    target: Target,
    paths: Sequence[str],
    desired: Desired,
    result: Plan,
    requests: int,
    ignore_file: str | None,
    today: dt.date,
    targeted: planfile.Targeted | None = None,
) -> planfile.SavedPlan:
    ignores = ignore_source(ignore_file)
    return planfile.SavedPlan(
        result,
        target.url,
        tuple(paths),
        planfile.manifests_hash(desired.report.files),
        git_commit(),
        target.environment,
        requests,
        ignore_path=ignores,
        ignore_hash=planfile.file_hash(ignores),
        ignores_date=today.isoformat(),
        targeted=targeted,
    )


async def make_plan(
    target: Target,
    paths: Sequence[str],
    *,
    prune: bool = False,
    ignore_file: str | None = None,
    today: dt.date | None = None,
    changed_since: str | None = None,
    policies: Policies | None = None,
) -> PlanRun:
    """Validate (policies included), read live with read scopes only, plan (``changed_since``:
    only what the change since that git revision touched). Raises ManifestError, ConfigError
    or PlanError."""
    t0 = time.perf_counter()
    today = today or dt.date.today()
    desired = load_desired(
        paths,
        ignore_file=ignore_file,
        today=today,
        policies=policies,
        environment=target.environment,
    )
    targeted = None
    if changed_since is not None:
        targeted = targeted_set(paths, changed_since, desired, prune)
    t1 = time.perf_counter()
    log.debug("validated %d objects in %.2f s", len(desired.objects), t1 - t0)
    async with target.client(read_only=True) as client:
        live = await _read(client, desired, targeted)
    t2 = time.perf_counter()
    log.debug(
        "read %d live objects in %d requests, %.2f s", len(live.objects), live.requests, t2 - t1
    )
    result = _planned(desired, live, prune, targeted)
    result = _with_warnings(result, desired)
    saved = _saved(target, paths, desired, result, live.requests, ignore_file, today, targeted)
    log.debug("planned in %.2f s", time.perf_counter() - t2)
    return PlanRun(result, live, desired, saved, live.requests)


def _planned(
    desired: Desired, live: LiveState, prune: bool, targeted: planfile.Targeted | None
) -> Plan:
    objects = _objects(desired, targeted)
    result = plan(objects, live, prune=prune, ignores=desired.ignores.by_ref())
    return _restricted(result, targeted)


def _objects(desired: Desired, targeted: planfile.Targeted | None) -> dict[str, Obj]:
    """The desired objects a plan covers: all of them, or a targeted plan's set."""
    if targeted is None:
        return desired.objects
    return {ref: desired.objects[ref] for ref in targeted.objects if ref in desired.objects}


def _with_warnings(result: Plan, desired: Desired) -> Plan:
    extra = tuple(desired.warnings) + tuple(
        Problem(
            e.source.partition(":")[0],
            int(e.source.partition(":")[2] or 0) if e.source.partition(":")[2].isdigit() else 0,
            "warning",
            "",
            "",
            e.field,
            f"ignore entry for {e.identity} expired on {e.expires.isoformat()}: the field is "
            "compared again",
            "renew the entry's expiry or remove it from the ignore file",
            "ignore.expired",
        )
        for e in desired.ignores.expired
    )
    if not extra:
        return result
    return Plan(
        result.operations,
        result.orphaned,
        result.unmanaged,
        tuple(result.warnings) + extra,
        result.prune,
    )


# -- apply ---------------------------------------------------------------------------------------
@dataclass
class Prepared:
    """A plan ready to execute: fresh, or derived again for a saved plan that matched it."""

    plan: Plan
    live: LiveState
    desired: Desired
    saved: planfile.SavedPlan
    requests: int
    from_file: str | None = None
    permissions: Permissions = field(default_factory=Permissions)


def _saved_inputs(saved: planfile.SavedPlan, target: Target, ignore_file: str | None) -> list[str]:
    """Why the inputs a saved plan records (target, ignore file) no longer hold."""
    reasons = []
    if saved.target.rstrip("/") != target.url.rstrip("/"):
        reasons.append(f"the plan was made for {saved.target}, this run targets {target.url}")
    if ignore_file is not None and ignore_file != saved.ignore_path:
        raise ConfigError(
            f"the saved plan was made with the ignore file {saved.ignore_path or '(none)'}; "
            f"--ignore-file {ignore_file} cannot change it",
            f"re-run `llmgw plan --ignore-file {ignore_file} --out FILE`, or leave "
            "--ignore-file out",
        )
    now = planfile.file_hash(saved.ignore_path)
    if saved.ignore_path is None:
        if os.path.exists(ignoremod.DEFAULT_FILE):
            reasons.append(
                f"the ignore file {ignoremod.DEFAULT_FILE} exists now; the plan was made "
                "without one"
            )
    elif now is None:
        reasons.append(f"the ignore file {saved.ignore_path} was removed since the plan was made")
    elif now != saved.ignore_hash:
        reasons.append(f"the ignore file {saved.ignore_path} changed since the plan was made")
    return reasons


async def _check_saved(
    target: Target,
    plan_file: str,
    *,
    ignore_file: str | None,
    today: dt.date,
    policies: Policies | None = None,
) -> Prepared:
    """Load a saved plan and derive it again; the derivation when the file matches it. The
    policies are judged again: a saved plan is checked, not trusted."""
    saved = planfile.load(plan_file)
    reasons = _saved_inputs(saved, target, ignore_file)
    present = saved.ignore_path if planfile.file_hash(saved.ignore_path) else None
    desired = load_desired(
        saved.paths,
        ignore_file=present,
        today=today,
        policies=policies,
        environment=target.environment,
    )
    if planfile.manifests_hash(desired.report.files) != saved.manifests_hash:
        reasons.append(
            "the manifests changed since the plan was made (" + ", ".join(saved.paths) + ")"
        )
    if reasons:
        raise StalePlanError(reasons)
    async with target.client(read_only=True) as client:
        live = await _read(client, desired, saved.targeted)
    derived = _planned(desired, live, saved.plan.prune, saved.targeted)
    differences, more = planfile.compare(saved.raw_operations, derived.operations)
    if differences:
        # an object that moved since the plan explains a difference: stale, not edited (the
        # file's operations are asked only about objects the derivation has too)
        refs = {ref for op in derived.operations for ref in (op.ref, *op.covers)}
        planned = Plan(tuple(op for op in saved.plan.operations if op.ref in refs))
        moved = planfile.stale_reasons(planned, live)
        moved += planfile.moved_since(saved, derived, desired.ignores.expired, today)
        if moved:
            raise StalePlanError(moved)
        raise PlanMismatchError(
            differences, more, saved.tool if saved.tool != planfile.TOOL else None
        )
    derived = _with_warnings(derived, desired)
    return Prepared(derived, live, desired, saved, live.requests, plan_file)


async def prepare_apply(
    target: Target,
    *,
    paths: Sequence[str] = (),
    plan_file: str | None = None,
    prune: bool = False,
    allow_replace: bool = False,
    ignore_file: str | None = None,
    today: dt.date | None = None,
    changed_since: str | None = None,
    policies: Policies | None = None,
) -> Prepared:
    """Plan afresh (``changed_since``: targeted); or load a saved plan, derive it again from
    its manifests and the live org (on its targeted set, if it has one), and refuse it when
    stale or when it differs from the derivation in any way. Refuses destructive operations
    without permission, and anything the executor would refuse. Sends no write."""
    today = today or dt.date.today()
    if plan_file is None:
        run = await make_plan(
            target,
            paths,
            prune=prune,
            ignore_file=ignore_file,
            today=today,
            changed_since=changed_since,
            policies=policies,
        )
        prepared = Prepared(run.plan, run.live, run.desired, run.saved, run.requests)
    else:
        prepared = await _check_saved(
            target, plan_file, ignore_file=ignore_file, today=today, policies=policies
        )
    prepared.permissions = Permissions(
        prune,
        allow_replace,
        frozenset(ref for ref, o in prepared.desired.objects.items() if o.allow_replace),
    )
    refused = prepared.permissions.refusals(prepared.plan)
    if refused:
        raise ConfigError(
            "apply refused, nothing was sent:\n" + "\n".join(f"  - {r}" for r in refused),
            "review the destructive operations and pass the flag that permits them",
        )
    violations = check_plan(prepared.plan, prepared.live, prepared.permissions)
    if violations:
        raise InvariantError(violations)
    return prepared


@dataclass
class ApplyRun:
    prepared: Prepared
    result: ApplyResult
    verify_plan: Plan | None = None
    verify_error: str | None = None
    index_health: dict[str, str] = field(default_factory=dict)
    audit_path: str | None = None
    audit_notes: list[str] = field(default_factory=list)
    audit_tail: tuple[int, str] | None = None  # the last record's seq and hash
    audit_error: str | None = None  # why the audit log stopped taking records
    webhook_error: str | None = None
    metrics_error: str | None = None
    metrics: list[Any] = field(default_factory=list)
    requests: int = 0
    duration_s: float = 0.0
    stopped: StopReason | None = None

    @property
    def ok(self) -> bool:
        return (
            self.result.ok
            and self.stopped is None
            and self.verify_error is None
            and (self.verify_plan is None or not self.verify_plan.changes)
        )


def _counts(result: ApplyResult) -> dict[str, int]:
    return {
        "applied": len(result.by_outcome(APPLIED)),
        "failed": len(result.by_outcome(FAILED)),
        "notAttempted": len(result.by_outcome(NOT_ATTEMPTED)),
    }


async def execute(
    target: Target,
    prepared: Prepared,
    *,
    audit_path: str,
    on_event: Callable[[str, OpResult], None] | None = None,
    webhook: str | None = None,
    metrics_file: str | None = None,
    mirror_audit: bool = False,
    env: Mapping[str, str] | None = None,
    index_wait_seconds: float = 120.0,
    stop: Stop | None = None,
    deadline: float | None = None,
    timeout_text: str = "",
    lock: auditlog.AuditLock | None = None,
    lock_timeout: float = 10.0,
) -> ApplyRun:
    """Run the plan's waves, audit every write, then verify with a fresh read.

    Before the first write: the metrics file is probed and the audit log locked, read and given
    a run-start record (FileError, AuditError: nothing is sent). ``stop`` (a signal handler's)
    and ``deadline`` (loop time) stop the run cleanly: no new writes, in-flight ones finished or
    abandoned, the summary returned with ``stopped`` set."""
    env = os.environ if env is None else env
    started = time.monotonic()
    stop = stop or Stop()
    key = auditlog.key_from_env(env)
    if metrics_file:
        check_metrics(metrics_file)
    try:
        log = auditlog.AuditLog.open(
            audit_path,
            actor=auditlog.actor_from_env(env),
            git_commit=git_commit(),
            key=key,
            lock=lock,
            lock_timeout=lock_timeout,
        )
    except LockError:
        raise
    except AuditError as exc:
        raise AuditError(f"{exc}; nothing was sent to the org") from None
    run = ApplyRun(prepared, ApplyResult(), audit_path=audit_path)
    run.audit_notes.extend(log.notes)
    context = {"environment": target.environment, "target": target.url}
    loop = asyncio.get_running_loop()
    timer = None
    outcome = "error"
    try:
        try:
            log.append(
                {
                    "event": "run-start",
                    "operations": len(prepared.plan.changes),
                    "planFile": prepared.from_file,
                    "manifestsHash": prepared.saved.manifests_hash,
                    "pid": os.getpid(),
                    **context,
                }
            )
        except AuditError as exc:
            raise AuditError(
                f"{exc}; nothing was sent to the org. Free space on that file system, or "
                "choose another --audit-log"
            ) from None
        if deadline is not None:
            reason = StopReason(
                "timeout",
                f"the run did not finish within --timeout {timeout_text}".rstrip(),
            )
            timer = loop.call_at(deadline, stop.request, reason)
        async with target.client(read_only=False) as client:
            executor = Executor(
                client,
                prepared.plan,
                prepared.live,
                permissions=prepared.permissions,
                stop=stop,
                parallelism=target.parallelism,
                audit=lambda rec: log.append({**rec, **context}),
                on_event=on_event,
                index_wait_seconds=index_wait_seconds,
            )
            try:
                run.result = await executor.run()
                if run.result.ok and not stop.stopped:
                    await _verify(client, run, stop)
                if mirror_audit and not stop.stopped:
                    await _mirror(client, run)
            finally:  # the requests sent, also when the run or its verification failed
                run.requests = client.requests_sent
                run.metrics = list(client.metrics())
        outcome = "done"
    finally:
        if timer is not None:
            timer.cancel()
        run.stopped = stop.reason
        run.duration_s = time.monotonic() - started
        if log.failed is None:
            try:
                log.append(
                    {
                        "event": "run-end",
                        "outcome": outcome if run.stopped is None else "stopped",
                        "ok": run.ok if outcome == "done" else False,
                        "stopped": run.stopped.message if run.stopped else None,
                        **_counts(run.result),
                        "requests": run.requests,
                        **context,
                    }
                )
            except AuditError:
                pass  # reported below: the log says why it failed
        run.audit_error = log.failed
        run.audit_tail = log.tail
        log.close()
    if webhook:
        payload = redact_mod.scrub(apply_summary(run, target))
        run.webhook_error = await post_webhook(webhook, payload)
    if metrics_file:
        try:
            metricsmod.write_textfile(
                metrics_file,
                metricsmod.apply_metrics(
                    [(r.op.kind, r.outcome) for r in run.result.results],
                    run.metrics,
                    run.duration_s,
                    time.time(),
                    run.ok,
                    previous=_read_text(metrics_file),
                ),
            )
        except FileError as exc:  # the org was written: a metrics file never undoes that
            run.metrics_error = str(exc)
    return run


def check_metrics(path: str) -> None:
    """FileError (saying nothing was sent) unless the metrics file can be written."""
    try:
        metricsmod.check_writable(path)
    except FileError as exc:
        raise FileError(
            exc.path, exc.reason, "choose another --metrics-file; nothing was sent"
        ) from None


async def _verify(client: GatewayClient, run: ApplyRun, stop: Stop) -> None:
    """The verification read, given up when the run is stopped meanwhile."""
    prepared = run.prepared

    async def read() -> None:
        targeted = prepared.saved.targeted  # a targeted apply verifies its own set
        live = await _read(client, prepared.desired, targeted)
        run.verify_plan = _planned(prepared.desired, live, prepared.plan.prune, targeted)
        run.index_health = _index_health(prepared.plan, live)

    task = asyncio.ensure_future(read())
    waiter = asyncio.ensure_future(stop.stopped_event.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
    if task.cancelled():
        return
    exc = task.exception()
    if isinstance(exc, LlmgwError):  # reported as a failed verification
        run.verify_error = str(exc)
    elif exc is not None:
        raise exc


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def _index_health(result: Plan, live: LiveState) -> dict[str, str]:
    out = {}
    for op in result.changes:
        if kinds.resource(op.kind).reports_health and op.action != OpType.DELETE:
            have = live.get(op.ref)
            out[op.ref] = (have.status or "unknown") if have is not None else "absent"
    return out


async def _mirror(client: GatewayClient, run: ApplyRun) -> None:
    """Mirror the run to the gateway's audit-log endpoint (seed 003): one record per applied
    prompt operation. Never fatal: a failure is noted in the run."""
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    fields = RUNTIME.audit
    for r in run.result.results:
        if r.outcome != APPLIED or not kinds.resource(r.op.kind).mirrored:
            continue
        try:
            await client.request(
                "POST",
                PATHS.audit_logs,
                json={
                    fields.prompt_id: r.op.remote_id or r.op.key,
                    fields.action: r.op.action.value,
                    fields.timestamp: stamp,
                    fields.details: {"identity": r.op.ref, "reason": r.op.reason},
                    fields.compliance_status: STATUSES.approved,
                },
            )
        except LlmgwError as exc:  # the mirror is best effort by contract
            run.audit_notes.append(f"audit mirror to the gateway failed: {exc}")
            return


def apply_summary(run: ApplyRun, target: Target) -> dict[str, Any]:
    res = run.result
    counts = _counts(res)
    return {
        "text": (
            f"llmgw apply on {target.environment or target.url}: "
            f"{counts['applied']} applied, {counts['failed']} failed, "
            f"{counts['notAttempted']} not attempted"
            + ("" if run.ok else " (FAILED)")
            + (f"; stopped: {run.stopped.message}" if run.stopped else "")
        ),
        "ok": run.ok,
        "target": target.url,
        "environment": target.environment,
        "gitCommit": run.prepared.saved.git_commit,
        "stopped": run.stopped.message if run.stopped else None,
        "unaudited": list(res.unaudited),
        "auditLog": (
            {"path": run.audit_path, "lastSeq": run.audit_tail[0], "lastHash": run.audit_tail[1]}
            if run.audit_tail
            else None
        ),
        "operations": [r.as_dict() for r in res.results],
    }


def dry_run_requests(result: Plan) -> list[dict[str, Any]]:
    """The ordered requests apply would send (ids not yet known shown as references), redacted
    as every output is."""
    out = []
    for wave_no, wave in enumerate(result.waves(), start=1):
        for op in wave:
            for req in op.requests:
                entry = planfile.operation_dict(
                    Operation(op.action, op.kind, op.key, op.reason, op.phase, requests=(req,))
                )["requests"][0]
                entry["wave"] = wave_no
                entry["operation"] = f"{op.action.value} {op.ref}"
                out.append(redact_mod.scrub(entry))
    return out


# -- drift ---------------------------------------------------------------------------------------
@dataclass
class DriftRun:
    report: driftmod.DriftReport
    desired: Desired
    requests: int
    duration_s: float
    webhook_error: str | None = None
    metrics_error: str | None = None


async def detect_drift(
    target: Target,
    paths: Sequence[str],
    *,
    ignore_file: str | None = None,
    today: dt.date | None = None,
    webhook: str | None = None,
    metrics_file: str | None = None,
) -> DriftRun:
    """Read-only by construction: the client refuses any write before sending it. The metrics
    file is probed before the org is read; failing to write it at the end is a warning."""
    started = time.monotonic()
    if metrics_file:
        check_metrics(metrics_file)
    desired = load_desired(paths, ignore_file=ignore_file, today=today)
    try:
        async with target.client(read_only=True) as client:
            live = await _read(client, desired)
    except Exception:
        if metrics_file:
            with contextlib.suppress(FileError):  # the read's own error is the one to report
                _drift_metrics(metrics_file, None, time.monotonic() - started)
        raise
    report = driftmod.detect(desired.objects, live, desired.ignores.by_ref())
    run = DriftRun(report, desired, live.requests, time.monotonic() - started)
    if webhook and not report.in_sync:
        payload = redact_mod.scrub(drift_payload(run, target))
        run.webhook_error = await post_webhook(webhook, payload)
    if metrics_file:
        try:
            _drift_metrics(metrics_file, report, run.duration_s)
        except FileError as exc:
            run.metrics_error = str(exc)
    return run


def _drift_metrics(path: str, report: driftmod.DriftReport | None, duration: float) -> None:
    counts: dict[tuple[str, str], int] = {}
    checked: dict[str, int] = {}
    if report is not None:
        for f in report.findings:
            counts[(f.kind, f.state)] = counts.get((f.kind, f.state), 0) + 1
        checked = dict(report.checked_by_kind)
    metricsmod.write_textfile(
        path,
        metricsmod.drift_metrics(
            counts, checked, duration, time.time(), report is not None, previous=_read_text(path)
        ),
    )


def drift_payload(run: DriftRun, target: Target) -> dict[str, Any]:
    r = run.report
    where = target.environment or target.url
    lines = [
        f"llmgw drift on {where}: {len(r.drifted)} of {r.checked} objects drifted "
        f"({r.count(driftmod.MODIFIED)} modified, {r.count(driftmod.MISSING)} missing, "
        f"{r.count(driftmod.ORPHANED)} orphaned)"
    ]
    for f in r.drifted[:20]:
        fields = ", ".join(d.path for d in f.diff[:5])
        lines.append(f"• {f.state}: {f.ref}" + (f" ({fields})" if fields else ""))
    return {
        "text": "\n".join(lines),
        "target": target.url,
        "environment": target.environment,
        "inSync": r.in_sync,
        "checked": r.checked,
        "findings": [f.as_dict() for f in r.findings],
    }


# -- export --------------------------------------------------------------------------------------
@dataclass
class ExportRun:
    files: list[exportmod.ExportFile]
    written: list[str]
    requests: int
    skipped: list[str] = field(default_factory=list)  # prompts no manifest can describe


async def export_org(
    target: Target,
    out_dir: str,
    *,
    kinds: Sequence[str] = (),
    name: str | None = None,
    force: bool = False,
) -> ExportRun:
    if name is not None:
        try:
            re.compile(name)
        except re.error as exc:
            raise ConfigError(
                f"--name {name!r} is not a valid regular expression ({exc})", "fix the pattern"
            ) from None
    async with target.client(read_only=True) as client:
        live = await read_live(GatewayReader(client), all_versions=True)
        requests = client.requests_sent
    # the editor modeline points at the repository's schemas/ when the export lands in one
    schema = os.path.abspath(os.path.join("schemas", "manifest.schema.json"))
    rel = (
        os.path.relpath(schema, os.path.abspath(out_dir)).replace(os.sep, "/")
        if os.path.isfile(schema)
        else None
    )
    files = exportmod.render(live, kinds, name, schema=rel)
    existing = exportmod.conflicts(files, out_dir)
    if existing and not force:
        raise ConfigError(
            "export would overwrite "
            + ", ".join(existing[:10])
            + (f" and {len(existing) - 10} more" if len(existing) > 10 else ""),
            "choose an empty --out folder, or pass --force",
        )
    written = exportmod.write(files, out_dir)
    return ExportRun(files, written, requests, exportmod.unexportable(live))


__all__ = [
    "Target",
    "detect_drift",
    "execute",
    "export_org",
    "make_plan",
    "prepare_apply",
]
