"""The OAuth client-credentials flow: one token per run, renewed before expiry and once on a 401.

It exists so that one object owns the run's bearer token: ``TokenStore`` holds it for every
client of a run (apply reads with one and writes with another: minting a second token is what
the contract calls abuse); ``Auth`` mints it with the client credentials, renews it 60 s before
it expires (or halfway through a shorter life, never on every request), and waits out the token
endpoint's own rate limit (``400 invalid_request``, "rate limit exceeded") and its 429 and 5xx
answers by the client's retry policy. ``Auth.flow`` gives each request its share of the token:
the ``Authorization`` header of every attempt, and one renewal when the API answers 401 (a
second 401 is the caller's ``AuthError``). A token is registered with ``reconciler.redact``
before anything could show it, and so is the client secret.

It must not mint a token to escape a rate window, follow a redirect of the token request, or
send anything itself: one attempt goes through the ``send`` the client hands it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from reconciler import redact
from reconciler.endpoints import HEADERS, OAUTH, PATHS
from reconciler.errors import AuthError, ProtocolError, TransportError
from reconciler.remote.answers import (
    Answer,
    AttemptFailed,
    Unreadable,
    lenient,
    parse_json,
)
from reconciler.remote.errors import TRIM, redirect_error, server_token
from reconciler.remote.retries import RETRY_STATUSES, Retries, retry_after
from reconciler.remote.settings import Settings, variable_to_check
from reconciler.text import kind_of, shown, visible_ascii


@dataclass
class TokenStore:
    """The run's one OAuth token, shared by the clients of one run (apply reads with one and
    writes with another): minting a second token is what the contract calls abuse. Plain data,
    so it may cross event loops; each client keeps its own lock."""

    token: str | None = None
    expires: float = 0.0
    margin: float = 60.0


class Send(Protocol):
    """One attempt, within its deadline: the answer read, or ``AttemptFailed`` (no complete
    answer) or ``Unreadable`` (a body llmgw cannot read)."""

    def __call__(self, method: str, url: str, **kwargs: Any) -> Awaitable[Answer]: ...


class Auth:
    """The token of one client: minted, cached in the run's ``TokenStore``, renewed."""

    def __init__(
        self,
        settings: Settings,
        store: TokenStore,
        *,
        send: Send,
        retries: Retries,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.store = store
        redact.register(settings.client_secret)  # for library callers; the CLI did it already
        self._send = send
        self._retries = retries
        self._clock = clock
        self._lock = asyncio.Lock()  # each client its own: the store may cross event loops
        self.requests = 0  # token requests sent, retries included

    def flow(self) -> Flow:
        """The token's part in one request (with all its retries)."""
        return Flow(self)

    async def token(self, *, renew: bool = False) -> str:
        """The run's token, minted when there is none, it is due for renewal or ``renew``."""
        async with self._lock:
            store = self.store
            if not renew and store.token and self._clock() < store.expires - store.margin:
                return store.token
            store.token = None
            url = self.settings.login_url + PATHS.token
            deadline = self._retries.deadline()
            attempt = 0
            while True:
                attempt += 1
                self.requests += 1
                try:
                    answer = await self._send(
                        "POST",
                        url,
                        data={OAUTH.grant_type: OAUTH.client_credentials},
                        auth=(self.settings.client_id, self.settings.client_secret),
                    )
                except AttemptFailed as exc:
                    what = exc.what
                    if attempt < self._retries.attempts and await self._retries.wait(
                        attempt, None, "POST", PATHS.token, what, deadline
                    ):
                        continue
                    raise TransportError("POST", PATHS.token, None, None, what, None) from None
                except Unreadable as exc:
                    raise ProtocolError(
                        "POST", PATHS.token, exc.status, None, redact.clip(str(exc), TRIM)
                    ) from None
                status = answer.status
                if status < 200:
                    raise ProtocolError(
                        "POST", PATHS.token, status, None, "an informational status, not an answer"
                    )
                if 300 <= status < 400:
                    raise redirect_error(
                        "POST",
                        PATHS.token,
                        status,
                        answer.headers.get(HEADERS.location.lower()),
                        url,
                        variable_to_check(self.settings, "LOGIN"),
                    )
                if status >= 400:
                    body = lenient(answer.content)
                    limited = status == 400 and "rate limit" in str(body).lower()
                    if (limited or status in RETRY_STATUSES) and attempt < self._retries.attempts:
                        wait = retry_after(answer.headers)
                        if limited and wait is None:
                            wait = min(60.0, self._retries.cap * attempt)
                        if await self._retries.wait(
                            attempt, wait, "POST", PATHS.token, str(status), deadline
                        ):
                            continue
                    raise AuthError(
                        "POST",
                        PATHS.token,
                        status,
                        server_token(body.get(OAUTH.error)) if isinstance(body, dict) else None,
                        f"the login server refused the client credentials of client "
                        f"{shown(self.settings.client_id)}; check GENESYS_CLOUD_CLIENT_ID and "
                        "GENESYS_CLOUD_CLIENT_SECRET (and GENESYS_CLOUD_LOGIN_URL)",
                        server_token(answer.headers.get(HEADERS.correlation_id)),
                    )
                try:
                    body = parse_json(answer.content)
                except Unreadable as exc:
                    raise ProtocolError(
                        "POST", PATHS.token, status, None, redact.clip(str(exc), TRIM)
                    ) from None
                return self._take(status, body)

    def _take(self, status: int, body: Any) -> str:
        def bad(what: str) -> ProtocolError:
            return ProtocolError("POST", PATHS.token, status, None, redact.clip(what, TRIM))

        if status != 200:
            raise bad(f"{status} is not the documented answer of the token endpoint (200)")
        if not isinstance(body, dict):
            raise bad(f"the answer is {kind_of(body)}, not a token object")
        token = body.get(OAUTH.access_token)
        if not isinstance(token, str) or not token:
            raise AuthError(
                "POST",
                PATHS.token,
                status,
                None,
                "the login server answered without an access_token",
                None,
            )
        redact.register(token)  # before anything could show it
        if not visible_ascii(token, 8192):
            raise bad("the access_token is not a bearer token (visible ASCII, at most 8 KiB)")
        lifetime = body.get(OAUTH.expires_in, 86400)
        if isinstance(lifetime, str):
            try:
                lifetime = float(lifetime)
            except ValueError:
                pass
        if (
            isinstance(lifetime, bool)
            or not isinstance(lifetime, int | float)
            or not 0 < lifetime < math.inf
        ):
            raise bad(f"expires_in is {shown(lifetime)}, not a positive number of seconds")
        self.store.token = token
        self.store.expires = self._clock() + float(lifetime)
        # renewed 60 s before expiry, or halfway through a shorter life (never on every request)
        self.store.margin = min(60.0, float(lifetime) / 2)
        return token


class Flow:
    """One request's use of the token: sent on every attempt, renewed at most once."""

    def __init__(self, auth: Auth) -> None:
        self._auth = auth
        self._renewed = False

    async def authorize(self, headers: dict[str, str]) -> None:
        """Set the attempt's ``Authorization`` header (minting or renewing the token if due)."""
        headers[HEADERS.authorization] = f"Bearer {await self._auth.token()}"

    async def renewed(self, status: int) -> bool:
        """True when ``status`` is this request's first 401: the token was renewed, and the
        attempt is to be repeated (it costs no attempt). A second 401 is an answer."""
        if status != 401 or self._renewed:
            return False
        self._renewed = True
        await self._auth.token(renew=True)
        return True
