"""One check for every URL llmgw is handed: the gateway's API and login URLs, webhook URLs on
the command line, and ``webhookSyncUrl`` in manifests.

Python's ``urlsplit`` and the WHATWG URL parser (browsers, Node, Go's net/url in most cases, the
gateway itself presumably) do not always see the same host: ``http://evil.example.com\\@localhost/``
is ``localhost`` to Python and ``evil.example.com`` to WHATWG, which reads a backslash as a
slash. So this module accepts only URLs on which both agree, and says precisely why it refuses
one: no backslashes, whitespace or control characters anywhere; no user info (a credential
would be copied into every plan, log and audit line); a port from 1 to 65535; a host that is a
DNS name (IDNA for non-ASCII) or an IPv4/IPv6 literal in canonical form (``127.1``, ``0x7f.1``
or ``2130706433`` are IPv4 addresses to WHATWG and not to Python: refused, with the canonical
form to write). Plain ``http`` only to loopback (``localhost``, 127.0.0.0/8, ``[::1]``).
Pure: no I/O, no third-party imports.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL = 2048
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_NUMERIC_LAST = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")  # WHATWG: the host is then IPv4


@dataclass(frozen=True)
class Url:
    scheme: str
    host: str  # lower case; IPv6 without brackets
    port: int | None
    path: str
    query: str

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


class UrlProblem(ValueError):
    """Why a URL is refused; ``str()`` is a sentence without the URL (which may hold a secret)."""


def region_domain(region: str) -> str:
    """A region as people write it (``usw2.pure.cloud``, ``api.usw2.pure.cloud``,
    ``https://api.usw2.pure.cloud/``) as its bare domain; the caller checks it is a known one
    (``endpoints.REGIONS``), and ``region_urls`` gives its URLs."""
    return region.strip().lower().removeprefix("https://").removeprefix("api.").strip("/")


def region_urls(domain: str) -> tuple[str, str]:
    """The API and login URLs of the region ``domain`` (bare, as ``region_domain`` gives it)."""
    return f"https://api.{domain}", f"https://login.{domain}"


def is_loopback(host: str | None) -> bool:
    """``localhost``, an address in 127.0.0.0/8, or ``::1`` (brackets allowed)."""
    if not host:
        return False
    host = host.lower().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host(raw: str) -> str:
    if raw.startswith("["):
        if not raw.endswith("]"):
            raise UrlProblem("has an unclosed [ in its host")
        try:
            return str(ipaddress.IPv6Address(raw[1:-1]))
        except ValueError:
            raise UrlProblem("has an invalid IPv6 address in its host") from None
    host = raw.lower()
    if not host:
        raise UrlProblem("has no host")
    if "%" in host:
        raise UrlProblem("has a percent-encoded host (write the host name plainly)")
    labels = host.split(".")
    if _NUMERIC_LAST.match(labels[-1] or (labels[-2] if len(labels) > 1 else "")):
        # WHATWG parses a host whose last label is a number as an IPv4 address (and fails when
        # it is not one): accept only the canonical dotted quad
        try:
            addr = ipaddress.IPv4Address(host)
        except ValueError:
            raise UrlProblem(
                "has a host that browsers read as an IPv4 address in a non-standard form "
                "(write it as four decimal numbers, e.g. 127.0.0.1)"
            ) from None
        return str(addr)
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise UrlProblem("has a host name that is not a valid internationalised name") from None
    labels = host.split(".")
    if host.endswith("."):
        raise UrlProblem("has a host name ending in a dot")
    if len(host) > 253 or not all(_LABEL.match(x) for x in labels):
        raise UrlProblem(
            "has an invalid host name (letters, digits and hyphens, dot-separated labels of at "
            "most 63 characters)"
        )
    return host


def parse(url: object, *, what: str = "URL") -> Url:
    """The URL's parts, or ``UrlProblem`` saying why it is refused (plain http is not refused
    here: see ``check``)."""
    if not isinstance(url, str) or not url:
        raise UrlProblem(f"{what} is empty")
    if len(url) > MAX_URL:
        raise UrlProblem(f"is longer than {MAX_URL} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in url):
        raise UrlProblem("contains whitespace or a control character")
    if "\\" in url:
        raise UrlProblem(
            "contains a backslash (browsers and most HTTP clients read it as /, so the host "
            "they reach is not the one written)"
        )
    try:
        parts = urlsplit(url)
    except ValueError:
        raise UrlProblem("is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not url.lower().startswith(f"{scheme}://"):
        raise UrlProblem("must be an absolute http(s) URL such as https://host/path")
    netloc = parts.netloc
    if "@" in netloc:
        raise UrlProblem(
            "holds user information (user:password@): a credential in a URL ends up in plans, "
            "logs and audit lines; pass it another way"
        )
    hostport = netloc
    port: int | None = None
    if hostport.startswith("["):
        end = hostport.find("]")
        host_raw, rest = hostport[: end + 1], hostport[end + 1 :]
    else:
        host_raw, colon, after = hostport.partition(":")
        rest = colon + after
    if rest:
        digits = rest[1:] if rest.startswith(":") else "x"
        if not digits.isdigit() or not 1 <= int(digits) <= 65535 or len(digits) > 5:
            raise UrlProblem("has an invalid port (a number from 1 to 65535)")
        port = int(digits)
    return Url(scheme, _host(host_raw), port, parts.path, parts.query)


def check(url: object, *, what: str = "URL") -> Url:
    """``parse``, and plain http refused unless the host is loopback."""
    u = parse(url, what=what)
    if u.scheme == "http" and not u.loopback:
        raise UrlProblem(
            "must use https; plain http is allowed only to loopback (localhost, 127.0.0.1, [::1])"
        )
    return u


def problem(url: object) -> str | None:
    """Why ``url`` is not acceptable (https, or http to loopback), or None."""
    try:
        check(url)
    except UrlProblem as exc:
        return str(exc)
    return None


def segment_problem(value: object) -> str | None:
    """Why ``value``, an id a server handed llmgw, cannot become one path segment of a later
    request (``/prompt-templates/{id}/versions``), or None. Percent-encoding would make any
    string safe to send, but an id that needs it (a ``/``, ``..``, ``?``, ``#``, ``%``, a
    backslash, whitespace or an invisible character) is no id a gateway hands out: it is a
    server bug or an attempt to steer a later write to another path, so it is refused."""
    if not isinstance(value, str):
        return "is not a string"
    if not value:
        return "is empty"
    if len(value) > 256:
        return "is longer than 256 characters"
    if value in (".", "..") or ".." in value:
        return "contains .."
    for ch in value:
        if ch in "/\\?#%":
            return f"contains {ch!r}"
        if ch.isspace() or not ch.isprintable():
            return "contains whitespace or an invisible character"
    return None
