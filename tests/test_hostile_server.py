"""llmgw against servers that misbehave on purpose: each test plays one hostile part on a real
loopback socket (a small HTTP/1.1 server of this module, in a thread) and runs the CLI against it
with CliRunner, asserting exit 1 (never 3), the message, and bounded memory where it matters.

Covers: a listing claiming a billion pages (tracemalloc peak under a few MB); a drip of bytes
faster than any per-read timeout (the whole-answer deadline of LLMGW_REQUEST_TIMEOUT ends it); a
100 MB body declared (refused unread, peak under a few MB) and streamed chunked (cut at the
32 MiB bound); deeply nested JSON; non-UTF-8 and non-JSON bodies; wrong shapes of each kind
(pages, paging counts, ids, names, labels, numbers, lists, nested objects, traffic splits,
models, vector stores) and ids that would steer a later path; a total that does not match the
pages; duplicate identities (two templates or prompts with one name, two versions of one
version); redirects same-origin and cross-origin on reads, writes and the token endpoint (the
other origin never contacted); 3xx, 1xx and undocumented 2xx answers to writes (a failure,
never "applied"); a cycling cursor (through the client: no command pages by cursor).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner

from reconciler import errors
from reconciler.cli import cli
from reconciler.remote import GatewayClient, Settings

pytestmark = pytest.mark.slow

SECRET = "hostile-secret-0123"
TOKEN = "tok-hostile-" + "Zq8Rw3Lm" * 4
TPL = "/api/v2/llm-gateway/prompt-templates"
PROMPTS = "/api/v2/ai/llm/gateway/prompts"
MODELS = "/api/v2/ai/models"
STORES = "/api/v2/ai/vectorstores"
STORE = "store-1"
VERSIONS = "/api/v2/ai/prompt-templates/t-1/versions"
INDEXES = f"{STORES}/{STORE}/indexes"


# -- the server --------------------------------------------------------------------------------
@dataclass
class Req:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    """One answer. ``body`` is bytes or a JSON value; ``stream`` writes a body of its own (and
    then the connection closes)."""

    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    stream: Callable[[socket.socket], None] | None = None
    reason: str = "OK"

    def send(self, conn: socket.socket) -> bool:
        """Write the answer; True when the connection may serve another request."""
        data = self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode()
        head = {"content-type": "application/json", **self.headers}
        if self.stream is None and "content-length" not in head and self.status >= 200:
            head["content-length"] = str(len(data))
        lines = [f"HTTP/1.1 {self.status} {self.reason}"] + [f"{k}: {v}" for k, v in head.items()]
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if self.stream is not None:
            self.stream(conn)
            return False
        conn.sendall(data)
        return self.status >= 200


class Server:
    """A loopback HTTP/1.1 server in threads; ``route`` answers each request (keep-alive)."""

    def __init__(self, route: Callable[[Req], Reply]) -> None:
        self.route = route
        self.hits: list[Req] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as f:
            try:
                while True:
                    line = f.readline()
                    if not line.strip():
                        return
                    method, target, _ = line.decode("latin-1").split(" ", 2)
                    headers: dict[str, str] = {}
                    while (h := f.readline()) not in (b"\r\n", b"\n", b""):
                        k, _, v = h.decode("latin-1").partition(":")
                        headers[k.strip().lower()] = v.strip()
                    body = f.read(int(headers.get("content-length") or 0))
                    parts = urlsplit(target)
                    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                    req = Req(method, parts.path, query, headers, body)
                    self.hits.append(req)
                    if not self.route(req).send(conn):
                        return
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()


# -- a small, valid org ------------------------------------------------------------------------
def page(entities: list[Any], **over: Any) -> dict[str, Any]:
    n = len(entities)
    return {
        "entities": entities,
        "pageSize": 100,
        "pageNumber": 1,
        "total": n,
        "pageCount": 1 if n else 0,
        "numPages": 1 if n else 0,
        **over,
    }


def template(**over: Any) -> dict[str, Any]:
    return {
        "id": "t-1",
        "name": "tpl-one",
        "description": "",
        "system_instruction": "Answer briefly.",
        "user_template": "Q: {{q}}",
        "variables": ["q"],
        "max_tokens": 1024,
        "safety_guardrails": {
            "pii_filter": True,
            "jailbreak_detection": True,
            "output_moderation": True,
        },
        "labels": {"managed-by": "llmgw"},
        "version": 1,
        **over,
    }


def version(**over: Any) -> dict[str, Any]:
    return {
        "templateId": "t-1",
        "version": "1.0.0",
        "content": "Answer: {{q}}",
        "variables": {"q": "string"},
        "rollbackDirective": False,
        "metadata": {},
        "labels": {"managed-by": "llmgw"},
        "status": "ACTIVE",
        **over,
    }


def prompt(**over: Any) -> dict[str, Any]:
    return {
        "id": "p-1",
        "name": "prompt-one",
        "templateId": "t-1",
        "modelEndpointRef": "model-a",
        "fallbackModels": [],
        "systemPrompt": "Be brief.",
        "temperature": 0.5,
        "topP": 0.9,
        "maxTokens": 256,
        "safetyGuardrails": {"contentFiltering": [], "maxTokens": 4096, "blockedCategories": []},
        "trafficDistribution": {"defaultVersion": "1.0.0"},
        "labels": {"managed-by": "llmgw"},
        "status": "ACTIVE",
        "etag": '"e1"',
        **over,
    }


def index(**over: Any) -> dict[str, Any]:
    return {
        "indexId": "idx-one",
        "dimensions": 8,
        "similarityMetric": "cosine",
        "embeddingFormat": "float32",
        "autoIngestTrigger": False,
        "labels": {"managed-by": "llmgw"},
        "status": "ACTIVE",
        "etag": '"x1"',
        **over,
    }


ORG: dict[str, Callable[[], Any]] = {
    TPL: lambda: page([template()]),
    VERSIONS: lambda: page([version()]),
    PROMPTS: lambda: page([prompt()]),
    MODELS: lambda: page([{"id": "model-a", "contextWindow": 8000, "maxOutputTokens": 1024}]),
    STORES: lambda: page([{"id": STORE, "name": "store"}]),
    INDEXES: lambda: page([index()]),
}


def org(req: Req) -> Reply:
    """The valid org's answer to ``req``: the token, the listings, documented write answers."""
    if req.path == "/oauth/token":
        return Reply(200, {"access_token": TOKEN, "token_type": "bearer", "expires_in": 3600})
    if req.method == "GET" and req.path in ORG:
        return Reply(200, ORG[req.path]())
    if req.method == "POST" and req.path == TPL:
        return Reply(201, {**json.loads(req.body), "id": "t-2", "version": 1})
    return Reply(404, {"message": "not here", "code": "not.found"})


