"""plan.schema.json against every JSON document llmgw really writes, and formatVersion's rules.

Covers: the schema is a valid 2020-12 schema whose documents are exactly ``formats.DOCUMENTS``,
picked by ``document``, and whose kinds are the registry's; every JSON output, produced for real
against the in-process emulator (the CLI through click's runner for validate, plan, apply and
drift; the rollout job and its JSON view for rollout advance and status), validates: validate
valid and invalid, a plan of creates (and its saved file: the same bytes), apply --dry-run, an
apply, apply with nothing to do, drift in sync, a plan of a rename (``llmgw.io/renamed-from``),
a plan of updates, deletes, creates and no-ops, drift with modified, missing and orphaned
objects, a failed apply, a plan of a rollout's split (whose labels hold
``{"$ref": "@server-time"}``), rollout advance (starting, then stepping on
evidence) and status. Honest both ways: every key of every output is one the schema describes
(none slips in undescribed), and every key the schema describes is produced by one of those runs,
the targeted plan (`plan --changed-since`) included. A saved plan loads at the integer 2
of earlier releases and at "2.7" with fields it does not know; "3.0" is refused naming both
versions, and garbage, another document, or no version at all is refused too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from reconciler import cli as climod
from reconciler import formats, jobs, kinds, planfile, rollouts
from reconciler.emulator.transport import in_process_transport
from reconciler.errors import ConfigError
from reconciler.remote import Settings
from reconciler.views import rollout as rollout_view
from reconciler.views.base import plain
from tests.rollout_manifests import rollout_manifests
from tests.test_e2e import URL, Org

REPO = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((REPO / "reconciler" / "schemas" / formats.SCHEMA_FILE).read_text("utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA)
PROMPTS = "/api/v2/ai/llm/gateway/prompts"
NOT_PRODUCED_HERE: set[tuple[str, str]] = set()  # every description is produced below
GIT = ["git", "-c", "user.email=t@llmgw", "-c", "user.name=t"]
FAILING_PACK = """apiVersion: llmgw/v1
kind: PolicySet
metadata: {name: failing}
rules:
  - {id: cold, match: {kinds: [Prompt]}, expr: "spec.temperature < 0.1", message: too warm}
tests:
  - name: a warm prompt passes, says the test (wrongly)
    document:
      apiVersion: llmgw/v1
      kind: Prompt
      metadata: {name: warm}
      spec: {template: t-1, model: m, systemPrompt: s, temperature: 0.9}
    pass: [cold]
