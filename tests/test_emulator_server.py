"""The emulator as a real HTTP server on 127.0.0.1 (uvicorn, an ephemeral port).

Covers: it starts on port 0, reports the real port and answers the contract over real sockets
(token, a write, correlation and rate-limit headers, the OpenAPI document); a body over the bound
gets its 413 (the rest drained, not a reset); injected dropped connections, before acting
and after committing, reach an httpx client as a transport error (never a 500) and the server
keeps serving; ``--state`` persists the org and the idempotency memory across a restart, written
atomically; an unreadable state file and a busy port are ``ConfigError``s; ``serve`` reports its
URL once listening and exits cleanly (return, state written) on SIGINT and SIGTERM; the CLI
refuses bad emulator flags as usage errors.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.emulator import openapi
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.server import running
from reconciler.endpoints import HEADERS, PATHS
from reconciler.errors import ConfigError

pytestmark = pytest.mark.slow

T = PATHS.templates


def _auth(http: httpx.Client) -> dict[str, str]:
    r = http.post(
        PATHS.token,
        data={"grant_type": "client_credentials"},
        auth=("emulator-client", "emulator-secret"),
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_serves_the_contract_over_loopback() -> None:
    with running(EmulatorConfig(port=0, rate_limit=50)) as url, httpx.Client(base_url=url) as http:
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        auth = _auth(http)
        r = http.post(T, json={"name": "abc", "user_template": "x"}, headers=auth)
        assert r.status_code == 201 and r.json()["selfUri"] == f"{url}{T}/{r.json()['id']}"
        assert r.headers[HEADERS.correlation_id] and r.headers[HEADERS.rate_allowed] == "50"
        r = http.get(f"{T}/nope", headers=auth)
        assert r.status_code == 404
        assert r.headers[HEADERS.correlation_id] == r.json()["contextId"]
        assert http.get("/__emulator/requests").status_code == 404  # no --admin


def test_an_oversized_body_gets_its_413_over_a_real_socket() -> None:
    # the rest of the body is read and dropped, so the client sees the answer, not a reset
    with running(EmulatorConfig(port=0)) as url, httpx.Client(base_url=url) as http:
        auth = _auth(http)
        big = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
        r = http.post(T, content=big, headers={**auth, "Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["code"] == "request.too.large"
        r = http.get(openapi.OPENAPI_PATH)  # and the server goes on serving
        assert r.status_code == 200 and r.json()["openapi"] == "3.1.0"


@pytest.mark.parametrize("kind", ["drop-before", "drop-after"])
def test_dropped_connections_are_transport_errors(kind: str) -> None:
    with (
        running(EmulatorConfig(port=0, admin=True)) as url,
        httpx.Client(base_url=url) as http,
    ):
        auth = _auth(http)
        http.put("/__emulator/faults", json={"rates": {kind: 1.0}})
        with pytest.raises(httpx.RemoteProtocolError):
            http.post(
                T,
                json={"name": "dropped", "user_template": "x"},
                headers={**auth, "X-Genesys-Request-Id": "k"},
            )
        http.put("/__emulator/faults", json={"rates": {}})
        total = http.get(T, headers=auth).json()["total"]
        assert total == (1 if kind == "drop-after" else 0)
        r = http.post(
            T,
            json={"name": "dropped", "user_template": "x"},
            headers={**auth, "X-Genesys-Request-Id": "k"},
        )
        assert r.status_code == 201 and http.get(T, headers=auth).json()["total"] == 1


def test_state_file_persists_across_restarts(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    config = EmulatorConfig(port=0, state_file=str(state))
    with running(config) as url, httpx.Client(base_url=url) as http:
        first = http.post(
            T,
            json={"name": "persisted", "user_template": "x"},
            headers={**_auth(http), "X-Genesys-Request-Id": "k"},
        )
        assert first.status_code == 201
        saved = json.loads(state.read_text())  # written on the change, not only at exit
        assert [t["name"] for t in saved["templates"].values()] == ["persisted"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]  # no temporary left
    with running(config) as url, httpx.Client(base_url=url) as http:
        auth = _auth(http)
        assert [t["name"] for t in http.get(T, headers=auth).json()["entities"]] == ["persisted"]
        again = http.post(
            T,
            json={"name": "persisted", "user_template": "x"},
            headers={**auth, "X-Genesys-Request-Id": "k"},
        )
        assert again.status_code == 201 and again.content == first.content


def test_unreadable_state_and_busy_port_are_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "state.json"
    bad.write_text("{torn")
    with (
        pytest.raises(ConfigError, match="state file"),
        running(EmulatorConfig(port=0, state_file=str(bad))),
    ):
        pass
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match="cannot listen"), running(EmulatorConfig(port=port)):
            pass


SERVE = """
import sys
from reconciler.emulator import openapi
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.server import serve
serve(EmulatorConfig(port=0, state_file=sys.argv[1]), on_ready=lambda url: print(url, flush=True))
print("stopped", flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_reports_its_url_and_stops_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    state = tmp_path / "state.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        with httpx.Client(base_url=url) as http:
            assert http.get(PATHS.models, headers=_auth(http)).status_code == 200
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert out.strip() == "stopped"
    assert json.loads(state.read_text())["templates"] == {}


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
