"""Round trip of every kind of the registry (hypothesis): desired -> request bodies -> the
gateway -> live objects -> normal form equals desired, with no diff.

Documents are the example manifests' (every registered kind must have one there, so a new kind
is covered by adding its example), with their values pushed around within their JSON Schema:
numbers and integers anywhere in their range, booleans, enumerations, and text grown with
characters that JSON, YAML and the gateway could treat specially. Each org that validates is
planned against an empty org, its requests are sent to the emulator's state machine, the org
is read back through the kinds' own readers, and the plan must then be nothing but no-ops, each
desired object equal to its live normal form; and that org exported, loaded and validated again
(no error) must plan as nothing too: export -> validate -> plan is "No changes" (it found YAML
1.1 line breaks, NEL, U+2028 and U+2029, written raw by the export and read back otherwise).
Bounded and derandomized: a few seconds.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from reconciler import kinds
from reconciler.defaults import load_schema_file
from reconciler.diffing import diff
from reconciler.emulator.app import Call, match
from reconciler.emulator.state import MODELS, STORES, ApiError, Gateway
from reconciler.endpoints import PAGING
from reconciler.errors import PlanError
from reconciler.executor import concrete_path, resolve
from reconciler.export import render
from reconciler.live import read_live
from reconciler.loader import load_text
from reconciler.normalize import desired_state
from reconciler.objects import LiveState
from reconciler.operations import OpType
from reconciler.planner import plan
from reconciler.validate import check_documents

REPO = Path(__file__).resolve().parent.parent
# references and identities: changing them makes another org, not another value
FROZEN = {"template", "prompt", "version", "vectorStore", "variables", "versions", "model"}
FROZEN |= {"fallbackModels", "defaultVersion", "contentFiltering", "blockedCategories"}
GROWTH = st.text(alphabet="é 日\t\"'\\:#&*{}[]|>%@!\u00a0\u200b\u2028", max_size=12)


def _examples() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((REPO / "manifests").rglob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


EXAMPLES = _examples()


def test_every_kind_has_an_example() -> None:
    assert {d["kind"] for d in EXAMPLES} == set(kinds.KINDS)


def _leaf_schema(schema: dict[str, Any], path: list[Any]) -> dict[str, Any]:
    node = schema["properties"]["spec"]
    for part in path:
        if isinstance(part, int):
            node = node.get("items", {})
        else:
            node = node.get("properties", {}).get(part) or (
                node.get("additionalProperties")
                if isinstance(node.get("additionalProperties"), dict)
                else {}
            )
    return node


@st.composite
def _value(draw: st.DrawFn, leaf: Any, sub: dict[str, Any]) -> Any:
    if "enum" in sub:
        return draw(st.sampled_from(sub["enum"]))
    kind = sub.get("type")
    if isinstance(leaf, bool) or kind == "boolean":
        return draw(st.booleans())
    if kind == "integer":
        lo, hi = sub.get("minimum", 0), min(sub.get("maximum", 10**6), 10**6)
        return draw(st.integers(lo, hi))
    if kind == "number":
        lo, hi = sub.get("minimum", 0.0), sub.get("maximum", 1000.0)
        return draw(st.floats(lo, hi, allow_nan=False, allow_infinity=False))
    if isinstance(leaf, str) and "pattern" not in sub and "format" not in sub:
        return leaf + draw(GROWTH)
    return leaf


@st.composite
def _mutated(draw: st.DrawFn, doc: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    schema = load_schema_file(kinds.resource(doc["kind"]).schema_file)

    def walk(value: Any, path: list[Any]) -> Any:
        if path and path[-1] in FROZEN:
            return value
        if isinstance(value, dict):
            return {k: walk(v, [*path, k]) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, [*path, i]) for i, v in enumerate(value)]
        if draw(st.booleans()):
            return draw(_value(value, _leaf_schema(schema, path)))
        return value

    doc["spec"] = walk(doc["spec"], [])
    return doc


ORGS = st.tuples(*(_mutated(d) for d in EXAMPLES)).map(list)


class _Reader:
    """The kinds' reader over the emulator's state machine, without HTTP."""

    window = 4

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def list(self, path: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        number = 1
        while True:
            query = {PAGING.page_size: "100", PAGING.page_number: str(number)}
            body = _call(self.gateway, "GET", path, None, {}, query).body
            out.extend(json.loads(json.dumps(body[PAGING.entities])))
            if number >= body[PAGING.page_count]:
                return out
            number += 1


def _call(
    gateway: Gateway,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
    query: dict[str, str] | None = None,
) -> Any:
    endpoint, params, _ = match(method, path)
    assert endpoint is not None, (method, path)
    call = Call(
        params=params,
        query=query or {},
        body=json.loads(json.dumps(body)) if body is not None else None,
        headers={k.lower(): v for k, v in headers.items()},
        base="http://127.0.0.1:8787",
    )
    return endpoint.handler(gateway, call)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(ORGS)
async def test_desired_survives_the_gateway_unchanged(docs: list[dict[str, Any]]) -> None:
    text = "---\n".join(yaml.safe_dump(d, allow_unicode=True, sort_keys=False) for d in docs)
    loaded, problems = load_text(text, "org.yaml")
    assume(not problems)
    assume(not [p for p in check_documents(loaded) if p.severity == "error"])
    desired = desired_state(loaded)
    empty = LiveState(models={m["id"]: dict(m) for m in MODELS}, stores={s["id"] for s in STORES})
    gateway = Gateway(now=lambda: 1.0e9, ingest_delay=0.0, seed=1)
    ids: dict[str, str] = {}
    try:
        first = plan(desired, empty)
    except PlanError:  # an org-only check (a model's output limit): not a valid org here
        assume(False)
        raise
    for wave in first.waves():
        for op in wave:
            for req in op.requests:
                try:
                    answer = _call(
                        gateway,
                        req.method,
                        concrete_path(req, ids),
                        resolve(req.body, ids),
                        dict(req.headers),
                    )
                except ApiError as exc:  # the property test holds validate and gateway alike
                    pytest.fail(f"the gateway refused a validated org: {exc.message}")
                body = answer.body if isinstance(answer.body, dict) else {}
                ids.update(kinds.resource(op.kind).record(op, body, None).ids)
    live = await read_live(_Reader(gateway), desired.values())
    again = plan(desired, live)
    assert [o for o in again.operations if o.action != OpType.NOOP] == []
    for ref, want in desired.items():
        have = live.get(ref)
        assert have is not None, ref
        assert diff(have.fields, want.fields) == (), ref
    covered = {o.kind for o in again.operations}
    assert covered == set(kinds.KINDS)
    # exported, the org validates and plans as nothing: export -> validate -> plan is clean
    exported_docs = []
    for f in render(live):
        docs, problems = load_text(f.text, f.path)
        assert not problems, [str(p) for p in problems]
        exported_docs.extend(docs)
    errors = [str(p) for p in check_documents(exported_docs) if p.severity == "error"]
    assert not errors, errors
    changes = plan(desired_state(exported_docs), live).changes
    assert changes == [], [(o.ref, o.diff) for o in changes]
