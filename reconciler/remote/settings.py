"""Where and as whom to connect: ``Settings`` from the environment, the URLs checked.

It exists so that everything a run needs to reach the gateway is read, checked and refused in
one place, before any request: a region or explicit API and login URLs (checked by
``reconciler.urls``: https only, plain http to loopback only, no user information, no query),
the client credentials, and ``LLMGW_REQUEST_TIMEOUT``. Every problem is a ``ConfigError``
naming the variable and a fix; every missing variable is named at once. The client secret is
registered with ``reconciler.redact`` as soon as it is read and is never part of ``str()`` or
``repr()``.

It must not send anything, import httpx, or know what the settings are used for beyond naming
the variable a user should check (``variable_to_check``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from reconciler import redact
from reconciler.endpoints import REGIONS
from reconciler.errors import ConfigError
from reconciler.text import shown
from reconciler.urls import UrlProblem, check, is_loopback, region_domain, region_urls

DEFAULT_TIMEOUT = 60.0  # seconds per attempt: connect, headers and the whole body
MAX_TIMEOUT = 3600.0


def _check_url(name: str, url: str) -> str:
    try:
        parsed = check(url, what=name)
    except UrlProblem as exc:
        raise ConfigError(
            f"{name} {exc}",
            f"set {name} to e.g. https://api.<domain>, or use GENESYS_CLOUD_REGION",
        ) from None
    if parsed.query or "#" in url:
        raise ConfigError(
            f"{name} has a query or fragment", f"set {name} to the bare URL, without ?... or #..."
        )
    return url.rstrip("/")


def _seconds(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (0 < value <= MAX_TIMEOUT):
        raise ConfigError(
            f"{name} {shown(raw)} is not a number of seconds between 0 and {MAX_TIMEOUT:.0f}",
            f"set it to e.g. {DEFAULT_TIMEOUT:.0f}, or unset it for the default",
        )
    return value


@dataclass(frozen=True)
class Settings:
    """Where and as whom to connect. The secret is never part of str() or repr().

    ``request_timeout`` is the deadline of each request attempt in seconds (connect, headers and
    the whole body), from ``LLMGW_REQUEST_TIMEOUT``."""

    api_url: str
    login_url: str
    client_id: str
    client_secret: str = field(repr=False)
    region: str | None = None
    request_timeout: float = DEFAULT_TIMEOUT

    @property
    def target(self) -> str:
        return self.api_url

    def __str__(self) -> str:
        return f"{self.api_url} as {self.client_id}"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        region = env.get("GENESYS_CLOUD_REGION", "").strip()
        api = env.get("GENESYS_CLOUD_API_URL", "").strip()
        login = env.get("GENESYS_CLOUD_LOGIN_URL", "").strip()
        cid = env.get("GENESYS_CLOUD_CLIENT_ID", "").strip()
        secret = env.get("GENESYS_CLOUD_CLIENT_SECRET", "")
        redact.register(secret)
        missing = []
        if not region and not api:
            missing.append("GENESYS_CLOUD_REGION (or GENESYS_CLOUD_API_URL)")
        if not cid:
            missing.append("GENESYS_CLOUD_CLIENT_ID")
        if not secret:
            missing.append("GENESYS_CLOUD_CLIENT_SECRET")
        if missing:
            raise ConfigError(
                "missing environment variable"
                + ("s" if len(missing) > 1 else "")
                + ": "
                + ", ".join(missing),
                "export them (credentials come from the environment only, e.g. CI secrets)",
            )
        timeout_raw = env.get("LLMGW_REQUEST_TIMEOUT", "").strip()
        timeout = _seconds("LLMGW_REQUEST_TIMEOUT", timeout_raw) if timeout_raw else DEFAULT_TIMEOUT
        if api:
            api = _check_url("GENESYS_CLOUD_API_URL", api)
            if login:
                login = _check_url("GENESYS_CLOUD_LOGIN_URL", login)
            elif is_loopback(urlsplit(api).hostname or ""):
                login = api
            else:
                raise ConfigError(
                    "GENESYS_CLOUD_LOGIN_URL is not set",
                    "set it to the org's login URL, e.g. https://login.<domain>, or use "
                    "GENESYS_CLOUD_REGION",
                )
            return cls(api, login, cid, secret, region or None, timeout)
        domain = region_domain(region)
        if domain not in REGIONS:
            raise ConfigError(
                f"unknown GENESYS_CLOUD_REGION {shown(region)}",
                "use one of " + ", ".join(REGIONS) + "; or set GENESYS_CLOUD_API_URL and "
                "GENESYS_CLOUD_LOGIN_URL",
            )
        return cls(*region_urls(domain), cid, secret, domain, timeout)


def variable_to_check(settings: Settings, which: str) -> str:
    """The setting a user would check when the API (``which="API"``) or login (``"LOGIN"``)
    host misbehaves: the region when both URLs came from it."""
    region = settings.region
    derived = bool(region and settings.api_url == region_urls(region)[0])
    return "GENESYS_CLOUD_REGION" if derived else f"GENESYS_CLOUD_{which}_URL"
