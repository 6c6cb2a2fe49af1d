"""The one redactor: every output, log line, file and crash log passes through ``redact``.

Secrets reach llmgw from the environment only (the client secret, ``LLMGW_AUDIT_KEY``) or from
the login server (bearer tokens); whoever learns one registers it here (``register``), and from
then on it is replaced by ``***`` wherever text leaves the process. On top of the known values,
shapes that are secret whatever their value are masked too: ``Bearer``/``Basic`` credentials,
``Authorization`` values, user info in URLs (``https://user:pass@host``), and the query and
fragment of absolute URLs (webhook URLs often carry their token there; a registered webhook URL
is shown as its origin only).

Order matters: callers that shorten text call ``clip``, which redacts before cutting (so a
secret is never split into two halves that no longer match) and once more after, masking a
fragment of a known secret left at either end of a text that was cut elsewhere. Pure apart from
the registry; no I/O. This module must not import anything of llmgw's (every layer imports it).
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any
from urllib.parse import urlsplit

MASK = "***"
MIN_SECRET = 4  # shorter values would mask ordinary words; no real credential is this short
_FRAGMENT = 8  # a cut-off piece of a known secret at least this long is masked too

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization values, in headers, logs and JSON: the scheme and the credential
    (
        re.compile(
            r"""(?i)(["']?(?:proxy-)?authorization["']?\s*[:=]\s*["']?)"""
            r"""(?:(?:bearer|basic|digest|token)\s+)?[^"'\s,;}]+"""
        ),
        r"\1" + MASK,
    ),
    # a bearer token anywhere (long enough not to be prose: "bearer of news" stays)
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{16,}"), r"\1" + MASK),
    # basic credentials anywhere: base64 with a digit or +/= in it ("basic support" stays)
    (re.compile(r"\b(Basic\s+)(?=[A-Za-z0-9+/]*[0-9+/=])[A-Za-z0-9+/]{12,}={0,2}"), r"\1" + MASK),
    # credentials in URLs: scheme://user:pass@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#]+@"), r"\1" + MASK + "@"),
    # the query and fragment of absolute http(s) URLs
    (re.compile(r"(?i)\b(https?://[^\s?#\"'<>]*)[?#][^\s\"'<>]*"), r"\1?" + MASK),
)


class Redactor:
    """Known secret values plus secret-shaped text; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, str] = {}  # secret (or an encoded form) -> its replacement

    def register(self, secret: str | None, *, shown: str = MASK) -> None:
        """Mask ``secret`` from now on, also in its JSON-escaped and URL forms."""
        if not secret or len(secret) < MIN_SECRET:
            return
        forms = {secret, json.dumps(secret)[1:-1]}
        with self._lock:
            for form in forms:
                self._values[form] = shown

    def register_url(self, url: str | None) -> None:
        """A URL whose path or query may be a credential (a webhook): shown as its origin."""
        if not url:
            return
        self.register(url, shown=safe_url(url))

    def reset(self) -> None:
        """Forget every registered value (tests)."""
        with self._lock:
            self._values.clear()

    def known(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._values.items(), key=lambda kv: -len(kv[0]))

    def __call__(self, text: str) -> str:
        if not text:
            return text
        for value, shown in self.known():  # longest first: a secret inside a URL goes whole
            if value in text:
                text = text.replace(value, shown)
        for rx, repl in _PATTERNS:
            text = rx.sub(repl, text)
        return text

    def edges(self, text: str) -> str:
        """Mask a fragment of a known secret left at the start or end of a cut text."""
        for value, shown in self.known():
            if shown != MASK:  # a URL shown as its origin: only whole occurrences count
                continue
            n = len(value)
            for k in range(min(n - 1, len(text)), _FRAGMENT - 1, -1):
                if text.endswith(value[:k]):
                    text = text[:-k] + MASK
                    break
            for k in range(min(n - 1, len(text)), _FRAGMENT - 1, -1):
                if text.startswith(value[-k:]):
                    text = MASK + text[k:]
                    break
        return text


REDACTOR = Redactor()


def register(secret: str | None) -> None:
    REDACTOR.register(secret)


def register_url(url: str | None) -> None:
    REDACTOR.register_url(url)


def redact(text: str) -> str:
    """``text`` with every registered secret and every secret-shaped value masked."""
    return REDACTOR.edges(REDACTOR(text))


def clip(text: str, limit: int) -> str:
    """Redact, cut to ``limit`` characters (with an ellipsis), redact the edges again."""
    text = REDACTOR(text)
    if len(text) > limit:
        text = text[: max(0, limit - 1)] + "…"
    return REDACTOR.edges(text)


def safe_url(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: no user info, path, query or fragment."""
    try:
        p = urlsplit(url)
        host = p.hostname or ""
        port = f":{p.port}" if p.port else ""
    except ValueError:
        return "(an invalid URL)"
    if not p.scheme or not host:
        return "(an invalid URL)"
    shown = f"[{host}]" if ":" in host else host
    return (
        f"{p.scheme}://{shown}{port}/{MASK}"
        if (p.path not in ("", "/") or p.query)
        else (f"{p.scheme}://{shown}{port}")
    )


_SECRET_NAME = re.compile(
    r"(?i)^(?:.*[_-])?(?:client_?secret|secret|password|passwd|api_?key|access_?token|"
    r"refresh_?token|token|authorization|credentials?)$"
)


def secret_field(name: str) -> bool:
    """A field whose name says it holds a credential (``clientSecret``, ``api_key``, ``token``),
    but not one that merely mentions the word (``maxTokens``)."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return bool(_SECRET_NAME.match(snake))


def scrub(value: Any) -> Any:
    """A JSON-like value as llmgw writes it to a file or prints it: every string redacted, and
    the value of a field named like a credential masked."""
    if isinstance(value, dict):
        return {
            k: MASK if secret_field(str(k)) and v is not None else scrub(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value
