"""The command line: the only module that imports click.

Thin by design: it parses options, wires the core together, echoes what a view renders and maps
outcomes to the exit codes of the contract (docs/cli in README): 0 ok, 1 expected failure, 2
changes/drift (only where promised), 3 internal error (traceback written to a log file), 64 usage
error, 130 interrupted (SIGINT), 143 terminated (SIGTERM). The core never prints and never exits.

Each command picks its view once, from ``--output`` (``views.plan.view(output_format, style)``),
and never branches on the format again; the wording of results, notices and prompts is the
views' (``reconciler.views``). What is left here is this module's own: click, the terminal
(colour or not, the confirmation prompt, the progress bar), and the messages of the exit-code
and signal handling below. Everything printed goes through ``echo``, so through the redactor.

Signals are this module's too (``_SignalPolicy``): outside apply's writes, SIGTERM and SIGINT end
the command at once (a read cancelled, nothing written); while apply writes, the first asks the
run to stop cleanly (no new writes, in-flight ones finished, audit lines and the summary
written) and the second exits at once.
"""

from __future__ import annotations

import datetime as _dt
import gc
import os
import re
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, NamedTuple

import click

from reconciler import __version__, views
from reconciler import redact as redact_mod
from reconciler.errors import ConfigError, DeadlineError, LlmgwError, ManifestError
from reconciler.kinds import KINDS
from reconciler.redact import clip, redact

EXIT_OK, EXIT_FAIL, EXIT_CHANGES, EXIT_INTERNAL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 3, 64, 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143

EXIT_CODES_HELP = """\b
Exit codes:
  0    success (valid / no changes / in sync / applied)
  1    expected failure (invalid manifests, refused, stale or failed apply, API error,
       --timeout reached)
  2    changes present (plan --detailed-exitcode) or drift found (drift)
  3    internal error (one line on stderr; traceback in the log file it names)
  64   usage error (unknown option, missing argument)
  130  interrupted (Ctrl+C, SIGINT)
  143  terminated (SIGTERM, as CI runners and Kubernetes send)
On 130 and 143 apply stops cleanly: no new writes, the ones in flight finished,
audit lines and the summary written; a second signal exits at once.
"""


SECRET_VARIABLES = ("GENESYS_CLOUD_CLIENT_SECRET", "LLMGW_AUDIT_KEY")


def _register_secrets() -> None:
    """Every secret the environment holds is masked in everything this process prints or
    writes, from the first line on (``reconciler.redact``)."""
    for name in SECRET_VARIABLES:
        redact_mod.register(os.environ.get(name))


_OUTPUT_LOST: list[str] = []  # why stdout or stderr could not be written, once


def echo(text: Any = "", **kwargs: Any) -> None:
    """``click.echo`` through the redactor: nothing this process prints can hold a secret. An
    output that cannot be written (a closed pipe, a full disk under a redirect) never raises:
    it is remembered, and the command exits 1 instead of 0 (``LlmgwGroup``)."""
    try:
        click.echo(redact(str(text)), **kwargs)
    except OSError as exc:
        stream = "stderr" if kwargs.get("err") else "stdout"
        if not _OUTPUT_LOST:
            _OUTPUT_LOST.append(f"{stream}: {exc.strerror or type(exc).__name__}")
        try:  # later writes, and the interpreter's last flush, go nowhere instead of failing
            setattr(sys, stream, open(os.devnull, "w"))  # noqa: SIM115 - held until exit
        except OSError:
            pass