Route = Callable[[Req], Reply | None]


@pytest.fixture
def hostile(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Route], Server]]:
    """Start a server playing ``route`` (None: the valid org's answer) and point llmgw at it."""
    servers: list[Server] = []

    def start(route: Route) -> Server:
        server = Server(lambda req: route(req) or org(req))
        servers.append(server)
        monkeypatch.setenv("GENESYS_CLOUD_API_URL", server.url)
        monkeypatch.setenv("GENESYS_CLOUD_CLIENT_ID", "hostile-client")
        monkeypatch.setenv("GENESYS_CLOUD_CLIENT_SECRET", SECRET)
        return server

    yield start
    for s in servers:
        s.close()


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    out = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert SECRET not in out and TOKEN not in out
    assert result.exit_code != 3, out
    return result.exit_code, out


def export() -> tuple[int, str]:
    return run("export", "--out", "exported")


def on(method: str, path: str, reply: Reply) -> Route:
    return lambda req: reply if (req.method, req.path) == (method, path) else None


CANNOT_READ = "llmgw: error: the server answered something llmgw cannot read: "


def test_the_valid_org_exports(hostile: Callable[[Route], Server]) -> None:
    """The baseline every hostile part spoils: the same org, read and exported cleanly."""
    hostile(lambda req: None)
    code, out = export()
    assert code == 0, out


