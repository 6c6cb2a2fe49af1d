"""The pure planner: (desired, live) -> operations, for every kind and action.

Covers: an empty org plans creates in dependency phases; a live copy of the manifests plans only
no-ops (the normalisation round trip never shows a diff); an out-of-band change plans exactly that
field as a merge-PUT with the observed ETag; unlabelled objects are adopted; immutable version
fields are an error; a withdrawal waits for its split to move; an index's immutable field plans a
destructive replace, but an unlabelled index with another immutable field is an error naming the
fix (replacing it would delete vectors llmgw never owned); a Prompt and its split changing
together make one PUT; prune deletes only
labelled objects, in reverse order; org-only checks (models, output limits, references); ignore
entries hide a field and keep the live value in the request. A table of (what differs) ->
(operations, in phase order) covers each kind's update, re-create and re-adopt, and a remote
field llmgw does not know (ignored, not planned); planning twice plans the same requests.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import PlanError
from reconciler.kinds import index, prompt, template, version
from reconciler.normalize import desired_state
from reconciler.objects import LiveState, Obj, Ref
from reconciler.planner import OpType, Phase, plan
from reconciler.validate import validate_paths

REPO = Path(__file__).resolve().parent.parent
STORE = "6d1f2c1e-0b7a-4a55-9d1e-3f3f8a2b9c10"
MODELS = {
    "anthropic/claude-3-sonnet": {"id": "anthropic/claude-3-sonnet", "maxOutputTokens": 4096},
    "model-gen-4": {"id": "model-gen-4", "maxOutputTokens": 4096},
    "model-fallback-3": {"id": "model-fallback-3", "maxOutputTokens": 2048},
}


def desired() -> dict[str, Obj]:
    report = validate_paths([str(REPO / "manifests")])
    assert not report.errors
    return desired_state(report.documents)


def _plain(value: Any) -> Any:
    """Bodies hold Refs for ids; a live copy has real ids."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "kind") and hasattr(value, "key"):
        return f"id-{value.key}"
    return value


def live_copy(want: dict[str, Obj], *, managed: bool = True, edit: Any = None) -> LiveState:
    """The org as the server would show it after applying ``want`` exactly.
    ``edit(kind, key, raw)`` may change a raw remote record first."""
    state = LiveState(models=dict(MODELS), stores={STORE})
    names: dict[str, str] = {}
    raws: list[tuple[str, str, dict[str, Any]]] = []
    for o in want.values():
        if o.kind == "PromptTemplate":
            raw = {**template.RESOURCE.body(o.key, o.fields), "id": f"id-{o.key}", "version": 3}
            names[raw["id"]] = o.key
            raws.append((o.kind, o.key, raw))
        elif o.kind == "PromptVersion":
            t, _, v = o.key.rpartition("@")
            body = version.RESOURCE.body(Ref("PromptTemplate", t), v, o.fields)
            raws.append((o.kind, o.key, {**body, "status": "ACTIVE"}))
        elif o.kind == "Prompt":
            tid = Ref("PromptTemplate", o.fields["template"])
            body = prompt.RESOURCE.body(o.fields, tid)
            raw = {**body, "name": o.key, "id": f"pid-{o.key}", "etag": '"e1"'}
            split = want.get(f"TrafficSplit/{o.key}")
            if split is not None:
                raw["trafficDistribution"] = prompt.SPLIT_RESOURCE.body(split.fields)
            raws.append((o.kind, o.key, raw))
        elif o.kind == "VectorIndex":
            name = o.key.partition("/")[2]
            raws.append(
                (
                    o.kind,
                    o.key,
                    {**index.RESOURCE.body(name, o.fields), "etag": '"x1"', "status": "ACTIVE"},
                )
            )
    for kind, key, raw in raws:
        raw = _plain(copy.deepcopy(raw))
        if not managed:
            raw["labels"].pop("managed-by", None)
        if edit is not None:
            edit(kind, key, raw)
        if kind == "PromptTemplate":
            objs = [template.RESOURCE.live(raw)]
        elif kind == "PromptVersion":
            objs = [version.RESOURCE.live(raw, key.rpartition("@")[0])]
            state.listed.setdefault(kind, set()).add(key.rpartition("@")[0])
        elif kind == "Prompt":
            p, s = prompt.RESOURCE.live(raw, names)
            objs = [p] + ([s] if s else [])
        else:
            objs = [index.RESOURCE.live(raw, key.partition("/")[0])]
        for obj in objs:
            state.objects[obj.ref] = obj
    return state


def summary(p: Any) -> list[tuple[str, str, int]]:
    return [(o.action.value, o.ref, o.phase) for o in p.changes]


