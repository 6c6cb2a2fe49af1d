"""``llmgw comment``: one sticky plan comment per environment, against fakes of GitHub and GitLab.

Covers: 20 pushes (20 runs with different plans) leave exactly one comment per environment with
the latest text, on both platforms, past a first page of 150 unrelated comments (paging
matters) and a person's comment that quotes the marker (never edited); ``prod`` and
``prod-eu`` on one pull request stay two comments; the same text twice is not re-sent; a
person's token edits only its own login's comment; of several marked comments the oldest is
edited; a GitLab job token (no /user) goes as JOB-TOKEN. A 200,000-character plan is cut under
65,536 UTF-16 code units with the marker, closed fences and ``<details>`` and the artifact
pointer (the fake refuses anything longer, as GitHub does), while GitLab takes it whole. Errors
exit 1 with one line and no token: 401, 404 pull request, 422, 500 (retried, then exit 1; once,
then success), connection refused, no answer (timeout), a non-JSON listing, endless paging
(bounded, nothing posted), an environment name with ``-->``, a newline or none, an unknown
platform, plain http to a remote API, no token; once through a real subprocess. ``fit`` on its
own: fences, details, astral characters, one enormous line.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.remote import comments
from reconciler.remote.comments import LIMITS, fit, marker, measure
from tests.comment_fakes import (
    BOT_TOKEN,
    GITHUB_BOT,
    GITHUB_PERSON,
    GITLAB_BOT,
    GITLAB_PERSON,
    GITLAB_TOKEN,
    JOB_TOKEN,
    PAT_TOKEN,
    Fake,
    serving,
)

REPO = Path(__file__).resolve().parent.parent
PR = "acme/manifests/pull/5"
MR = "77/merge_requests/3"
TOKENS = (BOT_TOKEN, PAT_TOKEN, GITLAB_TOKEN, JOB_TOKEN)


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(comments, "BACKOFF", 0.0)


def _unrelated(fake: Fake, key: str, n: int = 150) -> None:
    person = GITHUB_PERSON if fake.platform == "github" else GITLAB_PERSON
    bot = GITHUB_BOT if fake.platform == "github" else GITLAB_BOT
    for i in range(n):
        fake.seed(key, f"comment {i}: looks good", person if i % 3 else bot)
    # a person quoting the marker: not ours, never edited
    fake.seed(key, "Why does it say <!-- llmgw-plan: prod --> here?", person)
    if fake.platform == "gitlab":
        fake.seed(key, "added 1 commit", person, system=True)


@pytest.fixture
def github(tmp_path: Path) -> Iterator[tuple[Fake, dict[str, str]]]:
    with serving("github") as fake:
        fake.comments[PR] = []
        _unrelated(fake, PR)
        event = tmp_path / "event.json"
        event.write_text(json.dumps({"pull_request": {"number": 5}}))
        env = {
            "GITHUB_ACTIONS": "true",
            "GITHUB_API_URL": fake.url,
            "GITHUB_TOKEN": BOT_TOKEN,
            "GITHUB_REPOSITORY": "acme/manifests",
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_RUN_ID": "987654",
            "GITLAB_CI": "",
        }
        yield fake, env


@pytest.fixture
def gitlab() -> Iterator[tuple[Fake, dict[str, str]]]:
    with serving("gitlab") as fake:
        fake.comments[MR] = []
        _unrelated(fake, MR)
        env = {
            "GITLAB_CI": "true",
            "GITHUB_ACTIONS": "",
            "CI_API_V4_URL": fake.url,
            "GITLAB_TOKEN": GITLAB_TOKEN,
            "CI_PROJECT_ID": "77",
            "CI_MERGE_REQUEST_IID": "3",
            "CI_JOB_URL": "https://gitlab.example.com/acme/manifests/-/jobs/55",
        }
        yield fake, env


def run(tmp_path: Path, env: dict[str, str], text: str, *args: str) -> tuple[int, str]:
    plan = tmp_path / "plan.md"
    plan.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["comment", "--file", str(plan), *args], env=env)
    out = result.output  # stdout and stderr, as written
    for token in TOKENS:
        assert token not in out
    return result.exit_code, out


def _plan(i: int) -> str:
    return f"### llmgw plan for `prod`\n\n**Plan: {i} to create**\n\n```diff\n+ push {i}\n```\n"


@pytest.mark.parametrize("platform", ["github", "gitlab"])
def test_twenty_pushes_leave_one_comment(
    platform: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    fake, env = request.getfixturevalue(platform)
    key = PR if platform == "github" else MR
    before = len(fake.comments[key])
    for i in range(20):
        code, out = run(tmp_path, env, _plan(i), "--env", "prod")
        assert code == 0, out
        assert ("Created" if i == 0 else "Edited") in out
    (ours,) = [c for c in fake.marked(key, "prod") if "Why does it say" not in c["body"]]
    assert ours["body"] == f"<!-- llmgw-plan: prod -->\n{_plan(19).rstrip()}\n"
    assert len(fake.comments[key]) == before + 1
    person = fake.marked(key, "prod")[0]
    assert person["body"].startswith("Why does it say")  # quoted the marker: left alone
    creates = [r for r in fake.requests if r.method == "POST"]
    edits = [r for r in fake.requests if r.method in ("PATCH", "PUT")]
    assert len(creates) == 1 and len(edits) == 19
    pages = {r.query["page"][0] for r in fake.requests if r.method == "GET" and "page" in r.query}
    assert pages == {"1", "2"}  # 152+ comments: the second page was read
    for r in fake.requests:
        assert r.query.get("per_page", ["100"]) == ["100"]


def test_the_same_text_is_not_sent_again(
    github: tuple[Fake, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = github
    assert run(tmp_path, env, _plan(1), "--env", "prod")[0] == 0
    code, out = run(tmp_path, env, _plan(1), "--env", "prod")
    assert code == 0 and "unchanged" in out
    assert [r.method for r in fake.requests].count("PATCH") == 0


def test_two_environments_stay_two_comments(
    github: tuple[Fake, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = github
    for i in range(3):
        for environment in ("prod", "prod-eu"):
            code, out = run(tmp_path, env, f"{environment} plan {i}", "--env", environment)
            assert code == 0, out
    ours = [c for c in fake.comments[PR] if c["user"] == GITHUB_BOT and "llmgw-plan" in c["body"]]
    assert len(ours) == 2
    assert {c["body"] for c in ours} == {
        "<!-- llmgw-plan: prod -->\nprod plan 2\n",
        "<!-- llmgw-plan: prod-eu -->\nprod-eu plan 2\n",
    }


def test_a_person_token_matches_its_own_login(
    github: tuple[Fake, dict[str, str]], tmp_path: Path
) -> None:
    """With a personal token GET /user names the login: the bot's comment is not ours."""
    fake, env = github
    assert run(tmp_path, env, "by the bot", "--env", "prod")[0] == 0
    env = {**env, "GITHUB_TOKEN": PAT_TOKEN}
    for text in ("by octocat 1", "by octocat 2"):
        assert run(tmp_path, env, text, "--env", "prod")[0] == 0
    bodies = [c["body"] for c in fake.comments[PR] if c["body"].startswith("<!-- llmgw-plan")]
    assert bodies == [
        "<!-- llmgw-plan: prod -->\nby the bot\n",
        "<!-- llmgw-plan: prod -->\nby octocat 2\n",
    ]


