"""One sticky plan comment per environment on a pull request (GitHub) or merge request (GitLab).

``llmgw comment`` posts a file (``plan --output markdown``'s) as a comment that carries a hidden
marker, ``<!-- llmgw-plan: ENV -->``, on its first line. Every later run finds that comment and
edits it in place; it creates one only when none is found, so twenty pushes leave one comment.

Finding it: every page of the pull request's comments (GitHub's issue comments, GitLab's
notes, oldest first) is read, at most ``MAX_PAGES`` of ``PER_PAGE``; a listing that does not
end by then is an error, and nothing is posted (an unread page could hold the comment, and a
second one would be created). A comment is ours when its first line is the marker exactly
(the environment names allow no space or ``>``, so ``prod``'s marker is never ``prod-eu``'s;
a comment that quotes a marker further down is someone talking about it) and its author is
the token's user: ``GET /user`` names it. GitHub's Actions token (``GITHUB_TOKEN``) may not
read ``/user`` (403): its comments are written by ``github-actions[bot]``, so then a comment
is ours when its author is a bot (``user.type == "Bot"``). So a person's comment is never
overwritten by the Actions token. When several are
ours (an older tool, a race between two runs), the oldest is edited and the rest are left.

Size: over the platform's limit the body is cut at a line, its open code fence and
``<details>`` closed, and a pointer to the ``plan.json`` artifact added, the marker kept.
GitHub's error says "maximum is 65536 characters"; measurements reported publicly disagree on
the unit (characters, code points, or 262,144 UTF-8 bytes). The body is measured in UTF-16 code
units, which is at least the number of code points, and 65,536 of them are at most 196,608
UTF-8 bytes: under every reading. GitLab's notes stop at 1,000,000 characters.

Bounded: ``TIMEOUT`` seconds per attempt, answers read up to ``answers.MAX_BODY`` bytes,
strict JSON, redirects never followed (the token would go where the server says); GET, PATCH
and PUT are retried on 429/5xx and transport failures, a POST never is (a retried create could
leave two). Every failure is a ``RemoteError`` or ``ConfigError`` with one line; the token is
registered with the redactor and never part of a message.
"""

from __future__ import annotations

import asyncio
import json as _json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from reconciler import __version__, redact
from reconciler.endpoints import HEADERS
from reconciler.errors import (
    AuthError,
    ConfigError,
    InvalidRequestError,
    NotFoundError,
    ProtocolError,
    RemoteError,
    ScopeError,
    ServerError,
    TransportError,
)
from reconciler.remote.answers import (
    MAX_BODY,
    MAX_ERROR_BODY,
    Unreadable,
    lenient,
    parse_json,
    read_body,
)
from reconciler.text import visible, visible_ascii
from reconciler.urls import UrlProblem, check

PLATFORMS = ("github", "gitlab")
NAMES = {"github": "GitHub", "gitlab": "GitLab"}
LIMITS = {"github": 65_536, "gitlab": 1_000_000}  # see the module's docstring for the unit
PER_PAGE = 100
MAX_PAGES = 50  # 5,000 comments: past that the listing is taken as endless
TIMEOUT = 20.0  # seconds per attempt, the whole answer
ATTEMPTS = 3  # of a GET, PATCH or PUT; a POST is sent once
BACKOFF = 0.5  # seconds before the second attempt, doubled after
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_TOKEN = 4096
_ENV = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_REPO = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_DETAILS_OPEN = re.compile(r"<details[\s>]", re.IGNORECASE)
_DETAILS_CLOSE = re.compile(r"</details\s*>", re.IGNORECASE)
_LINK_NEXT = re.compile(r'rel="?next"?')
# GitHub's and GitLab's own header names (reconciler.endpoints is the gateway's table):
# GitHub pages with Link (RFC 8288), GitLab with X-Next-Page (empty on the last page)


