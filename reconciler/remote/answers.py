"""Reading an answer: its body bounded in size, its JSON strict, an error's body lenient.

It exists so that a hostile or broken server can make a run fail but never exhaust its memory
or feed it a value parsers disagree on. A body is streamed and dropped past its bound (a
declared ``Content-Length`` past it is refused unread), after undoing gzip/deflate with the same
bound (httpx's decoders inflate a received chunk whole, and 64 KiB of gzip can inflate to
64 MiB). JSON nested deeper than ``MAX_DEPTH``, numbers past Python's digit limit or not finite,
duplicate keys, invalid UTF-8 and a non-JSON body where JSON is promised are ``Unreadable``
(the caller turns that into a ``ProtocolError`` naming the endpoint); an error's body is read
as JSON when it is JSON and as text otherwise. Also the two shapes an answer takes here: the
``Answer`` of one attempt and the ``Response`` the client returns.

It must not send anything, retry, or decide what a status means (``remote.errors`` does): it
only reads bytes it is handed and says why it cannot.
"""

from __future__ import annotations

import json as _json
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from reconciler.endpoints import HEADERS
from reconciler.text import shown

MAX_BODY = 32 * 1024 * 1024  # bytes of one answer's body, after Content-Encoding is undone
MAX_ERROR_BODY = 64 * 1024  # bytes read of an error's body (only TRIM characters are shown)
MAX_DEPTH = 64  # levels of nesting in one JSON answer (a listing's envelope is two of them)
_CHUNK = 64 * 1024  # bytes inflated at a time


@dataclass(frozen=True)
class Response:
    """A successful answer as the client returns it: its JSON ``body`` already read."""

    status: int
    body: Any
    headers: Mapping[str, str]
    etag: str | None = None
    correlation_id: str | None = None


@dataclass(frozen=True)
class Answer:
    """What one attempt received: the status, the headers and the body's bytes, bounded (empty
    for a 1xx or 3xx, at most ``MAX_ERROR_BODY`` for an error)."""

    status: int
    headers: httpx.Headers
    content: bytes


class Unreadable(Exception):
    """Why a body cannot be read; the caller turns it into a ProtocolError with the endpoint."""

    status: int | None = None


class AttemptFailed(Exception):
    """One attempt got no complete answer (a transport error or its deadline); ``what`` says
    so, fit to show. The caller decides whether to retry."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class Decoder:
    """A Content-Encoding undone with a bound on the output: httpx's decoders inflate each
    received chunk whole, and a 64 KiB chunk of gzip can inflate to 64 MiB."""

    def __init__(self, encoding: str) -> None:
        enc = encoding.strip().lower()
        self._raw_deflate_tried = False
        if enc in ("", "identity"):
            self._z: Any = None
        elif enc in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif enc == "deflate":
            self._z = zlib.decompressobj()
        else:
            raise Unreadable(
                f"the body is encoded as {shown(encoding)}, which llmgw did not ask for "
                "(it accepts gzip and deflate)"
            )
        self._deflate = enc == "deflate"

    def feed(self, data: bytes, room: int) -> bytes:
        """The decoded bytes of ``data``: at most ``room`` + 1 of them (one more means too
        many)."""
        if self._z is None:
            return data
        out = bytearray()
        while data and len(out) <= room:
            try:
                piece = self._z.decompress(data, min(room + 1 - len(out), _CHUNK))
            except zlib.error:
                if self._deflate and not self._raw_deflate_tried and not out:
                    # "deflate" is zlib-wrapped by the RFC and raw in practice: accept both
                    self._raw_deflate_tried = True
                    self._z = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise Unreadable("the compressed body is corrupt") from None
            self._raw_deflate_tried = True
            out += piece
            data = self._z.unconsumed_tail
            if not piece:
                break
        return bytes(out)


async def read_body(resp: httpx.Response, limit: int, *, strict: bool) -> bytes:
    """The decoded body, at most ``limit`` bytes. ``strict``: a longer body is ``Unreadable``
    (an answer llmgw must read whole); otherwise it is cut (an error's message)."""

    def too_large(n: int | None) -> Unreadable:
        size = f"{n:,} bytes" if n is not None else "more"
        mib = f" ({limit // 2**20} MiB)" if limit >= 2**20 else ""
        return Unreadable(
            f"the body is {size}; llmgw reads at most {limit:,} bytes{mib} of an answer"
        )

    if resp.is_stream_consumed:  # an in-process transport built the whole answer in memory
        content = resp.content
        if len(content) > limit:
            if strict:
                raise too_large(len(content))
            content = content[:limit]
        return content
    declared = resp.headers.get(HEADERS.content_length.lower(), "")
    if strict and declared.isdigit() and int(declared) > limit:
        raise too_large(int(declared))
    decoder = Decoder(resp.headers.get(HEADERS.content_encoding.lower(), ""))
    buf = bytearray()
    async for chunk in resp.aiter_raw():
        buf += decoder.feed(chunk, limit - len(buf))
        if len(buf) > limit:
            if strict:
                raise too_large(None)
            del buf[limit:]
            break
    return bytes(buf)


class _JsonProblem(ValueError):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                # parsers disagree on which of two values wins: llmgw reads neither
                raise _JsonProblem(f"an object has the key {shown(key)} twice")
            seen.add(key)
    return obj


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _JsonProblem(f"the number {shown(text)} is out of range")
    return value


def _constant(text: str) -> Any:
    raise _JsonProblem(f"{text} is not JSON")


def _too_deep(value: Any) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            values: Any = item.values()
        elif isinstance(item, list):
            values = item
        else:
            continue
        if depth > MAX_DEPTH:
            return True
        stack.extend((v, depth + 1) for v in values if isinstance(v, dict | list))
    return False


def parse_json(content: bytes) -> Any:
    """The JSON value of an answer's body (None when empty), or ``Unreadable`` saying why not.

    Strict where parsers disagree or Python would fail later: UTF-8 only (a byte-order mark is
    skipped), no duplicate keys, no NaN/Infinity or numbers beyond a float's range, integers
    within Python's digit limit, at most ``MAX_DEPTH`` levels of nesting."""
    if not content or content.isspace():
        return None
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Unreadable(f"the body is not valid UTF-8 (at byte {exc.start:,})") from None
    try:
        value = _json.loads(
            text.removeprefix("\ufeff"),
            object_pairs_hook=_object,
            parse_float=_finite,
            parse_constant=_constant,
        )
    except _JsonProblem as exc:
        raise Unreadable(str(exc)) from None
    except RecursionError:
        raise Unreadable(f"the JSON is nested deeper than {MAX_DEPTH} levels") from None
    except _json.JSONDecodeError as exc:
        raise Unreadable(
            f"the body is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): "
            f"{shown(text[:200])}"
        ) from None
    except ValueError:  # int(): more digits than sys.get_int_max_str_digits()
        raise Unreadable("a number in the body has more digits than llmgw reads") from None
    if _too_deep(value):
        raise Unreadable(f"the JSON is nested deeper than {MAX_DEPTH} levels")
    return value


def lenient(content: bytes) -> Any:
    """An error's body: its JSON when it is JSON, else its text (invalid bytes replaced)."""
    try:
        return parse_json(content)
    except Unreadable:
        return content.decode("utf-8", errors="replace")
