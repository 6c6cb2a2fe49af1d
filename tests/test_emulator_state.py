"""What the emulator's sections share (``state/org.py``, ``common.py``, ``persistence.py``),
through its API and on the ``Gateway`` itself.

Covers: the seeded org (the models, one vector store, nothing else), page-number paging on
every list, ``If-Match`` forms read the same way for every kind (seed reconciliation), snapshot
and restore round trips (through the admin endpoint and on a ``Gateway``, garbage refused), the
data a restore swaps in being everything a reset sets (``Org.DATA``), and the invariant that a
stored object is never edited in place (a seeded walk over every handler, each object answered
compared with its copy afterwards).
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from reconciler.emulator.state import STORE_ID, Answer, Gateway
from reconciler.emulator.state.org import Org
from reconciler.endpoints import PAGING, PATHS
from tests.emulator_api import (
    IDX,
    INDEX,
    URL,
    Api,
    P,
    T,
    assert_error,
    prompt,
    template,
    version,
)


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    a = Api()
    yield a
    await a.http.aclose()


async def test_seeded_models_and_store_and_nothing_else(api: Api) -> None:
    models = (await api("GET", PATHS.models)).json()["entities"]
    assert {(m["id"], m["contextWindow"], m["maxOutputTokens"]) for m in models} == {
        ("anthropic/claude-3-sonnet", 200000, 4096),
        ("model-gen-4", 128000, 4096),
        ("model-fallback-3", 16000, 2048),
    }
    assert all(m["provider"] for m in models)
    stores = (await api("GET", PATHS.vector_stores)).json()["entities"]
    assert [s["id"] for s in stores] == [STORE_ID] and stores[0]["name"]
    for path in (T, P, IDX):
        assert (await api("GET", path)).json()["total"] == 0


async def test_page_number_paging(api: Api) -> None:
    for i in range(30):
        await api.template(f"template-{i:02d}")
    first = (await api("GET", T)).json()
    assert (first["pageSize"], first["pageNumber"], first["total"]) == (25, 1, 30)
    assert len(first["entities"]) == 25 and first["pageCount"] == first["numPages"] == 2
    second = (await api("GET", T, params={"pageSize": 25, "pageNumber": 2})).json()
    assert len(second["entities"]) == 5
    names = [t["name"] for t in first["entities"] + second["entities"]]
    assert names == sorted(names) and len(set(names)) == 30
    whole = second["entities"][0]
    assert (await api("GET", f"{T}/{whole['id']}")).json() == whole
    assert (await api("GET", T, params={"pageNumber": 3})).json()["entities"] == []
    assert len((await api("GET", T, params={"pageSize": 100})).json()["entities"]) == 30
    for bad in ({"pageSize": 101}, {"pageSize": 0}, {"pageNumber": 0}, {"pageSize": "x"}):
        assert_error(await api("GET", T, params=bad), 400, "validation.failed")
    models = (await api("GET", PATHS.models, params={"pageSize": 2, "pageNumber": 2})).json()
    assert len(models["entities"]) == 1 and models["pageCount"] == 2


async def _kinds(api: Api) -> dict[str, tuple[str, str, dict[str, Any], str, int]]:
    """One object of each kind: (path, current tag, body of a no-op write, stale tag, status)."""
    t = await api.template()
    p = await api.prompt(t["id"])
    idx = (await api("PUT", f"{IDX}/i", json=INDEX)).json()
    return {
        "template": (f"{T}/{t['id']}", "version=1", template(), "version=9", 412),
        "prompt": (f"{P}/{p['id']}", p["etag"].strip('"'), {}, "0" * 20, 412),
        "index": (f"{IDX}/i", idx["etag"].strip('"'), INDEX, "0" * 20, 409),
    }


@pytest.mark.parametrize("kind", ["template", "prompt", "index"])
@pytest.mark.parametrize(
    "form",
    ['"{tag}"', 'W/"{tag}"', "w/{tag}", '"{stale}", W/"{tag}"', "*", ' "{stale}" ,"{tag}" '],
)
async def test_if_match_forms_are_read_the_same_for_every_kind(
    api: Api, kind: str, form: str
) -> None:
    path, tag, body, stale, refused = (await _kinds(api))[kind]
    r = await api("PUT", path, json=body, headers={"If-Match": form.format(tag=tag, stale=stale)})
    assert r.status_code == 200, r.text
    for bad in (f'"{stale}"', f'W/"{stale}", "{stale}x"', "", ","):
        r = await api("PUT", path, json=body, headers={"If-Match": bad})
        assert_error(r, refused, "precondition.failed")


async def test_snapshot_and_restore_round_trip(api: Api) -> None:
    t = await api.template()
    await api.version(t["id"], "1.0.0")
    p = await api.prompt(t["id"], trafficDistribution={"defaultVersion": "1.0.0"})
    await api("PUT", f"{IDX}/i", json={**INDEX, "autoIngestTrigger": True})
    snap = json.loads(json.dumps(api.app.gateway.snapshot()))
    await api("PUT", f"{P}/{p['id']}", json={"temperature": 0.1})  # later changes don't leak
    assert snap["prompts"][p["id"]]["temperature"] == 0.7
    b = Api()
    b.clock.t = api.clock.t
    r = await b.http.put("/__emulator/state", json=snap)
    assert r.status_code == 200
    assert (await b("GET", f"{P}/{p['id']}")).json() == p
    r = await b("PUT", f"{T}/{t['id']}", json=template(), headers={"If-Match": "version=1"})
    assert r.json()["version"] == 2
    assert (await b("GET", f"{IDX}/i")).json()["status"] == "PROCESSING"
    b.clock.t += 5
    assert (await b("GET", f"{IDX}/i")).json()["status"] == "ACTIVE"
    g = Gateway(now=lambda: 1.0)
    g.restore(snap)
    assert g.snapshot() == snap
    for garbage in ([], {"format": 9}, {"templates": [1, 2]}):
        with pytest.raises(ValueError):
            g.restore(garbage)  # type: ignore[arg-type]


def test_a_restore_swaps_in_everything_a_reset_sets() -> None:
    """``Org.adopt`` takes the fields ``Org.DATA`` lists: a field ``reset`` gains must be there
    too, or a restored org would keep a piece of the one it replaced."""
    org = Org(now=lambda: 1.0)
    # settings, and the clock's offset (a restore takes it only forward: Gateway.restore)
    kept = {"base_now", "clock_offset", "ingest_delay", "seed", "max_rows"}
    assert set(vars(org)) == set(Org.DATA) | kept
    g = Gateway(now=lambda: 1.0)
    assert set(vars(g)) == set(Org.DATA) | kept | {"sections"}
    assert all(section.org is g for section in g.sections)
    g.failing_models = {"model-gen-4"}
    g.create_template(template(), URL + T)
    g.restore(Gateway(now=lambda: 1.0).snapshot())
    assert g.templates == {} and g.failing_models == set()
    assert all(section.org is g for section in g.sections)  # the sections still see this org


def _stored_objects(answer: Answer) -> list[dict[str, Any]]:
    """The stored objects an answer hands out: its body, or a page's entities."""
    body = answer.body
    if not isinstance(body, dict):
        return []
    entities = body.get(PAGING.entities)
    return list(entities) if isinstance(entities, list) else [body]


