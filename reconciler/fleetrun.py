"""``llmgw fleet run``: one command for each environment of a fleet, each in a child process of
its own, and ``fleet report``'s reading of the result files.

A child per environment is the simplest way to give each org everything of its own: its
credentials, URLs and name (``fleet.child_environment``: no other environment's credentials
reach it), its own token and rate budget, its own signal handling and deadline, and a crash that
stays its own. The child is ``python -m reconciler COMMAND ARGS --output json --env NAME
--timeout T -- PATHS``; its JSON output is the result's, parsed.

Bounded everywhere: at most ``parallel`` children at a time; each gets ``--timeout`` for itself
and, past it and ``KILL_GRACE``, SIGTERM, then SIGKILL; at most ``MAX_OUTPUT`` bytes of its
stdout are kept (the rest is read and dropped, so it never blocks) and the last ``MAX_STDERR``
bytes of its stderr. One environment's failure (a missing credential variable, a refused
login, a timeout, a crash) is its result, never the others' end. A result file per environment
is written atomically (``reconciler.files``) through the redactor as soon as it finishes.

A stop (``executor.Stop``, set by the CLI on SIGINT/SIGTERM) starts no further child and sends
the same signal to the running ones, each in a session of its own so that a terminal's Ctrl+C
reaches it once, through here: plan and drift end at once, apply finishes its writes in flight.
What is known is written: the finished results, the interrupted ones, and those never started.

It prints nothing and never exits; it knows the command line of llmgw only as the child's argv.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler import fleet, redact
from reconciler.errors import FileError
from reconciler.executor import Stop
from reconciler.files import check_writable, write_atomic
from reconciler.fleet import Environment, Report, Result, Shard
from reconciler.loader import read_file
from reconciler.text import iso_utc, json_dumps, visible

MAX_OUTPUT = 16 * 1024 * 1024  # bytes of a child's stdout kept (its JSON document)
MAX_STDERR = 64 * 1024  # the last bytes of a child's stderr kept
MAX_ERROR = 2000  # characters of the error message a result carries
MAX_RESULT_FILE = 2 * MAX_OUTPUT  # bytes of one result file `fleet report` reads
MAX_RESULT_FILES = 2 * fleet.MAX_ENVIRONMENTS
KILL_GRACE = 30.0  # seconds past a child's own --timeout before SIGTERM, and SIGTERM to SIGKILL
CHUNK = 64 * 1024

Event = Callable[[str, Environment, Result | None], None]


@dataclass(frozen=True)
class RunSpec:
    """What to run for each environment. ``args`` are passed to the command as given, with
    ``{name}`` replaced by the environment's name; ``timeout`` is per environment (None: none)."""

    command: str
    args: tuple[str, ...] = ()
    timeout: float | None = 1800.0
    timeout_text: str = "30m"
    parallel: int = 4
    results_dir: str | None = None
    shard: Shard | None = None
    executable: tuple[str, ...] = field(
        default_factory=lambda: (sys.executable, "-m", "reconciler")
    )


def child_argv(spec: RunSpec, env: Environment) -> list[str]:
    """The child's command line. An apply without ``--audit-log`` in ARGS gets one audit log
    per environment (``.llmgw/audit/NAME.jsonl``): one shared log would make the applies wait
    for each other's lock."""
    args = [a.replace("{name}", env.name) for a in spec.args]
    if spec.command == "apply" and not any(
        a == "--audit-log" or a.startswith("--audit-log=") for a in args
    ):
        args += ["--audit-log", os.path.join(".llmgw", "audit", f"{env.name}.jsonl")]
    timeout = spec.timeout_text if spec.timeout is not None else "0"
    return [
        *spec.executable,
        spec.command,
        *args,
        "--output",
        "json",
        "--env",
        env.name,
        "--timeout",
        timeout,
        "--",
        *env.paths,
    ]


def result_path(results_dir: str, name: str) -> str:
    return os.path.join(results_dir, f"{name}.json")


def check_results_dir(results_dir: str) -> None:
    """FileError unless ``results_dir`` takes a new file (checked before any child starts)."""
    check_writable(os.path.join(results_dir, ".llmgw-fleet-probe"))


class _Tail:
    """The first ``limit`` bytes (``head``) or the last ``limit`` bytes of a stream."""

    def __init__(self, limit: int, *, head: bool) -> None:
        self.limit, self.head = limit, head
        self.data = bytearray()
        self.overflow = False

    def add(self, chunk: bytes) -> None:
        if self.head:
            room = self.limit - len(self.data)
            if len(chunk) > room:
                self.overflow = True
            self.data += chunk[: max(0, room)]
        else:
            self.data += chunk
            if len(self.data) > self.limit:
                self.overflow = True
                del self.data[: len(self.data) - self.limit]