"""


# -- producing every document --------------------------------------------------------------------
class Cli:
    """The command line against an in-process emulator, in a folder of its own."""

    def __init__(self, org: Org, root: Path) -> None:
        self.org, self.root = org, root

    def __call__(self, *args: str) -> tuple[int, str]:
        result = CliRunner().invoke(climod.cli, list(args), catch_exceptions=False)
        return result.exit_code, result.stdout

    def json(self, *args: str, codes: tuple[int, ...] = (0,)) -> dict[str, Any]:
        code, out = self(*args, "--output", "json")
        assert code in codes, out
        data: dict[str, Any] = json.loads(out)
        return data

    def edit(self, rel: str, old: str, new: str) -> None:
        path = self.root / "manifests" / rel
        assert old in path.read_text()
        path.write_text(path.read_text().replace(old, new))


@contextlib.contextmanager
def _cli(root: Path, org: Org) -> Iterator[Cli]:
    shutil.copytree(REPO / "manifests", root / "manifests")
    before = os.getcwd()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(climod, "_target", lambda parallelism, environment: org.target())
        os.chdir(root)
        try:
            yield Cli(org, root)
        finally:
            os.chdir(before)


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def _cli_documents(root: Path) -> dict[str, dict[str, Any]]:
    org = Org()
    docs: dict[str, dict[str, Any]] = {}
    with _cli(root, org) as run:
        docs["validate, valid"] = run.json("validate", "manifests/")
        code, out = run("plan", "manifests/", "--out", "plan.json", "--output", "json")
        assert code == 0
        docs["plan of creates"] = json.loads(out)
        assert (root / "plan.json").read_text("utf-8") == out  # --output json is the saved plan
        docs["apply --dry-run"] = run.json("apply", "manifests/", "--dry-run")
        docs["apply"] = run.json("apply", "manifests/", "--auto-approve")
        docs["apply, nothing to do"] = run.json("apply", "manifests/", "--auto-approve")
        docs["drift, in sync"] = run.json("drift", "manifests/")
        triage = root / "manifests" / "prompts" / "ticket-triage.yaml"
        kept = triage.read_text()
        renamed = kept.replace("name: ticket-triage\n", "name: triage\n", 1)
        renamed = renamed.replace(
            "name: triage\n",
            "name: triage\n  annotations: {llmgw.io/renamed-from: ticket-triage}\n",
        )
        triage.write_text(renamed.replace("ticket-triage\n", "triage\n"))
        docs["plan of a rename"] = run.json("plan", "manifests/")
        assert [o["reason"] for o in docs["plan of a rename"]["operations"] if o["diff"]] == [
            "rename ticket-triage -> triage"
        ]
        triage.write_text(kept)
        # the org and the manifests move apart: an update, a create, a delete, unmanaged objects
        for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "m"]):
            subprocess.run([*GIT, *args], cwd=root, check=True, capture_output=True)
        run.edit("prompts/ticket-triage.yaml", "temperature: 0.0", "temperature: 0.4")
        docs["plan, targeted"] = run.json("plan", "manifests/", "--changed-since", "HEAD")
        assert docs["plan, targeted"]["targeted"]["objects"] == [
            "Prompt/ticket-triage",
            "TrafficSplit/ticket-triage",
        ]
        support = _run(org.prompt("support-agent"))
        _run(org.call("DELETE", f"{PROMPTS}/{support['id']}"))
        template = _run(org.prompt("ticket-triage"))["templateId"]
        body = {"templateId": template, "modelEndpointRef": "model-gen-4", "systemPrompt": "Hi."}
        _run(org.call("POST", PROMPTS, json={**body, "name": "someones-prompt"}))
        managed = {**body, "name": "old-prompt", "labels": {"managed-by": "llmgw"}}
        _run(org.call("POST", PROMPTS, json=managed))
        expired = (
            "  - {identity: Prompt/ticket-triage, field: topP, reason: r, expires: 2020-01-01}"
        )
        Path("ignores.yaml").write_text(f"ignore:\n{expired}\n")
        docs["drift, drifted"] = run.json(
            "drift", "manifests/", "--ignore-file", "ignores.yaml", codes=(2,)
        )
        docs["plan of every action"] = run.json("plan", "manifests/", "--prune")
        bad = root / "manifests" / "prompts" / "ticket-triage.yaml"
        text = bad.read_text()
        bad.write_text(text.replace("temperature: 0.4", "temperature: 9.0"))
        docs["validate, invalid"] = run.json("validate", "manifests/", codes=(1,))
        bad.write_text(text)
        excepted = "exceptions.llmgw.io/prod-canary-rollout: 'until 2099-01-01: a pilot'"
        run.edit(
            "prompts/ticket-triage.yaml",
            "name: ticket-triage\nspec:\n  prompt:",
            f"name: ticket-triage\n  annotations:\n    {excepted}\nspec:\n  prompt:",
        )
        docs["validate, policies"] = run.json(
            "validate",
            "manifests/",
            "--policies",
            str(REPO / "examples" / "policies"),
            "--env",
            "prod",
            codes=(1,),
        )
        assert docs["validate, policies"]["policies"]["excepted"]
        Path("failing.yaml").write_text(FAILING_PACK)
        docs["policy test, failing"] = run.json("policy", "test", "failing.yaml", codes=(1,))
        docs["policy test"] = run.json("policy", "test", str(REPO / "examples" / "policies"))
        refusing = jobs.Target(
            Settings(URL, URL, "emulator-client", "emulator-secret"),
            "test",
            transport=RefusingPrompts(org.app),
        )
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(climod, "_target", lambda parallelism, environment: refusing)
            docs["apply, failed"] = run.json("apply", "manifests/", "--auto-approve", codes=(1,))
    return docs


class RefusingPrompts(httpx.AsyncBaseTransport):
    """The in-process emulator, but every write to a prompt is answered 400."""

    def __init__(self, app: Any) -> None:
        self.inner = in_process_transport(app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method not in ("GET", "HEAD") and request.url.path.startswith(PROMPTS):
            body = {"status": 400, "code": "bad.request", "message": "refused by the test"}
            return httpx.Response(400, json=body)
        return await self.inner.handle_async_request(request)


def _rollout_documents(root: Path) -> dict[str, dict[str, Any]]:
    org = Org()
    target = org.target()
    docs: dict[str, dict[str, Any]] = {}
    m = rollout_manifests(root)

    async def setup() -> None:
        for paths in ([str(REPO / "manifests")], [str(m)]):
            if paths == [str(m)]:
                docs["plan of a rollout's split"] = planfile.to_dict(
                    (await jobs.make_plan(target, paths)).saved
                )
            prepared = await jobs.prepare_apply(target, paths=paths)
            ran = await jobs.execute(target, prepared, audit_path=str(root / "apply.jsonl"))
            assert ran.ok

    async def traffic(seconds: int) -> None:
        async with httpx.AsyncClient(transport=in_process_transport(org.app), base_url=URL) as c:
            setting = {"perMinute": 600, "versions": {"2.0.0": {}, "2.1.0": {}}}
            r = await c.put("/__emulator/traffic", json={"prompts": {"support-agent": setting}})
            assert r.status_code == 200
            r = await c.post("/__emulator/clock", json={"advanceSeconds": seconds})
            assert r.status_code == 200

    async def rollout(name: str, **kw: Any) -> None:
        desired = jobs.load_desired([str(m)])
        ran = await rollouts.run(target, desired, audit_path=str(root / "audit.jsonl"), **kw)
        docs[name] = json.loads(rollout_view.view("json", plain).show(ran, target))

    _run(setup())
    _run(traffic(3600))
    _run(rollout("rollout advance, starting"))
    _run(traffic(3600))
    _run(rollout("rollout advance, on evidence"))
    _run(rollout("rollout status", command="status"))
    return docs


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    docs = _cli_documents(tmp_path_factory.mktemp("cli"))
    docs.update(_rollout_documents(tmp_path_factory.mktemp("rollout")))
    return docs


# -- the schema ------------------------------------------------------------------------------------
def test_the_schema_is_a_2020_12_schema_of_every_document() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$id"] == formats.SCHEMA_FILE
    assert SCHEMA["properties"]["document"]["enum"] == list(formats.DOCUMENTS)
    picked = [SCHEMA["$defs"][r["$ref"].rpartition("/")[2]] for r in SCHEMA["oneOf"]]
    assert [d["properties"]["document"]["const"] for d in picked] == list(formats.DOCUMENTS)
    for d in picked:
        assert d["additionalProperties"] is True  # a minor may add fields: readers ignore them
        assert d["required"][:2] == ["formatVersion", "document"]
    assert SCHEMA["$defs"]["kind"]["enum"] == [r.kind for r in kinds.REGISTRY]
    version = Draft202012Validator(SCHEMA["$defs"]["formatVersion"])
    assert version.is_valid(formats.FORMAT_VERSION) and version.is_valid("2.17")
    assert not any(version.is_valid(v) for v in ("3.0", "2", "2.01", 2, "2.x"))


def test_every_document_was_produced(documents: dict[str, dict[str, Any]]) -> None:
    assert {d["document"] for d in documents.values()} == set(formats.DOCUMENTS)
    plan = documents["plan of every action"]
    assert {o["action"] for o in plan["operations"]} >= {"create", "update", "delete", "noop"}
    assert plan["unmanaged"] and plan["orphaned"]
    drifted = documents["drift, drifted"]["counts"]
    assert drifted["modified"] and drifted["missing"] and drifted["orphaned"]
    assert documents["drift, drifted"]["expiredIgnores"]
    assert not documents["apply, failed"]["ok"]
    assert "@server-time" in json.dumps(documents["plan of a rollout's split"])
    (stepped,) = documents["rollout advance, on evidence"]["rollouts"]
    assert stepped["decision"]["evidence"]


@pytest.mark.parametrize(
    "name",
    [
        "validate, valid",
        "validate, invalid",
        "validate, policies",
        "policy test",
        "policy test, failing",
        "plan of creates",
        "plan of every action",
        "plan, targeted",
        "plan of a rollout's split",
        "apply --dry-run",
        "apply",
        "apply, nothing to do",
        "apply, failed",
        "drift, in sync",
        "drift, drifted",
        "rollout advance, starting",
        "rollout advance, on evidence",
        "rollout status",
    ],
)
def test_every_output_validates(documents: dict[str, dict[str, Any]], name: str) -> None:
    doc = documents[name]
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(doc)]
    assert not errors, errors
    assert doc["formatVersion"] == formats.FORMAT_VERSION
    # and against its own definition alone, so the oneOf picked the document it names
    branch = {"$ref": f"#/$defs/{_definition(doc['document'])}", "$defs": SCHEMA["$defs"]}
    assert Draft202012Validator(branch).is_valid(doc)


def _definition(document: str) -> str:
    for r in SCHEMA["oneOf"]:
        name = r["$ref"].rpartition("/")[2]
        if SCHEMA["$defs"][name]["properties"]["document"]["const"] == document:
            return str(name)
    raise AssertionError(document)


# -- honest both ways: every key described, every description produced ---------------------------
def _at(pointer: str) -> Any:
    node: Any = SCHEMA
    for part in pointer.lstrip("#").strip("/").split("/"):
        if part:
            node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _valid(pointer: str, instance: Any) -> bool:
    return Draft202012Validator({**_at(pointer), "$defs": SCHEMA["$defs"]}).is_valid(instance)


class Walk:
    """``instance`` walked along the schema: each (schema object, key) it uses, and each key of
    an object that no schema object describes."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()
        self.undescribed: list[str] = []

    def entry(self, pointer: str, instance: Any, where: str) -> None:
        described = self.node(pointer, instance, where)
        if isinstance(instance, dict):
            self.undescribed += [f"{where}.{k}" for k in instance if k not in described]

    def node(self, pointer: str, instance: Any, where: str) -> set[str]:
        """The keys of ``instance`` this schema object (with what it applies) describes."""
        node = _at(pointer)
        described: set[str] = set()
        if "$ref" in node:
            described |= self.node(node["$ref"], instance, where)
        for j in range(len(node.get("allOf", []))):
            described |= self.node(f"{pointer}/allOf/{j}", instance, where)
        for key in ("anyOf", "oneOf"):
            for j in range(len(node.get(key, []))):
                if _valid(f"{pointer}/{key}/{j}", instance):
                    described |= self.node(f"{pointer}/{key}/{j}", instance, where)
        if isinstance(instance, dict):
            props = node.get("properties", {})
            for k, v in instance.items():
                if k in props:
                    self.seen.add((pointer, k))
                    described.add(k)
                    self.entry(f"{pointer}/properties/{k}", v, f"{where}.{k}")
                elif isinstance(node.get("additionalProperties"), dict):
                    described.add(k)
                    self.entry(f"{pointer}/additionalProperties", v, f"{where}.{k}")
        if isinstance(instance, list) and "items" in node:
            for n, v in enumerate(instance):
                self.entry(f"{pointer}/items", v, f"{where}[{n}]")
        return described


