"""The one place that speaks HTTP: llmgw's client of the gateway, split by concern.

Only this package (and the emulator's in-process transport) imports httpx. Every failure
leaves it as an error of the project's own tree (``reconciler.errors``), never as an httpx
exception, and no message or log line ever holds the client secret or a bearer token. It knows
the wire (status codes; header names, error ``code``s and paging names from
``reconciler.endpoints``) but nothing of manifests or plans. The contract it follows is
``docs/contract.md``.

    settings  where and as whom to connect: Settings from the environment, URLs checked
    auth      the OAuth client-credentials flow: TokenStore, renewal, the 401-renew-retry
    retries   the retry policy: backoff with full jitter, Retry-After, the budget
    pacing    the inin-ratelimit-* headers: the rest of a window's budget spread over it
    answers   reading an answer: bounded body, bounded decoding, strict JSON, lenient errors
    errors    what an answer means: map_error, redirects, the documented successes
    paging    page-number and cursor listings, their layouts checked and bounded
    stats     per-endpoint counts and latencies
    client    GatewayClient: request() with all of the above, list_pages, list_cursor
    webhook   post_webhook: a run's summary posted, never fatal
    comments  post_sticky: the plan as one comment per environment on a pull/merge request

Callers import from here (tests/test_architecture.py checks it); the modules' other names are
the package's own. This module must not hold logic: it only names what callers use.
"""

from __future__ import annotations

from reconciler.remote.answers import Response
from reconciler.remote.auth import TokenStore
from reconciler.remote.client import GatewayClient
from reconciler.remote.comments import Posted, comment_target, post_sticky
from reconciler.remote.settings import Settings
from reconciler.remote.stats import EndpointStats, endpoint_of
from reconciler.remote.webhook import post_webhook

__all__ = [
    "EndpointStats",
    "GatewayClient",
    "Posted",
    "Response",
    "Settings",
    "TokenStore",
    "comment_target",
    "endpoint_of",
    "post_sticky",
    "post_webhook",
]
