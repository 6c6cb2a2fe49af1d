"""The emulator in-process, for the emulator's test modules: the ASGI app under an httpx
transport, a plain ``httpx.AsyncClient`` on it, an injected clock and sleep (no sockets, no
waiting), a logged-in token, and the request bodies and assertions they share.

Not a test module: it collects nothing. What a test module covers is in its own docstring
(``test_emulator_http.py``, ``_templates``, ``_versions``, ``_prompts``, ``_indexes``,
``_runtime``, ``_state``).
"""

from __future__ import annotations

import copy
from typing import Any

import httpx

from reconciler.emulator.app import create_app
from reconciler.emulator.config import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    EmulatorConfig,
)
from reconciler.emulator.state import STORE_ID
from reconciler.emulator.transport import in_process_transport
from reconciler.endpoints import HEADERS, PATHS

URL = "http://127.0.0.1:8787"


T = PATHS.templates


P = PATHS.prompts


IDX = PATHS.indexes.format(vectorStoreId=STORE_ID)


INVOKE, DISPATCH = PATHS.invocations, PATHS.dispatch


TELEMETRY, ANALYTICS, AUDIT = PATHS.telemetry, PATHS.analytics, PATHS.audit_logs


RID = HEADERS.request_id


ERROR_KEYS = {"message", "code", "status", "contextId", "details"}


def V(tid: str, version: str | None = None) -> str:
    if version is None:
        return PATHS.versions.format(templateId=tid)
    return PATHS.version.format(templateId=tid, version=version)


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


class Api:
    """One in-process emulator, a plain httpx client on it, and a logged-in token."""

    def __init__(self, **config: Any) -> None:
        self.clock = Clock()
        self.sleeps: list[float] = []
        config.setdefault("ingest_delay", 5.0)
        config.setdefault("admin", True)
        config.setdefault("rate_limit", 0)
        self.config = EmulatorConfig(**config)
        self.app = create_app(self.config, clock=self.clock, sleep=self._sleep)
        self.http = httpx.AsyncClient(transport=in_process_transport(self.app), base_url=URL)
        self.token = ""

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    async def login(
        self,
        cid: str = DEFAULT_CLIENT_ID,
        secret: str = DEFAULT_CLIENT_SECRET,
        **form: str,
    ) -> httpx.Response:
        r = await self.http.post(
            PATHS.token, data={"grant_type": "client_credentials", **form}, auth=(cid, secret)
        )
        if r.status_code == 200:
            self.token = r.json()["access_token"]
        return r

    async def __call__(self, method: str, path: str, **kw: Any) -> httpx.Response:
        if not self.token:
            assert (await self.login()).status_code == 200
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return await self.http.request(method, path, headers=headers, **kw)

    def session(self) -> Api:
        """Another client session on the same emulator (log in again to get its token)."""
        other = copy.copy(self)
        other.token = ""
        return other

    async def faults(self, **faults: Any) -> httpx.Response:
        r = await self.http.put("/__emulator/faults", json=faults)
        assert r.status_code == 200, r.text
        return r

    async def template(self, name: str = "support-ticket-classifier", **kw: Any) -> dict[str, Any]:
        r = await self("POST", T, json=template(name, **kw))
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def version(self, tid: str, v: str, **kw: Any) -> dict[str, Any]:
        r = await self("POST", V(tid), json=version(v, **kw))
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def prompt(self, tid: str, name: str = "support-agent", **kw: Any) -> dict[str, Any]:
        r = await self("POST", P, json=prompt(tid, name, **kw))
        assert r.status_code == 201, r.text
        return dict(r.json())


def template(name: str = "support-ticket-classifier", **kw: Any) -> dict[str, Any]:
    return {"name": name, "user_template": "Msg: {{m}}", "variables": ["m"], **kw}


def version(v: str, **kw: Any) -> dict[str, Any]:
    return {"version": v, "content": "Hello {{m}}", "variables": {"m": "string"}, **kw}


def prompt(tid: str, name: str = "support-agent", **kw: Any) -> dict[str, Any]:
    return {
        "name": name,
        "templateId": tid,
        "modelEndpointRef": "model-gen-4",
        "systemPrompt": "You help.",
        **kw,
    }


INDEX = {"dimensions": 1536, "similarityMetric": "cosine", "embeddingFormat": "float32"}


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert set(body) == ERROR_KEYS and body["code"] == code and body["status"] == status
    assert r.headers[HEADERS.correlation_id] == body["contextId"]
    return body


async def split_prompt(a: Api, strategy: str = "random") -> dict[str, Any]:
    tid = (await a.template())["id"]
    for n in ("1.0.0", "1.1.0"):
        await a.version(tid, n)
    split = {
        "versions": [{"version": "1.0.0", "weight": 0.8}, {"version": "1.1.0", "weight": 0.2}],
        "splitStrategy": strategy,
    }
    return await a.prompt(tid, trafficDistribution=split, fallbackModels=["model-fallback-3"])


async def invoke(a: Api, pid: str, session: str = "s-1") -> httpx.Response:
    return await a("POST", INVOKE, json={"promptId": pid, "userInput": "hi", "sessionId": session})
