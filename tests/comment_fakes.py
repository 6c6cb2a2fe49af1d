"""Fakes of GitHub's issue-comments API and GitLab's merge-request notes API, on loopback.

Each is a small threaded ``http.server`` holding the comments in memory. They implement what
``llmgw comment`` uses (``GET /user``, the listing with its paging headers, create, edit), check
the token like the real ones (401 for an unknown one; GitHub's Actions token may not read
``/user``: 403) and the body limit (422 / 400 past it), and record every request. ``fault``
makes them misbehave: "500" (every answer), "500-once" (the first), "nonjson" (the listing is
HTML), "endless" (every listing page is full and says there is a next one).
"""

from __future__ import annotations

import http.server
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

BOT_TOKEN = "ghs_fakeActionsToken0123456789abcdef"  # GITHUB_TOKEN: github-actions[bot]
PAT_TOKEN = "ghp_fakePersonalToken0123456789abcdef"  # a person's token: GET /user works
GITLAB_TOKEN = "glpat-fakeProjectToken0123456789"  # a project access token (its bot user)
JOB_TOKEN = "glcbt-fakeJobToken0123456789"  # CI_JOB_TOKEN: no /user (401); here it may write
GITHUB_BOT = {"login": "github-actions[bot]", "type": "Bot"}
GITHUB_PERSON = {"login": "octocat", "type": "User"}
GITLAB_BOT = {"id": 4242, "username": "project_7_bot"}
GITLAB_PERSON = {"id": 7, "username": "alice"}


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class Fake:
    platform: str
    url: str = ""
    comments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by PR/MR path
    requests: list[Request] = field(default_factory=list)
    fault: str | None = None
    next_id: int = 1000
    lock: threading.Lock = field(default_factory=threading.Lock)

    def seed(self, key: str, body: str, author: dict[str, Any], system: bool = False) -> None:
        with self.lock:
            self.next_id += 1
            note: dict[str, Any] = {"id": self.next_id, "body": body}
            if self.platform == "github":
                note["user"] = dict(author)
                note["html_url"] = f"https://github.com/{key}#issuecomment-{self.next_id}"
            else:
                note["author"] = dict(author)
                note["system"] = system
            self.comments.setdefault(key, []).append(note)

    def marked(self, key: str, environment: str) -> list[dict[str, Any]]:
        mark = f"<!-- llmgw-plan: {environment} -->"
        return [c for c in self.comments.get(key, []) if mark in (c["body"] or "")]


def _handler(fake: Fake) -> type[http.server.BaseHTTPRequestHandler]:
    github = fake.platform == "github"
    limit = 65_536 if github else 1_000_000

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out apart: no 40 ms delayed ACK

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _user(self) -> dict[str, Any] | None:
            if github:
                auth = self.headers.get("Authorization", "")
                return {
                    f"Bearer {BOT_TOKEN}": GITHUB_BOT,
                    f"Bearer {PAT_TOKEN}": GITHUB_PERSON,
                }.get(auth)
            if self.headers.get("JOB-TOKEN") == JOB_TOKEN:
                return GITLAB_BOT
            return GITLAB_BOT if self.headers.get("PRIVATE-TOKEN") == GITLAB_TOKEN else None

        def _handle(self, method: str) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            with fake.lock:
                fake.requests.append(
                    Request(method, parts.path, parse_qs(parts.query), dict(self.headers), body)
                )
            if fake.fault == "500" or (fake.fault == "500-once" and len(fake.requests) == 1):
                return self._send(500, {"message": "Server Error"})
            user = self._user()
            if user is None:
                msg = "Bad credentials" if github else "401 Unauthorized"
                return self._send(401, {"message": msg})
            path = parts.path
            if not github:
                if not path.startswith("/api/v4/"):
                    return self._send(404, {"message": "404 Not Found"})
                path = path.removeprefix("/api/v4")
            if path == "/user" and method == "GET":
                if self.headers.get("JOB-TOKEN"):
                    return self._send(401, {"message": "401 Unauthorized"})
                if github and user is GITHUB_BOT:
                    return self._send(403, {"message": "Resource not accessible by integration"})
                return self._send(200, user)
            if github:
                listing = re.fullmatch(r"/repos/([^/]+/[^/]+)/issues/(\d+)/comments", path)
                single = re.fullmatch(r"/repos/([^/]+/[^/]+)/issues/comments/(\d+)", path)
            else:
                listing = re.fullmatch(r"/projects/(\d+)/merge_requests/(\d+)/notes", path)
                single = re.fullmatch(r"/projects/(\d+)/merge_requests/(\d+)/notes/(\d+)", path)
            if listing:
                key = f"{listing[1]}/{'pull' if github else 'merge_requests'}/{listing[2]}"
                if key not in fake.comments:
                    return self._send(404, {"message": "Not Found"})
                if method == "GET":
                    return self._list(key, parse_qs(parts.query))
                if method == "POST":
                    return self._write(key, None, body, user)
            if single and method == ("PATCH" if github else "PUT"):
                cid = int(single[2] if github else single[3])
                for key, notes in fake.comments.items():
                    if any(c["id"] == cid for c in notes) and key.startswith(single[1] + "/"):
                        return self._write(key, cid, body, user)
                return self._send(404, {"message": "Not Found"})
            return self._send(404, {"message": "Not Found"})

        def _list(self, key: str, query: dict[str, list[str]]) -> None:
            per_page = int(query.get("per_page", ["30"])[0])
            page = int(query.get("page", ["1"])[0])
            if fake.fault == "nonjson":
                return self._send(200, b"<html>rate limited</html>")
            if fake.fault == "endless":
                items = [
                    {"id": page * 1000 + i, "body": "x", "user": GITHUB_PERSON}
                    for i in range(per_page)
                ]
                headers = {"Link": f'<{fake.url}/next?page={page + 1}>; rel="next"'}
                if not github:
                    headers = {"X-Next-Page": str(page + 1)}
                return self._send(200, items, headers)
            notes = fake.comments[key]
            items = notes[(page - 1) * per_page : page * per_page]
            more = page * per_page < len(notes)
            if github:
                headers = {"Link": f'<{fake.url}/x?page={page + 1}>; rel="next"'} if more else {}
            else:
                headers = {"X-Next-Page": str(page + 1) if more else "", "X-Page": str(page)}
            return self._send(200, items, headers)

        def _write(self, key: str, cid: int | None, body: Any, user: dict[str, Any]) -> None:
            text = body.get("body") if isinstance(body, dict) else None
            if not isinstance(text, str) or utf16(text) > limit:
                status = 422 if github else 400
                return self._send(status, {"message": "Body is too long"})
            with fake.lock:
                notes = fake.comments[key]
                if cid is None:
                    fake.next_id += 1
                    note: dict[str, Any] = {"id": fake.next_id, "body": text}
                    if github:
                        note["user"] = dict(user)
                        note["html_url"] = f"https://github.com/{key}#issuecomment-{fake.next_id}"
                    else:
                        note["author"] = dict(user)
                        note["system"] = False
                    notes.append(note)
                    return self._send(201, note)
                note = next(c for c in notes if c["id"] == cid)
                note["body"] = text
                return self._send(200, note)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

        def do_PUT(self) -> None:
            self._handle("PUT")

    return Handler


@contextmanager
def serving(platform: str) -> Iterator[Fake]:
    """A running fake (``fake.url`` is its API URL: GitLab's ends in /api/v4)."""
    fake = Fake(platform)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    base = f"http://127.0.0.1:{server.server_address[1]}"
    fake.url = base if platform == "github" else f"{base}/api/v4"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