def test_empty_org_plans_creates_in_phases() -> None:
    p = plan(desired(), LiveState(models=dict(MODELS), stores={STORE}))
    assert p.summary() == "Plan: 8 to create, 0 to update, 0 to adopt, 0 to replace, 0 to delete"
    phases = [o.phase for o in p.changes]
    assert phases == sorted(phases)
    by_ref = {o.ref: o for o in p.changes}
    version = by_ref["PromptVersion/escalation-routing@2.1.0"]
    assert version.phase == Phase.VERSIONS
    assert version.requests[0].headers["X-Genesys-AB-Test"] == "variant=v2_1_0_beta,traffic=20"
    prompt = by_ref["Prompt/support-agent"]
    assert prompt.covers == ("Prompt/support-agent", "TrafficSplit/support-agent")
    body = prompt.requests[0].body
    assert body is not None
    assert body["trafficDistribution"]["splitStrategy"] == "random"
    assert body["systemPrompt"].startswith("You are a helpful customer support agent.\n\nExamples:")
    index = by_ref[f"VectorIndex/{STORE}/prod-embedding-index-v2"]
    assert index.requests[0].headers == {"If-None-Match": "*"}
    assert all(o.observed is None for o in p.changes)


def test_live_copy_plans_nothing() -> None:
    want = desired()
    p = plan(want, live_copy(want))
    assert p.changes == []
    assert {o.ref for o in p.operations} == set(want)  # every object stays as a no-op


def test_out_of_band_change_is_exactly_that_field() -> None:
    want = desired()

    def edit(kind: str, key: str, raw: dict[str, Any]) -> None:
        if kind == "Prompt" and key == "support-agent":
            raw["temperature"] = 0.9

    p = plan(want, live_copy(want, edit=edit))
    assert summary(p) == [("update", "Prompt/support-agent", Phase.PROMPTS)]
    op = p.changes[0]
    assert [(d.path, d.old, d.new) for d in op.diff] == [("temperature", 0.9, 0.2)]
    req = op.requests[0]
    assert (req.method, req.body, req.headers) == (
        "PUT",
        {"temperature": 0.2},
        {"If-Match": '"e1"'},
    )
    assert op.observed == '"e1"'


def test_unlabelled_objects_are_adopted() -> None:
    want = desired()
    p = plan(want, live_copy(want, managed=False))
    counts = p.counts()
    assert counts["adopt"] == 8 and counts["create"] == 0
    tpl = next(o for o in p.changes if o.kind == "PromptTemplate")
    assert [(d.path, d.new) for d in tpl.diff] == [("labels.managed-by", "llmgw")]
    assert tpl.requests[0].headers == {"If-Match": "version=3"}
    version = next(o for o in p.changes if o.kind == "PromptVersion")
    assert version.requests[0].method == "PATCH"


def test_changed_version_content_is_an_error() -> None:
    want = desired()

    def edit(kind: str, key: str, raw: dict[str, Any]) -> None:
        if key == "escalation-routing@2.0.0":
            raw["content"] = "Old text {{customer_issue}} {{tone_preference}}"

    with pytest.raises(PlanError) as err:
        plan(want, live_copy(want, edit=edit))
    text = str(err.value)
    assert "content of a published version is immutable" in text
    assert "publish a new version" in text


def test_withdrawal_waits_for_the_split() -> None:
    want = desired()
    live = live_copy(want)
    want["PromptVersion/escalation-routing@2.1.0"].fields["rollbackDirective"] = True
    want["TrafficSplit/support-agent"].fields.update(versions={"2.0.0": 1.0})
    p = plan(want, live)
    assert summary(p) == [
        ("update", "TrafficSplit/support-agent", Phase.PROMPTS),
        ("update", "PromptVersion/escalation-routing@2.1.0", Phase.WITHDRAW),
    ]
    split, withdraw = p.changes
    assert split.requests[0].body == {
        "trafficDistribution": {
            "versions": [{"version": "2.0.0", "weight": 1.0}],
            "splitStrategy": "random",
        }
    }
    assert withdraw.requests[0].method == "PATCH"
    assert [w[0].ref for w in p.waves()] == [split.ref, withdraw.ref]


def test_split_to_withdrawn_version_is_an_error() -> None:
    want = desired()
    want["PromptVersion/escalation-routing@2.1.0"].fields["rollbackDirective"] = True
    with pytest.raises(PlanError, match="which is withdrawn"):
        plan(want, live_copy(desired()))


def test_index_immutable_change_plans_destructive_replace() -> None:
    want = desired()
    live = live_copy(want)
    ref = f"VectorIndex/{STORE}/prod-embedding-index-v2"
    want[ref].fields["dimensions"] = 3072
    p = plan(want, live)
    (op,) = p.changes
    assert (op.action, op.destructive, op.allowed) == (OpType.REPLACE, True, False)
    assert [r.method for r in op.requests] == ["DELETE", "PUT"]
    assert op.requests[1].headers == {"If-None-Match": "*"}
    want[ref].annotations["llmgw/allow-replace"] = "true"
    assert plan(want, live).changes[0].allowed is True


