"""The emulator as a real HTTP server (uvicorn), with ``--state`` persistence.

``serve`` binds the socket itself (so a busy port is a clear ``ConfigError`` and port 0 reports
the real port), calls ``on_ready(url)`` once listening, and runs until SIGINT/SIGTERM, then
returns normally: ``llmgw emulator serve`` exits 0 on a clean shutdown. ``running`` starts one in
a background thread for tests and scripts and yields its URL. With a state file the org is
loaded at start and written atomically (temporary file, fsync, ``os.replace``) after every
change and at shutdown, so a killed emulator never leaves a torn file.

Nothing here knows the gateway's rules (``state``) or the request pipeline (``app``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

import uvicorn

from reconciler.emulator.app import ConnectionDropped, Emulator, EmulatorApp, create_app
from reconciler.emulator.config import EmulatorConfig
from reconciler.errors import ConfigError


class _QuietDrops(logging.Filter):
    """An injected dropped connection is not a server error worth a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionDropped)


def _quiet_drops() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())


def load_state(emulator: Emulator, path: str) -> None:
    """Load ``path`` into the emulator; a missing file is a fresh org."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read the emulator state file {path}: {exc}",
            "fix or remove the file to start from the seeded org",
        ) from None
    try:
        emulator.restore(data)
    except ValueError as exc:
        raise ConfigError(
            f"{path} is not an emulator state file: {exc}",
            "fix or remove the file to start from the seeded org",
        ) from None


def save_state(emulator: Emulator, path: str) -> None:
    """Write the org atomically: a reader sees the old file or the new one, never half."""
    target = os.path.abspath(path)
    fd, tmp = tempfile.mkstemp(
        dir=os.path.dirname(target), prefix=f".{os.path.basename(target)}.", suffix=".tmp"
    )
    try:
        try:  # keep the mode of the file it replaces (mkstemp creates 0600)
            mode = os.stat(target).st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644  # it holds no secret: tokens are never persisted
        os.chmod(tmp, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(emulator.snapshot(copy=False), f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def build(config: EmulatorConfig) -> EmulatorApp:
    """The app, its state loaded from ``config.state_file`` and saved there on every change."""
    app = create_app(config)
    if config.state_file:
        path = config.state_file
        emulator = app.emulator
        load_state(emulator, path)
        emulator.on_change = lambda: save_state(emulator, path)
    return app


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc}", "use --host 127.0.0.1"
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            "choose another --port (0 picks a free one)",
        ) from None
    sock.setblocking(False)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class _Server(uvicorn.Server):
    """uvicorn's server, except that a signal only stops it (uvicorn re-raises the signal after
    shutting down, which would turn a clean Ctrl+C into exit 130 or a SIGTERM death)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def stop(_sig: int, _frame: Any) -> None:
            if self.should_exit:
                self.force_exit = True
            self.should_exit = True

        previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def _server(app: EmulatorApp) -> _Server:
    _quiet_drops()
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
        date_header=False,  # the app sends Date, from the emulator's clock (it may be advanced)
    )
    return _Server(config)


def serve(config: EmulatorConfig, *, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM; ``on_ready(url)`` once listening. ``ConfigError`` when the
    state file cannot be read or the address cannot be bound."""
    app = build(config)
    sock = _bind(config.host, config.port)
    server = _server(app)

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                await task
                raise ConfigError(f"the emulator could not start on {_url(sock)}")
            await asyncio.sleep(0.01)
        if on_ready is not None:
            on_ready(_url(sock))
        await task

    try:
        asyncio.run(main())
    finally:
        sock.close()
        if config.state_file:
            save_state(app.emulator, config.state_file)


@contextlib.contextmanager
def running(config: EmulatorConfig) -> Iterator[str]:
    """A server in a background thread on ``config.host``/``config.port`` (use port 0 for a
    free one); yields its base URL and stops it on exit."""
    app = build(config)
    sock = _bind(config.host, config.port)
    server = _server(app)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # reported to the waiting thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="llmgw-emulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    try:
        while not server.started:
            if failure or not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the emulator did not start: {failure[:1]}")
            time.sleep(0.005)
        yield _url(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        if config.state_file:
            save_state(app.emulator, config.state_file)