# -- count: a billion pages --------------------------------------------------------------------
def test_a_listing_claiming_a_billion_pages_fails_fast_in_bounded_memory(
    hostile: Callable[[Route], Server],
) -> None:
    claims = page([template(id=f"t-{i}", name=f"tpl-{i}") for i in range(100)])
    claims.update(total=100 * 10**9, pageCount=10**9, numPages=10**9)
    server = hostile(on("GET", TPL, Reply(200, claims)))
    tracemalloc.start()
    try:
        code, out = export()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 1
    assert f"{CANNOT_READ}GET {TPL}: the listing claims 1,000,000,000 pages" in out
    assert "llmgw reads at most 10,000 pages of a listing" in out
    assert peak < 4 * 2**20, peak
    assert [h.query.get("pageNumber") for h in server.hits if h.path == TPL] == ["1"]


# -- time: a drip ------------------------------------------------------------------------------
def drip(every: float, limit: int = 400) -> Callable[[socket.socket], None]:
    def write(conn: socket.socket) -> None:
        conn.sendall(b"[")
        for _ in range(limit):
            time.sleep(every)
            conn.sendall(b" ")

    return write


def test_a_drip_cannot_stretch_the_deadline(
    hostile: Callable[[Route], Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One byte every 0.05 s: far inside any per-read timeout, so only a deadline on the whole
    answer (LLMGW_REQUEST_TIMEOUT=0.3) ends each attempt. Two attempts, no backoff, to keep the
    test short; the bounds themselves are the client's defaults otherwise."""
    monkeypatch.setenv("LLMGW_REQUEST_TIMEOUT", "0.3")
    monkeypatch.setitem(GatewayClient.__init__.__kwdefaults__, "max_attempts", 2)
    monkeypatch.setitem(GatewayClient.__init__.__kwdefaults__, "backoff_base", 0.0)
    headers = {"content-length": "100000"}
    server = hostile(on("GET", TPL, Reply(200, headers=headers, stream=drip(0.05))))
    code, out = export()
    assert code == 1
    assert f"llmgw: error: GET {TPL}: no complete answer within 0.3 s" in out
    assert "set by LLMGW_REQUEST_TIMEOUT) (after 2 attempts)" in out
    assert len([h for h in server.hits if h.path == TPL]) == 2


# -- size: 100 MB ------------------------------------------------------------------------------
def filler(total: int, chunked: bool) -> Callable[[socket.socket], None]:
    chunk = b" " * 65536
    framed = b"%x\r\n" % len(chunk) + chunk + b"\r\n"

    def write(conn: socket.socket) -> None:
        conn.sendall(b"1\r\n[\r\n" if chunked else b"[")
        for _ in range(total // len(chunk)):
            conn.sendall(framed if chunked else chunk)

    return write


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_a_100_mb_body_is_refused_within_the_bound(
    hostile: Callable[[Route], Server], chunked: bool
) -> None:
    size = 100 * 2**20
    headers = {"transfer-encoding": "chunked"} if chunked else {"content-length": str(size)}
    hostile(on("GET", TPL, Reply(200, headers=headers, stream=filler(size, chunked))))
    tracemalloc.start()
    try:
        code, out = export()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 1 and f"{CANNOT_READ}GET {TPL} -> 200: the body is " in out
    assert "llmgw reads at most 33,554,432 bytes (32 MiB) of an answer" in out
    if chunked:  # read up to the bound, then dropped
        assert peak < 48 * 2**20, peak
    else:  # the declared length is refused before a byte of the body is read
        assert "the body is 104,857,600 bytes" in out
        assert peak < 4 * 2**20, peak


# -- shape: bodies llmgw cannot read -----------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "the JSON is nested deeper than 64 levels"),
        (b'{"entities": [{"name": "caf\xe9"}]}', "the body is not valid UTF-8 (at byte 27)"),
        (b"<html><body>Service Unavailable</body></html>", "the body is not JSON"),
        (
            b'{"entities": [], "total": 1' + b"0" * 5000 + b"}",
            "a number in the body has more digits than llmgw reads",
        ),
        (b'{"entities": [], "entities": [{}]}', 'an object has the key "entities" twice'),
    ],
    ids=["nested", "latin-1", "html", "digits", "duplicate-key"],
)
def test_bodies_llmgw_cannot_read(
    hostile: Callable[[Route], Server], body: bytes, needle: str
) -> None:
    hostile(on("GET", TPL, Reply(200, body)))
    code, out = export()
    assert code == 1 and f"{CANNOT_READ}GET {TPL} -> 200: {needle}" in out


# -- shape: pages and entities of the wrong shape ----------------------------------------------
def spoil(path: str, body: Any) -> Route:
    return on("GET", path, Reply(200, body))


WRONG_SHAPES = [
    (TPL, {"entities": {"id": "t-1"}}, "page 1's entities is an object, not a list"),
    (TPL, {"total": 0}, "page 1 has no entities"),
    (TPL, [template()], "page 1 is an array, not a JSON object with entities"),
    (TPL, page(["t-1"]), "page 1's entity 1 is a string, not an object"),
    (TPL, page([template()], pageCount="1", numPages="1"), 'pageCount is "1", not a count'),
    (TPL, page([template()], total=-1), "page 1: total is -1, not a count"),
    (TPL, page([template()], pageCount=True, numPages=None), "pageCount is true, not a count"),
    (TPL, page([template()], total=7), "total says 7 and the only page holds 1 entity"),
    (TPL, page([template()], total=170), "pageCount 1 does not match total 170 at 100 a page"),
    (TPL, page([template(id="../prompts/p-1")]), 'id "../prompts/p-1" contains ..'),
    (TPL, page([template(id="t 1")]), 'id "t 1" contains whitespace'),
    (TPL, page([template(id="t-1?x=1")]), "contains '?'"),
    (TPL, page([template(id=17)]), 'template "tpl-one": id is 17, not a string'),
    (TPL, page([template(name=None)]), 'a template with id "t-1": name is missing'),
    (TPL, page([template(max_tokens="1024")]), 'max_tokens is "1024", not an integer'),
    (TPL, page([template(variables="q")]), 'variables is "q", not a list of strings'),
    (TPL, page([template(variables=[1])]), "variables[0] is 1, not a string"),
    (TPL, page([template(labels=["a"])]), 'labels is ["a"], not an object'),
    (TPL, page([template(labels={"team": 7})]), "labels.team is 7, not a string"),
    (TPL, page([template(version="1")]), 'version is "1", not an integer'),
    (
        TPL,
        page([template(safety_guardrails={"pii_filter": "yes"})]),
        'safety_guardrails.pii_filter is "yes", not true or false',
    ),
    (VERSIONS, page([version(version=None)]), "a version: version is missing"),
    (VERSIONS, page([version(version="1.0.0/..")]), 'version "1.0.0/.." contains'),
    (VERSIONS, page([version(templateId="t-9")]), 'templateId is "t-9", not the "t-1" listed'),
    (VERSIONS, page([version(variables={"q": {}})]), "variables.q is {}, not a type name"),
    (VERSIONS, page([version(metadata={"a": 1})]), "metadata.a is 1, not a string"),
    (VERSIONS, page([version(rollbackDirective="no")]), 'rollbackDirective is "no", not true'),
    (PROMPTS, page([prompt(temperature="hot")]), 'temperature is "hot", not a number'),
    (PROMPTS, page([prompt(fallbackModels="model-b")]), 'fallbackModels is "model-b", not a'),
    (PROMPTS, page([prompt(etag="\u00e9")]), "not an entity tag"),
    (PROMPTS, page([prompt(safetyGuardrails=[])]), "safetyGuardrails is [], not an object"),
    (
        PROMPTS,
        page([prompt(trafficDistribution={"versions": [{"version": "1.0.0", "weight": "all"}]})]),
        'trafficDistribution.versions[0].weight is "all", not a number',
    ),
    (
        PROMPTS,
        page(
            [
                prompt(
                    trafficDistribution={
                        "versions": [
                            {"version": "1.0.0", "weight": 0.5},
                            {"version": "1.0.0", "weight": 0.5},
                        ]
                    }
                )
            ]
        ),
        'trafficDistribution.versions[1].version "1.0.0" is listed twice',
    ),
    (PROMPTS, page([prompt(trafficDistribution={"defaultVersion": 1})]), "defaultVersion is 1"),
    (MODELS, page([{"id": 7}]), "a model: id is 7, not a string"),
    (MODELS, page([{"id": "model-a", "maxOutputTokens": "lots"}]), "maxOutputTokens is"),
    (STORES, page([{"id": "../../x", "name": "s"}]), 'id "../../x" contains ..'),
    (INDEXES, page([index(dimensions=None)]), 'index "idx-one": dimensions is missing'),
    (INDEXES, page([index(dimensions=8.5)]), "dimensions is 8.5, not an integer"),
    (INDEXES, page([index(indexId="idx\u202eone")]), "contains whitespace or an invisible"),
]


@pytest.mark.parametrize(("path", "body", "needle"), WRONG_SHAPES)
def test_wrong_shapes_are_exit_1_naming_endpoint_and_entity(
    hostile: Callable[[Route], Server], path: str, body: Any, needle: str
) -> None:
    hostile(spoil(path, body))
    code, out = export()
    assert code == 1 and f"{CANNOT_READ}GET {path}: " in out, out
    assert needle in out, out


def test_a_total_that_does_not_match_the_pages(hostile: Callable[[Route], Server]) -> None:
    def route(req: Req) -> Reply | None:
        if req.path != TPL:
            return None
        n = int(req.query["pageNumber"])
        items = [template(id=f"t-{n}-{i}", name=f"tpl-{n}-{i}") for i in range(100 if n < 3 else 5)]
        return Reply(200, page(items, pageNumber=n, total=250, pageCount=3, numPages=3))

    hostile(route)
    code, out = export()
    assert code == 1
    assert f"{CANNOT_READ}GET {TPL}: the pages hold 205 entities and total says 250" in out


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        (
            TPL,
            page([template(), template(id="t-2")]),
            'two templates have the name "tpl-one" (ids "t-1" and "t-2")',
        ),
        (TPL, page([template(), template(name="tpl-two")]), 'two templates have the id "t-1"'),
        (
            PROMPTS,
            page([prompt(), prompt(id="p-2")]),
            'two prompts have the name "prompt-one" (ids "p-1" and "p-2")',
        ),
        (VERSIONS, page([version(), version()]), 'two versions have the version "1.0.0"'),
        (INDEXES, page([index(), index()]), 'two indexes have the indexId "idx-one"'),
        (MODELS, page([{"id": "model-a"}, {"id": "model-a"}]), 'two models have the id "model-a"'),
    ],
)
def test_duplicate_identities_make_the_plan_ambiguous(
    hostile: Callable[[Route], Server], path: str, body: Any, needle: str
) -> None:
    hostile(spoil(path, body))
    code, out = export()
    assert code == 1 and f"{CANNOT_READ}GET {path}: {needle}: a plan over them" in out, out


