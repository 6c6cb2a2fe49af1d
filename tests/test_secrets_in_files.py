"""Secrets never reach a file or an output, and a keyed audit chain end to end (the CLI against
a real emulator on loopback).

Covers: a manifest holding secret-shaped values (a webhook URL whose query carries a token, the
client secret inside a system prompt): the saved plan, the dry-run output, the audit log, the
lock file, the metrics file and the webhook payload hold none of them, yet the saved plan is
applied (compared to its derivation after the same redaction) and the org receives the real
values; the webhook URL's own query never shows. LLMGW_AUDIT_KEY: apply writes a keyed chain,
`audit verify` says it is keyed and exits 0 with the key, 1 without it (saying the key is
needed); the key is in no file and no output; an apply with the key on an unkeyed log, and one
without it on a keyed log, are refused before any write; the summary's last hash checks with
--last; a short key is refused.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.server import running
from reconciler.emulator.state import STORE_ID

REPO = Path(__file__).resolve().parent.parent
SECRET = "emulator-secret"
SYNC_TOKEN = "s3cr3t-sync-token-4711"
KEY = "a-long-audit-key-that-is-secret-0042"


def run(*args: str, **env: str) -> tuple[int, str]:
    result = CliRunner(env=env or None).invoke(cli, list(args))
    out = result.output
    assert SECRET not in out and SYNC_TOKEN not in out and KEY not in out
    return result.exit_code, out


@pytest.fixture
def org(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    index = tmp_path / "manifests" / "indexes" / "prod-embedding-index-v2.yaml"
    index.write_text(index.read_text().replace("vector-sync", f"vector-sync?token={SYNC_TOKEN}"))
    prompt = tmp_path / "manifests" / "prompts" / "ticket-triage.yaml"
    text = prompt.read_text()
    prompt.write_text(text.replace("Classify each", f"Quote {SECRET} never. Classify each"))
    with running(EmulatorConfig(port=0, ingest_delay=0.0, admin=True)) as url:
        monkeypatch.setenv("GENESYS_CLOUD_API_URL", url)
        monkeypatch.setenv("GENESYS_CLOUD_CLIENT_ID", "emulator-client")
        monkeypatch.setenv("GENESYS_CLOUD_CLIENT_SECRET", SECRET)
        yield url


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and "manifests" not in p.parts
    }


class _Hook(BaseHTTPRequestHandler):
    bodies: ClassVar[list[Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        _Hook.bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    _Hook.bodies = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook?key=hook-credential-77"
    server.shutdown()


def test_secret_values_stay_out_of_every_file_and_the_org_gets_them(
    org: str, tmp_path: Path, hook: str
) -> None:
    code, out = run("plan", "manifests/", "--out", "plan.json")
    assert code == 0, out
    saved = (tmp_path / "plan.json").read_text()
    assert SYNC_TOKEN not in saved and SECRET not in saved
    assert "vector-sync?***" in saved and "Quote *** never" in saved
    code, out = run("apply", "plan.json", "--dry-run")
    assert code == 0 and "vector-sync?***" in out
    code, out = run(
        "apply", "plan.json", "--auto-approve", "--metrics-file", "apply.prom", "--webhook", hook
    )
    assert code == 0, out
    assert "hook-credential-77" not in out
    for name, data in _files(tmp_path).items():
        for secret in (SECRET, SYNC_TOKEN, "hook-credential-77"):
            assert secret.encode() not in data, (name, secret)
    (payload,) = _Hook.bodies
    assert SECRET not in json.dumps(payload) and payload["ok"] is True
    assert payload["auditLog"]["lastHash"] in out
    with httpx.Client(base_url=org) as c:
        tok = c.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("emulator-client", SECRET),
        ).json()["access_token"]
        live = c.get(
            f"/api/v2/ai/vectorstores/{STORE_ID}/indexes/prod-embedding-index-v2",
            headers={"Authorization": f"Bearer {tok}"},
        ).json()
    assert live["webhookSyncUrl"].endswith(f"?token={SYNC_TOKEN}")


def _writes(url: str) -> int:
    log = httpx.get(f"{url}/__emulator/requests").json()["requests"]
    return sum(1 for r in log if r["method"] != "GET" and not r["path"].startswith("/oauth"))


def test_a_keyed_chain_end_to_end(org: str, tmp_path: Path) -> None:
    keyed = {"LLMGW_AUDIT_KEY": KEY}
    code, out = run("apply", "manifests/", "--auto-approve", **keyed)
    assert code == 0, out
    last = re.search(r"last record \d+: ([0-9a-f]{64})", out)
    assert last, out
    code, out = run("audit", "verify", ".llmgw/audit.jsonl", "--last", last.group(1), **keyed)
    assert code == 0 and "keyed chain (HMAC-SHA256) verified" in out, out
    code, out = run("audit", "verify", ".llmgw/audit.jsonl")
    assert code == 1 and "keyed (HMAC-SHA256)" in out and "set LLMGW_AUDIT_KEY" in out, out
    for name, data in _files(tmp_path).items():
        assert KEY.encode() not in data, name
    # the mode of a log never changes
    prompt = tmp_path / "manifests" / "prompts" / "ticket-triage.yaml"
    prompt.write_text(prompt.read_text().replace("temperature: 0.0", "temperature: 0.4"))
    before = _writes(org)
    code, out = run("apply", "manifests/", "--auto-approve")
    assert code == 1 and "is a keyed audit log" in out and "nothing was sent" in out, out
    assert _writes(org) == before
    code, out = run("apply", "manifests/", "--auto-approve", "--audit-log", "plain.jsonl")
    assert code == 0, out
    prompt.write_text(prompt.read_text().replace("temperature: 0.4", "temperature: 0.5"))
    before = _writes(org)
    code, out = run("apply", "manifests/", "--auto-approve", "--audit-log", "plain.jsonl", **keyed)
    assert code == 1 and "is an unkeyed audit log (sha256) and LLMGW_AUDIT_KEY is set" in out
    assert _writes(org) == before


def test_a_short_key_is_refused(org: str) -> None:
    code, out = run("apply", "manifests/", "--auto-approve", LLMGW_AUDIT_KEY="short-key-1")
    assert code == 1 and "LLMGW_AUDIT_KEY is too short" in out and "short-key-1" not in out
    assert _writes(org) == 0
