"""``remote.webhook``: post_webhook.

Covers: retries on a 5xx, then success; never raising (a transport error after every attempt
is a message); a URL's secrets never shown (its origin only, registered with the redactor); URLs
refused by the one URL check (plain http off loopback, backslashes); redirects reported, never
followed.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from reconciler import redact
from reconciler.remote import post_webhook


async def test_webhook_retries_and_never_raises() -> None:
    got: list[Any] = []
    answers = iter([httpx.Response(502), httpx.Response(200)])

    def handler(req: httpx.Request) -> httpx.Response:
        got.append(json.loads(req.content))
        return next(answers)

    async def nosleep(_: float) -> None:
        return None

    assert (
        await post_webhook(
            "http://127.0.0.1:1/hook",
            {"text": "hi"},
            transport=httpx.MockTransport(handler),
            sleep=nosleep,
        )
        is None
    )
    assert got == [{"text": "hi"}] * 2

    def boom(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("nope")

    msg = await post_webhook(
        "https://hooks.example.com/T0/B0?token=XYZSECRET",
        {},
        transport=httpx.MockTransport(boom),
        sleep=nosleep,
    )
    assert msg == "webhook https://hooks.example.com/*** failed after 3 attempts: ConnectError"
    assert "plain http" in (await post_webhook("http://hooks.example.com/x", {}) or "")
    assert "backslash" in (await post_webhook("https://a.example.com\\@127.0.0.1/", {}) or "")


async def test_webhook_redirects_are_reported_not_followed() -> None:
    hosts: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        hosts.append(req.url.host)
        return httpx.Response(302, headers={"location": "https://elsewhere.example.com/x?t=1"})

    msg = await post_webhook(
        "https://hooks.example.com/T0/B0?token=XYZSECRET",
        {},
        transport=httpx.MockTransport(handler),
    )
    assert msg == (
        "webhook https://hooks.example.com/*** answered 302, a redirect to "
        '"elsewhere.example.com"; llmgw does not follow redirects, so nothing was posted there: '
        "use the final URL"
    )
    assert hosts == ["hooks.example.com"]
    # registered by post_webhook: shown as its origin, path (Slack's T0/B0 is a secret) and all
    shown = redact.redact("posted to https://hooks.example.com/T0/B0?token=XYZSECRET")
    assert shown == "posted to https://hooks.example.com/***"
