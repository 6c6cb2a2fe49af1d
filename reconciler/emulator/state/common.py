"""What every section of the state machine shares: the answer and refusal types, and the helpers
that read a request the same way for every kind.

The contract's common behaviour (``docs/contract.md``, "Common behaviour") lives here once:
unknown fields refused, server-managed fields ignored and ``null`` meaning absent, page-number
paging, integer query parameters, entity tags read the same way for every kind, ISO 8601 times,
and the gateway's text refusals (from ``reconciler/textrules.py``, each detail naming its rule).
Plus the few wire names every object carries that the endpoint table does not (yet).

What this module must not do: hold or change any org's data (``org``), know a kind's fields
(each section does), or do I/O of any kind, the wall clock included.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeGuard

from reconciler import textrules as tr
from reconciler.endpoints import CODES, PAGING

# Names the endpoint table does not carry (yet), common to every kind's objects.
LABELS = "labels"
DATE_CREATED = "dateCreated"
DATE_MODIFIED = "dateModified"
SELF_URI = "selfUri"

NAME_MIN_CHARS, NAME_MAX_CHARS = 3, 128  # a template's or a prompt's name
MAX_PAGE_NUMBER = 2**31 - 1  # the platform's int32 page numbers
DEFAULT_PAGE_SIZE = 25


class ApiError(Exception):
    """A refusal of the state machine: HTTP status, contract ``code``, message, details."""

    def __init__(
        self, status: int, code: str, message: str, details: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or []


def invalid(message: str, status: int = 400, details: list[str] | None = None) -> ApiError:
    return ApiError(status, CODES.validation_failed, message, details or [message])


def not_found(what: str) -> ApiError:
    return ApiError(404, CODES.not_found, f"{what} not found")


class Answer(NamedTuple):
    """What a handler answers: ``(status, body, headers)``; ``body`` None for 204."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = {}


# -- time ---------------------------------------------------------------------------------------
def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: Any, name: str) -> float | None:
    """An RFC 3339 / ISO 8601 date-time (``Z``, ``z`` or an offset; no zone means UTC)."""
    if value in (None, ""):
        return None
    try:
        text = str(value)
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        dt = datetime.fromisoformat(text)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    except (ValueError, OverflowError):
        raise invalid(f"{name} must be an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z") from None


# -- values -------------------------------------------------------------------------------------
def is_num(v: Any) -> TypeGuard[float]:
    return isinstance(v, int | float) and not isinstance(v, bool)


def is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def names_in(value: Any, allowed: Iterable[str]) -> bool:
    """A list of strings, each one of ``allowed`` (never hashing what is not a string)."""
    return isinstance(value, list) and all(isinstance(v, str) and v in allowed for v in value)


def string_map(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise invalid(f"{where} must be a map of strings to strings")
    return dict(value)


# -- request bodies -----------------------------------------------------------------------------
def require_object(body: Any, status: int = 400) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid("the request body must be a JSON object", status)
    return body


def refuse_unknown(body: Mapping[str, Any], allowed: Iterable[str], status: int = 400) -> None:
    extra = sorted(set(body) - set(allowed))
    if extra:
        raise invalid("unknown field(s): " + ", ".join(extra), status)


def clean(body: Mapping[str, Any], server: Iterable[str]) -> dict[str, Any]:
    """Server-managed fields in a write are ignored; ``null`` means absent."""
    drop = set(server)
    return {k: v for k, v in body.items() if k not in drop and v is not None}


# -- the gateway's text rules (shared with validation: reconciler/textrules.py) -----------------
def text_problems(field: str, text: Any) -> list[str]:
    """The gateway's write-time refusals of a text that reaches the model: the injection
    patterns of seed 002, each detail naming its rule."""
    if not isinstance(text, str):
        return []
    return [tr.detail(f.rule, f"{field} {f.message}") for f in tr.gateway_injection(text)]


def name_problems(field: str, name: Any) -> list[str]:
    """Invisible characters, `..` or a dot segment in a name the gateway stores."""
    if not isinstance(name, str):
        return []
    return [
        tr.detail(f.rule, f"{field} {f.message}")
        for f in tr.identity_findings(name, ascii=False, what="a name")
    ]


# -- preconditions ------------------------------------------------------------------------------
def entity_tags(header: str) -> tuple[str, ...]:
    """The tags of an ``If-Match``/``If-None-Match`` value, read the same way for every kind.

    ``*``, or a comma-separated list of entity tags, each quoted or not and weak (``W/``) or not:
    ``W/"version=4"``, ``"version=3", "version=4"`` and ``version=4`` all carry ``version=4``.
    A weak tag compares like a strong one (proxies weaken ETags; the tag is what the client
    saw). A blank value carries no tag, so it matches nothing: a precondition the server cannot
    read fails, it is never dropped."""
    out = []
    for part in header.split(","):
        tag = part.strip()
        if tag[:2] in ("W/", "w/"):
            tag = tag[2:].lstrip()
        if len(tag) >= 2 and tag[0] == tag[-1] == '"':
            tag = tag[1:-1]
        if tag:
            out.append(tag)
    return tuple(out)


def etag_matches(header: str, *current: str) -> bool:
    """Whether a precondition header names ``*`` or one of the object's ``current`` tags."""
    names = {c.strip('"') for c in current}
    return any(tag == "*" or tag in names for tag in entity_tags(header))


# -- paging -------------------------------------------------------------------------------------
def query_int(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter: ASCII digits (``int()`` would also take ``1_0``, `` 5`` and
    other scripts' digits), within ``low..high``; ``400 validation.failed`` otherwise."""
    raw = query.get(name)
    if raw is None:
        return default
    digits = raw[1:] if raw[:1] in ("-", "+") else raw
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 18):
        raise invalid(f"{name} must be an integer from {low} to {high}, not {raw[:40]!r}")
    value = int(raw)
    if not low <= value <= high:
        raise invalid(f"{name} must be an integer from {low} to {high}, not {value}")
    return value


def page_size(query: Mapping[str, str]) -> int:
    """``pageSize``: at most 100, default 25, for page-number and cursor paging alike."""
    return query_int(query, PAGING.page_size, DEFAULT_PAGE_SIZE, 1, PAGING.max_page_size)


def page(items: list[Any], query: Mapping[str, str]) -> dict[str, Any]:
    """Page-number paging (seed 002): pageSize at most 100, default 25; both page-count names."""
    size = page_size(query)
    number = query_int(query, PAGING.page_number, 1, 1, MAX_PAGE_NUMBER)
    total = len(items)
    pages = -(-total // size)
    return {
        PAGING.entities: items[(number - 1) * size : number * size],
        PAGING.page_size: size,
        PAGING.page_number: number,
        PAGING.total: total,
        PAGING.page_count: pages,
        PAGING.num_pages: pages,
    }