def test_several_marked_comments_the_oldest_is_edited(
    github: tuple[Fake, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = github
    fake.seed(PR, "<!-- llmgw-plan: prod -->\nold 1", GITHUB_BOT)
    fake.seed(PR, "<!-- llmgw-plan: prod -->\nold 2", GITHUB_BOT)
    code, out = run(tmp_path, env, "new", "--env", "prod")
    assert code == 0 and "1 other comment with the same marker left as they are" in out, out
    bodies = [c["body"] for c in fake.comments[PR] if c["body"].startswith("<!-- llmgw-plan")]
    assert bodies == ["<!-- llmgw-plan: prod -->\nnew\n", "<!-- llmgw-plan: prod -->\nold 2"]


def test_gitlab_job_token(gitlab: tuple[Fake, dict[str, str]], tmp_path: Path) -> None:
    """CI_JOB_TOKEN goes as JOB-TOKEN; it cannot read /user, so the marker alone decides."""
    fake, env = gitlab
    env = {**env, "GITLAB_TOKEN": "", "CI_JOB_TOKEN": JOB_TOKEN}
    for i in range(3):
        assert run(tmp_path, env, f"plan {i}", "--env", "prod")[0] == 0
    (ours,) = [c for c in fake.comments[MR] if c["body"].startswith("<!-- llmgw-plan")]
    assert ours["body"].endswith("plan 2\n")
    assert all(r.headers.get("JOB-TOKEN") == JOB_TOKEN for r in fake.requests)


def _huge_plan(n: int = 200_000) -> str:
    lines = ["### llmgw plan for `prod`", "", "**Plan: many to update**", ""]
    i = 0
    while sum(len(x) + 1 for x in lines) < n:
        lines += ["<details>", f"<summary>change {i}</summary>", "", "```diff"]
        lines += [f"+ line {i}.{j} 日本 🚀 " + "x" * 40 for j in range(30)]
        lines += ["```", "</details>", ""]
        i += 1
    return "\n".join(lines)


def test_a_huge_plan_is_cut_under_githubs_limit(
    github: tuple[Fake, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = github
    text = _huge_plan()
    assert len(text) >= 200_000
    code, out = run(tmp_path, env, text, "--env", "prod")
    assert code == 0, out  # the fake refuses a body over 65,536 UTF-16 code units (422)
    assert "cut to the comment size limit" in out
    (ours,) = [
        c for c in fake.comments[PR] if c["user"] == GITHUB_BOT and "llmgw-plan" in c["body"]
    ]
    body = ours["body"]
    assert body.startswith("<!-- llmgw-plan: prod -->\n")
    assert measure(body) <= 65_536 and len(body.encode()) < 262_144
    assert "https://github.com/acme/manifests/actions/runs/987654" in body
    assert "plan.json" in body.splitlines()[-1]
    assert body.count("```") % 2 == 0
    assert body.count("<details>") == body.count("</details>")
    assert measure(body) > 60_000  # cut near the limit, not far before it


def test_gitlab_takes_the_huge_plan_whole(
    gitlab: tuple[Fake, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = gitlab
    text = _huge_plan()
    code, out = run(tmp_path, env, text, "--env", "prod")
    assert code == 0 and "cut" not in out
    assert fake.comments[MR][-1]["body"] == f"<!-- llmgw-plan: prod -->\n{text.rstrip()}\n"
    assert fake.comments[MR][-1]["author"] == GITLAB_BOT


def test_gitlab_cut_points_at_the_job_artifact(
    gitlab: tuple[Fake, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = gitlab
    code, out = run(tmp_path, env, _huge_plan(1_100_000), "--env", "prod")
    assert code == 0, out
    body = fake.comments[MR][-1]["body"]
    assert measure(body) <= LIMITS["gitlab"]
    assert "https://gitlab.example.com/acme/manifests/-/jobs/55/artifacts/file/plan.json" in body


def test_explicit_pr_and_artifact_url(github: tuple[Fake, dict[str, str]], tmp_path: Path) -> None:
    fake, env = github
    fake.comments["acme/manifests/pull/9"] = []
    env = {**env, "GITHUB_EVENT_PATH": ""}
    code, out = run(
        tmp_path, env, _huge_plan(), "--env", "prod", "--pr", "9",
        "--artifact-url", "https://example.com/plan.json",
    )  # fmt: skip
    assert code == 0, out
    assert "#9 of acme/manifests" in out
    assert "(https://example.com/plan.json)" in fake.comments["acme/manifests/pull/9"][0]["body"]


# -- failures: exit 1, one line, no token --------------------------------------------------------


def _fails(code: int, out: str, *words: str) -> None:
    assert code == 1, out
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmgw: error:"), out
    for w in words:
        assert w in out, out


def test_unknown_token_is_401(github: tuple[Fake, dict[str, str]], tmp_path: Path) -> None:
    _, env = github
    code, out = run(
        tmp_path, {**env, "GITHUB_TOKEN": "ghp_wrongToken00000000000"}, "x", "--env", "prod"
    )
    _fails(code, out, "401", "refused the token in GITHUB_TOKEN")
    assert "ghp_wrongToken00000000000" not in out


def test_gitlab_unknown_token_is_401(gitlab: tuple[Fake, dict[str, str]], tmp_path: Path) -> None:
    _, env = gitlab
    code, out = run(
        tmp_path, {**env, "GITLAB_TOKEN": "glpat-wrongwrongwrong"}, "x", "--env", "prod"
    )
    _fails(code, out, "401", "GITLAB_TOKEN")
    assert "glpat-wrongwrongwrong" not in out


def test_missing_pull_request_is_404(github: tuple[Fake, dict[str, str]], tmp_path: Path) -> None:
    fake, env = github
    code, out = run(tmp_path, env, "x", "--env", "prod", "--pr", "404")
    _fails(code, out, "404", "no pull request #404 of acme/manifests")
    assert not [r for r in fake.requests if r.method == "POST"]


def test_server_error_is_retried_then_exit_1(
    github: tuple[Fake, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = github
    fake.fault = "500"
    code, out = run(tmp_path, env, "x", "--env", "prod")
    _fails(code, out, "500")
    assert len(fake.requests) == comments.ATTEMPTS  # GET /user, three times, then stop


def test_one_server_error_is_retried(github: tuple[Fake, dict[str, str]], tmp_path: Path) -> None:
    fake, env = github
    fake.fault = "500-once"
    code, out = run(tmp_path, env, "x", "--env", "prod")
    assert code == 0, out
    assert len(fake.marked(PR, "prod")) == 2  # the person's and ours


def test_a_refused_body_is_422(
    github: tuple[Fake, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were llmgw's limit wrong, GitHub's 422 is one line, not a retry."""
    fake, env = github
    monkeypatch.setitem(comments.LIMITS, "github", 10**7)
    code, out = run(tmp_path, env, "x" * 70_000, "--env", "prod")
    _fails(code, out, "422", "GitHub refused it (Body is too long)")
    assert [r.method for r in fake.requests].count("POST") == 1


def test_network_failure(github: tuple[Fake, dict[str, str]], tmp_path: Path) -> None:
    _, env = github
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    code, out = run(
        tmp_path, {**env, "GITHUB_API_URL": f"http://127.0.0.1:{port}"}, "x", "--env", "prod"
    )
    _fails(code, out, "ConnectError", f"after {comments.ATTEMPTS} attempts")


def test_a_server_that_never_answers(
    github: tuple[Fake, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, env = github
    monkeypatch.setattr(comments, "TIMEOUT", 0.2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)  # accepts, never answers
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        code, out = run(tmp_path, {**env, "GITHUB_API_URL": url}, "x", "--env", "prod")
    _fails(code, out, "no answer within 0.2 s")


def test_a_non_json_listing(github: tuple[Fake, dict[str, str]], tmp_path: Path) -> None:
    fake, env = github
    fake.fault = "nonjson"
    code, out = run(tmp_path, env, "x", "--env", "prod")
    _fails(code, out, "not JSON")
    assert not [r for r in fake.requests if r.method == "POST"]


@pytest.mark.parametrize("platform", ["github", "gitlab"])
def test_endless_paging_is_bounded(
    platform: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    fake, env = request.getfixturevalue(platform)
    fake.fault = "endless"
    code, out = run(tmp_path, env, "x", "--env", "prod")
    _fails(code, out, f"did not end after {comments.MAX_PAGES} pages", "nothing was posted")
    listings = [
        r for r in fake.requests if r.method == "GET" and r.path.endswith(("comments", "notes"))
    ]
    assert len(listings) == comments.MAX_PAGES
    assert not [r for r in fake.requests if r.method not in ("GET",)]


@pytest.mark.parametrize(
    "name", ["prod -->", "prod\nx", "prod-->", "", "a b", "-prod", "x" * 65, "prod>"]
)
def test_environment_names_that_could_break_the_marker(
    github: tuple[Fake, dict[str, str]], tmp_path: Path, name: str
) -> None:
    fake, env = github
    code, out = run(tmp_path, {**env, "LLMGW_ENVIRONMENT": ""}, "x", "--env", name)
    _fails(code, out)
    assert "marker" in out or "no environment named" in out
    assert not fake.requests


def test_environment_from_llmgw_environment(
    github: tuple[Fake, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = github
    assert run(tmp_path, {**env, "LLMGW_ENVIRONMENT": "staging"}, "x")[0] == 0
    assert len(fake.marked(PR, "staging")) == 1


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"GITHUB_TOKEN": ""}, ["no token: set GITHUB_TOKEN"]),
        ({"GITHUB_API_URL": "http://api.example.com"}, ["GITHUB_API_URL must use https"]),
        ({"GITHUB_REPOSITORY": "../x"}, ["GITHUB_REPOSITORY"]),
        ({"GITHUB_EVENT_PATH": "/nonexistent/event.json"}, ["event file", "--pr N"]),
        ({"GITHUB_ACTIONS": ""}, ["--platform"]),
        ({"GITHUB_TOKEN": "abc\ndef-token"}, ["characters a token cannot have"]),
        ({"GITHUB_ACTIONS": "true", "GITLAB_CI": "true"}, ["both", "--platform"]),
    ],
)
def test_configuration_problems(
    github: tuple[Fake, dict[str, str]], tmp_path: Path, change: dict[str, str], words: list[str]
) -> None:
    fake, env = github
    code, out = run(tmp_path, {**env, **change}, "x", "--env", "prod")
    _fails(code, out, *words)
    assert "abc\ndef" not in out
    assert not fake.requests


def test_unknown_platform(github: tuple[Fake, dict[str, str]], tmp_path: Path) -> None:
    fake, env = github
    _fails(*run(tmp_path, env, "x", "--env", "prod", "--platform", "bitbucket"), "github or gitlab")
    assert not fake.requests


def test_gitlab_by_flag(gitlab: tuple[Fake, dict[str, str]], tmp_path: Path) -> None:
    fake, env = gitlab
    fake.comments[MR].clear()
    code, out = run(
        tmp_path, {**env, "GITLAB_CI": ""}, "x", "--env", "prod", "--platform", "gitlab"
    )
    assert code == 0 and "merge request !3 of 77" in out, out
    assert len(fake.comments[MR]) == 1


def test_a_subprocess_exits_1_with_one_line_and_no_token(
    github: tuple[Fake, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = github
    fake.fault = "500"
    (tmp_path / "plan.md").write_text("x")
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "comment", "--file", "plan.md", "--env", "prod"],
        env={**os.environ, **env, "PYTHONPATH": str(REPO)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1
    assert BOT_TOKEN not in done.stderr
    # the token went to the fake, as a bearer token
    assert fake.requests[0].headers["Authorization"] == f"Bearer {BOT_TOKEN}"


# -- fit, on its own -------------------------------------------------------------------------------


def test_marker_is_exact() -> None:
    assert marker("prod") not in marker("prod-eu")
    assert marker("prod-eu") not in marker("prod")


def test_fit_keeps_short_text_and_counts_astral_as_two() -> None:
    assert fit("a\nb", 10, "P") == ("a\nb", False)
    assert measure("🚀") == 2 and measure("日") == 1
    body, cut = fit("m\n" + "🚀" * 10, 12, "P")
    assert cut and body == "m\n\nP"


def test_fit_closes_fences_and_details() -> None:
    text = (
        "m\n<details>\n````diff\n"
        + "\n".join(f"line {i}" for i in range(100))
        + "\n````\n</details>"
    )
    body, cut = fit(text, 200, "POINTER")
    assert cut and measure(body) <= 200
    assert body.endswith("\n````\n</details>\n\nPOINTER")


def test_fit_cuts_one_enormous_line() -> None:
    body, cut = fit("<!-- m -->\n" + "y" * 100_000, 1_000, "POINTER")
    assert cut and measure(body) <= 1_000 and "yyyy" in body and body.endswith("POINTER")


def test_fit_tilde_fence_not_closed_by_backticks() -> None:
    body, _ = fit("m\n~~~\n```\n" + "z\n" * 500, 100, "P")
    assert body.endswith("~~~\n\nP")