# -- redirects ---------------------------------------------------------------------------------
@pytest.fixture
def elsewhere() -> Iterator[Server]:
    """Another origin a hostile server redirects to: it must never hear from llmgw."""
    server = Server(org)
    yield server
    server.close()


def _location(server: Server, elsewhere: Server, where: str) -> str:
    if where == "cross-origin":
        return f"http://localhost:{elsewhere.port}/steal"
    return f"{server.url}/api/v2/other"


@pytest.mark.parametrize("where", ["cross-origin", "same-origin"])
@pytest.mark.parametrize("status", [302, 307])
def test_a_redirected_read_is_refused(
    hostile: Callable[[Route], Server], elsewhere: Server, where: str, status: int
) -> None:
    target: list[str] = []
    server = hostile(
        lambda req: Reply(status, {}, {"location": target[0]}) if req.path == TPL else None
    )
    target.append(_location(server, elsewhere, where))
    code, out = export()
    host = '"localhost";' if where == "cross-origin" else '"127.0.0.1" (the same origin);'
    assert (
        code == 1 and f"{CANNOT_READ}GET {TPL} -> {status}: the server redirected to {host}" in out
    )
    assert "llmgw does not follow redirects, so no credential went there: check " in out
    assert "check GENESYS_CLOUD_API_URL" in out
    assert elsewhere.hits == [] and len([h for h in server.hits if h.path == TPL]) == 1


