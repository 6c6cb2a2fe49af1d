"""What an answer means: the wire's statuses and error codes mapped to the project's errors.

It exists so that one table decides which answers are failures and which error of
``reconciler.errors`` each one is: an error status and its ``code`` (``map_error``), a redirect
(never followed, so no credential went where the server says: ``redirect_error``), and a 2xx
that is not the documented success of its endpoint (a read succeeds with 200 only, a write only
with the statuses ``endpoints.WRITES`` documents, its answer the object it wrote). A server's
text is shown trimmed to ``TRIM`` characters, invisible characters escaped and secrets masked;
an odd error code or correlation id is quoted.

It must not define exception classes (the one tree is ``reconciler.errors``), send anything,
or import httpx: it reads statuses, bodies already parsed and header values.
"""

from __future__ import annotations

import json as _json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from reconciler import redact
from reconciler.endpoints import CODES, ERROR_BODY, OAUTH, READ_SUCCESS, WRITES, Write
from reconciler.errors import (
    AuthError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PreconditionFailedError,
    ProcessingError,
    ProtocolError,
    RateLimitError,
    RemoteError,
    ScopeError,
    ServerError,
)
from reconciler.text import NAME, kind_of, shown, visible
from reconciler.urls import segment_problem

TRIM = 300  # characters of a server's message in an error

_SCOPE_RX = re.compile(r"[a-z][\w-]*(?::[\w-]+){1,3}")
_TOKEN_RX = re.compile(r"[\w.:@/+=~-]{1,128}")  # an error code or correlation id as is


def server_token(value: Any) -> str | None:
    """A short server token (error code, correlation id) fit to print, quoted when odd."""
    if value is None or value == "":
        return None
    text = value if isinstance(value, str) else _json.dumps(value, default=str)[:NAME]
    return text if _TOKEN_RX.fullmatch(text) else shown(text, NAME)


E = ERROR_BODY


def _clip(text: str) -> str:
    """A server's text as llmgw shows it: invisible characters escaped, secrets masked, at most
    ``TRIM`` characters (``redact.clip`` masks before it cuts, so no secret is cut in half)."""
    return redact.clip(visible(text[: TRIM * 8]).strip(), TRIM)


def map_error(
    method: str, path: str, status: int, body: Any, correlation: str | None
) -> RemoteError:
    """The project's error for a gateway answer, branching on status and the error ``code``."""
    code = body.get(E.code) if isinstance(body, dict) else None
    if isinstance(body, dict):
        # the platform's error body, else an OAuth one (a login host answering an API call)
        said = body.get(E.message) or body.get(OAUTH.description) or body.get(OAUTH.error)
        detail = str(said or "")
        details = body.get(E.details)
        if details and isinstance(details, list):
            detail += " " + "; ".join(str(d) for d in details[:5])
    else:
        detail = str(body or "")
    detail = _clip(detail)
    code = server_token(code)
    args = (method, path, status, code, detail, server_token(correlation))
    if status in (400, 422):
        return InvalidRequestError(*args)
    if status == 401:
        return AuthError(*args)
    if status == 403:
        m = _SCOPE_RX.search(detail)
        return ScopeError(*args, scope=m.group(0) if m else None)
    if status == 404:
        return NotFoundError(*args)
    if status == 412 or code == CODES.precondition_failed:
        return PreconditionFailedError(*args)
    if status == 409 and code == CODES.index_processing:
        return ProcessingError(*args)
    if status == 409:
        return ConflictError(*args)
    if status == 429:
        return RateLimitError(*args)
    if status >= 500:
        return ServerError(*args)
    return RemoteError(*args)


# -- redirects ---------------------------------------------------------------------------------
def redirect_target(location: str | None, url: str) -> tuple[str, bool]:
    """The host a redirect names (shown quoted), and whether it is the request's own origin."""
    if not location:
        return "nowhere (no Location header)", False
    try:
        resolved = urlsplit(urljoin(url, location))
        here = urlsplit(url)
        host = resolved.hostname or ""
        same = (resolved.scheme, host, resolved.port) == (here.scheme, here.hostname, here.port)
    except ValueError:
        return f"{shown(location, NAME)} (not a valid URL)", False
    return (shown(host, NAME) if host else "an invalid URL"), same


def redirect_error(
    method: str, path: str, status: int, location: str | None, url: str, variable: str
) -> ProtocolError:
    """A 3xx as llmgw reports it: redirects are never followed, so no credential went there."""
    host, same = redirect_target(location, url)
    where = f"{host} (the same origin)" if same else host
    return ProtocolError(
        method,
        path,
        status,
        None,
        redact.clip(
            f"the server redirected to {where}; llmgw does not follow redirects, so no "
            f"credential went there: check {variable}",
            TRIM,
        ),
    )


# -- which answers mean success ----------------------------------------------------------------
def _template_rx(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    rx = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(parts))
    return re.compile(rx)


_WRITES: tuple[tuple[Write, re.Pattern[str]], ...] = tuple(
    (w, _template_rx(w.path)) for w in WRITES
)
_ANY_WRITE = Write("", "", tuple(sorted({s for w in WRITES for s in w.success})))


def write_endpoint(method: str, path: str) -> tuple[Write, dict[str, str]]:
    """The endpoint table's entry for a write, and the path parameters it was sent with."""
    bare = path.split("?", 1)[0]
    for write, rx in _WRITES:
        if write.method == method:
            m = rx.fullmatch(bare)
            if m:
                return write, {k: unquote(v) for k, v in m.groupdict().items()}
    return _ANY_WRITE, {}


def check_read(method: str, path: str, status: int, correlation: str | None) -> None:
    """A 2xx read answer must be the documented success of a read (200)."""
    if status not in READ_SUCCESS:
        raise ProtocolError(
            method,
            path,
            status,
            None,
            f"{status} is not the documented answer to a read (200)",
            correlation,
        )


def check_written(
    method: str, path: str, status: int, body: Any, write: Write, params: Mapping[str, str]
) -> None:
    """A 2xx write answer must be a documented success whose body is the object written."""
    if status not in write.success:
        documented = " or ".join(str(s) for s in write.success)
        raise ProtocolError(
            method,
            path,
            status,
            None,
            f"{status} is not the documented answer to this write ({documented}); llmgw cannot "
            "tell whether it was applied: check the object in the org, then re-run",
        )
    if write.identity is None:
        return
    if not isinstance(body, dict):
        raise ProtocolError(
            method, path, status, None, f"the answer is {kind_of(body)}, not the object written"
        )
    ident = body.get(write.identity)
    problem = segment_problem(ident) if ident is not None else "is missing"
    if problem:
        raise ProtocolError(
            method,
            path,
            status,
            None,
            redact.clip(
                f"the object answered has no usable {write.identity} (it {problem}"
                + (f": {shown(ident)}" if ident is not None else "")
                + ")",
                TRIM,
            ),
        )
    expected = params.get(write.param) if write.param else None
    if expected is not None and ident != expected:
        raise ProtocolError(
            method,
            path,
            status,
            None,
            redact.clip(
                f"the object answered is {write.identity} {shown(ident)}, not the "
                f"{shown(expected)} written",
                TRIM,
            ),
        )
