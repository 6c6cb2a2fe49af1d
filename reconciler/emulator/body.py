"""Request bodies the emulator agrees to read: strict JSON, bounded in size and in depth.

Python's ``json`` module is lenient where a gateway must not be: it reads ``NaN`` and
``Infinity`` (not JSON, RFC 8259 section 6), turns ``1e309`` into ``inf``, and recurses until
``RecursionError`` on deeply nested input (a 500 in the emulator, and a snapshot that cannot be
written back). This module reads a body once, as UTF-8, refuses those with a ``BodyError`` whose
message says what to fix, and bounds nesting so that everything it returns can be encoded,
stored and snapshotted again. The size bound itself is the HTTP layer's (it reads the stream);
``MAX_BODY_BYTES`` lives here so that the OpenAPI document and the app state the same number.

Pure: no HTTP, no I/O. What it must not do: decide whether a well-formed body is a valid object
(that is ``state``), or accept anything that ``json.dumps`` could not write back as JSON
(``finite=False`` aside: it hands an infinite number to a reader that refuses it by name).
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_BODY_BYTES = 1024 * 1024
"""A request body over this many bytes answers ``413`` (the largest contract object, a prompt
with an 8000-character system prompt, is far smaller)."""

MAX_ADMIN_BODY_BYTES = 256 * 1024 * 1024
"""The test-only admin endpoints take whole snapshots of an org: a larger bound."""

MAX_DEPTH = 32
"""Nesting levels of arrays and objects a body may have (contract objects have at most 4)."""


class BodyError(ValueError):
    """A body the emulator refuses to read, with the reason (``message``) shown to the client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _constant(name: str) -> Any:
    raise BodyError(f"{name} is not JSON (RFC 8259 has no NaN or Infinity); send a finite number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BodyError(f"the number {text[:40]} is out of range (beyond a 64-bit float)")
    return value


_DECODER = json.JSONDecoder(parse_constant=_constant, parse_float=_finite)
_LENIENT = json.JSONDecoder(parse_constant=_constant)  # 1e999 read as inf


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` nests arrays/objects deeper than ``limit`` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, dict | list))
    return False


def parse(raw: bytes, *, max_depth: int = MAX_DEPTH, finite: bool = True) -> Any:
    """The JSON value of ``raw`` (None for no body: zero bytes); ``BodyError`` when it is not
    one the gateway reads: not UTF-8, not JSON (whitespace alone included), NaN/Infinity, a
    non-finite number, an integer of more than 4300 digits, or nesting deeper than
    ``max_depth``. With ``finite=False`` a number beyond a float is read as infinite instead,
    for a reader that refuses it naming its field (the admin traffic and clock bodies)."""
    if not raw:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(f"the body is not UTF-8 (byte {exc.start}); send UTF-8 JSON") from None
    # Cheap bound first: a body with few brackets cannot nest deeply (bytes.count is C speed).
    brackets = raw.count(b"[") + raw.count(b"{")
    try:
        value = (_DECODER if finite else _LENIENT).decode(text)
    except BodyError:
        raise
    except RecursionError:
        raise BodyError(f"the body nests deeper than {max_depth} levels") from None
    except ValueError as exc:  # JSONDecodeError, and int() past its 4300 digits
        raise BodyError(f"the body is not JSON: {str(exc)[:200]}") from None
    if brackets > max_depth and _depth_exceeds(value, max_depth):
        raise BodyError(f"the body nests deeper than {max_depth} levels")
    return value