def marker(environment: str) -> str:
    """The hidden first line of an environment's comment; ConfigError for a name that could
    end the HTML comment or match another environment's marker."""
    if not isinstance(environment, str) or not _ENV.fullmatch(environment):
        raise ConfigError(
            f"the environment name {visible(str(environment), 80)!r} cannot go into the "
            "comment's marker",
            "use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return f"<!-- llmgw-plan: {environment} -->"


def measure(text: str) -> int:
    """``text``'s length in UTF-16 code units (an astral character counts 2)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _closers(lines: list[str]) -> list[str]:
    """What closes the code fence and the ``<details>`` blocks still open after ``lines``."""
    fence: str | None = None
    details = 0
    for ln in lines:
        m = _FENCE.match(ln)
        if fence is None:
            if m:
                fence = m.group(1)
                continue
            details += len(_DETAILS_OPEN.findall(ln)) - len(_DETAILS_CLOSE.findall(ln))
            details = max(details, 0)
        elif (
            m
            and m.group(1)[0] == fence[0]
            and len(m.group(1)) >= len(fence)
            and not ln.strip().lstrip(fence[0])
        ):
            fence = None
    return ([fence] if fence else []) + ["</details>"] * details


def fit(body: str, limit: int, pointer: str) -> tuple[str, bool]:
    """``body`` if it measures at most ``limit``, else its longest run of whole lines that fits
    with what closes its open fence and ``<details>`` and ``pointer`` after it (the first line,
    the marker, always kept); and whether it was cut."""
    if measure(body) <= limit:
        return body, False
    lines = body.split("\n")
    tail = ["", pointer]
    # the closers are at most a fence and a few </details>: checked per candidate, from the
    # longest prefix whose own length leaves room, down
    sizes = [measure(ln) + 1 for ln in lines]
    room = limit - measure("\n".join(tail)) - 1
    total, n = 0, 0
    for s in sizes:
        if total + s > room:
            break
        total += s
        n += 1
    n = max(n, 1)
    if n == 1 and len(lines) > 1:  # not one whole line fits: the next one cut by characters
        room -= sizes[0]
        part = lines[1][: max(0, room - 64) // 2]
        lines = [lines[0], part] if part else lines[:1]
        n = len(lines)
    while n > 1:
        kept = lines[:n]
        out = "\n".join([*kept, *_closers(kept), *tail])
        if measure(out) <= limit:
            return out, True
        n -= 1
    first = lines[0]
    if measure(first) + measure("\n".join(tail)) + 1 > limit:  # one enormous first line
        first = first[: max(0, limit - measure("\n".join(tail)) - 1) // 2]
    return "\n".join([first, *tail]), True


def pointer_text(body_size: int, limit: int, artifact_url: str | None) -> str:
    where = (
        f"[the `plan.json` artifact]({artifact_url})"
        if artifact_url
        else "the `plan.json` artifact of this job"
    )
    return (
        f"_…cut here: the plan is {body_size:,} characters, over the {limit:,} a comment can "
        f"hold. The full plan is in {where} and in the job log._"
    )


@dataclass(frozen=True)
class Target:
    """Where the comment goes, from the CI environment; ``token`` is registered with the
    redactor as soon as it is read."""

    platform: str
    api_url: str
    token: str = field(repr=False)
    token_header: str  # "Authorization" (GitHub), "PRIVATE-TOKEN" or "JOB-TOKEN" (GitLab)
    token_variable: str  # the environment variable it came from, for messages
    project: str  # owner/repo, or the GitLab project id
    number: int  # the pull request number, or the merge request iid
    artifact_url: str | None = None

    @property
    def name(self) -> str:
        return NAMES[self.platform]

    @property
    def request_name(self) -> str:
        return "pull request" if self.platform == "github" else "merge request"

    @property
    def reference(self) -> str:
        sign = "#" if self.platform == "github" else "!"
        return f"{self.request_name} {sign}{self.number} of {self.project}"


def _pick_platform(env: Mapping[str, str], platform: str | None) -> str:
    if platform:
        if platform not in PLATFORMS:
            raise ConfigError(
                f"--platform {visible(platform, 40)!r} is no platform llmgw comments on",
                "use github or gitlab",
            )
        return platform
    github = env.get("GITHUB_ACTIONS") == "true"
    gitlab = env.get("GITLAB_CI") == "true"
    if github != gitlab:
        return "github" if github else "gitlab"
    raise ConfigError(
        "cannot tell GitHub Actions from GitLab CI"
        + (" (both GITHUB_ACTIONS and GITLAB_CI are set)" if github else ""),
        "pass --platform github or --platform gitlab",
    )


def _number(raw: object, what: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ConfigError(f"{what} is not a number")
    text = str(raw).strip()
    if not text.isdigit() or not 0 < int(text) < 2**53:
        raise ConfigError(f"{what} is not a positive number: {visible(text, 40)!r}")
    return int(text)


def _event_number(env: Mapping[str, str]) -> int:
    path = env.get("GITHUB_EVENT_PATH")
    if not path:
        raise ConfigError(
            "no pull request number: GITHUB_EVENT_PATH is not set",
            "run it in a pull_request workflow or pass --pr N",
        )
    try:
        with open(path, "rb") as f:
            event = _json.loads(f.read(MAX_BODY))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read the event file GITHUB_EVENT_PATH names ({type(exc).__name__})",
            "pass --pr N",
        ) from None
    pr = event.get("pull_request") if isinstance(event, dict) else None
    number = pr.get("number") if isinstance(pr, dict) else None
    if number is None:
        raise ConfigError(
            "the event that started this run is not a pull request (no pull_request.number)",
            "run the step on pull_request events or pass --pr N",
        )
    return _number(number, "pull_request.number in the event file")


def _api_url(name: str, url: str | None, default: str | None = None) -> str:
    url = url or default
    if not url:
        raise ConfigError(f"{name} is not set")
    try:
        check(url, what=name)
    except UrlProblem as exc:
        raise ConfigError(f"{name} {exc}") from None
    return url.rstrip("/")


def _token(env: Mapping[str, str], names: tuple[str, ...], fix: str) -> tuple[str, str]:
    for name in names:
        value = env.get(name, "")
        if value:
            redact.register(value)
            if not visible_ascii(value, MAX_TOKEN):
                raise ConfigError(f"{name} holds characters a token cannot have (a line end?)")
            return name, value
    raise ConfigError(f"no token: set {' or '.join(names)}", fix)


def comment_target(
    env: Mapping[str, str],
    *,
    platform: str | None = None,
    number: int | None = None,
    artifact_url: str | None = None,
) -> Target:
    """The Target the CI environment describes; ConfigError naming what is missing."""
    chosen = _pick_platform(env, platform)
    if artifact_url is not None:
        try:
            check(artifact_url, what="--artifact-url")
        except UrlProblem as exc:
            raise ConfigError(f"--artifact-url {exc}") from None
    if chosen == "github":
        api = _api_url("GITHUB_API_URL", env.get("GITHUB_API_URL"), "https://api.github.com")
        variable, token = _token(
            env, ("GITHUB_TOKEN",), "give the step `env: GITHUB_TOKEN: ${{ github.token }}`"
        )
        repo = env.get("GITHUB_REPOSITORY", "")
        if not _REPO.fullmatch(repo) or ".." in repo:
            raise ConfigError(
                "GITHUB_REPOSITORY is not set or not owner/name",
                "GitHub Actions sets it; elsewhere set it",
            )
        pr = number if number is not None else _event_number(env)
        if artifact_url is None:
            server, run_id = env.get("GITHUB_SERVER_URL", ""), env.get("GITHUB_RUN_ID", "")
            if server and run_id.isdigit() and not check_problem(server):
                artifact_url = f"{server.rstrip('/')}/{repo}/actions/runs/{run_id}"
        header = HEADERS.authorization
        return Target("github", api, token, header, variable, repo, pr, artifact_url)
    api = _api_url("CI_API_V4_URL", env.get("CI_API_V4_URL"))
    variable, token = _token(
        env,
        ("GITLAB_TOKEN", "CI_JOB_TOKEN"),
        "set GITLAB_TOKEN to a project or personal access token with the api scope",
    )
    header = "JOB-TOKEN" if variable == "CI_JOB_TOKEN" else "PRIVATE-TOKEN"
    project = str(_number(env.get("CI_PROJECT_ID", ""), "CI_PROJECT_ID"))
    if number is None:
        if not env.get("CI_MERGE_REQUEST_IID"):
            raise ConfigError(
                "no merge request: CI_MERGE_REQUEST_IID is not set",
                "run the job in a merge request pipeline or pass --pr IID",
            )
        number = _number(env["CI_MERGE_REQUEST_IID"], "CI_MERGE_REQUEST_IID")
    if artifact_url is None:
        job_url = env.get("CI_JOB_URL", "")
        if job_url and not check_problem(job_url):
            artifact_url = f"{job_url.rstrip('/')}/artifacts/file/plan.json"
    return Target("gitlab", api, token, header, variable, project, number, artifact_url)


def check_problem(url: str) -> str | None:
    try:
        check(url)
    except UrlProblem as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class Posted:
    """What ``post_sticky`` did: ``action`` is "created", "edited" or "unchanged"."""

    action: str
    comment_id: int
    url: str | None
    cut: bool
    others: int  # further comments of ours with the marker, left as they are
    reference: str
    pages: int
    requests: int


class _Api:
    def __init__(
        self,
        target: Target,
        http: httpx.AsyncClient,
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.t = target
        self.http = http
        self.sleep = sleep
        self.requests = 0
        if target.platform == "github":
            self.headers = {
                HEADERS.authorization: f"Bearer {target.token}",
                HEADERS.accept: "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
            }
        else:
            self.headers = {target.token_header: target.token}
        self.headers[HEADERS.user_agent] = f"llmgw/{__version__}"

    def _fail(self, method: str, path: str, status: int, content: bytes) -> RemoteError:
        body = lenient(content)
        message = body.get("message") if isinstance(body, dict) else body
        if isinstance(message, dict | list):
            message = _json.dumps(message)
        detail = redact.clip(visible(str(message or "")), 200)
        said = f" ({detail})" if detail else ""
        t = self.t
        if status == 401:
            return AuthError(
                method,
                path,
                status,
                detail=f"{t.name} refused the token in {t.token_variable}{said}",
            )
        if status == 403:
            need = (
                "give the job `permissions: pull-requests: write`"
                if t.platform == "github"
                else "use a token with the api scope (a job token cannot write notes)"
            )
            return ScopeError(
                method, path, status, detail=f"the token may not do this{said}; {need}"
            )
        if status == 404:
            return NotFoundError(
                method,
                path,
                status,
                detail=f"no {t.reference}, or the token cannot see it{said}",
            )
        if status in (400, 422):
            return InvalidRequestError(method, path, status, detail=f"{t.name} refused it{said}")
        if status >= 500 or status == 429:
            return ServerError(method, path, status, detail=f"{t.name} failed{said}")
        return ProtocolError(method, path, status, detail=f"an unexpected status{said}")

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        payload: Any = None,
        allowed: tuple[int, ...] = (),
    ) -> tuple[int, Any, httpx.Headers]:
        """One request with its retries: (status, JSON body, headers) of a 2xx or of a status
        in ``allowed``; else the RemoteError it means."""
        url = self.t.api_url + path
        attempts = 1 if method == "POST" else ATTEMPTS
        last = ""
        for attempt in range(1, attempts + 1):
            self.requests += 1
            try:
                async with asyncio.timeout(TIMEOUT):
                    async with self.http.stream(
                        method, url, params=params, json=payload, headers=self.headers
                    ) as resp:
                        status = resp.status_code
                        good = 200 <= status < 300 or status in allowed
                        limit = MAX_BODY if good else MAX_ERROR_BODY
                        content = await read_body(resp, limit, strict=good)
                        headers = resp.headers
            except TimeoutError:
                last = f"no answer within {TIMEOUT:g} s"
            except Unreadable as exc:
                raise ProtocolError(method, path, detail=str(exc)) from None
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__} (is {redact.safe_url(url)} reachable?)"
            else:
                if 200 <= status < 300 or status in allowed:
                    try:
                        return status, parse_json(content), headers
                    except Unreadable as exc:
                        raise ProtocolError(method, path, status, detail=str(exc)) from None
                if 300 <= status < 400:
                    raise ProtocolError(
                        method,
                        path,
                        status,
                        detail="a redirect, not followed (the token would go along): "
                        "check the API URL",
                    )
                error = self._fail(method, path, status, content)
                if status not in RETRY_STATUSES or attempt == attempts:
                    raise error
                last = str(error)
            if attempt < attempts:
                await self.sleep(BACKOFF * 2 ** (attempt - 1))
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        raise TransportError(method, path, detail=f"{last}{tries}")


def _items(body: Any, method: str, path: str) -> list[dict[str, Any]]:
    if not isinstance(body, list) or not all(isinstance(c, dict) for c in body):
        raise ProtocolError(method, path, 200, detail="the listing is not a list of objects")
    for c in body:
        cid = c.get("id")
        if isinstance(cid, bool) or not isinstance(cid, int) or cid <= 0:
            raise ProtocolError(method, path, 200, detail="a comment without a numeric id")
        if not isinstance(c.get("body"), str | None):
            raise ProtocolError(method, path, 200, detail=f"comment {cid}'s body is no string")
    return body


async def _whoami(api: _Api) -> Any:
    """The token's user (login on GitHub, id on GitLab), or None when the token may not say:
    GitHub's Actions token answers 403 (its comments are github-actions[bot]'s), a GitLab job
    token 401 or 403. A GitHub 401, or a GitLab access token's, is the token refused."""
    github = api.t.platform == "github"
    job_token = api.t.token_header == "JOB-TOKEN"
    allowed = (403,) if github else (401, 403) if job_token else (403,)
    status, body, _ = await api.call("GET", "/user", allowed=allowed)
    if status != 200 or not isinstance(body, dict):
        return None
    value = body.get("login" if github else "id")
    return value if isinstance(value, str | int) and not isinstance(value, bool) else None


