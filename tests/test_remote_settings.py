"""``remote.settings``: where and as whom to connect, read from the environment.

Covers: settings from a region and from explicit URLs (the login URL defaulting to a loopback
API URL); every missing variable named at once; an unknown region; http refused off loopback;
user information, backslashes, non-standard hosts, queries refused; LLMGW_REQUEST_TIMEOUT read,
refused when not a number of seconds, and the client's deadline taken from it; the secret
never in str/repr/errors.
"""

from __future__ import annotations

import pytest

from reconciler.errors import ConfigError
from reconciler.remote import GatewayClient, Settings
from tests.remote_fakes import SECRET


def test_settings_from_region_and_explicit_urls() -> None:
    s = Settings.from_env(
        {
            "GENESYS_CLOUD_REGION": "usw2.pure.cloud",
            "GENESYS_CLOUD_CLIENT_ID": "a",
            "GENESYS_CLOUD_CLIENT_SECRET": SECRET,
        }
    )
    assert (s.api_url, s.login_url) == (
        "https://api.usw2.pure.cloud",
        "https://login.usw2.pure.cloud",
    )
    s = Settings.from_env(
        {
            "GENESYS_CLOUD_API_URL": "http://127.0.0.1:8787/",
            "GENESYS_CLOUD_CLIENT_ID": "a",
            "GENESYS_CLOUD_CLIENT_SECRET": SECRET,
        }
    )
    assert s.login_url == "http://127.0.0.1:8787"
    assert SECRET not in repr(s) and SECRET not in str(s)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        (
            {},
            "GENESYS_CLOUD_REGION (or GENESYS_CLOUD_API_URL), GENESYS_CLOUD_CLIENT_ID, "
            "GENESYS_CLOUD_CLIENT_SECRET",
        ),
        ({"GENESYS_CLOUD_REGION": "mars.pure.cloud"}, "unknown GENESYS_CLOUD_REGION"),
        (
            {"GENESYS_CLOUD_API_URL": "http://api.example.com"},
            "GENESYS_CLOUD_API_URL must use https; plain http is allowed only to loopback",
        ),
        ({"GENESYS_CLOUD_API_URL": "https://api.example.com"}, "GENESYS_CLOUD_LOGIN_URL"),
        (
            {"GENESYS_CLOUD_API_URL": "https://u:p@api.example.com"},
            "GENESYS_CLOUD_API_URL holds user information",
        ),
        (
            {"GENESYS_CLOUD_API_URL": "https://evil.example.com\\@localhost/"},
            "GENESYS_CLOUD_API_URL contains a backslash",
        ),
        ({"GENESYS_CLOUD_API_URL": "http://127.1:8787"}, "non-standard form"),
        (
            {
                "GENESYS_CLOUD_API_URL": "https://api.example.com/?x=1",
                "GENESYS_CLOUD_LOGIN_URL": "x",
            },
            "GENESYS_CLOUD_API_URL has a query",
        ),
        (
            {"GENESYS_CLOUD_API_URL": "http://127.0.0.1:1", "LLMGW_REQUEST_TIMEOUT": "soon"},
            'LLMGW_REQUEST_TIMEOUT "soon" is not a number of seconds',
        ),
        (
            {"GENESYS_CLOUD_API_URL": "http://127.0.0.1:1", "LLMGW_REQUEST_TIMEOUT": "0"},
            "LLMGW_REQUEST_TIMEOUT",
        ),
    ],
)
def test_settings_errors(env: dict[str, str], needle: str) -> None:
    full = (
        {"GENESYS_CLOUD_CLIENT_ID": "a", "GENESYS_CLOUD_CLIENT_SECRET": SECRET, **env}
        if env
        else env
    )
    with pytest.raises(ConfigError) as exc:
        Settings.from_env(full)
    assert needle in str(exc.value)
    assert SECRET not in str(exc.value)


def test_request_timeout_from_the_environment() -> None:
    env = {
        "GENESYS_CLOUD_API_URL": "http://127.0.0.1:1",
        "GENESYS_CLOUD_CLIENT_ID": "a",
        "GENESYS_CLOUD_CLIENT_SECRET": SECRET,
    }
    assert Settings.from_env(env).request_timeout == 60.0
    s = Settings.from_env({**env, "LLMGW_REQUEST_TIMEOUT": "2.5"})
    assert s.request_timeout == 2.5 and GatewayClient(s).timeout == 2.5