def test_a_redirected_token_request_is_refused(
    hostile: Callable[[Route], Server], elsewhere: Server
) -> None:
    location = f"http://localhost:{elsewhere.port}/oauth/token"
    hostile(on("POST", "/oauth/token", Reply(307, {}, {"location": location})))
    code, out = export()
    assert code == 1
    assert f'{CANNOT_READ}POST /oauth/token -> 307: the server redirected to "localhost"' in out
    assert "check GENESYS_CLOUD_LOGIN_URL" in out
    assert elsewhere.hits == []


MANIFEST = """\
apiVersion: llmgw/v1
kind: PromptTemplate
metadata:
  name: tpl-new
spec:
  systemInstruction: Answer briefly.
  userTemplate: "Q: {{q}}"
  variables: [q]
"""


NOT_READ = f"the server answered something llmgw cannot read: POST {TPL}"


@pytest.mark.parametrize(
    ("reply", "needle"),
    [
        (
            Reply(302, {}, {"location": "https://other.example.com/x"}),
            f'{NOT_READ} -> 302: the server redirected to "other.example.com"',
        ),
        (
            Reply(307, {}, {"location": f"{TPL}/again"}),
            f'{NOT_READ} -> 307: the server redirected to "127.0.0.1" (the same origin)',
        ),
        (
            # h11 refuses a 101 nobody asked for: a transport failure, retried, then failed
            Reply(101, b"", {"connection": "upgrade", "upgrade": "h2c"}, reason="Switching"),
            f"{TPL}: RemoteProtocolError: Received server _SWITCH_UPGRADE event without a "
            "pending proposal (after 5 attempts)",
        ),
        (Reply(200, {"id": "t-2"}), f"{NOT_READ} -> 200: 200 is not the documented answer"),
        (Reply(202, {}), f"{NOT_READ} -> 202: 202 is not the documented answer to this write"),
        (
            Reply(201, {"name": "tpl-new"}),
            f"{NOT_READ} -> 201: the object answered has no usable id (it is missing)",
        ),
        (Reply(201, {"id": "../t-1"}), f"{NOT_READ} -> 201: the object answered has no usable"),
        (Reply(201, b"Created"), f"{NOT_READ} -> 201: the body is not JSON"),
    ],
    ids=["cross-origin", "same-origin", "101", "200", "202", "no-id", "bad-id", "not-json"],
)
def test_a_write_answered_otherwise_than_documented_is_a_failure(
    hostile: Callable[[Route], Server],
    elsewhere: Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    reply: Reply,
    needle: str,
) -> None:
    monkeypatch.setitem(GatewayClient.__init__.__kwdefaults__, "backoff_base", 0.0)
    (tmp_path / "m.yaml").write_text(MANIFEST)
    server = hostile(on("POST", TPL, reply))
    code, out = run("apply", "m.yaml", "--auto-approve")
    assert code == 1, out
    assert needle in out, out
    assert "Apply FAILED: 0 of 1 applied, 1 failed" in out, out
    posts = [h for h in server.hits if h.method == "POST" and h.path == TPL]
    assert len(posts) == (5 if reply.status == 101 else 1) and elsewhere.hits == []
    records = [json.loads(line) for line in (tmp_path / ".llmgw" / "audit.jsonl").open()]
    writes = [r for r in records if "event" not in r]  # the run-start and run-end records aside
    # no answer at all (101: a transport failure) may still have been applied: "unknown"
    expected = "unknown" if reply.status == 101 else "failed"
    assert [r["outcome"] for r in writes] == [expected]  # one record per operation


# -- cursor paging (no command pages by cursor yet: the client itself) -------------------------
def test_a_cycling_cursor_is_refused_on_the_wire(hostile: Callable[[Route], Server]) -> None:
    ring = {"": "a", "a": "b", "b": "c", "c": "a"}

    def route(req: Req) -> Reply | None:
        if req.path != "/api/v2/ai/llm/gateway/telemetry":
            return None
        cur = req.query.get("cursor", "")
        return Reply(200, {"entities": [{"at": cur}], "nextPageCursor": ring[cur]})

    server = hostile(route)

    async def read() -> None:
        async with GatewayClient(Settings(server.url, server.url, "c", SECRET)) as c:
            await c.list_cursor("/api/v2/ai/llm/gateway/telemetry")

    with pytest.raises(errors.ProtocolError) as exc:
        asyncio.run(read())
    assert "page 4's nextPageCursor repeats the one of page 1: the listing would cycle" in str(
        exc.value
    )