def _marked(comment: dict[str, Any], mark: str) -> bool:
    """The comment's first line is the marker (as this module writes it): a comment quoting
    the marker further down is someone talking about it."""
    first = (comment.get("body") or "").lstrip().partition("\n")[0]
    return first.strip() == mark


def _ours(comment: dict[str, Any], platform: str, me: Any) -> bool:
    if platform == "github":
        user = comment.get("user")
        if not isinstance(user, dict):
            return False
        return user.get("login") == me if me is not None else user.get("type") == "Bot"
    if comment.get("system"):
        return False
    author = comment.get("author")
    if me is None:
        return True
    return isinstance(author, dict) and author.get("id") == me


def _paths(t: Target) -> tuple[str, str, str]:
    """The pull request's comments (GitHub's issue comments, GitLab's notes: listed, and a new
    one posted there), one comment's path (``{id}``) and the method that edits it."""
    if t.platform == "github":
        base = f"/repos/{t.project}/issues"
        return f"{base}/{t.number}/comments", f"{base}/comments/{{id}}", "PATCH"
    notes = f"/projects/{t.project}/merge_requests/{t.number}/notes"
    return notes, f"{notes}/{{id}}", "PUT"


async def _list(api: _Api) -> tuple[list[dict[str, Any]], int]:
    t = api.t
    path = _paths(t)[0]
    extra = {} if t.platform == "github" else {"sort": "asc", "order_by": "created_at"}
    out: list[dict[str, Any]] = []
    for page in range(1, MAX_PAGES + 1):
        _, body, headers = await api.call(
            "GET", path, params={"per_page": PER_PAGE, "page": page, **extra}
        )
        items = _items(body, "GET", path)
        out.extend(items)
        if len(items) < PER_PAGE:
            return out, page
        if t.platform == "github":
            link = headers.get("link")
            if link is not None and not any(_LINK_NEXT.search(part) for part in link.split(",")):
                return out, page
        else:
            nxt = headers.get("x-next-page")
            if nxt is not None and not nxt.strip():
                return out, page
    raise ProtocolError(
        "GET",
        path,
        detail=f"the listing did not end after {MAX_PAGES} pages of {PER_PAGE} comments; "
        "nothing was posted (an unread page could hold the comment)",
    )


