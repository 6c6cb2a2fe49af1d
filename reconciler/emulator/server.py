"""The emulator as a real HTTP server on loopback (uvicorn), with ``--state`` persistence.

``serve`` runs until interrupted; ``running`` starts one in a background thread on a free port
for tests and scripts. An injected dropped connection closes the socket mid-answer (the client
sees an incomplete response), never a 500.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from reconciler.emulator.app import ConnectionDropped, Emulator, create_app
from reconciler.emulator.config import EmulatorConfig


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionDropped | _Truncated)


class _Truncated(Exception):
    pass


def _dropping(app: Emulator) -> Callable[..., Any]:
    """Wrap the app so an injected drop closes the connection without a complete answer."""

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await app(scope, receive, send)
        except ConnectionDropped:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", b"4096"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b"{", "more_body": True})
            raise _Truncated() from None

    return asgi


def load_state(app: Emulator, path: str) -> None:
    try:
        with open(path, encoding="utf-8") as f:
            app.gateway.restore(json.load(f))
    except FileNotFoundError:
        return
    except (OSError, ValueError) as exc:
        raise SystemExit(f"llmgw emulator: cannot read state file {path}: {exc}") from None


def save_state(app: Emulator, path: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(app.gateway.snapshot(), f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def build(config: EmulatorConfig) -> Emulator:
    app = create_app(config)
    if config.state_file:
        load_state(app, config.state_file)
        path = config.state_file
        app.on_change = lambda: save_state(app, path)
    return app


def _server(config: EmulatorConfig, app: Emulator) -> uvicorn.Server:
    logging.getLogger("uvicorn.error").addFilter(_QuietDrops())
    uc = uvicorn.Config(
        _dropping(app),
        host=config.host,
        port=config.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    return uvicorn.Server(uc)


def _url(server: uvicorn.Server, config: EmulatorConfig) -> str:
    port = config.port
    for s in getattr(server, "servers", []) or []:
        for sock in s.sockets:
            port = sock.getsockname()[1]
            break
    host = config.host if ":" not in config.host else f"[{config.host}]"
    return f"http://{host}:{port}"


def serve(config: EmulatorConfig, *, on_ready: Callable[[str], None] | None = None) -> None:
    """Run until SIGINT/SIGTERM; ``on_ready(url)`` once listening."""
    app = build(config)
    server = _server(config, app)

    async def main() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                await task
                raise SystemExit(f"llmgw emulator: could not listen on {config.host}:{config.port}")
            await asyncio.sleep(0.02)
        if on_ready is not None:
            on_ready(_url(server, config))
        await task

    asyncio.run(main())


@contextmanager
def running(config: EmulatorConfig) -> Iterator[str]:
    """A server in a background thread; yields its base URL, stops it on exit."""
    app = build(config)
    server = _server(config, app)
    server.config.install_signal_handlers = False  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the emulator did not start")
        time.sleep(0.01)
    try:
        yield _url(server, config)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
