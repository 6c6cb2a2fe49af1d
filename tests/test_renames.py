"""Renames (``metadata.annotations: {llmgw.io/renamed-from: OLD}``): validation, the pure plan
and drift, saved plans, and the whole loop against the emulator.

Covers, offline: the annotation validates on a PromptTemplate and a Prompt (the reserved
``llmgw.io/`` label rule does not misfire on an annotation; unknown ``llmgw.io/`` annotations
warn), and is an error on a PromptVersion, a VectorIndex (identity is immutable there: the
message says so and what to do) and a TrafficSplit (rename its prompt); a bad OLD (not a name
by the kind's schema, an invisible character), OLD equal to the name, two manifests renaming
one OLD, OLD still having its own manifest, and a version or prompt or split still naming the
renamed object are errors. The planner, as a table: OLD live and NEW absent is one update that
keeps the live id (a PUT of the whole template, a merge-PUT of the prompt carrying the name,
each with its precondition), the versions, the split and the binding prompt planned as
nothing; a rename with other changes is one operation showing both (a new version of the
renamed template goes to its live id); NEW live and OLD absent
(the rename done) is nothing; both live is an error naming both ids; neither live is a create
and a warning; OLD without the management label is refused; ``--prune`` never deletes OLD or
its versions; no request carries the annotation; the view is idempotent; a prompt whose rollout
is in progress, paused or aborted is not renamed (it would restart the rollout), one whose
rollout is done is, and a rename starting a rollout says both. Drift reports the
pending rename as the object's modified ``metadata.name`` only. A targeted set does not report
a renamed object as removed. A saved rename plan is checked like any other (an edited name is
refused). Against the in-process emulator: plan, ``plan --out``, ``apply plan.json``;
then the template's and the prompt's ids are unchanged, their versions and split kept, the
binding prompt's templateId unchanged, drift clean, export writes the new names, a second plan
is "No changes"; and ``plan --changed-since`` plans the rename as updates.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reconciler import drift, jobs, planfile, renames
from reconciler.endpoints import PATHS
from reconciler.errors import PlanError
from reconciler.model import RENAMED_FROM_ANNOTATION
from reconciler.normalize import desired_state
from reconciler.objects import LiveState, Obj
from reconciler.planner import OpType, plan
from reconciler.validate import validate_paths
from reconciler.views import plan as plan_view
from tests.test_e2e import Org, _apply, _writes
from tests.test_planner import desired as example_desired
from tests.test_planner import live_copy

REPO = Path(__file__).resolve().parent.parent
OLD_T, NEW_T = "escalation-routing", "escalation-router"
OLD_P, NEW_P = "support-agent", "support-bot"
ANN = f"    {RENAMED_FROM_ANNOTATION}: "
INDEX = "prod-embedding-index-v2"
WHERE = f"metadata.annotations.{RENAMED_FROM_ANNOTATION}"


def _annotate(text: str, kind: str, name: str, old: str) -> str:
    """``text`` with the annotation on the ``kind`` document named ``name``."""
    head = f"kind: {kind}\nmetadata:\n  name: {name}\n"
    assert head in text, (kind, name)
    return text.replace(head, f"{head}  annotations:\n{ANN}{old}\n", 1)


def rename_template(root: Path, new: str = NEW_T, *, annotate: bool = True) -> None:
    """Rename the template escalation-routing in the manifests under ``root`` (its versions,
    the prompt bound to it), annotated with its old name."""
    t = root / "templates" / f"{OLD_T}.yaml"
    text = t.read_text().replace(f"name: {OLD_T}\n", f"name: {new}\n")
    text = text.replace(f"template: {OLD_T}\n", f"template: {new}\n")
    text = text.replace(f"{OLD_T}@", f"{new}@")
    t.write_text(_annotate(text, "PromptTemplate", new, OLD_T) if annotate else text)
    p = root / "prompts" / f"{OLD_P}.yaml"
    p.write_text(p.read_text().replace(f"template: {OLD_T}\n", f"template: {new}\n"))


def rename_prompt(root: Path, new: str = NEW_P) -> None:
    p = root / "prompts" / f"{OLD_P}.yaml"
    text = p.read_text().replace(f"name: {OLD_P}\n", f"name: {new}\n")
    text = text.replace(f"prompt: {OLD_P}\n", f"prompt: {new}\n")
    p.write_text(_annotate(text, "Prompt", new, OLD_P))


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    return tmp_path / "manifests"


def _desired(root: Path) -> dict[str, Obj]:
    report = validate_paths([str(root)])
    assert not report.errors, [str(p) for p in report.errors]
    return desired_state(report.documents)


def _problems(root: Path) -> list[str]:
    return [str(p) for p in validate_paths([str(root)]).problems]


def _changes(result: Any) -> list[tuple[str, str]]:
    return [(o.action.value, o.ref) for o in result.changes]


# -- validation ----------------------------------------------------------------------------------
def test_the_annotation_validates_on_templates_and_prompts(manifests: Path) -> None:
    rename_template(manifests)
    rename_prompt(manifests)
    assert _problems(manifests) == []  # the reserved llmgw.io/ label rule is for labels only


def test_an_unknown_llmgw_io_annotation_is_a_warning(manifests: Path) -> None:
    f = manifests / "templates" / f"{OLD_T}.yaml"
    text = _annotate(f.read_text(), "PromptTemplate", OLD_T, "x")
    f.write_text(text.replace(f"{RENAMED_FROM_ANNOTATION}: x", "llmgw.io/renamed: x"))
    (problem,) = _problems(manifests)
    assert "warning: " in problem and "unknown llmgw annotation" in problem
    assert RENAMED_FROM_ANNOTATION in problem


@pytest.mark.parametrize(
    ("file", "kind", "name", "said"),
    [
        (f"templates/{OLD_T}.yaml", "PromptVersion", f"{OLD_T}@2.0.0", "template@version"),
        (f"indexes/{INDEX}.yaml", "VectorIndex", INDEX, "indexId"),
        (f"prompts/{OLD_P}.yaml", "TrafficSplit", OLD_P, "renamed with it"),
    ],
)
def test_versions_indexes_and_splits_cannot_be_renamed(
    manifests: Path, file: str, kind: str, name: str, said: str
) -> None:
    f = manifests / file
    f.write_text(_annotate(f.read_text(), kind, name, "some-old-name"))
    (problem,) = _problems(manifests)
    assert f"{kind}/{name}: {WHERE}: a {kind} cannot be renamed" in problem
    assert said in problem
    if kind != "TrafficSplit":
        assert "immutable" in problem


@pytest.mark.parametrize(
    ("old", "said"),
    [
        ("bad name", "must not contain spaces"),
        ("ab", "must be 3 to 128 characters"),
        ("zero\u200bwidth", "must be plain visible text"),
        (NEW_T, "names the object itself"),
    ],
)
def test_a_bad_old_name_is_an_error(manifests: Path, old: str, said: str) -> None:
    rename_template(manifests)
    f = manifests / "templates" / f"{OLD_T}.yaml"
    f.write_text(f.read_text().replace(f"{ANN}{OLD_T}\n", f'{ANN}"{old}"\n'))
    problems = _problems(manifests)
    assert any(said in p and WHERE in p for p in problems), problems


def test_one_old_name_renamed_twice_or_still_named_is_an_error(manifests: Path) -> None:
    rename_template(manifests)
    other = manifests / "templates" / "support-ticket-classifier.yaml"
    text = other.read_text()
    other.write_text(_annotate(text, "PromptTemplate", "support-ticket-classifier", OLD_T))
    (twice,) = [p for p in _problems(manifests) if "renamed twice" in p]
    assert f"{OLD_T} is renamed twice" in twice
    other.write_text(text)
    # the old name keeps a manifest of its own beside the renamed one
    (manifests / "old.yaml").write_text(
        (REPO / "manifests" / "templates" / f"{OLD_T}.yaml").read_text().split("---")[0]
    )
    (kept,) = [p for p in _problems(manifests) if "has its own manifest" in p]
    assert f"{OLD_T}, which this renames, has its own manifest at" in kept


def test_a_reference_left_on_the_old_name_is_an_error_saying_the_new_one(manifests: Path) -> None:
    rename_template(manifests)
    rename_prompt(manifests)
    p = manifests / "prompts" / f"{OLD_P}.yaml"
    p.write_text(
        p.read_text()
        .replace(f"template: {NEW_T}\n", f"template: {OLD_T}\n")
        .replace(f"prompt: {NEW_P}\n", f"prompt: {OLD_P}\n")
    )
    problems = [p for p in _problems(manifests) if "is renamed to" in p]
    assert len(problems) == 2, problems
    assert any(f"template: PromptTemplate {OLD_T} is renamed to {NEW_T}" in p for p in problems)
    assert any(f"spec.prompt: Prompt {OLD_P} is renamed to {NEW_P}" in p for p in problems)
    assert all("(set spec." in p for p in problems)


# -- the plan ------------------------------------------------------------------------------------
def _org(*, managed: bool = True) -> LiveState:
    return live_copy(example_desired(), managed=managed)


def _bodies(result: Any) -> str:
    return json.dumps([planfile.operation_dict(o) for o in result.operations], default=str)


def test_a_template_rename_is_one_update_that_keeps_the_id(manifests: Path) -> None:
    rename_template(manifests)
    live = _org()
    result = plan(_desired(manifests), live)
    assert _changes(result) == [("update", f"PromptTemplate/{NEW_T}")]
    (op,) = result.changes
    assert op.reason == f"rename {OLD_T} -> {NEW_T}"
    assert [(d.path, d.old, d.new) for d in op.diff] == [("metadata.name", OLD_T, NEW_T)]
    old = live.objects[f"PromptTemplate/{OLD_T}"]
    assert op.remote_id == old.remote_id and op.observed == old.precondition
    (req,) = op.requests
    assert (req.method, dict(req.params)) == ("PUT", {"templateId": old.remote_id})
    assert req.body is not None and req.body["name"] == NEW_T
    assert req.headers == {"If-Match": f"version={old.precondition}"}
    # the versions, the split and the prompt bound to it are kept: nothing to do for them
    noops = {o.ref for o in result.operations if o.action == OpType.NOOP}
    assert {f"PromptVersion/{NEW_T}@2.0.0", f"PromptVersion/{NEW_T}@2.1.0"} <= noops
    assert {f"Prompt/{OLD_P}", f"TrafficSplit/{OLD_P}"} <= noops
    assert result.orphaned == () and result.warnings == ()
    assert RENAMED_FROM_ANNOTATION not in _bodies(result) and "annotations" not in _bodies(result)


def test_a_prompt_rename_is_one_merge_put_with_the_etag(manifests: Path) -> None:
    rename_prompt(manifests)
    live = _org()
    result = plan(_desired(manifests), live)
    assert _changes(result) == [("update", f"Prompt/{NEW_P}")]
    (op,) = result.changes
    old = live.objects[f"Prompt/{OLD_P}"]
    assert op.reason == f"rename {OLD_P} -> {NEW_P}" and op.remote_id == old.remote_id
    (req,) = op.requests
    assert req.body == {"name": NEW_P} and req.headers == {"If-Match": old.precondition}
    split = next(o for o in result.operations if o.ref == f"TrafficSplit/{NEW_P}")
    assert split.action == OpType.NOOP  # the split moves with its prompt


def test_a_rename_with_other_changes_is_one_operation_showing_both(manifests: Path) -> None:
    rename_template(manifests)
    rename_prompt(manifests)
    for f, old, new in (
        (f"templates/{OLD_T}.yaml", "Escalation handling", "Escalations"),
        (f"prompts/{OLD_P}.yaml", "temperature: 0.2", "temperature: 0.4"),
    ):
        path = manifests / f
        path.write_text(path.read_text().replace(old, new))
    (manifests / "new-version.yaml").write_text(
        f"apiVersion: llmgw/v1\nkind: PromptVersion\nmetadata: {{name: {NEW_T}@3.0.0}}\n"
        f'spec:\n  template: {NEW_T}\n  version: "3.0.0"\n  content: "Help with {{{{issue}}}}"\n'
        "  variables: {issue: string}\n"
    )
    result = plan(_desired(manifests), _org())
    assert _changes(result) == [
        ("update", f"PromptTemplate/{NEW_T}"),
        ("create", f"PromptVersion/{NEW_T}@3.0.0"),  # under the renamed template's live id
        ("update", f"Prompt/{NEW_P}"),
    ]
    tpl, ver, prm = result.changes
    assert ver.requests[0].params == {"templateId": f"id-{OLD_T}"}
    assert tpl.reason == f"rename {OLD_T} -> {NEW_T}; differs from the manifests"
    assert [d.path for d in tpl.diff] == ["metadata.name", "description"]
    assert [d.path for d in prm.diff] == ["metadata.name", "temperature"]
    assert prm.requests[0].body == {"name": NEW_P, "temperature": 0.4}


def test_a_rename_already_done_is_planned_as_nothing(manifests: Path) -> None:
    rename_template(manifests)
    rename_prompt(manifests)
    want = _desired(manifests)
    renamed_org = live_copy(want)  # the org after the rename: NEW live, OLD gone
    result = plan(want, renamed_org)
    assert result.changes == [] and result.warnings == ()
    assert drift.detect(want, renamed_org).in_sync


def test_both_names_live_is_an_error_naming_both(manifests: Path) -> None:
    rename_template(manifests)
    want = _desired(manifests)
    both = live_copy({**example_desired(), **want})
    with pytest.raises(PlanError) as info:
        plan(want, both)
    text = str(info.value)
    assert f"the org has both {OLD_T}, which this manifest renames, and {NEW_T}" in text
    assert f"id-{OLD_T}" in text and f"id-{NEW_T}" in text
    assert f"delete PromptTemplate {NEW_T} from the org" in text and "remove the annotation" in text


def test_neither_name_live_creates_and_warns(manifests: Path) -> None:
    rename_template(manifests)
    want = _desired(manifests)
    empty = LiveState(models=_org().models, stores=_org().stores)
    result = plan(want, empty)
    op = next(o for o in result.changes if o.ref == f"PromptTemplate/{NEW_T}")
    assert op.action == OpType.CREATE
    assert op.reason == f"not in the org, nor is {OLD_T}, which it is renamed from"
    (warning,) = result.warnings
    assert warning.severity == "warning" and warning.rule == "rename"
    assert f"{OLD_T}, which this manifest renames, is not in the org" in str(warning)


def test_an_unmanaged_old_object_is_not_renamed(manifests: Path) -> None:
    rename_template(manifests)
    with pytest.raises(PlanError) as info:
        plan(_desired(manifests), _org(managed=False))
    assert f"{OLD_T}, which this manifest renames, exists in the org without the label" in str(
        info.value
    )
    assert "adopt it first" in str(info.value)


def test_prune_never_deletes_what_is_renamed(manifests: Path) -> None:
    rename_template(manifests)
    rename_prompt(manifests)
    result = plan(_desired(manifests), _org(), prune=True)
    assert _changes(result) == [
        ("update", f"PromptTemplate/{NEW_T}"),
        ("update", f"Prompt/{NEW_P}"),
    ]
    assert result.orphaned == ()


def test_the_view_is_idempotent_and_leaves_the_live_state_alone(manifests: Path) -> None:
    rename_template(manifests)
    want, live = _desired(manifests), _org()
    before = dict(live.objects)
    once = renames.view(want, live)
    assert live.objects == before  # a new state
    assert renames.view(want, once).objects == once.objects
    assert once.objects[f"PromptTemplate/{NEW_T}"].renamed_from == OLD_T
    assert f"PromptTemplate/{OLD_T}" not in once.objects
    assert once.objects[f"Prompt/{OLD_P}"].fields["template"] == NEW_T
    assert NEW_T in once.listed["PromptVersion"] and OLD_T not in once.listed["PromptVersion"]
    assert renames.view({}, live) is live


def test_drift_shows_a_pending_rename_as_the_name_only(manifests: Path) -> None:
    rename_template(manifests)
    report = drift.detect(_desired(manifests), _org())
    (finding,) = report.drifted
    assert (finding.state, finding.ref) == ("modified", f"PromptTemplate/{NEW_T}")
    assert [(d.path, d.old, d.new) for d in finding.diff] == [("metadata.name", NEW_T, OLD_T)]


def test_a_targeted_set_moves_renamed_refs_instead_of_removing_them(manifests: Path) -> None:
    rename_template(manifests)
    removed = [f"PromptTemplate/{OLD_T}", f"PromptVersion/{OLD_T}@2.0.0", "Prompt/gone"]
    assert renames.moved(_desired(manifests), removed) == {
        f"PromptTemplate/{OLD_T}": f"PromptTemplate/{NEW_T}",
        f"PromptVersion/{OLD_T}@2.0.0": f"PromptVersion/{NEW_T}@2.0.0",
    }


def test_a_saved_rename_is_checked_like_any_operation(manifests: Path) -> None:
    rename_template(manifests)
    want, live = _desired(manifests), _org()
    derived = plan(want, live)
    saved = [planfile.operation_dict(o) for o in derived.operations]
    assert planfile.compare(saved, derived.operations) == ([], 0)
    op = next(d for d in saved if d["identity"] == NEW_T and d["action"] == "update")
    op["requests"][0]["body"]["name"] = "escalation-elsewhere"
    differences, _ = planfile.compare(saved, derived.operations)
    assert differences and "body.name" in differences[0]
    assert "escalation-elsewhere" in differences[0]


# -- against the emulator ------------------------------------------------------------------------
TEMPLATES, PROMPTS = PATHS.templates, PATHS.prompts


def _versions_of(tid: str) -> str:
    return PATHS.versions.format(templateId=tid)


async def _listed(org: Org, path: str) -> list[dict[str, Any]]:
    page = await org.call("GET", path, params={"pageSize": 100})
    entities: list[dict[str, Any]] = page.json()["entities"]
    return entities


async def _named(org: Org, path: str, name: str) -> dict[str, Any]:
    return next(e for e in await _listed(org, path) if e["name"] == name)


@pytest.mark.slow
async def test_a_rename_applied_from_a_saved_plan_keeps_every_id_and_reference(
    manifests: Path, tmp_path: Path
) -> None:
    org = Org()
    target = org.target()
    assert (await _apply(target, [str(manifests)], tmp_path)).ok
    template = await _named(org, TEMPLATES, OLD_T)
    versions = await _listed(org, _versions_of(template["id"]))
    prompt = await _named(org, PROMPTS, OLD_P)
    others = {e["name"]: e for e in await _listed(org, PROMPTS) if e["name"] != OLD_P}
    writes_before = len(_writes(await org.requests_log()))
    rename_template(manifests)
    rename_prompt(manifests)

    run = await jobs.make_plan(target, [str(manifests)])
    shown = plan_view.text(run.plan)
    assert f"~ PromptTemplate/{NEW_T}  (update: rename {OLD_T} -> {NEW_T})" in shown
    assert f'~ metadata.name: "{OLD_T}" -> "{NEW_T}"' in shown
    assert f"~ Prompt/{NEW_P}  (update: rename {OLD_P} -> {NEW_P})" in shown
    assert run.plan.summary() == (
        "Plan: 0 to create, 2 to update, 0 to adopt, 0 to replace, 0 to delete"
    )
    saved = tmp_path / "plan.json"
    planfile.save(run.saved, str(saved))
    prepared = await jobs.prepare_apply(target, plan_file=str(saved), prune=True)
    done = await jobs.execute(target, prepared, audit_path=str(tmp_path / "audit.jsonl"))
    assert done.ok and done.verify_plan is not None and not done.verify_plan.changes
    writes = _writes(await org.requests_log())[writes_before:]
    assert [(w["method"], w["path"]) for w in writes] == [
        ("PUT", f"{TEMPLATES}/{template['id']}"),
        ("PUT", f"{PROMPTS}/{prompt['id']}"),
    ]

    renamed = await _named(org, TEMPLATES, NEW_T)
    assert renamed["id"] == template["id"] and renamed["version"] == template["version"] + 1
    kept = await _listed(org, _versions_of(renamed["id"]))
    assert [v["version"] for v in kept] == [v["version"] for v in versions]
    moved = await _named(org, PROMPTS, NEW_P)
    assert (moved["id"], moved["templateId"]) == (prompt["id"], template["id"])
    assert moved["trafficDistribution"] == prompt["trafficDistribution"]
    assert {e["name"]: e for e in await _listed(org, PROMPTS) if e["name"] != NEW_P} == others
    assert OLD_T not in {e["name"] for e in await _listed(org, TEMPLATES)}

    assert (await jobs.detect_drift(target, [str(manifests)])).report.in_sync
    out = tmp_path / "exported"
    exported = await jobs.export_org(target, str(out))
    paths = sorted(f.path for f in exported.files)
    assert f"templates/{NEW_T}.yaml" in paths and f"prompts/{NEW_P}.yaml" in paths
    text = "".join(f.text for f in exported.files)
    for old in (f"name: {OLD_T}", f"template: {OLD_T}", f"name: {OLD_P}", f"prompt: {OLD_P}"):
        assert old not in text
    again = await jobs.make_plan(target, [str(manifests)])  # the annotation stays: harmless
    assert again.plan.changes == [] and "No changes" in plan_view.text(again.plan)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
async def test_a_targeted_plan_reads_the_old_name_and_plans_the_rename(
    manifests: Path, tmp_path: Path
) -> None:
    org = Org()
    target = org.target()
    assert (await _apply(target, [str(manifests)], tmp_path)).ok
    git = ["git", "-c", "user.email=t@llmgw", "-c", "user.name=t"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "m"]):
        subprocess.run([*git, *args], cwd=manifests, check=True, capture_output=True)
    rename_template(manifests)
    run = await jobs.make_plan(target, [str(manifests)], changed_since="HEAD")
    assert run.saved.targeted is not None and run.saved.targeted.removed == ()
    assert _changes(run.plan) == [("update", f"PromptTemplate/{NEW_T}")]
    assert {f"PromptVersion/{NEW_T}@2.0.0", f"Prompt/{OLD_P}"} <= set(run.saved.targeted.objects)


@pytest.mark.parametrize("state", ["progressing", "paused", "aborted", "done"])
def test_a_prompt_is_not_renamed_while_its_rollout_holds_it(tmp_path: Path, state: str) -> None:
    from tests import test_rollout_plan as rp

    root = rp.manifests(tmp_path)
    want = rp.desired_of(root)
    r = rp.rollout_of(want)
    split = rp.prompt_body(r.split(2) if state != "done" else r.end)
    live = rp.live_with(want, split, rp.labels.encode(rp.labels.Position(r.id, 2, 1.7e9, state)))
    rename_prompt(root)
    if state == "done":
        result = plan(rp.desired_of(root), live)
        assert _changes(result) == [("update", f"Prompt/{NEW_P}")]
        return
    with pytest.raises(PlanError) as info:
        plan(rp.desired_of(root), live)
    assert f"the rollout 2.0.0 -> 2.1.0 of {OLD_P} is {state} at step 2" in str(info.value)
    assert "start it again from step 1" in str(info.value)


def test_a_rename_that_starts_a_rollout_says_both(tmp_path: Path) -> None:
    from tests import test_rollout_plan as rp

    root = rp.manifests(tmp_path)
    live = rp.live_with(rp.desired_of(root), rp.OLD_SPLIT)
    rename_prompt(root)
    (op,) = plan(rp.desired_of(root), live).changes
    assert op.reason == f"rename {OLD_P} -> {NEW_P}; start rollout 2.0.0 -> 2.1.0 at 5 %"
    assert op.requests[0].body is not None and op.requests[0].body["name"] == NEW_P