def test_unlabelled_index_is_never_replaced() -> None:
    want = desired()
    ref = f"VectorIndex/{STORE}/prod-embedding-index-v2"
    live = live_copy(want, managed=False)
    want[ref].fields["dimensions"] = 3072
    want[ref].annotations["llmgw/allow-replace"] = "true"  # permission does not make it ours
    with pytest.raises(PlanError) as err:
        plan(want, live)
    (problem,) = err.value.problems
    assert "without the label managed-by: llmgw" in problem.message
    assert "vectors llmgw never owned" in problem.message
    assert "so llmgw adopts the index as it is" in problem.fix
    assert problem.path == "spec.dimensions"
    want[ref].fields["dimensions"] = 1536  # the org's value: adopted, nothing deleted
    (op,) = [o for o in plan(want, live).changes if o.ref == ref]
    assert op.action == OpType.ADOPT and [r.method for r in op.requests] == ["PUT"]


def test_prompt_and_split_change_in_one_put() -> None:
    want = desired()
    live = live_copy(want)
    want["Prompt/support-agent"].fields["topP"] = 0.5
    want["TrafficSplit/support-agent"].fields["strategy"] = "sticky"
    p = plan(want, live)
    (op,) = p.changes
    assert op.covers == ("Prompt/support-agent", "TrafficSplit/support-agent")
    body = op.requests[0].body
    assert body is not None
    assert set(body) == {"topP", "trafficDistribution"}
    assert body["trafficDistribution"]["splitStrategy"] == "sticky"


def test_prune_deletes_only_labelled_objects_in_reverse() -> None:
    want = desired()
    live = live_copy(want)
    extra = {k: v for k, v in want.items() if "support-ticket-classifier" in k or "triage" in k}
    for ref in extra:
        del want[ref]
    no_prune = plan(want, live)
    assert no_prune.changes == []
    assert set(no_prune.orphaned) == {r for r in extra if not r.startswith("TrafficSplit")}
    p = plan(want, live, prune=True)
    assert summary(p) == [
        ("delete", "Prompt/ticket-triage", Phase.DELETE_PROMPTS),
        ("delete", "PromptVersion/support-ticket-classifier@1.0.0", Phase.DELETE_VERSIONS),
        ("delete", "PromptTemplate/support-ticket-classifier", Phase.DELETE_TEMPLATES),
    ]
    assert all(o.destructive for o in p.changes)
    unlabelled = live_copy(desired(), managed=False)
    p2 = plan(want, unlabelled, prune=True)
    assert p2.counts()["delete"] == 0
    assert "PromptTemplate/support-ticket-classifier" in p2.unmanaged


def test_an_index_is_deleted_in_the_last_wave_with_the_templates() -> None:
    """The bug the redesign fixed: index deletes ran in the first wave, before anything else
    of the run was tried; a delete is the last thing a run does, whatever the kind."""
    want = desired()
    live = live_copy(want)
    index_ref = next(r for r in want if r.startswith("VectorIndex/"))
    orphans = [index_ref, "Prompt/ticket-triage", "TrafficSplit/ticket-triage"]
    orphans += ["PromptVersion/support-ticket-classifier@1.0.0"]
    orphans += ["PromptTemplate/support-ticket-classifier"]
    for ref in orphans:
        want.pop(ref, None)
    want["Prompt/support-agent"].fields["temperature"] = 0.9  # and one update in the run
    p = plan(want, live, prune=True)
    waves = [[o.ref for o in wave] for wave in p.waves()]
    assert waves[0] == ["Prompt/support-agent"]  # the update first, deletes after
    assert waves[-1] == ["PromptTemplate/support-ticket-classifier", index_ref]
    index_op = next(o for o in p.changes if o.ref == index_ref)
    assert index_op.phase == Phase.DELETE_TEMPLATES > Phase.DELETE_PROMPTS


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda w: w["Prompt/support-agent"].fields.update(model="gpt-x"),
            "model gpt-x is not in the org's model list",
        ),
        (
            lambda w: w["Prompt/ticket-triage"].fields.update(fallbackModels=["nope"]),
            "fallback model nope is not in the org's model list",
        ),
        (
            lambda w: w["Prompt/ticket-triage"].fields.update(maxTokens=9000),
            "9000 exceeds the model's maxOutputTokens 4096",
        ),
        (
            lambda w: w.pop("PromptTemplate/escalation-routing"),
            "PromptTemplate escalation-routing is neither in the manifests nor in the org",
        ),
    ],
)
def test_org_checks(change: Any, message: str) -> None:
    want = desired()
    change(want)
    with pytest.raises(PlanError, match=message):
        plan(want, LiveState(models=dict(MODELS), stores={STORE}))


