"""Real processes for tests whose behaviour is about processes (signals, locks, rlimits): the
emulator as `llmgw emulator serve --port 0` (its URL parsed from what it prints) and `llmgw`
commands as children writing to files, never to pipes nobody reads."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

CLIENT = {
    "GENESYS_CLOUD_CLIENT_ID": "emulator-client",
    "GENESYS_CLOUD_CLIENT_SECRET": "emulator-secret",
}


def child_env(url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENESYS_CLOUD_", "LLMGW_"))}
    env.update(CLIENT, NO_COLOR="1", PYTHONUNBUFFERED="1")
    if url:
        env["GENESYS_CLOUD_API_URL"] = url
    env.update(extra)
    return env


@contextmanager
def emulator(tmp: Path, *args: str) -> Iterator[str]:
    """`llmgw emulator serve --port 0 --admin ARGS` in a child process; yields its URL."""
    out = tmp / "emulator.out"
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reconciler",
                "emulator",
                "serve",
                "--port",
                "0",
                "--admin",
                *args,
            ],
            env=child_env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        url = wait_for(
            lambda: _url(out.read_text()), what="the emulator to print its URL", proc=proc
        )
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _url(text: str) -> str | None:
    m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", text)
    return m.group(1) if m else None


class Llmgw:
    """One `llmgw ARGS` child process; stdout and stderr in files."""

    def __init__(
        self,
        tmp: Path,
        name: str,
        url: str,
        *args: str,
        preexec: Callable[[], None] | None = None,
        **env: str,
    ) -> None:
        self.out, self.err = tmp / f"{name}.out", tmp / f"{name}.err"
        with self.out.open("w") as o, self.err.open("w") as e:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "reconciler", *args],
                env=child_env(url, **env),
                stdout=o,
                stderr=e,
                cwd=tmp,
                preexec_fn=preexec,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stdout(self) -> str:
        return self.out.read_text()

    def stderr(self) -> str:
        return self.err.read_text()

    def wait(self, timeout: float = 90) -> int:
        return self.proc.wait(timeout=timeout)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def report(self) -> str:
        return f"--- stdout\n{self.stdout()}\n--- stderr\n{self.stderr()}"


def llmgw(tmp: Path, url: str, *args: str, timeout: float = 90, **env: str) -> tuple[int, str]:
    """Run `llmgw ARGS` to the end; (exit code, stdout + stderr)."""
    p = Llmgw(tmp, "run", url, *args, **env)
    code = p.wait(timeout)
    return code, p.stdout() + p.stderr()


def requests_log(url: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{url}/__emulator/requests").json()["requests"])


def writes(url: str) -> list[dict[str, Any]]:
    return [
        r
        for r in requests_log(url)
        if r["method"] in ("POST", "PUT", "PATCH", "DELETE")
        and not r["path"].startswith("/__")
        and not r["path"].startswith("/oauth")
    ]


def set_faults(url: str, **faults: Any) -> None:
    r = httpx.put(f"{url}/__emulator/faults", json=faults)
    assert r.status_code < 300, r.text


def wait_for(check: Callable[[], Any], *, what: str, proc: Any = None, limit: float = 60) -> Any:
    """Poll ``check`` until it returns something truthy; fail (not hang) after ``limit`` s or
    when ``proc`` ended first. A bound on waiting, not an assertion about speed."""
    deadline = time.monotonic() + limit
    while True:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)
