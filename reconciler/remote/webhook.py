"""Posting a run's summary to a webhook (``--webhook``): a few tries, never fatal to the run.

It exists apart from the gateway client because a webhook is another host with other rules: no
token, no pacing, no paging, its answer's body never read. Its URL is checked like every URL
llmgw is handed (``reconciler.urls``), registered with the redactor and shown as its origin
only (webhook URLs carry their token in the path or query); a redirect is reported, never
followed (the payload would go where the server says).

It must not raise: whatever goes wrong comes back as a short message for the run to report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from reconciler import redact
from reconciler.endpoints import HEADERS
from reconciler.remote.errors import redirect_target
from reconciler.remote.retries import RETRY_STATUSES
from reconciler.urls import UrlProblem, check


async def post_webhook(
    url: str,
    payload: Any,
    *,
    attempts: int = 3,
    timeout: float = 10.0,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> str | None:
    """POST ``payload`` as JSON. None on success, else a short message. Never raises; the URL
    is registered with the redactor and shown as its origin only (webhook URLs carry their
    token in the path or query). Each attempt has ``timeout`` seconds in all; the answer's body
    is never read; a redirect is never followed (the payload would go where the server says)."""
    redact.register_url(url)
    where = redact.safe_url(url)
    try:
        check(url, what="the webhook URL")
    except UrlProblem as exc:
        return redact.redact(f"the webhook URL {where} {exc}")
    last = ""
    attempt = 0
    try:
        async with httpx.AsyncClient(
            transport=transport, timeout=timeout, follow_redirects=False
        ) as http:
            for attempt in range(1, max(1, attempts) + 1):
                try:
                    async with asyncio.timeout(timeout):
                        async with http.stream("POST", url, json=payload) as resp:
                            status = resp.status_code
                            location = resp.headers.get(HEADERS.location.lower())
                except TimeoutError:
                    last = f"no answer within {timeout:g} s"
                except httpx.HTTPError as exc:
                    last = type(exc).__name__
                else:
                    if 200 <= status < 300:
                        return None
                    if 300 <= status < 400:
                        host, _ = redirect_target(location, url)
                        return redact.redact(
                            f"webhook {where} answered {status}, a redirect to {host}; llmgw "
                            "does not follow redirects, so nothing was posted there: use the "
                            "final URL"
                        )
                    last = f"HTTP {status}"
                    if status not in RETRY_STATUSES:
                        break
                if attempt < attempts:
                    await sleep(min(10.0, 0.5 * 2 ** (attempt - 1)))
    except Exception as exc:  # never fatal to the run that reports
        return redact.redact(f"webhook {where} failed: {type(exc).__name__}")
    plural = "s" if attempt > 1 else ""
    return redact.redact(f"webhook {where} failed after {attempt} attempt{plural}: {last}")
