"""The view of `llmgw emulator serve` (reconciler/views/emulator.py).

Covers: the banner names the URL, each client with its scopes (its secret only when the
emulator made it up) and the variable to export; the stop hint.
"""

from __future__ import annotations

from reconciler.emulator.config import ClientSpec, EmulatorConfig
from reconciler.views import emulator


def test_banner() -> None:
    config = EmulatorConfig()
    view = emulator.view()
    lines = view.listening("http://127.0.0.1:1", config, given=False).splitlines()
    assert lines[0] == "llmgw emulator listening on http://127.0.0.1:1"
    assert lines[-1] == "  export GENESYS_CLOUD_API_URL=http://127.0.0.1:1"
    first = config.clients[0]
    assert lines[1] == f"  client {first.id} / {first.secret} (all scopes)"
    config.clients = [ClientSpec("ci", "s3cret", frozenset({"b", "a"}))]
    given = view.listening("http://h", config, given=True).splitlines()
    assert given[1] == "  client ci / (as given) (a, b)"
    assert view.stop_hint() == "Press Ctrl+C to stop."