def test_ignored_field_is_hidden_and_kept() -> None:
    want = desired()

    def edit(kind: str, key: str, raw: dict[str, Any]) -> None:
        if kind == "Prompt" and key == "support-agent":
            raw["temperature"] = 0.9
            raw["topP"] = 0.1

    live = live_copy(want, edit=edit)
    p = plan(want, live, ignores={"Prompt/support-agent": ["temperature"]})
    (op,) = p.changes
    assert [d.path for d in op.diff] == ["topP"]
    assert op.requests[0].body == {"topP": 0.95}


# The planner's table: one row per (kind, what differs) -> the operations it must plan. A row
# edits the desired state (``want``), the live record (``live``, raw as the server sends it) or
# drops a live object (``gone``); the expected column lists (action, ref) in plan order.
IDX = f"VectorIndex/{STORE}/prod-embedding-index-v2"


def _set(ref: str, **fields: Any) -> Any:
    return lambda w: w[ref].fields.update(fields)


def _raw(kind: str, key: str, **fields: Any) -> Any:
    def edit(k: str, name: str, raw: dict[str, Any]) -> None:
        if (k, name) == (kind, key):
            raw.update(fields)

    return edit


TABLE: list[tuple[str, Any, Any, tuple[str, ...], list[tuple[str, str]]]] = [
    ("nothing differs", None, None, (), []),
    (
        "a field the server added and llmgw does not know",
        None,
        _raw("PromptTemplate", "support-ticket-classifier", maxTokens=17, createdBy="x"),
        (),
        [],
    ),
    (
        "template text",
        _set("PromptTemplate/escalation-routing", description="Routes escalations."),
        None,
        (),
        [("update", "PromptTemplate/escalation-routing")],
    ),
    (
        "template changed out of band",
        None,
        _raw("PromptTemplate", "support-ticket-classifier", max_tokens=17),
        (),
        [("update", "PromptTemplate/support-ticket-classifier")],
    ),
    (
        "template gone from the org",
        None,
        None,
        ("PromptTemplate/support-ticket-classifier",),
        [("create", "PromptTemplate/support-ticket-classifier")],
    ),
    (
        "version gone from the org",
        None,
        None,
        ("PromptVersion/escalation-routing@2.0.0",),
        [("create", "PromptVersion/escalation-routing@2.0.0")],
    ),
    (
        "prompt gone: its split is in the same create",
        None,
        None,
        ("Prompt/support-agent", "TrafficSplit/support-agent"),
        [("create", "Prompt/support-agent")],
    ),
    (
        "prompt model",
        _set("Prompt/ticket-triage", model="model-fallback-3", maxTokens=1000),
        None,
        (),
        [("update", "Prompt/ticket-triage")],
    ),
    (
        "split weights",
        _set("TrafficSplit/support-agent", versions={"2.0.0": 0.5, "2.1.0": 0.5}),
        None,
        (),
        [("update", "TrafficSplit/support-agent")],
    ),
    (
        "index mutable field",
        _set(IDX, autoIngest=False),
        None,
        (),
        [("update", IDX)],
    ),
    (
        "index gone from the org",
        None,
        None,
        (IDX,),
        [("create", IDX)],
    ),
    (
        "label lost out of band: adopted back",
        None,
        _raw("PromptTemplate", "escalation-routing", labels={}),
        (),
        [("adopt", "PromptTemplate/escalation-routing")],
    ),
    (
        "two kinds at once, in phase order",
        _set("Prompt/ticket-triage", temperature=0.7),
        _raw("PromptTemplate", "support-ticket-classifier", description="edited"),
        (),
        [
            ("update", "PromptTemplate/support-ticket-classifier"),
            ("update", "Prompt/ticket-triage"),
        ],
    ),
]


@pytest.mark.parametrize(
    ("case", "want_edit", "live_edit", "gone", "expected"), TABLE, ids=[row[0] for row in TABLE]
)
def test_planner_table(
    case: str,
    want_edit: Any,
    live_edit: Any,
    gone: tuple[str, ...],
    expected: list[tuple[str, str]],
) -> None:
    want = desired()
    live = live_copy(desired(), edit=live_edit)
    for ref in gone:
        del live.objects[ref]
    if want_edit is not None:
        want_edit(want)
    p = plan(want, live)
    assert [(o.action.value, o.ref) for o in p.changes] == expected
    phases = [o.phase for o in p.changes]
    assert phases == sorted(phases)
    for op in p.changes:
        assert op.requests, f"{case}: {op.ref} plans no request"
    # a plan is idempotent: the same inputs plan the same operations
    assert [(o.action, o.ref, o.requests) for o in plan(want, live).changes] == [
        (o.action, o.ref, o.requests) for o in p.changes
    ]