async def _drain(stream: asyncio.StreamReader | None, sink: _Tail) -> None:
    if stream is None:
        return
    while chunk := await stream.read(CHUNK):
        sink.add(chunk)


async def run(
    spec: RunSpec,
    environments: Sequence[Environment],
    everyone: Sequence[Environment],
    parent: Mapping[str, str],
    *,
    stop: Stop | None = None,
    on_event: Event | None = None,
    running: dict[str, Any] | None = None,
) -> Report:
    """Run ``spec`` for each of ``environments`` (``everyone``: the whole fleet, whose other
    credentials are kept from each child), ``spec.parallel`` at a time. The report holds every
    environment's result in file order; a result that could not be written is a problem.
    ``running`` (name -> process) is kept current, for ``signal_running``."""
    stop = stop or Stop()
    for secret in fleet.secrets_of(parent, everyone):
        redact.register(secret)
    gate = asyncio.Semaphore(max(1, spec.parallel))
    running = {} if running is None else running
    report = Report()

    def notify(event: str, env: Environment, result: Result | None = None) -> None:
        if on_event is not None:
            on_event(event, env, result)

    async def forward() -> None:
        await stop.stopped_event.wait()
        signum = stop.reason.signum if stop.reason and stop.reason.signum else signal.SIGTERM
        signal_running(running, signum)

    async def one(env: Environment) -> Result:
        async with gate:
            if stop.stopped:
                result = _not_started(spec, env)
            else:
                notify("start", env)
                result = await _run_one(spec, env, everyone, parent, stop, running)
        if spec.results_dir is not None:
            try:
                write_atomic(
                    result_path(spec.results_dir, env.name),
                    redact.redact(json_dumps(result.as_dict())) + "\n",
                )
            except FileError as exc:
                report.problems.append(str(exc))
        result.output = None  # written; the report keeps the summary only
        notify("done", env, result)
        return result

    forwarder = asyncio.ensure_future(forward())
    try:
        report.results = list(await asyncio.gather(*(one(e) for e in environments)))
    finally:
        forwarder.cancel()
    if stop.reason is not None and stop.reason.signum:
        report.interrupted = int(stop.reason.signum)
    return report


def _send(proc: asyncio.subprocess.Process, signum: int) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)


def signal_running(running: Mapping[str, Any], signum: int) -> None:
    """``signum`` to every running child: the stop's signal, forwarded, and a second signal,
    on which each child exits at once."""
    for proc in list(running.values()):
        _send(proc, signum)


def _base(spec: RunSpec, env: Environment) -> Result:
    return Result(
        name=env.name,
        command=spec.command,
        status=fleet.FAILED,
        exit_code=1,
        environment=env.as_dict(spec.shard),
    )


def _not_started(spec: RunSpec, env: Environment) -> Result:
    result = _base(spec, env)
    result.status, result.error = fleet.NOT_STARTED, "not started: the run was interrupted"
    return result


async def _run_one(
    spec: RunSpec,
    env: Environment,
    everyone: Sequence[Environment],
    parent: Mapping[str, str],
    stop: Stop,
    running: dict[str, Any],
) -> Result:
    result = _base(spec, env)
    child_env, missing = fleet.child_environment(parent, env, everyone)
    started = time.time()
    result.started = iso_utc(started)
    if child_env is None:
        result.error = missing
        result.finished = result.started
        return result
    out, err = _Tail(MAX_OUTPUT, head=True), _Tail(MAX_STDERR, head=False)
    clock = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *child_argv(spec, env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=child_env,
            start_new_session=True,  # a terminal's Ctrl+C reaches it once: forwarded from here
        )
    except OSError as exc:
        result.error = f"could not start llmgw for {env.name}: {exc.strerror or exc}"
        result.finished = iso_utc(time.time())
        return result
    running[env.name] = proc
    if stop.stopped and stop.reason and stop.reason.signum:
        _send(proc, stop.reason.signum)  # the stop came while it was being started
    timed_out = False
    readers = asyncio.gather(_drain(proc.stdout, out), _drain(proc.stderr, err))
    try:
        limit = spec.timeout + KILL_GRACE if spec.timeout is not None else None
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), limit)
        except TimeoutError:
            timed_out = True
            _send(proc, signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(proc.wait()), KILL_GRACE)
            except TimeoutError:
                _send(proc, signal.SIGKILL)
                await proc.wait()
        # the pipes close with the child; bounded all the same
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(readers), KILL_GRACE)
    finally:
        running.pop(env.name, None)
        if proc.returncode is None:  # cancelled: never leave a child behind
            _send(proc, signal.SIGKILL)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), KILL_GRACE)
        readers.cancel()
    result.duration = time.monotonic() - clock
    result.finished = iso_utc(time.time())
    _conclude(result, spec, proc.returncode, out, err, timed_out, stop)
    return result