def _described(node: Any, pointer: str = "#") -> Iterator[tuple[str, str]]:
    if not isinstance(node, dict):
        return
    for k in node.get("properties", {}):
        yield pointer, k
    for key in ("properties", "$defs"):
        for k, sub in node.get(key, {}).items():
            yield from _described(sub, f"{pointer}/{key}/{k}")
    for key in ("anyOf", "oneOf", "allOf"):
        for j, sub in enumerate(node.get(key, [])):
            yield from _described(sub, f"{pointer}/{key}/{j}")
    for key in ("items", "additionalProperties"):
        yield from _described(node.get(key), f"{pointer}/{key}")


def test_every_key_is_described_and_every_description_produced(
    documents: dict[str, dict[str, Any]],
) -> None:
    walk = Walk()
    for name, doc in documents.items():
        walk.entry("#", doc, name)
    assert not walk.undescribed, walk.undescribed
    never = set(_described(SCHEMA)) - walk.seen - NOT_PRODUCED_HERE
    assert not never, sorted(never)


# -- formatVersion ---------------------------------------------------------------------------------
@pytest.fixture
def saved(documents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return json.loads(json.dumps(documents["plan of creates"]))


def _load(data: Any) -> planfile.SavedPlan:
    Path("plan.json").write_text(json.dumps(data))
    return planfile.load("plan.json")


def test_a_plan_of_the_releases_before_format_2_0_loads(saved: dict[str, Any]) -> None:
    old = {k: v for k, v in saved.items() if k != "document"}
    old["formatVersion"] = 2
    assert _load(old).plan.operations == _load(saved).plan.operations


def test_a_later_minor_loads_and_its_new_fields_are_ignored(saved: dict[str, Any]) -> None:
    later = {**saved, "formatVersion": "2.7", "somethingNew": {"a": [1]}, "targeted": None}
    assert VALIDATOR.is_valid(later)
    assert _load(later).plan.operations == _load(saved).plan.operations


def test_a_later_major_is_refused_naming_both_versions(saved: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as exc:
        _load({**saved, "formatVersion": "3.0", "tool": "llmgw 9.0.0"})
    message = str(exc.value)
    assert 'plan format "3.0"' in message and "llmgw 9.0.0" in message
    assert "reads plan format 2.x" in message and "3.x" in exc.value.fix


@pytest.mark.parametrize("version", ["two", "2", "2.0.1", "v2.0", "", None, True, 2.0, [2], -2, 1])
def test_a_version_that_is_none_of_major_2_is_refused(saved: dict[str, Any], version: Any) -> None:
    with pytest.raises(ConfigError, match=r"unsupported plan format .*reads plan format 2\.x"):
        _load({**saved, "formatVersion": version})


def test_no_version_and_another_document_are_refused(saved: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="unsupported plan format none"):
        _load({k: v for k, v in saved.items() if k != "formatVersion"})
    with pytest.raises(ConfigError, match='its document is "drift"'):
        _load({**saved, "document": "drift"})
    with pytest.raises(ConfigError, match="not a JSON object"):
        _load([saved])


def test_the_walk_finds_a_key_the_schema_does_not_describe(
    documents: dict[str, dict[str, Any]],
) -> None:
    plan = documents["plan of every action"]
    op = {**plan["operations"][0], "bogus": 1}
    walk = Walk()
    walk.entry("#", {**plan, "operations": [op], "new": 2}, "plan")
    assert walk.undescribed == ["plan.operations[0].bogus", "plan.new"]
    assert VALIDATOR.is_valid({**plan, "new": 2})  # which a reader ignores: a minor's addition
