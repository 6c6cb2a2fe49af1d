"""The emulator in-process: an httpx transport over the ASGI app, for tests and benchmarks.

One implementation, two ways in: this transport, and the real server in ``server``. An injected
dropped connection surfaces to the httpx client as ``httpx.RemoteProtocolError``, exactly as a
connection closed by the real server does.
"""

from __future__ import annotations

import httpx

from reconciler.emulator.app import ConnectionDropped, Emulator


class EmulatorTransport(httpx.ASGITransport):
    def __init__(self, app: Emulator) -> None:
        super().__init__(app=app, raise_app_exceptions=True)  # type: ignore[arg-type]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except ConnectionDropped as exc:
            raise httpx.RemoteProtocolError(
                "server disconnected without sending a complete response", request=request
            ) from exc


def in_process_transport(app: Emulator) -> httpx.AsyncBaseTransport:
    return EmulatorTransport(app)
