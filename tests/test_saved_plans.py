"""A saved plan is checked, never trusted: `llmgw apply plan.json` against a real emulator on
loopback, with the plan file edited after `llmgw plan --out`.

Covers, each refused with exit 1, the difference named, and no write in the emulator's request
log: a request retargeted to DELETE an unmanaged prompt (even with --prune), a body field
changed, operations reordered, an operation added, one dropped, the prune flag flipped (even
with --prune), the allowed flag of a replacement flipped, the target changed, a header changed,
an identity changed, a field added to a request; the ignore file changed, removed, or added
after the plan (stale); an ignore entry that expired between plan and apply (stale, not
"edited"); --ignore-file that is not the recorded one. The unedited plan applies (exit 0), so the
check refuses only what differs; a plan from an older format is refused naming the fix.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from reconciler import jobs, planfile
from reconciler.cli import cli
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.server import running
from reconciler.errors import StalePlanError

REPO = Path(__file__).resolve().parent.parent
PROMPTS = "/api/v2/ai/llm/gateway/prompts"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


def api(url: str, method: str, path: str, **kw: Any) -> Any:
    with httpx.Client(base_url=url) as c:
        tok = c.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("emulator-client", "emulator-secret"),
        ).json()["access_token"]
        r = c.request(method, path, headers={"Authorization": f"Bearer {tok}"}, **kw)
        assert r.status_code < 300, r.text
        return r.json() if r.content else None


def writes(url: str) -> int:
    log = httpx.get(f"{url}/__emulator/requests").json()["requests"]
    return sum(
        1
        for r in log
        if r["method"] not in ("GET", "HEAD") and not r["path"].startswith(("/oauth", "/__"))
    )


class Org:
    def __init__(self, url: str, root: Path) -> None:
        self.url, self.root = url, root
        templates = api(url, "GET", "/api/v2/llm-gateway/prompt-templates")["entities"]
        tid = next(t["id"] for t in templates if t["name"] == "support-ticket-classifier")
        body = {"templateId": tid, "modelEndpointRef": "model-gen-4", "systemPrompt": "Hi."}
        self.unmanaged = api(url, "POST", PROMPTS, json={**body, "name": "someones-prompt"})["id"]
        api(url, "POST", PROMPTS, json={**body, "name": "old-prompt", "labels": MANAGED})

    def edit(self, rel: str, old: str, new: str) -> None:
        path = self.root / "manifests" / rel
        assert old in path.read_text()
        path.write_text(path.read_text().replace(old, new))


MANAGED = {"managed-by": "llmgw"}


@pytest.fixture
def org(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Org]:
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    with running(EmulatorConfig(port=0, ingest_delay=0.0, admin=True)) as url:
        monkeypatch.setenv("GENESYS_CLOUD_API_URL", url)
        monkeypatch.setenv("GENESYS_CLOUD_CLIENT_ID", "emulator-client")
        monkeypatch.setenv("GENESYS_CLOUD_CLIENT_SECRET", "emulator-secret")
        assert run("apply", "manifests/", "--auto-approve")[0] == 0
        o = Org(url, tmp_path)
        o.edit("prompts/support-agent.yaml", "temperature: 0.2", "temperature: 0.3")
        o.edit("prompts/ticket-triage.yaml", "temperature: 0.0", "temperature: 0.1")
        yield o


def _op(plan: dict[str, Any], ref: str) -> dict[str, Any]:
    return next(
        o for o in plan["operations"] if f"{o['kind']}/{o['identity']}" == ref and o["requests"]
    )


def retarget(p: dict[str, Any], org: Org) -> None:
    req = _op(p, "Prompt/support-agent")["requests"][0]
    req.update(method="DELETE", params={"promptId": org.unmanaged}, body=None)


def body_field(p: dict[str, Any], org: Org) -> None:
    _op(p, "Prompt/support-agent")["requests"][0]["body"]["temperature"] = 1.9


def reorder(p: dict[str, Any], org: Org) -> None:
    ops = p["operations"]
    i, j = (ops.index(_op(p, f"Prompt/{n}")) for n in ("support-agent", "ticket-triage"))
    ops[i], ops[j] = ops[j], ops[i]


def add(p: dict[str, Any], org: Org) -> None:
    extra = json.loads(json.dumps(_op(p, "Prompt/ticket-triage")))
    extra.update(action="delete", identity="someones-prompt", reason="spring cleaning")
    extra["requests"] = [
        {
            "method": "DELETE",
            "path": f"{PROMPTS}/{{promptId}}",
            "params": {"promptId": org.unmanaged},
            "body": None,
            "headers": {},
            "precondition": None,
        }
    ]
    p["operations"].append(extra)


def drop(p: dict[str, Any], org: Org) -> None:
    p["operations"].remove(_op(p, "Prompt/ticket-triage"))


def prune(p: dict[str, Any], org: Org) -> None:
    p["prune"] = True


def allowed(p: dict[str, Any], org: Org) -> None:
    _op(p, "VectorIndex/6d1f2c1e-0b7a-4a55-9d1e-3f3f8a2b9c10/prod-embedding-index-v2")[
        "allowed"
    ] = True


def target(p: dict[str, Any], org: Org) -> None:
    p["target"] = "http://127.0.0.1:9"


def header(p: dict[str, Any], org: Org) -> None:
    _op(p, "Prompt/support-agent")["requests"][0]["headers"]["If-Match"] = '"forged"'


def identity(p: dict[str, Any], org: Org) -> None:
    _op(p, "Prompt/ticket-triage")["identity"] = "someones-prompt"


def extra_field(p: dict[str, Any], org: Org) -> None:
    _op(p, "Prompt/support-agent")["requests"][0]["followRedirects"] = True


def index_dimensions(org: Org) -> None:
    org.edit("indexes/prod-embedding-index-v2.yaml", "dimensions: 1536", "dimensions: 768")


Edit = Callable[[dict[str, Any], Org], None]
CASES: list[tuple[str, Edit, Callable[[Org], None] | None, tuple[str, ...], str]] = [
    (
        "retarget-to-delete",
        retarget,
        None,
        ("--prune",),
        r"operation \d+ \(Prompt/support-agent\): the plan file says DELETE "
        r"/api/v2/ai/llm/gateway/prompts/\{promptId\}; the manifests and the org give PUT "
        r"/api/v2/ai/llm/gateway/prompts/\{promptId\}",
    ),
    ("body-field", body_field, None, (), "body.temperature: the plan file says 1.9"),
    ("reorder", reorder, None, (), "(the operations were reordered)"),
    ("add", add, None, ("--prune",), "(delete Prompt/someones-prompt): the manifests and the org"),
    ("drop", drop, None, (), "(update Prompt/ticket-triage), which the plan file lacks"),
    ("prune", prune, None, ("--prune",), "(delete Prompt/old-prompt), which the plan file lacks"),
    (
        "allowed",
        allowed,
        index_dimensions,
        ("--allow-replace",),
        "allowed: the plan file says true; the manifests and the org give false",
    ),
    ("target", target, None, (), "the plan was made for http://127.0.0.1:9"),
    ("header", header, None, (), "headers.If-Match: the plan file says"),
    ("identity", identity, None, (), "update Prompt/someones-prompt"),
    ("extra-field", extra_field, None, (), "followRedirects: the plan file says true"),
]


@pytest.mark.parametrize(
    ("edit", "prepare", "args", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_an_edited_plan_is_refused_before_any_write(
    org: Org,
    edit: Edit,
    prepare: Callable[[Org], None] | None,
    args: tuple[str, ...],
    message: str,
) -> None:
    if prepare is not None:
        prepare(org)
    code, out = run("plan", "manifests/", "--out", "plan.json")
    assert code == 0, out
    saved = json.loads(Path("plan.json").read_text())
    edit(saved, org)
    Path("plan.json").write_text(json.dumps(saved, indent=2))
    before = writes(org.url)
    code, out = run("apply", "plan.json", "--auto-approve", *args)
    assert code == 1, out
    assert message in out or re.search(message, out), out
    assert "nothing was written" in out
    assert writes(org.url) == before


def test_the_unedited_plan_applies(org: Org) -> None:
    assert run("plan", "manifests/", "--out", "plan.json")[0] == 0
    before = writes(org.url)
    code, out = run("apply", "plan.json", "--auto-approve")
    assert code == 0, out
    assert writes(org.url) == before + 2 and "Verified" in out


def test_what_the_file_says_is_named_plainly(org: Org) -> None:
    assert run("plan", "manifests/", "--out", "plan.json")[0] == 0
    saved = json.loads(Path("plan.json").read_text())
    retarget(saved, org)
    Path("plan.json").write_text(json.dumps(saved))
    code, out = run("apply", "plan.json", "--auto-approve", "--prune")
    assert code == 1
    assert "the saved plan is not what its manifests and the org give" in out
    assert "the plan file was edited, or llmgw changed; re-run `llmgw plan`" in out
    assert "Traceback" not in out


IGNORE = (
    "ignore:\n"
    "  - identity: Prompt/ticket-triage\n"
    "    field: temperature\n"
    "    reason: tuning\n"
    "    expires: {date}\n"
)


@pytest.mark.parametrize("how", ["changed", "removed", "added"])
def test_an_ignore_file_that_moved_makes_the_plan_stale(org: Org, how: str) -> None:
    ignore = Path(".llmgw-ignore.yaml")
    if how != "added":
        ignore.write_text(IGNORE.format(date="2099-12-31"))
    assert run("plan", "manifests/", "--out", "plan.json")[0] == 0
    recorded = json.loads(Path("plan.json").read_text())["ignoreFile"]
    assert recorded["path"] == (None if how == "added" else ".llmgw-ignore.yaml")
    if how == "changed":
        ignore.write_text(IGNORE.format(date="2099-12-30"))
    elif how == "removed":
        ignore.unlink()
    else:
        ignore.write_text(IGNORE.format(date="2099-12-31"))
    before = writes(org.url)
    code, out = run("apply", "plan.json", "--auto-approve")
    assert code == 1 and "the plan is stale" in out, out
    assert {"changed": "changed since", "removed": "was removed", "added": "exists now"}[how] in out
    assert writes(org.url) == before


async def test_an_ignore_entry_that_expired_after_the_plan_is_stale_not_edited(
    org: Org,
) -> None:
    Path(".llmgw-ignore.yaml").write_text(IGNORE.format(date="2026-11-22"))
    target = jobs.target_from_env(os.environ)
    made = await jobs.make_plan(target, ["manifests/"], today=dt.date(2026, 11, 22))
    assert "Prompt/ticket-triage" not in {o.ref for o in made.plan.changes}
    planfile.save(made.saved, "plan.json")
    with pytest.raises(StalePlanError) as err:
        await jobs.prepare_apply(target, plan_file="plan.json", today=dt.date(2026, 11, 23))
    assert "ignore entry Prompt/ticket-triage temperature expired on 2026-11-22" in str(err.value)
    # the same day, the plan still holds
    await jobs.prepare_apply(target, plan_file="plan.json", today=dt.date(2026, 11, 22))


def test_another_ignore_file_cannot_be_given_for_a_saved_plan(org: Org) -> None:
    assert run("plan", "manifests/", "--out", "plan.json")[0] == 0
    Path("other.yaml").write_text("ignore: []\n")
    code, out = run("apply", "plan.json", "--auto-approve", "--ignore-file", "other.yaml")
    assert code == 1 and "cannot change it" in out


def test_a_plan_of_the_old_format_is_refused(org: Org) -> None:
    assert run("plan", "manifests/", "--out", "plan.json")[0] == 0
    saved = json.loads(Path("plan.json").read_text())
    saved["formatVersion"] = 1
    Path("plan.json").write_text(json.dumps(saved))
    code, out = run("apply", "plan.json", "--auto-approve")
    assert code == 1 and "unsupported plan format 1" in out and "re-run `llmgw plan --out`" in out
