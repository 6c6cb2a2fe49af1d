"""``remote.pacing``: requests paced by the inin-ratelimit-* headers.

Covers: the last fifth of a window's budget spread over the time left; an exhausted window
waited out until its reset (plus a second of margin); 330 reads at 300 a minute, 8 at a time,
against the emulator's fixed window on virtual time: no 429, and no time lost at the window's
edge.
"""

from __future__ import annotations

import asyncio

import httpx

from reconciler.endpoints import PATHS
from reconciler.remote import GatewayClient, Settings
from tests.remote_fakes import API, Clock, VirtualTime, make, token_ok


async def test_pacing_spreads_the_last_fifth_of_the_window() -> None:
    count = [0]

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req)
        count[0] += 1
        return httpx.Response(
            200,
            json={},
            headers={
                "inin-ratelimit-allowed": "100",
                "inin-ratelimit-count": str(90 + count[0]),
                "inin-ratelimit-reset": "30",
            },
        )

    clock = Clock()
    async with make(handler, clock) as c:
        for _ in range(4):
            await c.request("GET", "/x")
    # 9 left of 100 with 30 s to go: each request waits about 30/9 s
    assert clock.sleeps and all(2.0 < s < 5.0 for s in clock.sleeps)


async def test_exhausted_window_waits_for_reset() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req)
        return httpx.Response(
            200,
            json={},
            headers={
                "inin-ratelimit-allowed": "300",
                "inin-ratelimit-count": "300",
                "inin-ratelimit-reset": "12",
            },
        )

    clock = Clock()
    async with make(handler, clock) as c:
        await c.request("GET", "/x")
        await c.request("GET", "/x")
    assert clock.sleeps == [13.0]  # the reset header plus a second of margin


async def test_pacing_at_the_window_edge_loses_no_time_and_meets_no_429() -> None:
    """330 reads at 300 a minute, 8 at a time, against the emulator's fixed window: the last 30
    go out when the window resets (plus the one-second margin), not seconds later."""
    from reconciler.emulator.app import create_app
    from reconciler.emulator.config import EmulatorConfig
    from reconciler.emulator.transport import in_process_transport

    vt = VirtualTime()
    app = create_app(EmulatorConfig(rate_limit=300), clock=vt, sleep=vt.sleep)
    client = GatewayClient(
        Settings(API, API, "emulator-client", "emulator-secret"),
        transport=in_process_transport(app),
        parallelism=8,
        sleep=vt.sleep,
        clock=vt,
    )

    async def reads() -> None:
        async with client:
            await asyncio.gather(*(client.request("GET", PATHS.models) for _ in range(330)))

    start = vt()
    await vt.run(reads())
    api = [r for r in app.log if r["path"] != "/oauth/token"]
    assert len(api) == 330
    assert not [r for r in api if r["status"] == 429]
    assert vt() - start <= 60 + 2.5, vt() - start
