"""The emulator as a real HTTP server on loopback.

Covers: it starts on an ephemeral port and answers the contract over real sockets; an injected
dropped connection reaches an httpx client as a transport error (never a 500); `--state` persists
objects across a restart, written atomically; the CLI refuses bad emulator flags as usage errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.server import running

T = "/api/v2/llm-gateway/prompt-templates"


def _token(http: httpx.Client) -> dict[str, str]:
    r = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=("emulator-client", "emulator-secret"),
    )
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_serves_over_loopback_and_drops_connections() -> None:
    with running(EmulatorConfig(port=0, admin=True)) as url, httpx.Client(base_url=url) as http:
        auth = _token(http)
        r = http.post(T, json={"name": "abc", "user_template": "x"}, headers=auth)
        assert r.status_code == 201 and r.headers["inin-correlation-id"]
        http.put("/__emulator/faults", json={"rates": {"drop-before": 1.0}})
        with pytest.raises(httpx.TransportError):
            http.get(T, headers=auth)
        http.put("/__emulator/faults", json={"rates": {}})
        assert http.get(T, headers=auth).json()["total"] == 1


def test_state_file_persists_across_restarts(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    config = EmulatorConfig(port=0, state_file=str(state))
    with running(config) as url, httpx.Client(base_url=url) as http:
        http.post(T, json={"name": "persisted", "user_template": "x"}, headers=_token(http))
    assert json.loads(state.read_text())["templates"]
    assert not list(tmp_path.glob("*.tmp-*"))
    with running(config) as url, httpx.Client(base_url=url) as http:
        names = [t["name"] for t in http.get(T, headers=_token(http)).json()["entities"]]
    assert names == ["persisted"]


@pytest.mark.parametrize(
    "args",
    [
        ["--fault-rate", "404=0.1"],
        ["--fault-rate", "503=1.5"],
        ["--client", "only-an-id"],
        ["--port", "-1"],
        ["--unknown"],
    ],
)
def test_bad_flags_are_usage_errors(args: list[str]) -> None:
    result = CliRunner().invoke(cli, ["emulator", "serve", *args])
    assert result.exit_code == 64, result.output
