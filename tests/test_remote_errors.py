"""``remote.errors``: what each answer means, in the project's error tree.

Covers: the error mapping table (status and code to error class, correlation id kept, scope
named, secret masked); non-JSON error bodies trimmed; odd codes and correlation ids quoted;
write statuses by the endpoint table (and the object answered checked), reads by 200 only;
redirects on reads and writes never followed (the same origin said so, the region named when
the URLs came from it); informational final answers; a token straddling the cut of a message
masked whole, by the one redactor.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from reconciler import errors
from reconciler.remote import GatewayClient, Settings
from tests.remote_fakes import SECRET, TOKEN, answering, make, redirecting, token_ok


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "validation.failed", errors.InvalidRequestError),
        (422, "immutable.field", errors.InvalidRequestError),
        (403, "missing.scope", errors.ScopeError),
        (404, "not.found", errors.NotFoundError),
        (409, "name.exists", errors.ConflictError),
        (409, "precondition.failed", errors.PreconditionFailedError),
        (412, "precondition.failed", errors.PreconditionFailedError),
        (409, "index.processing", errors.ProcessingError),
        (429, "rate.limited", errors.RateLimitError),
        (500, None, errors.ServerError),
    ],
)
async def test_error_mapping(status: int, code: str | None, cls: type[Exception]) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req)
        body = {
            "message": f"refused; the OAuth client lacks the scope ai:prompt:write {SECRET}",
            "code": code,
            "status": status,
            "contextId": "ctx",
        }
        return httpx.Response(status, json=body, headers={"inin-correlation-id": "ctx"})

    async with make(handler, max_attempts=1) as c:
        with pytest.raises(cls) as exc:
            await c.request("GET", "/x")
    assert type(exc.value) is cls
    assert exc.value.correlation_id == "ctx"  # type: ignore[attr-defined]
    assert SECRET not in str(exc.value)
    if cls is errors.ScopeError:
        assert exc.value.scope == "ai:prompt:write"  # type: ignore[attr-defined]


async def test_non_json_error_body_is_trimmed() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req)
        return httpx.Response(400, text="<html>" + "x" * 5000)

    async with make(handler) as c:
        with pytest.raises(errors.InvalidRequestError) as exc:
            await c.request("GET", "/x")
    assert len(str(exc.value)) < 400


async def test_odd_codes_and_correlation_ids_are_quoted() -> None:
    body = {"message": "no", "code": "bad\ncode"}
    handler = answering(json.dumps(body).encode(), 404, **{"inin-correlation-id": "a b\tc"})
    async with make(handler) as c:
        with pytest.raises(errors.NotFoundError) as exc:
            await c.request("GET", "/x")
    assert exc.value.code == '"bad\\ncode"' and exc.value.correlation_id == '"a b\\tc"'


async def test_a_code_ending_in_a_newline_is_quoted_too() -> None:
    # a `$`-anchored pattern matches before a trailing newline: the code would print raw
    body = {"message": "no", "code": "not.found\n"}
    handler = answering(json.dumps(body).encode(), 404)
    async with make(handler) as c:
        with pytest.raises(errors.NotFoundError) as exc:
            await c.request("GET", "/x")
    assert exc.value.code == '"not.found\\n"'


TPL = "/api/v2/llm-gateway/prompt-templates"


VER = "/api/v2/ai/prompt-templates/t1/versions"


PRM = "/api/v2/ai/llm/gateway/prompts"


IDX = "/api/v2/ai/vectorstores/s1/indexes/idx-1"


@pytest.mark.parametrize(
    ("method", "path", "status", "body", "needle"),
    [
        ("POST", TPL, 201, {"id": "t1"}, None),
        ("POST", TPL, 200, {"id": "t1"}, "200 is not the documented answer to this write (201)"),
        ("POST", TPL, 202, {"id": "t1"}, "cannot tell whether it was applied"),
        ("POST", TPL, 201, [{"id": "t1"}], "the answer is an array, not the object written"),
        ("POST", TPL, 201, {"name": "x"}, "has no usable id (it is missing)"),
        ("POST", TPL, 201, {"id": 7}, "has no usable id (it is not a string: 7)"),
        ("POST", TPL, 201, {"id": "../../x"}, 'has no usable id (it contains ..: "../../x")'),
        ("POST", TPL, 201, {"id": "a/b"}, "contains '/'"),
        ("PUT", f"{TPL}/t1", 200, {"id": "t1"}, None),
        ("PUT", f"{TPL}/t1", 200, {"id": "t2"}, 'the object answered is id "t2", not the "t1"'),
        ("PUT", f"{TPL}/t1", 201, {"id": "t1"}, "(200)"),
        ("DELETE", f"{TPL}/t1", 204, None, None),
        ("DELETE", f"{TPL}/t1", 200, {"status": "deleted"}, None),
        ("DELETE", f"{TPL}/t1", 202, None, "(204 or 200)"),
        ("POST", VER, 201, {"version": "1.0.0"}, None),
        ("PATCH", f"{VER}/1.0.0", 200, {"version": "1.0.0"}, None),
        ("PATCH", f"{VER}/1.0.0", 200, {"version": "1.0.1"}, 'is version "1.0.1", not the'),
        ("POST", PRM, 201, {"id": "p1", "version": "1.0.0", "status": "ACTIVE"}, None),
        ("PUT", f"{PRM}/p1", 200, {"id": "p1"}, None),
        ("PUT", f"{PRM}/p1", 204, None, "(200)"),
        ("PUT", IDX, 201, {"indexId": "idx-1"}, None),
        ("PUT", IDX, 200, {"indexId": "idx-1"}, None),
        ("PUT", IDX, 200, {"indexId": "idx 1"}, "contains whitespace"),
        ("PUT", IDX, 204, None, "(200 or 201)"),
        ("POST", "/api/v2/ai/llm/gateway/audit-logs", 201, {}, None),
        ("POST", "/elsewhere", 200, None, None),
        ("POST", "/elsewhere", 206, None, "(200 or 201 or 204)"),
        ("GET", TPL, 200, {"entities": []}, None),
        ("GET", TPL, 204, None, "204 is not the documented answer to a read (200)"),
    ],
)
async def test_writes_succeed_only_with_their_documented_answer(
    method: str, path: str, status: int, body: Any, needle: str | None
) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req)
        return httpx.Response(status, json=body) if body is not None else httpx.Response(status)

    async with make(handler) as c:
        if needle is None:
            assert (await c.request(method, path, json={}, request_id="r")).status == status
            return
        with pytest.raises(errors.ProtocolError) as exc:
            await c.request(method, path, json={}, request_id="r")
    assert f"cannot read: {method} {path} -> {status}: " in str(exc.value)
    assert needle in str(exc.value)


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
@pytest.mark.parametrize(
    ("status", "location", "needle"),
    [
        (302, "https://other.example.com/steal", 'redirected to "other.example.com";'),
        (307, "/api/v2/other", 'redirected to "127.0.0.1" (the same origin)'),
        (308, "http://127.0.0.1:10/x", 'redirected to "127.0.0.1";'),
        (301, None, "redirected to nowhere (no Location header)"),
        (304, None, "redirected to nowhere"),
    ],
)
async def test_redirects_are_errors_and_never_followed(
    method: str, status: int, location: str | None, needle: str
) -> None:
    hits: list[str] = []
    async with make(redirecting(status, location, hits=hits)) as c:
        with pytest.raises(errors.ProtocolError) as exc:
            await c.request(method, f"{TPL}/t1" if method != "POST" else TPL, request_id="r")
    assert needle in str(exc.value)
    assert "no credential went there: check GENESYS_CLOUD_API_URL" in str(exc.value)
    assert [h.split()[0] for h in hits] == ["127.0.0.1", "127.0.0.1"]  # token, then the one


@pytest.mark.parametrize("status", [100, 101, 199])
async def test_an_informational_final_answer_is_an_error(status: int) -> None:
    async with make(redirecting(status, None)) as c:
        with pytest.raises(errors.ProtocolError, match="an informational status, not an answer"):
            await c.request("POST", TPL, request_id="r")


async def test_a_redirect_names_the_region_when_the_urls_came_from_it() -> None:
    s = Settings(
        "https://api.usw2.pure.cloud",
        "https://login.usw2.pure.cloud",
        "c",
        SECRET,
        "usw2.pure.cloud",
    )
    handler = redirecting(302, "https://elsewhere.example.com/")
    async with GatewayClient(s, transport=httpx.MockTransport(handler)) as c:
        with pytest.raises(errors.ProtocolError, match=r"check GENESYS_CLOUD_REGION$"):
            await c.request("GET", "/x")


async def test_a_token_straddling_the_cut_is_masked_whole() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": TOKEN, "expires_in": 3600})
        # the token sits across the 300-character cut of the message
        return httpx.Response(400, json={"message": "x" * 280 + TOKEN + " tail " + SECRET})

    async with make(handler) as c:
        with pytest.raises(errors.InvalidRequestError) as exc:
            await c.request("GET", "/x")
    text = str(exc.value)
    assert not any(TOKEN[i : i + 8] in text for i in range(len(TOKEN) - 7))
    assert "***" in text and len(exc.value.detail) <= 300
    assert not hasattr(GatewayClient, "_redact")  # one redactor: reconciler.redact
