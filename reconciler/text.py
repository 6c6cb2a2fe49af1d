"""Text that llmgw shows to people: quoted values shortened, invisible characters made visible.

A manifest or a server can hand llmgw any string: 200,000 characters, terminal escape sequences,
bidi overrides that make one name look like another, zero-width spaces, line separators. Every
message that quotes such a value goes through ``shown`` (a short JSON-style quotation) and every
name or path printed for people through ``visible`` (control and format characters escaped), so
output stays one readable line per finding and can never move a terminal's cursor. Markdown has
its own escapes in ``views.base``. Pure: no I/O, no third-party imports.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import re
import unicodedata
from typing import Any

SHOWN = 60  # characters of a quoted value in a message
NAME = 80  # characters of a name or identity in a message
ETAG_MAX = 1024  # characters of an entity tag llmgw accepts from a server

# Unicode categories that are invisible or move text around: controls, format characters
# (zero-width, bidi), line and paragraph separators, surrogates, private use, unassigned.
INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def is_invisible(ch: str) -> bool:
    return unicodedata.category(ch) in INVISIBLE


def plural(n: int, word: str) -> str:
    """``1 error``, ``2 errors``, ``0 errors``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def http_date(value: str | None) -> float | None:
    """An HTTP ``Date`` header (RFC 9110's IMF-fixdate, or the obsolete forms) in epoch
    seconds; None when absent, too long or not a date."""
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    return when.timestamp()


def iso_utc(epoch: float) -> str:
    """Epoch seconds as ISO 8601 UTC to the second: ``2026-12-01T12:00:00Z``."""
    return datetime.datetime.fromtimestamp(int(epoch), datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso_utc(value: Any) -> float | None:
    """The inverse of ``iso_utc`` (also any ISO 8601 date-time with an offset); None when
    ``value`` is not one."""
    if not isinstance(value, str) or not 0 < len(value) <= 40:
        return None
    try:
        when = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.timestamp() if when.tzinfo is not None else None


def visible_ascii(value: str, limit: int) -> bool:
    """Whether ``value`` is 1 to ``limit`` visible ASCII characters: what an HTTP header value
    such as a bearer token or an entity tag may be (no space, no control, no line end)."""
    return 0 < len(value) <= limit and all("\x21" <= ch <= "\x7e" for ch in value)


def visible(text: str, limit: int | None = None) -> str:
    """``text`` with every invisible character written as an escape (``\\x1b``, ``\\u202e``),
    cut to ``limit`` characters with an ellipsis. Printable text, spaces included, is kept."""
    if text.isprintable() and (limit is None or len(text) <= limit):
        return text
    out = []
    for ch in text if limit is None else text[: limit + 1]:
        if ch == " " or (not is_invisible(ch) and ch.isprintable()) or ch == "\u00a0":
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    result = "".join(out)
    if limit is not None and (len(text) > limit or len(result) > limit):
        result = result[: max(0, limit - 1)] + "…"
    return result


def kind_of(value: Any) -> str:
    """What a JSON value is, for messages: ``null``, ``a boolean``, ``an array`` ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def shown(value: Any, limit: int = SHOWN) -> str:
    """A value as a message quotes it: JSON-style (strings in double quotes, escapes visible),
    at most ``limit`` characters."""
    if isinstance(value, str):
        # json.dumps escapes controls; format characters and separators need escaping too
        text = json.dumps(value[: limit + 1], ensure_ascii=False)
        text = visible(text)
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError, RecursionError):
            text = repr(value)
        text = visible(text[: limit * 4])
    if len(text) > limit or (isinstance(value, str) and len(value) > limit):
        text = text[: max(0, limit - 2)] + "…" + (text[-1] if text[-1] in '"]}' else "")
    return text


_INVISIBLE_JSON = re.compile(
    "[\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff"
    "\ufff9-\ufffb\U000e0000-\U000e007f]"
)


def _json_escape(m: re.Match[str]) -> str:
    cp = ord(m.group(0))
    if cp < 0x10000:
        return f"\\u{cp:04x}"
    cp -= 0x10000
    return f"\\u{0xD800 + (cp >> 10):04x}\\u{0xDC00 + (cp & 0x3FF):04x}"


def json_dumps(value: Any, *, indent: int | None = 2, **kwargs: Any) -> str:
    """JSON for output: non-ASCII text kept readable, but controls, bidi and zero-width
    characters written as ``\\u`` escapes (the same string to any JSON reader)."""
    text = json.dumps(value, ensure_ascii=False, indent=indent, **kwargs)
    return _INVISIBLE_JSON.sub(_json_escape, text)