def test_a_stored_object_is_never_edited_in_place() -> None:
    """The invariant in ``state/org.py`` that lets the HTTP layer cache an object's JSON by
    identity: every object any handler answered still equals what it was when answered, after
    every kind of change (replace, merge-PUT, patch, withdrawal, ingest settling, restore)."""
    clock = [1.0e9]
    g = Gateway(now=lambda: clock[0], ingest_delay=5.0, seed=3)
    seen: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def keep(answer: Answer) -> Answer:
        seen.extend((obj, copy.deepcopy(obj)) for obj in _stored_objects(answer))
        return answer

    tid = keep(g.create_template(template(), URL + T)).body["id"]
    keep(g.replace_template(tid, template(description="d"), "version=1"))
    for v in ("1.0.0", "1.1.0", "2.0.0"):
        keep(g.create_version(tid, version(v)))
    keep(g.list_versions(tid, {}))
    split = {"versions": [{"version": "1.0.0", "weight": 0.5}, {"version": "1.1.0", "weight": 0.5}]}
    p = keep(g.create_prompt(prompt(tid, trafficDistribution=split), URL + P)).body
    keep(g.list_prompts({}))
    keep(g.update_prompt(p["id"], {"temperature": 0.1, "fallbackModels": None}, p["etag"]))
    keep(g.patch_version(tid, "2.0.0", {"rollbackDirective": True, "labels": {"a": "b"}}))
    keep(g.patch_version(tid, "2.0.0", {"rollbackDirective": False, "metadata": None}))
    keep(g.put_index(STORE_ID, "i", {**INDEX, "autoIngestTrigger": True}, None, "*"))
    keep(g.list_indexes(STORE_ID, {}))
    clock[0] += 10  # the index settles to ACTIVE: stored anew
    keep(g.get_index(STORE_ID, "i"))
    keep(g.put_index(STORE_ID, "i", {**INDEX, "labels": {"x": "y"}}, None, None))
    for session in ("a", "b", "c"):
        keep(g.invoke({"promptId": p["id"], "userInput": "hi", "sessionId": session}))
    keep(g.telemetry_page({}))
    keep(g.audit_log({"action": "update", "details": {"n": "1"}}))
    keep(g.list_templates({}))
    g.restore(g.snapshot())
    keep(g.get_prompt(p["id"]))
    keep(g.update_prompt(p["id"], {"trafficDistribution": {"defaultVersion": "1.1.0"}}, None))
    g.delete_version(tid, "1.0.0")
    g.delete_prompt(p["id"])
    g.delete_template(tid)
    g.delete_index(STORE_ID, "i")
    assert len(seen) > 20
    for obj, was in seen:
        assert obj == was
