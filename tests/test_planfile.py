"""Saved plans as files, and the comparison of a file against its derivation (pure parts).

Covers: a plan round-trips through dump and load, keeping the file's operations as written;
every string is redacted on the way out and a field is masked by name only when the name says
credential (clientSecret, api_key, token; not maxTokens); ``compare`` finds nothing for the
file of the same plan, and names a changed method, a changed body field, a number written as
another type (0 for 0.0), an extra key, a dropped or added request, an added, dropped, reordered
or re-identified operation, each with the operation's number; the list is capped with a count
of the rest. ``stale_reasons`` names each object created, deleted or changed (its precondition;
a split's is its prompt's) since the plan; ``moved_since`` an ignore entry that expired after the
plan was made and an object labelled since.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import pytest

from reconciler import planfile
from reconciler import redact as redact_mod
from reconciler.endpoints import PATHS
from reconciler.ignores import Entry
from reconciler.objects import LiveState, Obj, Ref
from reconciler.planner import Operation, OpType, Plan, Request


def _ops() -> tuple[Operation, ...]:
    return (
        Operation(
            OpType.CREATE,
            "PromptTemplate",
            "t",
            "not in the org",
            0,
            requests=(Request("POST", PATHS.templates, body={"name": "t", "max_tokens": 4096}),),
        ),
        Operation(
            OpType.UPDATE,
            "Prompt",
            "p",
            "differs",
            2,
            requests=(
                Request(
                    "PUT",
                    PATHS.prompt,
                    {"promptId": "pid"},
                    {"temperature": 0.0, "templateId": Ref("PromptTemplate", "t")},
                    {"If-Match": '"e1"'},
                    "if-match",
                ),
            ),
            observed='"e1"',
            remote_id="pid",
        ),
        Operation(OpType.NOOP, "Prompt", "q", "live matches", 2, observed='"e9"'),
    )


def _file(tmp_path: Any) -> tuple[planfile.SavedPlan, list[dict[str, Any]]]:
    saved = planfile.SavedPlan(Plan(_ops()), "http://127.0.0.1:8787", ("m/",), "sha256:x")
    path = tmp_path / "plan.json"
    planfile.save(saved, str(path))
    return planfile.load(str(path)), json.loads(path.read_text())["operations"]


def test_round_trip_keeps_the_file_as_written(tmp_path: Any) -> None:
    loaded, raw = _file(tmp_path)
    assert [o.ref for o in loaded.plan.operations] == ["PromptTemplate/t", "Prompt/p", "Prompt/q"]
    assert list(loaded.raw_operations) == raw
    assert loaded.plan.operations[1].requests[0].body == {
        "temperature": 0.0,
        "templateId": Ref("PromptTemplate", "t"),
    }
    assert planfile.compare(loaded.raw_operations, _ops()) == ([], 0)


def test_redaction_and_credential_fields() -> None:
    redact_mod.register("hunter2-hunter2")
    try:
        value = {
            "systemPrompt": "say hunter2-hunter2 and Bearer abcdefghijklmnopqrstuvwxyz",
            "maxTokens": 256,
            "clientSecret": "x",
            "api_key": "y",
            "token": "z",
            "guard": {"maxTokens": 10, "webhookSyncUrl": "https://h.example/x?sig=abc"},
        }
        out = redact_mod.scrub(value)
    finally:
        redact_mod.REDACTOR.reset()
    assert out["systemPrompt"] == "say *** and Bearer ***"
    assert out["maxTokens"] == 256 and out["guard"]["maxTokens"] == 10
    assert out["clientSecret"] == out["api_key"] == out["token"] == "***"
    assert out["guard"]["webhookSyncUrl"] == "https://h.example/x?***"


def _edit(raw: list[dict[str, Any]], how: str) -> list[dict[str, Any]]:
    raw = json.loads(json.dumps(raw))
    put = raw[1]["requests"][0]
    if how == "method":
        put["method"] = "DELETE"
    elif how == "body":
        put["body"]["temperature"] = 1.5
    elif how == "type":
        put["body"]["temperature"] = 0
    elif how == "extra-key":
        put["timeout"] = 1
    elif how == "request-dropped":
        raw[1]["requests"] = []
    elif how == "operation-added":
        raw.append({**raw[1], "identity": "r"})
    elif how == "operation-dropped":
        del raw[0]
    elif how == "reordered":
        raw[0], raw[1] = raw[1], raw[0]
    elif how == "renamed":
        raw[1]["identity"] = "other"
    elif how == "action":
        raw[1]["action"] = "delete"
    return raw


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("method", "operation 2 (Prompt/p): the plan file says DELETE " + PATHS.prompt),
        ("body", "operation 2 (Prompt/p) body.temperature: the plan file says 1.5; the"),
        ("type", "body.temperature: the plan file says 0; the manifests and the org give 0.0"),
        ("extra-key", "timeout: the plan file says 1; the manifests and the org give nothing"),
        ("request-dropped", "the plan file says 0 request(s) (none); the manifests and the"),
        ("operation-added", "operation 4 (update Prompt/r): the manifests and the org give no"),
        ("operation-dropped", "give operation 1 (create PromptTemplate/t), which the plan file"),
        ("reordered", "operation 1: the plan file has update Prompt/p there"),
        ("renamed", "operation 2 (update Prompt/other): the manifests and the org give no such"),
        ("action", "operation 2 (Prompt/p): the plan file says delete; the manifests and the org"),
    ],
)
def test_compare_names_each_difference(tmp_path: Any, how: str, expected: str) -> None:
    _, raw = _file(tmp_path)
    differences, _more = planfile.compare(_edit(raw, how), _ops())
    assert differences and expected in differences[0], differences


def test_compare_caps_the_list(tmp_path: Any) -> None:
    _, raw = _file(tmp_path)
    for op in raw:
        op["reason"] = "edited"
        op["phase"] = 9
    differences, more = planfile.compare(raw, _ops(), limit=2)
    assert len(differences) == 2 and more == 4


def _live(*objs: Obj) -> LiveState:
    return LiveState(objects={o.ref: o for o in objs})


def test_stale_reasons_name_every_object_that_moved() -> None:
    ops = (
        Operation(OpType.CREATE, "PromptTemplate", "new", "not in the org", 0),
        Operation(OpType.UPDATE, "Prompt", "p", "differs", 2, observed='"e1"'),
        Operation(OpType.NOOP, "PromptTemplate", "t", "same", 0, observed=3),
        Operation(OpType.UPDATE, "Prompt", "gone", "differs", 2, observed='"e1"'),
        # a split lives in its prompt: its precondition is the prompt's
        Operation(OpType.UPDATE, "TrafficSplit", "q", "differs", 2, observed='"e5"'),
    )
    live = _live(
        Obj("PromptTemplate", "new", {}),
        Obj("Prompt", "p", {}, precondition='"e2"'),
        Obj("PromptTemplate", "t", {}, precondition=3),
        Obj("Prompt", "q", {}, precondition='"e5"'),
    )
    assert planfile.stale_reasons(Plan(ops), live) == [
        "PromptTemplate/new: created in the org since the plan",
        'Prompt/p: changed in the org since the plan (ETag "e1" -> "e2")',
        "Prompt/gone: deleted from the org since the plan",
    ]
    moved = _live(Obj("Prompt", "q", {}, precondition='"e6"'))
    (reason,) = planfile.stale_reasons(Plan(ops[4:]), moved)
    assert reason.startswith("TrafficSplit/q: changed in the org since the plan")


def test_moved_since_explains_by_the_calendar_and_the_org(tmp_path: Any) -> None:
    saved, _ = _file(tmp_path)
    saved = dataclasses.replace(saved, ignores_date="2026-11-01")
    late = Entry("Prompt/p", "temperature", "why", dt.date(2026, 11, 15), "i.yaml:3")
    early = Entry("Prompt/p", "topP", "why", dt.date(2026, 10, 1), "i.yaml:5")
    orphan = Operation(OpType.DELETE, "Prompt", "stray", "managed, in no manifest", 5)
    derived = Plan((*saved.plan.operations, orphan))
    reasons = planfile.moved_since(saved, derived, [late, early], dt.date(2026, 12, 1))
    assert reasons == [
        "ignore entry Prompt/p temperature expired on 2026-11-15, after the plan was made on "
        "2026-11-01: the field is compared again",
        "Prompt/stray: labelled managed-by: llmgw and in no manifest since the plan was made",
    ]
    assert planfile.moved_since(saved, saved.plan, [early], dt.date(2026, 12, 1)) == []