def _crash(exc: BaseException) -> int:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    fd, path = tempfile.mkstemp(prefix=f"llmgw-crash-{stamp}-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(f"llmgw {__version__}, python {sys.version.split()[0]}\n")
        f.write(f"argv: {redact(' '.join(sys.argv))}\n\n")
        f.write(redact("".join(traceback.format_exception(exc))))
    msg = clip(f"{type(exc).__name__}: {exc}", 300)
    echo(f"llmgw: internal error: {msg} (traceback written to {path}; please report it)", err=True)
    return EXIT_INTERNAL


class _Terminated(BaseException):
    """SIGTERM outside apply's writes: the command ends at once (exit 143). Not a
    KeyboardInterrupt, so click's prompts do not turn it into an abort (130)."""


class _SignalPolicy:
    """SIGINT and SIGTERM for this process. ``stop`` is set while apply writes (and until the
    command ends): then a signal asks for a clean stop, and a second one exits at once."""

    def __init__(self) -> None:
        self.stop: Any = None  # executor.Stop while apply writes
        self.received: list[int] = []
        self.main_task: Any = None
        # a command's own words for the first signal, and what it does on the second before
        # exiting (fleet run: the running children get it too); apply's when None
        self.notice: str | None = None
        self.again: Callable[[int], None] | None = None

    def install(self) -> Callable[[], None]:
        """Python-level handlers; returns the function that puts the previous ones back."""
        try:
            old = {sig: signal.signal(sig, self.python_handler) for sig in _SIGNALS}
        except ValueError:  # not the main thread: leave the process's handlers alone
            return lambda: None
        self.stop, self.received, self.main_task = None, [], None
        self.notice, self.again = None, None

        def restore() -> None:
            for sig, handler in old.items():
                signal.signal(sig, handler)

        return restore

    def reinstall(self) -> None:
        try:
            for sig in _SIGNALS:
                signal.signal(sig, self.python_handler)
        except ValueError:
            pass

    def python_handler(self, signum: int, _frame: Any) -> None:
        if self.stop is not None:
            return self.graceful(signum)
        self.received.append(signum)
        if signum == signal.SIGTERM:
            raise _Terminated
        raise KeyboardInterrupt

    def loop_handler(self, signum: int) -> None:
        if self.stop is not None:
            return self.graceful(signum)
        self.received.append(signum)
        if self.main_task is not None:
            self.main_task.cancel()

    def graceful(self, signum: int) -> None:
        from reconciler.executor import StopReason

        self.received.append(signum)
        name = signal.Signals(signum).name
        if len(self.received) > 1:
            if self.again is not None:
                self.again(signum)
            echo(f"llmgw: {name} again: exiting at once (writes in flight abandoned)", err=True)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(128 + signum)
        notice = self.notice or "finishing the writes in flight, sending no new ones"
        echo(f"llmgw: {name} received: {notice} (send it again to exit at once)", err=True)
        self.stop.request(StopReason("signal", f"interrupted by {name}", signum))


_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SIGNALS = _SignalPolicy()


class LlmgwGroup(click.Group):
    """Maps every outcome to the documented exit codes, in-process and under CliRunner alike."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        _register_secrets()
        restore = SIGNALS.install()
        try:
            rv = super().main(
                args, prog_name or "llmgw", complete_var, standalone_mode=False, **extra
            )
            code = rv if isinstance(rv, int) else EXIT_OK
        except click.UsageError as e:
            e.show()
            code = EXIT_USAGE
        except _Terminated:
            echo("llmgw: terminated (SIGTERM); no write was sent", err=True)
            code = EXIT_TERMINATED
        except (click.Abort, KeyboardInterrupt):
            echo("llmgw: interrupted", err=True)
            code = EXIT_INTERRUPTED
        except click.ClickException as e:
            e.show()
            code = EXIT_FAIL
        except ManifestError as e:
            echo("\n".join(str(p) for p in e.problems), err=True)
            echo(f"llmgw: {e}", err=True)
            code = EXIT_FAIL
        except LlmgwError as e:
            echo(f"llmgw: error: {e}", err=True)
            code = EXIT_FAIL
        except Exception as e:  # a bug: one line, traceback to a log file
            code = _crash(e)
        finally:
            restore()
        if _OUTPUT_LOST:
            lost = _OUTPUT_LOST.pop()
            _OUTPUT_LOST.clear()
            echo(f"llmgw: error: the output could not be written ({lost})", err=True)
            code = code or EXIT_FAIL
        if standalone_mode:
            sys.exit(code)
        return code


def _paths(_ctx: Any, param: Any, values: tuple[str, ...]) -> tuple[str, ...]:
    """PATH arguments: an empty one is the unset-variable mistake (`llmgw validate "$DIR"`),
    never "the current folder"."""
    for v in values:
        if not v.strip():
            raise click.BadParameter(
                "an empty path was given (an unset shell variable?); name a file or folder",
                param=param,
            )
    return values


def _use_color(no_color: bool) -> bool:
    return not no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty()


def _styler(no_color: bool) -> views.base.Style:
    return click.style if _use_color(no_color) else views.base.plain


def common_output(*formats: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        f = click.option("--no-color", is_flag=True, help="Never colour the output.")(f)
        f = click.option(
            "-v", "--verbose", count=True, help="More detail (repeat for debug logs)."
        )(f)
        f = click.option(
            "--output",
            "-o",
            "output_format",
            type=click.Choice(formats),
            default="text",
            show_default=True,
            help="Output format.",
        )(f)
        return f

    return deco


@click.group(
    cls=LlmgwGroup,
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="llmgw")
def cli() -> None:
    """GitOps for the Genesys Cloud LLM Gateway: validate manifests, plan and apply changes,
    detect drift, roll out prompt versions step by step.

    \b
    Connection (environment only, never flags):
      GENESYS_CLOUD_REGION             a region domain such as usw2.pure.cloud, or
      GENESYS_CLOUD_API_URL            an explicit API URL (e.g. the emulator's), with
      GENESYS_CLOUD_LOGIN_URL          the login URL (defaults to the API URL on loopback)
      GENESYS_CLOUD_CLIENT_ID          OAuth client credentials
      GENESYS_CLOUD_CLIENT_SECRET      (never printed, logged or saved)
      LLMGW_REQUEST_TIMEOUT            seconds per request attempt, the whole answer (default 60)
    """


def policies_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--policies",
        "policy_paths",
        multiple=True,
        type=click.Path(),
        metavar="PATH",
        help="Policy packs (kind: PolicySet), files or folders; repeatable. Default: "
        "$LLMGW_POLICIES (paths separated by the OS path separator), else ./policies if present.",
    )(f)


def _policies(policy_paths: tuple[str, ...]) -> Any:
    """The policy packs of this run, loaded and compiled (their problems inside)."""
    from reconciler.policy import pack

    return pack.load(pack.sources(policy_paths, os.environ))


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("paths", nargs=-1, required=True, type=click.Path(), callback=_paths)
@click.option("--strict", is_flag=True, help="Treat warnings as errors (exit 1).")
@click.option(
    "--env",
    "environment",
    metavar="NAME",
    help="The environment the manifests are for, as policy rules' `match.environments` "
    "name it; default $LLMGW_ENVIRONMENT.",
)
@policies_option
@common_output(*views.validate.FORMATS)
def validate(
    paths: tuple[str, ...],
    strict: bool,
    environment: str | None,
    policy_paths: tuple[str, ...],
    output_format: str,
    verbose: int,
    no_color: bool,
) -> int:
    """Check manifests offline: YAML, schemas, semantic rules and policy rules. Sends nothing
    anywhere.

    PATHS are files or folders (read recursively: *.yaml, *.yml; dot-files are skipped).
    Policy packs come from --policies, $LLMGW_POLICIES or ./policies (see README: policies).
    Exit 0 when valid, 1 when invalid (with --strict, warnings count too).
    """
    from reconciler.validate import validate_paths

    view = views.validate.view(output_format, _styler(no_color))
    environment = environment or os.environ.get("LLMGW_ENVIRONMENT") or ""
    report = validate_paths(list(paths), policies=_policies(policy_paths), env=environment)
    ok = report.ok(strict)
    echo(view.show(report, ok))
    return EXIT_OK if ok else EXIT_FAIL


def _setup_logging(verbose: int) -> None:
    import logging

    class _Redacting(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return redact(super().format(record))

    if verbose >= 2:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_Redacting("%(levelname)s %(name)s: %(message)s"))
        log = logging.getLogger("llmgw")
        log.handlers[:] = [handler]
        log.setLevel(logging.DEBUG)


class Duration(NamedTuple):
    seconds: float | None  # None: no limit
    text: str


class DurationType(click.ParamType):
    """90s, 10m, 1h, 1h30m, 500ms, or plain seconds; 0 means no limit."""

    name = "DURATION"
    _PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
    _UNIT: ClassVar[dict[str, float]] = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

    def convert(self, value: Any, param: Any, ctx: Any) -> Duration:
        if isinstance(value, Duration):
            return value
        text = str(value).strip()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        elif re.fullmatch(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h))+", text):
            seconds = sum(float(n) * self._UNIT[u] for n, u in self._PART.findall(text))
        else:
            self.fail(f"{value!r} is not a duration: write e.g. 90s, 10m, 1h or 1h30m", param, ctx)
        return Duration(seconds if seconds > 0 else None, text)


DURATION = DurationType()


def timeout_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--timeout",
        type=DURATION,
        default="30m",
        show_default=True,
        help="Stop the run after this long (90s, 10m, 1h; 0: never), cleanly, exit 1.",
    )(f)


def _deadline(timeout: Duration) -> float | None:
    return None if timeout.seconds is None else time.monotonic() + timeout.seconds


def _run(
    coro: Coroutine[Any, Any, Any],
    *,
    deadline: float | None = None,
    timeout: Duration | None = None,
    command: str = "",
) -> Any:
    """``asyncio.run(coro)``, returning the result through a box: on Python 3.11 asyncio.run
    formats the repr of its task's result (CPython #112559), which for a 12,000-object plan
    took 1.5 s after the work was done. A signal cancels the run (unless apply is writing:
    then ``SIGNALS`` asks it to stop cleanly); ``deadline`` (monotonic time) is DeadlineError."""
    import asyncio

    box: list[Any] = []
    expired: list[bool] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        SIGNALS.main_task = asyncio.current_task()
        installed = []
        for sig in _SIGNALS:
            try:
                loop.add_signal_handler(sig, SIGNALS.loop_handler, sig)
                installed.append(sig)
            except (ValueError, RuntimeError, NotImplementedError):
                pass  # not the main thread: the process's own handling stays
        try:
            if deadline is None:
                box.append(await coro)
            else:
                try:
                    async with asyncio.timeout_at(deadline) as cm:
                        box.append(await coro)
                except TimeoutError:
                    if not cm.expired():
                        raise
                    expired.append(True)
        finally:
            # asyncio puts the default action back when it removes a handler: hold the signals
            # while ours go back in, so one arriving just then is ours, not a bare death
            held = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
            try:
                for sig in installed:
                    loop.remove_signal_handler(sig)
                SIGNALS.main_task = None
                SIGNALS.reinstall()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)

    try:
        asyncio.run(main())
    except asyncio.CancelledError:
        if not SIGNALS.received:
            raise
        if SIGNALS.received[0] == signal.SIGTERM:
            raise _Terminated from None
        raise KeyboardInterrupt from None
    if expired:
        raise DeadlineError(command, timeout.text if timeout else "")
    return box[0]


def _target(parallelism: int, environment: str | None) -> Any:
    from reconciler import jobs

    return jobs.target_from_env(os.environ, environment=environment, parallelism=parallelism)


def remote_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--env",
        "environment",
        metavar="NAME",
        help="Name of the environment (dev, staging, prod...) shown in output and audit; "
        "default $LLMGW_ENVIRONMENT.",
    )(f)
    f = click.option(
        "--parallelism",
        type=click.IntRange(1, 64),
        default=8,
        show_default=True,
        help="Concurrent requests.",
    )(f)
    return f


def ignore_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--ignore-file",
        type=click.Path(dir_okay=False),
        help="Accepted drift (default: .llmgw-ignore.yaml in the working directory, if present).",
    )(f)


def changed_since_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--changed-since",
        metavar="REF",
        help="Plan only what changed since the git revision REF (added, edited, removed "
        "documents): reads far less of the org. Not with --prune.",
    )(f)


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("paths", nargs=-1, required=True, type=click.Path(), callback=_paths)
@click.option("--out", type=click.Path(dir_okay=False), help="Save the plan for `apply FILE`.")
@click.option(
    "--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes, 0 when none."
)
@click.option("--prune", is_flag=True, help="Plan deletes of managed objects in no manifest.")
@changed_since_option
@ignore_option
@policies_option
@timeout_option
@remote_options
@common_output(*views.plan.FORMATS)
def plan(
    paths: tuple[str, ...],
    out: str | None,
    detailed_exitcode: bool,
    prune: bool,
    changed_since: str | None,
    ignore_file: str | None,
    policy_paths: tuple[str, ...],
    timeout: Duration,
    parallelism: int,
    environment: str | None,
    output_format: str,
    verbose: int,
    no_color: bool,
) -> int:
    """Validate, read the live org (read scopes only) and print what apply would change.

    Sends no write. Exit 0 on success; with --detailed-exitcode 0 means no changes and 2 means
    changes; 1 is an error (invalid manifests, unreachable org, missing scope, --out not
    writable: checked before the org is read; with --changed-since, REF not a commit or not a
    git checkout).

    With --changed-since REF the plan covers only the documents the change since REF added,
    edited or removed, and reads only what they need: the collections' listings and the
    version listings of the templates they touch. A saved targeted plan is applied and checked
    on the same set.
    """
    from reconciler import jobs, planfile

    _setup_logging(verbose)
    deadline = _deadline(timeout)
    view = views.plan.view(output_format, _styler(no_color), verbose=verbose > 0)
    target = _target(parallelism, environment)
    if out:
        planfile.check_writable(out)
    run = _run(
        jobs.make_plan(
            target,
            list(paths),
            prune=prune,
            ignore_file=ignore_file,
            changed_since=changed_since,
            policies=_policies(policy_paths),
        ),
        deadline=deadline,
        timeout=timeout,
        command="plan",
    )
    if out:
        planfile.save(run.saved, out)
    echo(view.show(run, target), nl=view.newline)
    if out:
        echo(view.saved(out), err=True)
    if detailed_exitcode and run.plan.changes:
        return EXIT_CHANGES
    return EXIT_OK


def _is_plan_file(paths: tuple[str, ...]) -> bool:
    return len(paths) == 1 and paths[0].endswith(".json") and not os.path.isdir(paths[0])


class _Progress:
    """A progress bar on a terminal once the run is longer than a couple of seconds; plain
    lines otherwise (CI logs), worded by ``line``."""

    def __init__(self, total: int, tty: bool, line: Callable[[Any], str]) -> None:
        self.total, self.tty, self.done, self.line = total, tty, 0, line
        self.started = time.monotonic()
        self.bar: Any = None

    def __call__(self, event: str, r: Any) -> None:
        if event != "done":
            return
        self.done += 1
        if not self.tty:
            echo(self.line(r), err=True)
            return
        if self.bar is None and time.monotonic() - self.started > 2.0:
            self.bar = click.progressbar(length=self.total, label="Applying", file=sys.stderr)
            self.bar.update(self.done - 1)
        if self.bar is not None:
            self.bar.update(1)

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.render_finish()


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("paths", nargs=-1, required=True, type=click.Path(), callback=_paths)
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Print the requests apply would send; send none.")
@click.option("--prune", is_flag=True, help="Permit deletes of managed objects in no manifest.")
@click.option(
    "--allow-replace",
    is_flag=True,
    help="Permit index replacements (delete + create: loses stored vectors).",
)
@click.option(
    "--audit-log",
    type=click.Path(dir_okay=False),
    default=".llmgw/audit.jsonl",
    show_default=True,
    help="Hash-chained JSON-lines audit log, one line per write.",
)
@click.option("--webhook", metavar="URL", help="POST a JSON summary of the run here.")
@click.option(
    "--metrics-file", type=click.Path(dir_okay=False), help="Write run metrics (Prometheus)."
)
@click.option(
    "--mirror-audit",
    is_flag=True,
    help="Also record prompt changes in the gateway's audit log (needs ai:gateway:write).",
)
@click.option(
    "--lock-timeout",
    type=DURATION,
    default="10s",
    show_default=True,
    help="How long to wait for another apply holding the audit log's lock (then exit 1).",
)
@changed_since_option
@ignore_option
@policies_option
@timeout_option
@remote_options
@common_output(*views.apply.FORMATS)
def apply(
    paths: tuple[str, ...],
    auto_approve: bool,
    dry_run: bool,
    prune: bool,
    changed_since: str | None,
    allow_replace: bool,
    audit_log: str,
    webhook: str | None,
    metrics_file: str | None,
    mirror_audit: bool,
    lock_timeout: Duration,
    ignore_file: str | None,
    policy_paths: tuple[str, ...],
    timeout: Duration,
    parallelism: int,
    environment: str | None,
    output_format: str,
    verbose: int,
    no_color: bool,
) -> int:
    """Apply the manifests (PATH...) or a saved plan (PLANFILE, from `plan --out`).

    \b
    A saved plan is checked, not trusted: apply derives the operations again from the
    manifests the plan records (their hash and the ignore file's must still match) and the
    live org, refuses the plan if any object moved since it was made (stale), and refuses it
    if its operations or requests differ from that derivation in any way (an edited file);
    then it executes the derivation. Nothing is sent before these checks pass.

    Deletes need --prune and index replacements --allow-replace (or the llmgw/allow-replace
    annotation), whatever a plan file says; an object without the management label is never
    deleted. Before the first write, the audit log is locked (a second apply waits
    --lock-timeout) and given a run-start record, and the metrics file is probed: a file that
    cannot be written is exit 1 with nothing sent. Each write's audit line is fsync'ed before the
    next write; if one cannot be written the run stops. The summary ends with the audit log's
    last record hash (keep it: `llmgw audit verify FILE --last HASH`). Exit 0 when everything
    planned was applied and verified, 1 otherwise (or 130/143 when interrupted).
    """
    from reconciler import audit as auditlog
    from reconciler import jobs
    from reconciler.executor import Stop

    _setup_logging(verbose)
    deadline = _deadline(timeout)
    view = views.apply.view(output_format, _styler(no_color), verbose=verbose > 0)
    plan_file = paths[0] if _is_plan_file(paths) else None
    if plan_file and changed_since:
        raise click.UsageError(
            "--changed-since applies to manifests; a saved plan records its own set"
        )
    target = _target(parallelism, environment)
    redact_mod.register_url(webhook)  # before anything could show it
    if metrics_file and not dry_run:
        jobs.check_metrics(metrics_file)
    lock = None
    if not dry_run:
        auditlog.check_path(audit_log)
        lock = auditlog.AuditLock.acquire(
            audit_log,
            actor=auditlog.actor_from_env(os.environ),
            timeout=lock_timeout.seconds or 0.0,
            on_wait=lambda holder: echo(view.waiting(holder, lock_timeout.text), err=True),
        )
    try:
        return _apply(
            target,
            paths,
            plan_file,
            lock,
            deadline,
            timeout,
            view,
            auto_approve=auto_approve,
            dry_run=dry_run,
            prune=prune,
            changed_since=changed_since,
            allow_replace=allow_replace,
            audit_log=audit_log,
            webhook=webhook,
            metrics_file=metrics_file,
            mirror_audit=mirror_audit,
            ignore_file=ignore_file,
            policies=_policies(policy_paths),
            # requests in flight get as long to finish as any attempt may take
            stop=Stop(grace_seconds=target.settings.request_timeout),
        )
    finally:
        if lock is not None:
            lock.release()


def _apply(
    target: Any,
    paths: tuple[str, ...],
    plan_file: str | None,
    lock: Any,
    deadline: float | None,
    timeout: Duration,
    view: views.apply.ApplyView,
    *,
    auto_approve: bool,
    dry_run: bool,
    prune: bool,
    changed_since: str | None,
    allow_replace: bool,
    audit_log: str,
    webhook: str | None,
    metrics_file: str | None,
    mirror_audit: bool,
    ignore_file: str | None,
    policies: Any,
    stop: Any,
) -> int:
    from reconciler import jobs

    prepared = _run(
        jobs.prepare_apply(
            target,
            paths=() if plan_file else list(paths),
            plan_file=plan_file,
            prune=prune,
            allow_replace=allow_replace,
            ignore_file=ignore_file,
            changed_since=changed_since,
            policies=policies,
        ),
        deadline=deadline,
        timeout=timeout,
        command="apply",
    )
    shown = view.plan(prepared, target)
    if shown is not None:
        echo(shown)
    if dry_run:
        echo(view.dry_run(jobs.dry_run_requests(prepared.plan)))
        return EXIT_OK
    n = len(prepared.plan.changes)
    if n == 0:
        echo(view.nothing())
        return EXIT_OK
    if not auto_approve:
        if not sys.stdin.isatty():
            raise ConfigError(
                "apply needs confirmation and there is no terminal to ask on",
                "review the plan, then pass --auto-approve (CI) or run it in a terminal",
            )
        asked = time.monotonic()
        if not click.confirm(view.question(n, target)):
            echo(view.cancelled(), err=True)
            return EXIT_FAIL
        if deadline is not None:  # a person thinking is not the run being slow
            deadline += time.monotonic() - asked
    progress = _Progress(n, sys.stderr.isatty() and view.progress_bar, view.progress)
    SIGNALS.stop = stop  # from here on a signal stops the run cleanly
    try:
        run = _run(
            jobs.execute(
                target,
                prepared,
                audit_path=audit_log,
                on_event=progress,
                webhook=webhook,
                metrics_file=metrics_file,
                mirror_audit=mirror_audit,
                stop=stop,
                deadline=deadline,
                timeout_text=timeout.text,
                lock=lock,
            )
        )
    finally:
        progress.finish()
    echo(view.result(run))
    for notice in view.notices(run):
        echo(notice, err=True)
    stopped = run.stopped
    if stopped is not None and stopped.kind == "signal" and stopped.signum:
        return 128 + int(stopped.signum)
    return EXIT_OK if run.ok else EXIT_FAIL


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("paths", nargs=-1, required=True, type=click.Path(), callback=_paths)
@click.option("--webhook", metavar="URL", help="POST a JSON report here when drift is found.")
@click.option(
    "--metrics-file",
    type=click.Path(dir_okay=False),
    help="Write Prometheus metrics for node_exporter's textfile collector.",
)
@ignore_option
@timeout_option
@remote_options
@common_output(*views.drift.FORMATS)
def drift(
    paths: tuple[str, ...],
    webhook: str | None,
    metrics_file: str | None,
    ignore_file: str | None,
    timeout: Duration,
    parallelism: int,
    environment: str | None,
    output_format: str,
    verbose: int,
    no_color: bool,
) -> int:
    """Compare the live org with the manifests, read-only (read scopes only, no write possible).

    Reports modified, missing and orphaned objects (drift) and unmanaged ones (information
    only). Exit 0 in sync, 2 drift found, 1 error (a --metrics-file that cannot be written is
    found before the org is read).
    """
    from reconciler import jobs

    _setup_logging(verbose)
    deadline = _deadline(timeout)
    view = views.drift.view(output_format, _styler(no_color))
    target = _target(parallelism, environment)
    redact_mod.register_url(webhook)  # before anything could show it
    run = _run(
        jobs.detect_drift(
            target,
            list(paths),
            ignore_file=ignore_file,
            webhook=webhook,
            metrics_file=metrics_file,
        ),
        deadline=deadline,
        timeout=timeout,
        command="drift",
    )
    echo(view.show(run, target), nl=view.newline)
    for notice in view.notices(run):
        echo(notice, err=True)
    return EXIT_OK if run.report.in_sync else EXIT_CHANGES


@cli.command(epilog=EXIT_CODES_HELP)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--kind", "kinds", multiple=True, type=click.Choice(KINDS), help="Repeatable.")
@click.option("--name", metavar="REGEX", help="Only objects whose identity matches.")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@timeout_option
@remote_options
@click.option("-v", "--verbose", count=True, help="More detail (repeat for debug logs).")
def export(
    out_dir: str,
    kinds: tuple[str, ...],
    name: str | None,
    force: bool,
    timeout: Duration,
    parallelism: int,
    environment: str | None,
    verbose: int,
) -> int:
    """Write manifests from the live org into --out DIR (read scopes only).

    One file per template with its versions, per prompt with its traffic split, per vector
    store with its indexes. Never overwrites a file unless --force. Exit 0 ok, 1 error.
    """
    from reconciler import jobs

    _setup_logging(verbose)
    deadline = _deadline(timeout)
    view = views.export.view()
    target = _target(parallelism, environment)
    run = _run(
        jobs.export_org(target, out_dir, kinds=kinds, name=name, force=force),
        deadline=deadline,
        timeout=timeout,
        command="export",
    )
    for path in run.written:
        echo(view.written(path))
    for ref in run.skipped:
        echo(view.skipped(ref), err=True)
    echo(view.summary(run, target, out_dir))
    return EXIT_OK


ROLLOUT_EXIT_CODES = """\b
Exit codes:
  0    progressing, waiting or done (status: read)
  1    error (invalid manifests, API error, audit log, a refused override)
  2    advance rolled back or paused a rollout (the job turns red and notifies)
  3    internal error; 64 usage error; 130 interrupted; 143 terminated
"""


def rollout_write_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--audit-log",
        type=click.Path(dir_okay=False),
        default=".llmgw/audit.jsonl",
        show_default=True,
        help="Append-only log of every write, with its evidence.",
    )(f)
    f = click.option(
        "--lock-timeout",
        type=DURATION,
        default="10s",
        show_default=True,
        help="How long to wait for another run holding the audit log.",
    )(f)
    return f


def _rollout(
    command: str,
    paths: tuple[str, ...],
    *,
    prompt: str | None = None,
    dry_run: bool = False,
    audit_log: str = ".llmgw/audit.jsonl",
    lock_timeout: Duration | None = None,
    webhook: str | None = None,
    metrics_file: str | None = None,
    timeout: Duration,
    parallelism: int,
    environment: str | None,
    output_format: str,
    verbose: int,
    no_color: bool,
) -> int:
    from reconciler import jobs, rollouts
    from reconciler.executor import Stop

    _setup_logging(verbose)
    deadline = _deadline(timeout)
    view = views.rollout.view(output_format, _styler(no_color))
    desired = jobs.load_desired(list(paths))
    target = _target(parallelism, environment)
    redact_mod.register_url(webhook)
    stop = Stop()
    if command != "status" and not dry_run:
        SIGNALS.stop = stop  # a signal lets the write in flight finish and sends no other
    run = _run(
        rollouts.run(
            target,
            desired,
            command=command,
            prompt=prompt,
            dry_run=dry_run,
            audit_path=audit_log,
            lock_timeout=lock_timeout.seconds or 0.0 if lock_timeout else 10.0,
            webhook=webhook,
            metrics_file=metrics_file,
            stop=stop,
        ),
        deadline=deadline,
        timeout=timeout,
        command=f"rollout {command}",
    )
    echo(view.show(run, target), nl=view.newline)
    for notice in view.notices(run):
        echo(notice, err=True)
    if stop.reason is not None and stop.reason.signum:
        return 128 + int(stop.reason.signum)
    return run.exit_code


@cli.group(epilog=ROLLOUT_EXIT_CODES)
def rollout() -> None:
    """Progressive delivery of prompt versions: a TrafficSplit's `rollout` block moves traffic
    from `from` to the end state step by step, judged canary against stable on live analytics.

    `llmgw apply` starts a rollout (step 1's weights); `rollout advance`, run by a scheduler
    every few minutes, steps it, finishes it, pauses it or rolls it back. Its state lives in
    the live prompt's `llmgw.io/` labels, so any runner can advance it.
    """


@rollout.command("advance", epilog=ROLLOUT_EXIT_CODES)
@click.argument("paths", nargs=-1, required=True, type=click.Path(), callback=_paths)
@click.option("--dry-run", is_flag=True, help="Decide and show; write nothing.")
@click.option("--webhook", metavar="URL", help="POST a JSON summary of the run here.")
@click.option(
    "--metrics-file",
    type=click.Path(dir_okay=False),
    help="Write Prometheus gauges (canary weight, step, state per prompt).",
)
@rollout_write_options
@timeout_option
@remote_options
@common_output(*views.rollout.FORMATS)
def rollout_advance(paths: tuple[str, ...], **kw: Any) -> int:
    """Judge every rollout in the manifests on its step's window and act: wait (saying what is
    missing), step forward, finish, pause, or roll back (stable gets all traffic, then the
    canary is withdrawn when withdrawOnRollback asks). One analytics request per prompt.
    Exit 0 progressing, waiting or done; 2 when a rollout was rolled back or paused; 1 on
    errors.
    """
    return _rollout("advance", paths, **kw)


@rollout.command("status", epilog=ROLLOUT_EXIT_CODES)
@click.argument("paths", nargs=-1, required=True, type=click.Path(), callback=_paths)
@timeout_option
@remote_options
@common_output(*views.rollout.FORMATS)
def rollout_status(paths: tuple[str, ...], **kw: Any) -> int:
    """Per rollout: the step, the weights, the time at the step, each gate's evidence (samples
    per version, both values, the limit, the verdict and its confidence), what advance would
    do, and the history of steps (markdown: with a Mermaid chart). Read-only."""
    return _rollout("status", paths, **kw)


def _override_command(name: str, doc: str) -> None:
    @rollout.command(name, epilog=ROLLOUT_EXIT_CODES, help=doc)
    @click.argument("prompt")
    @click.argument("paths", nargs=-1, required=True, type=click.Path(), callback=_paths)
    @rollout_write_options
    @timeout_option
    @remote_options
    @common_output(*views.rollout.FORMATS)
    def command(prompt: str, paths: tuple[str, ...], **kw: Any) -> int:
        return _rollout(name, paths, prompt=prompt, **kw)


_override_command(
    "pause",
    "Pause PROMPT's rollout where it is (advance leaves it alone until resumed). PATHS are the "
    "manifests holding its TrafficSplit. An audit record.",
)
_override_command(
    "resume",
    "Resume PROMPT's paused rollout at its step with a new window, or restart an aborted one "
    "at step 1. PATHS are the manifests holding its TrafficSplit. An audit record.",
)
_override_command(
    "abort",
    "Abort PROMPT's rollout: all traffic back on the stable version; it stays aborted until "
    "resumed or its rollout block or canary changes. An audit record.",
)
_override_command(
    "promote",
    "Promote PROMPT's rollout to its end state now, skipping the remaining steps. An audit record.",
)


@cli.group(epilog=EXIT_CODES_HELP)
def policy() -> None:
    """Work with policy packs (kind: PolicySet): organisation rules in CEL."""


@policy.command("test", epilog=EXIT_CODES_HELP)
@click.argument("paths", nargs=-1, type=click.Path())
@common_output(*views.policy.FORMATS)
def policy_test(paths: tuple[str, ...], output_format: str, verbose: int, no_color: bool) -> int:
    """Run the packs' own tests (`tests:` in each PolicySet): each case's document must pass
    and fail the rules it names.

    PATHS are pack files or folders (default: $LLMGW_POLICIES, else ./policies). Exit 0 when
    every test passes, 1 when a test fails or a pack does not load (a syntax error, a field
    the kind's schema does not have, a test document that is not a valid manifest).
    """
    import datetime as dt

    from reconciler.policy import pack, selftest

    view = views.policy.view(output_format, _styler(no_color))
    sources = pack.sources(paths, os.environ)
    if not sources:
        raise ConfigError(
            "no policy packs to test", "pass PATHS, set LLMGW_POLICIES or create ./policies"
        )
    loaded = pack.load(sources)
    results = selftest.run(loaded, dt.date.today())
    echo(view.show(results, loaded.problems, len(loaded.rules), len(loaded.files)))
    failed = not results.ok or any(p.severity == "error" for p in loaded.problems)
    return EXIT_FAIL if failed else EXIT_OK


@cli.group(epilog=EXIT_CODES_HELP)
def audit() -> None:
    """Work with apply's audit log."""


@audit.command("verify", epilog=EXIT_CODES_HELP)
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--last",
    metavar="HASH",
    help="Also check that the log ends at this record (the hash an apply summary printed).",
)
def audit_verify(file: str, last: str | None) -> int:
    """Check an audit log's hash chain. Exit 0 intact, 1 broken, torn, or not verifiable.

    \b
    A log written with LLMGW_AUDIT_KEY set is keyed (HMAC-SHA256): it verifies only with
    that key in the environment, and nobody without the key can rewrite it so that it
    verifies. A hash chain cannot show whether records were cut from its end: each apply
    prints its last record's hash, and --last HASH checks that the log ends there.
    """
    from reconciler import audit as auditlog

    key = auditlog.key_from_env(os.environ)
    result = auditlog.verify(file, key=key, last=last)
    echo(views.audit.view().verify(file, result, last))
    return EXIT_OK if result.ok else EXIT_FAIL


COMMENT_MAX_FILE = 16 * 1024 * 1024  # bytes of --file read


@cli.command(epilog=EXIT_CODES_HELP)
@click.option(
    "--file",
    "path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The comment's text, e.g. plan.md from `plan --output markdown`.",
)
@click.option(
    "--env",
    "environment",
    metavar="NAME",
    help="The environment this comment is for (one comment each); default $LLMGW_ENVIRONMENT.",
)
@click.option(
    "--platform",
    metavar="NAME",
    help="github or gitlab (default: from GITHUB_ACTIONS / GITLAB_CI).",
)
@click.option(
    "--pr",
    "number",
    type=click.IntRange(1),
    help="Pull request number or merge request IID (default: from the CI environment).",
)
@click.option(
    "--artifact-url",
    metavar="URL",
    help="Where the full plan.json is, for a comment cut to size (default: the run's page).",
)
def comment(
    path: str,
    environment: str | None,
    platform: str | None,
    number: int | None,
    artifact_url: str | None,
) -> int:
    """Post the --file text as the pull/merge request's plan comment for one environment,
    editing the one an earlier run posted (found by a hidden marker) instead of adding another.

    \b
    GitHub:  GITHUB_TOKEN (the job needs `permissions: pull-requests: write`),
             GITHUB_REPOSITORY, GITHUB_EVENT_PATH (or --pr), GITHUB_API_URL
    GitLab:  GITLAB_TOKEN (a token with the api scope) or CI_JOB_TOKEN, CI_API_V4_URL,
             CI_PROJECT_ID, CI_MERGE_REQUEST_IID (or --pr)
    Exit 0 posted or edited, 1 refused or failed (one line on stderr).
    """
    from reconciler import remote

    environment = environment or os.environ.get("LLMGW_ENVIRONMENT") or None
    if not environment:
        raise ConfigError("no environment named", "pass --env NAME or set LLMGW_ENVIRONMENT")
    target = remote.comment_target(
        os.environ, platform=platform, number=number, artifact_url=artifact_url
    )
    try:
        with open(path, "rb") as f:
            raw = f.read(COMMENT_MAX_FILE + 1)
        if len(raw) > COMMENT_MAX_FILE:
            raise ConfigError(f"{path} is larger than {COMMENT_MAX_FILE // 2**20} MiB")
        text = raw.decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None
    result = _run(remote.post_sticky(target, environment, text), command="comment")
    echo(views.comment.view().posted(result, environment))
    return EXIT_OK


FLEET_EXIT_CODES = """\b
Exit codes (fleet run and fleet report: the worst of the environments'):
  0    every environment ok (in sync, applied, planned)
  2    changes (plan --detailed-exitcode) or drift found, and nothing worse
  1    an environment failed (its command failed, a credential variable unset, its
       --timeout passed), or a result file could not be read or written
  64   usage error (of fleet, or ARGS the command refuses)
  3    internal error (in fleet, or in an environment's command)
  130  interrupted (SIGINT), 143 terminated (SIGTERM): no new environment is started, the
       running ones get the signal, what is known is written (a second signal: at once)
Worst first: 3, 64, 1, 2, 0.
"""


class ShardType(click.ParamType):
    """I/N: shard I (0 to N-1, as JOB_COMPLETION_INDEX counts) of N."""

    name = "I/N"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        from reconciler.fleet import Shard

        if isinstance(value, Shard):
            return value
        try:
            return Shard.parse(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def fleet_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--shard",
        type=ShardType(),
        help="Only the environments of shard I of N (I from 0 to N-1; each environment is in "
        "exactly one shard, from a hash of its name).",
    )(f)
    f = click.option(
        "--environments",
        "environments_file",
        type=click.Path(dir_okay=False),
        metavar="FILE",
        help="The environments file (default: llmgw-environments.yaml in the working directory).",
    )(f)
    return f


def _load_fleet(path: str | None) -> Any:
    from reconciler import fleet as fleetmod
    from reconciler.errors import EnvironmentsError

    loaded = fleetmod.load(path)
    if loaded.errors:
        raise EnvironmentsError(loaded.problems, loaded.file)
    return loaded


@cli.group(epilog=FLEET_EXIT_CODES)
def fleet() -> None:
    """Many orgs, each with its own credentials, fanned out by the engine you run (a GitHub
    Actions matrix, GitLab parallel jobs, a Kubernetes Indexed Job).

    \b
    The environments file (llmgw-environments.yaml) lists per org: name, region (or apiUrl
    and loginUrl), clientIdEnv and clientSecretEnv (the NAMES of the variables holding its
    OAuth client), paths (its manifests), optional labels. See README: Fleets.
    """


@fleet.command("list", epilog=FLEET_EXIT_CODES)
@fleet_options
@click.option(
    "--output",
    "-o",
    "output_format",
    type=click.Choice(views.fleet.LIST_FORMATS),
    default="text",
    show_default=True,
    help="github-matrix: one line for strategy.matrix (fromJSON), at most 256 entries.",
)
def fleet_list(environments_file: str | None, shard: Any, output_format: str) -> int:
    """List the environments (of one shard with --shard), never a secret: json prints an
    array of objects (name, region, apiUrl, loginUrl, clientIdEnv, clientSecretEnv, paths,
    labels, shard); github-matrix prints {"include": [...]} on one line."""
    from reconciler import fleet as fleetmod

    view = views.fleet.list_view(output_format)
    chosen = fleetmod.select(_load_fleet(environments_file).environments, shard)
    if view.limit is not None and len(chosen) > view.limit:
        raise ConfigError(*view.too_many(len(chosen)))
    echo(view.show(chosen, shard))
    return EXIT_OK


_FLEET_SETS = ("--output", "-o", "--env", "--timeout")


def _check_fleet_args(command: str, args: tuple[str, ...]) -> None:
    """ARGS parsed by the command's own options before anything runs: an unknown option, a
    bad value, a path (paths come from the environments file) or an option fleet sets for
    every environment is a usage error; apply needs --auto-approve (or --dry-run)."""
    for a in args:
        if a.split("=", 1)[0] in _FLEET_SETS or (a.startswith("-o") and not a.startswith("--")):
            raise click.UsageError(
                f"{a.split('=', 1)[0]} in ARGS: fleet run sets it for every environment "
                "(give fleet run's own --timeout and --output instead)"
            )
    command_cli = cli.commands[command]
    probe = [a.replace("{name}", "name") for a in args]
    try:
        ctx = command_cli.make_context(
            command, [*probe, "--", "PATH"], parent=click.get_current_context()
        )
    except click.UsageError as exc:
        raise click.UsageError(f"ARGS for {command}: {exc.format_message()}") from None
    with ctx:
        if tuple(ctx.params.get("paths", ())) != ("PATH",):
            raise click.UsageError(
                f"ARGS for {command} hold a path: each environment's paths come from the "
                "environments file (an option's value goes right after it)"
            )
        if command == "apply" and not (ctx.params["auto_approve"] or ctx.params["dry_run"]):
            raise click.UsageError(
                "fleet run apply needs --auto-approve in ARGS (no environment has a terminal "
                "to confirm on): review each environment's plan first (fleet run plan)"
            )


@fleet.command(
    "run",
    epilog=FLEET_EXIT_CODES,
    context_settings={"ignore_unknown_options": True},
)
@click.argument("command", type=click.Choice(("plan", "drift", "apply")))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@fleet_options
@click.option(
    "--name",
    "names",
    multiple=True,
    metavar="NAME",
    help="Only this environment (repeatable; with --shard, those of the shard).",
)
@click.option(
    "--results",
    "results_dir",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Write one JSON result per environment, DIR/NAME.json (for fleet report).",
)
@click.option(
    "--parallel",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Environments run at a time.",
)
@click.option(
    "--timeout",
    type=DURATION,
    default="30m",
    show_default=True,
    help="Per environment: its command stops cleanly after this long (exit 1); 30 s more "
    "and it is terminated.",
)
@common_output(*views.fleet.REPORT_FORMATS)
def fleet_run(
    command: str,
    args: tuple[str, ...],
    environments_file: str | None,
    shard: Any,
    names: tuple[str, ...],
    results_dir: str | None,
    parallel: int,
    timeout: Duration,
    output_format: str,
    verbose: int,
    no_color: bool,
) -> int:
    """Run COMMAND (plan, drift or apply) for each environment (of the shard), each in a
    process of its own with its own credentials (the variables its clientIdEnv and
    clientSecretEnv name, as GENESYS_CLOUD_CLIENT_ID/SECRET; no other environment's), URLs,
    token and rate budget: `llmgw COMMAND ARGS --output json --env NAME -- PATHS`.

    \b
    ARGS go to every COMMAND as given (after --, or any option fleet does not take), with
    {name} replaced by the environment's name: `-- --prune`, `-- --auto-approve`,
    `-- --metrics-file metrics/{name}.prom`. apply needs --auto-approve; without
    --audit-log, each environment's audit log is .llmgw/audit/NAME.jsonl.
    One environment failing never stops the others; the report ends the run (the same
    as `fleet report DIR`), progress goes to stderr.
    """
    from reconciler import fleet as fleetmod
    from reconciler import fleetrun
    from reconciler.executor import Stop

    _check_fleet_args(command, args)
    loaded = _load_fleet(environments_file)
    unknown = fleetmod.unknown_names(loaded.environments, names)
    if unknown:
        raise click.UsageError(
            f"--name {unknown[0]}: no such environment in {loaded.file} (it has "
            + ", ".join(loaded.names()[:10])
            + (", ..." if len(loaded.names()) > 10 else "")
            + ")"
        )
    chosen = fleetmod.select(loaded.environments, shard, names)
    if results_dir is not None:
        fleetrun.check_results_dir(results_dir)
    view = views.fleet.report_view(output_format, _styler(no_color), verbose=verbose > 0)
    spec = fleetrun.RunSpec(
        command=command,
        args=args,
        timeout=timeout.seconds,
        timeout_text=timeout.text,
        parallel=parallel,
        results_dir=results_dir,
        shard=shard,
    )

    def progress(event: str, env: Any, result: Any) -> None:
        line = view.progress(event, env, result)
        if line is not None:
            echo(line, err=True)

    stop = Stop()
    running: dict[str, Any] = {}
    SIGNALS.stop = stop  # from here on a signal starts no new environment and is passed on
    SIGNALS.notice = "starting no further environment, passing it on to the running ones"
    SIGNALS.again = lambda signum: fleetrun.signal_running(running, signum)
    report = _run(
        fleetrun.run(
            spec,
            chosen,
            loaded.environments,
            os.environ,
            stop=stop,
            on_event=progress,
            running=running,
        ),
        command="fleet run",
    )
    echo(view.show(report), nl=view.newline)
    for notice in view.notices(report):
        echo(notice, err=True)
    if report.interrupted:
        return 128 + int(report.interrupted)
    return int(report.exit_code)


@fleet.command("report", epilog=FLEET_EXIT_CODES)
@click.argument("folders", nargs=-1, required=True, type=click.Path(), callback=_paths)
@common_output(*views.fleet.REPORT_FORMATS)
def fleet_report(folders: tuple[str, ...], output_format: str, verbose: int, no_color: bool) -> int:
    """Merge the result files (DIR/NAME.json from `fleet run --results DIR`) of any number of
    shards into one report: status, exit code and changes or drift counts per environment.
    A file that is no fleet result, or a second result for one environment, is named (exit
    1); the exit code is otherwise the worst of the results'."""
    from reconciler import fleetrun

    view = views.fleet.report_view(output_format, _styler(no_color), verbose=verbose > 0)
    report = fleetrun.read_results(list(folders))
    echo(view.show(report), nl=view.newline)
    for notice in view.notices(report):
        echo(notice, err=True)
    return int(report.exit_code)


@cli.group(epilog=EXIT_CODES_HELP)
def emulator() -> None:
    """The local gateway emulator, for demos, tests and CI."""


def _client_spec(_ctx: Any, _param: Any, values: tuple[str, ...]) -> list[Any]:
    from reconciler.emulator.config import parse_client_spec

    try:
        return [parse_client_spec(v) for v in values]
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _fault_rates(_ctx: Any, _param: Any, values: tuple[str, ...]) -> dict[str, float]:
    from reconciler.emulator.config import parse_fault_rate

    rates: dict[str, float] = {}
    try:
        for v in values:
            kind, rate = parse_fault_rate(v)
            rates[kind] = rate
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return rates


@emulator.command("serve", epilog=EXIT_CODES_HELP)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8787, show_default=True)
@click.option(
    "--client",
    "clients",
    multiple=True,
    callback=_client_spec,
    metavar="ID:SECRET[:SCOPES]",
    help="OAuth client (repeatable; SCOPES comma-separated, default all).",
)
@click.option("--state", "state_file", type=click.Path(dir_okay=False), help="Persist state.")
@click.option("--rate-limit", type=click.IntRange(0), default=300, show_default=True)
@click.option("--latency-ms", type=click.IntRange(0), default=0, show_default=True)
@click.option("--jitter-ms", type=click.IntRange(0), default=0, show_default=True)
@click.option(
    "--fault-rate",
    "fault_rates",
    multiple=True,
    callback=_fault_rates,
    metavar="KIND=P",
    help="KIND: 429, 500, 503, drop-before, drop-after; P in 0..1 (repeatable).",
)
@click.option("--ingest-delay", type=click.FloatRange(0), default=2.0, show_default=True)
@click.option(
    "--seed", type=int, help="Makes faults, splits, ids and simulated traffic reproducible."
)
@click.option("--admin", is_flag=True, help="Enable the test-only /__emulator/ endpoints.")
def emulator_serve(
    host: str,
    port: int,
    clients: list[Any],
    state_file: str | None,
    rate_limit: int,
    latency_ms: int,
    jitter_ms: int,
    fault_rates: dict[str, float],
    ingest_delay: float,
    seed: int | None,
    admin: bool,
) -> int:
    """Run the local LLM Gateway emulator until interrupted (exit 0 on clean shutdown)."""
    from reconciler.emulator.config import EmulatorConfig
    from reconciler.emulator.server import serve

    config = EmulatorConfig(
        host=host,
        port=port,
        state_file=state_file,
        rate_limit=rate_limit,
        latency_ms=latency_ms,
        jitter_ms=jitter_ms,
        fault_rates=fault_rates,
        ingest_delay=ingest_delay,
        seed=seed,
        admin=admin,
    )
    if clients:
        config.clients = clients

    view = views.emulator.view()

    def ready(url: str) -> None:
        echo(view.listening(url, config, given=bool(clients)))
        echo(view.stop_hint(), err=True)

    try:
        serve(config, on_ready=ready)
    except (_Terminated, KeyboardInterrupt):
        pass  # uvicorn re-raises the signal it stopped on: for the emulator that is a clean stop
    return EXIT_OK


def main() -> None:
    # A run builds tens of thousands of small objects that live until it ends (parsed manifests,
    # live objects, their normal forms) and frees few: at the default thresholds the collector
    # re-scans them again and again, a third of the CPU of a 12,000-object plan. Collect less
    # often; memory stays bounded by what the run holds anyway (bench/results.md).
    gc.set_threshold(50_000, 20, 20)
    cli.main()


__all__ = ["ConfigError", "cli", "main"]
