"""Guard fixtures for every test: a clean environment, no network beyond loopback, the working
directory in a temporary folder so nothing is written into the checkout, and the process-wide
redactor emptied (a secret registered by one test never masks another test's output)."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.redact import REDACTOR

REPO = Path(__file__).resolve().parent.parent


def _is_loopback(address: object) -> bool:
    if isinstance(address, str | bytes):
        return True  # AF_UNIX paths are local
    if not (isinstance(address, tuple) and address):
        return False
    host = str(address[0])
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _guard(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("GENESYS_CLOUD_", "LLMGW_")) or name in ("NO_COLOR",):
            monkeypatch.delenv(name, raising=False)
    real_connect = socket.socket.connect

    def guarded_connect(self: socket.socket, address: object) -> object:
        if not _is_loopback(address):
            raise OSError(f"test tried to reach {address!r}: only loopback is allowed")
        return real_connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.chdir(tmp_path)
    REDACTOR.reset()
    yield
    REDACTOR.reset()


@pytest.fixture
def repo() -> Path:
    return REPO