def _conclude(
    result: Result,
    spec: RunSpec,
    code: int | None,
    out: _Tail,
    err: _Tail,
    timed_out: bool,
    stop: Stop,
) -> None:
    """The result of a child that ended with ``code`` (negative: killed by that signal)."""
    result.process_exit = code if code is not None and code >= 0 else None
    result.stderr = redact.redact(err.data.decode("utf-8", "replace"))
    output, why = None, None
    if out.overflow:
        why = f"its output was larger than {MAX_OUTPUT // 2**20} MiB and was not kept"
    elif out.data.strip():
        try:
            output = json.loads(out.data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            why = f"its output is not JSON ({type(exc).__name__}); see stderr"
    result.output = output
    result.summary = fleet.summarize(spec.command, output)
    interrupted = stop.stopped and code in (130, 143, -signal.SIGINT, -signal.SIGTERM)
    if timed_out:
        result.status, result.exit_code = fleet.TIMEOUT, 1
        result.error = (
            f"did not end within --timeout {spec.timeout_text} (and {KILL_GRACE:.0f} s more): "
            "stopped; pass a longer --timeout, or shard the fleet further"
        )
        return
    if interrupted:
        result.status, result.exit_code = fleet.INTERRUPTED, 1
        result.error = _error_lines(result.stderr) or "interrupted"
        return
    if code is None or code < 0:
        result.status, result.exit_code = fleet.FAILED, 1
        name = signal.Signals(-code).name if code is not None and code < 0 else "a signal"
        result.error = f"llmgw ended by {name}"
        return
    result.exit_code = code if code in fleet.SEVERITY else 1
    result.status = fleet.status_of(spec.command, result.exit_code, result.summary)
    if result.exit_code in (1, 3, 64) or why:
        said = _in_fleet_words(_error_lines(result.stderr), result.environment)
        result.error = "; ".join(x for x in (said, why) if x) or None


def _in_fleet_words(text: str, env: Mapping[str, Any]) -> str:
    """A child's message with the variables it names as the fleet's user set them: the
    child's GENESYS_CLOUD_CLIENT_ID is this environment's clientIdEnv."""
    for key, var in (("clientIdEnv", "CLIENT_ID"), ("clientSecretEnv", "CLIENT_SECRET")):
        if env.get(key):
            text = text.replace(f"GENESYS_CLOUD_{var}", f"{env[key]} (its GENESYS_CLOUD_{var})")
    return text


def _error_lines(stderr: str) -> str:
    """What a failed child said: its ``llmgw:`` lines, else its last lines, bounded."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    said = [ln for ln in lines if ln.startswith("llmgw:")] or lines[-5:]
    text = "\n".join(said[-10:])
    return visible(text[-MAX_ERROR:]) if len(text) > MAX_ERROR else text


# -- fleet report -----------------------------------------------------------------------------
def read_results(folders: Sequence[str]) -> Report:
    """Every ``*.json`` result in ``folders`` (files whose names start with a dot are skipped:
    a result being written), merged into one report (``fleet.merge``); a folder that cannot be
    read, a file too large, not UTF-8 JSON, or no result is a problem naming it."""
    documents: list[tuple[str, Any]] = []
    problems: list[str] = []
    for path in _result_files(folders, problems):
        data, why, _fix = read_file(path, MAX_RESULT_FILE)
        if data is None:
            problems.append(f"{visible(path)}: {why}")
            continue
        try:
            documents.append((path, json.loads(data.decode("utf-8"))))
        except (UnicodeDecodeError, ValueError) as exc:
            problems.append(f"{visible(path)}: not a JSON document ({type(exc).__name__})")
    return fleet.merge(documents, problems)


def _result_files(folders: Sequence[str], problems: list[str]) -> Iterator[str]:
    """The paths of the result files of ``folders``, in order, at most ``MAX_RESULT_FILES`` in
    all; a folder that cannot be listed, and the files past the bound, are ``problems``."""
    seen = 0
    for folder in folders:
        try:
            names = sorted(os.listdir(folder))
        except OSError as exc:
            problems.append(f"{visible(folder)}: cannot be read ({exc.strerror or exc})")
            continue
        for name in names:
            if name.startswith(".") or not name.lower().endswith(".json"):
                continue
            seen += 1
            if seen > MAX_RESULT_FILES:
                problems.append(
                    f"{visible(folder)}: more than {MAX_RESULT_FILES:,} result files; the rest "
                    "were not read"
                )
                return
            yield os.path.join(folder, name)
