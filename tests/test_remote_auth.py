"""``remote.auth``: the OAuth client-credentials flow, against MockTransport fakes.

Covers: one token per run, renewed 60 s before expiry and once on a 401 (a second 401 is an
AuthError); the token endpoint's rate-limit 400 waited out by its Retry-After; refused
credentials naming the variables, not the secret; a redirect of the token request not followed
(check GENESYS_CLOUD_LOGIN_URL); token answers llmgw cannot use (not a bearer token, odd
expires_in, not an object); a short-lived token renewed halfway, not on every request; the
settings' secret registered with the redactor for library callers.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from reconciler import errors, redact
from reconciler.remote import GatewayClient, Settings
from tests.remote_fakes import API, SECRET, Clock, make, redirecting, token_ok


async def test_one_token_renewed_before_expiry_and_once_on_401() -> None:
    minted: list[int] = []
    seen: list[str] = []
    reject_next = [False]

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            assert req.headers["authorization"].startswith("Basic ")
            return token_ok(req, expires=3600, n=minted)
        seen.append(req.headers["authorization"])
        if reject_next[0]:
            reject_next[0] = False
            return httpx.Response(401, json={"message": "expired", "code": "bad.credentials"})
        return httpx.Response(200, json={})

    clock = Clock()
    async with make(handler, clock) as c:
        await c.request("GET", "/a")
        await c.request("GET", "/a")
        assert len(minted) == 1
        clock.t += 3600 - 59  # within 60 s of expiry: renewed
        await c.request("GET", "/a")
        assert len(minted) == 2
        reject_next[0] = True
        await c.request("GET", "/a")
        assert len(minted) == 3 and seen[-1] == "Bearer tok3"


async def test_second_401_is_an_auth_error() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req)
        return httpx.Response(401, json={"message": "no", "code": "bad.credentials"})

    async with make(handler) as c:
        with pytest.raises(errors.AuthError):
            await c.request("GET", "/a")


async def test_token_rate_limit_400_is_waited_out() -> None:
    calls: list[int] = []

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            calls.append(1)
            if len(calls) < 3:
                return httpx.Response(
                    400,
                    json={"error": "invalid_request", "description": "rate limit exceeded"},
                    headers={"Retry-After": "7"},
                )
            return token_ok(req)
        return httpx.Response(200, json={})

    clock = Clock()
    async with make(handler, clock) as c:
        await c.request("GET", "/a")
    assert clock.sleeps == [7.0, 7.0]


async def test_refused_credentials_name_the_variables_not_the_secret() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": "invalid_client"})

    async with make(handler) as c:
        with pytest.raises(errors.AuthError) as exc:
            await c.request("GET", "/a")
    assert "GENESYS_CLOUD_CLIENT_SECRET" in str(exc.value) and SECRET not in str(exc.value)


async def test_a_redirect_of_the_token_request_is_not_followed() -> None:
    hits: list[str] = []
    handler = redirecting(307, "https://other.example.com/oauth/token", on_token=True, hits=hits)
    async with make(handler) as c:
        with pytest.raises(errors.ProtocolError) as exc:
            await c.request("GET", "/x")
    assert 'POST /oauth/token -> 307: the server redirected to "other.example.com"' in str(
        exc.value
    )
    assert "check GENESYS_CLOUD_LOGIN_URL" in str(exc.value)
    assert len(hits) == 1 and hits[0].startswith("127.0.0.1 Basic ")


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"access_token": "abc\ndef-123", "expires_in": 60}, "is not a bearer token"),
        # a trailing newline: `$` in a regex matches before one, a header cannot carry it
        ({"access_token": "abc-def-123\n", "expires_in": 60}, "is not a bearer token"),
        ({"access_token": "tok-ok-12345", "expires_in": "soon"}, 'expires_in is "soon"'),
        ({"access_token": "tok-ok-12345", "expires_in": -5}, "expires_in is -5"),
        ({"access_token": "tok-ok-12345", "expires_in": True}, "expires_in is true"),
        (["access_token"], "the answer is an array, not a token object"),
    ],
)
async def test_token_answers_llmgw_cannot_use(body: Any, needle: str) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=body)

    async with make(handler) as c:
        with pytest.raises(errors.ProtocolError) as exc:
            await c.request("GET", "/x")
    assert needle in str(exc.value) and "abc\ndef" not in str(exc.value)


async def test_a_short_lived_token_is_renewed_halfway_not_on_every_request() -> None:
    minted: list[int] = []

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req, expires=30, n=minted)
        return httpx.Response(200, json={})

    clock = Clock()
    async with make(handler, clock) as c:
        for _ in range(5):
            await c.request("GET", "/x")
        assert len(minted) == 1
        clock.t += 16  # past half of its 30 s
        await c.request("GET", "/x")
    assert len(minted) == 2


def test_the_settings_secret_is_registered_for_library_callers() -> None:
    GatewayClient(Settings(API, API, "cid", "library-secret-value"))
    assert redact.redact("it was library-secret-value") == "it was ***"