async def post_sticky(
    target: Target,
    environment: str,
    text: str,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Posted:
    """Create or edit ``environment``'s comment on the target's pull/merge request so that its
    body is the marker and ``text`` (cut to the platform's limit)."""
    mark = marker(environment)
    limit = LIMITS[target.platform]
    body = f"{mark}\n{text.rstrip()}\n"
    body, cut = fit(body, limit, pointer_text(measure(text), limit, target.artifact_url))
    t = target
    async with httpx.AsyncClient(
        transport=transport, timeout=TIMEOUT, follow_redirects=False
    ) as http:
        api = _Api(t, http, sleep)
        me = await _whoami(api)
        comments, pages = await _list(api)
        mine = [c for c in comments if _marked(c, mark) and _ours(c, t.platform, me)]
        create, edit, edit_method = _paths(t)
        others = max(0, len(mine) - 1)

        def posted(action: str, cid: int, answer: Any) -> Posted:
            url = answer.get("html_url") if isinstance(answer, dict) else None
            url = url if isinstance(url, str) and not check_problem(url) else None
            return Posted(action, cid, url, cut, others, t.reference, pages, api.requests)

        if mine:
            first = mine[0]
            if first.get("body") == body:
                return posted("unchanged", first["id"], first)
            path = edit.format(id=first["id"])
            _, answer, _ = await api.call(edit_method, path, payload={"body": body})
            return posted("edited", first["id"], answer)
        _, answer, _ = await api.call("POST", create, payload={"body": body})
        new_id = answer.get("id") if isinstance(answer, dict) else None
        if isinstance(new_id, bool) or not isinstance(new_id, int):
            raise ProtocolError("POST", create, 201, detail="the new comment has no numeric id")
        return posted("created", new_id, answer)
