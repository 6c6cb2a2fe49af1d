"""The emulator in-process: an httpx transport over the ASGI app, for tests and benchmarks.

One application, two ways in: this transport (no sockets, fast, deterministic with an injected
clock) and the real server in ``server``. The project's client takes any httpx transport, so the
emulator plugs in here instead of by patching httpx. An injected dropped connection surfaces as
``httpx.RemoteProtocolError``, as a connection closed mid-answer by the real server does. This is
the only emulator module that imports httpx.

``EmulatorTransport`` is an ``httpx.ASGITransport`` whose request handling is asyncio-only:
httpx's generic version probes for trio with a failing import on every request, which cost
about a third of each in-process request.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from starlette.types import ASGIApp, Message

from reconciler.emulator.app import ConnectionDropped


class EmulatorTransport(httpx.ASGITransport):
    """Serve httpx requests from an ASGI app in the same event loop; map dropped connections
    to ``httpx.RemoteProtocolError``. Application errors propagate (a bug fails the test)."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app=app, raise_app_exceptions=True)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        url = request.url
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(k.lower(), v) for (k, v) in request.headers.raw],
            "scheme": url.scheme,
            "path": url.path,
            "raw_path": url.raw_path.split(b"?")[0],
            "query_string": url.query,
            "server": (url.host, url.port),
            "client": self.client,
            "root_path": self.root_path,
        }
        done = asyncio.Event()
        body_sent = False
        status: int | None = None
        headers: list[tuple[bytes, bytes]] = []
        parts: list[bytes] = []

        async def receive() -> Message:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status, headers = message["status"], list(message.get("headers", []))
            elif message["type"] == "http.response.body" and not done.is_set():
                if request.method != "HEAD":
                    parts.append(message.get("body", b""))
                if not message.get("more_body", False):
                    done.set()

        try:
            await self.app(scope, receive, send)
        except ConnectionDropped as exc:
            raise httpx.RemoteProtocolError(
                "server disconnected without sending a complete response", request=request
            ) from exc
        finally:
            done.set()
        if status is None:
            raise httpx.RemoteProtocolError("the app sent no response", request=request)
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(b"".join(parts)))


def in_process_transport(app: ASGIApp) -> httpx.AsyncBaseTransport:
    """A transport that serves requests from ``app`` (from ``app.create_app``) in-process."""
    return EmulatorTransport(app)
