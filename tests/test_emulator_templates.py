"""Prompt templates (seed 002) through the emulator's API (``state/templates.py``).

Covers: defaults and server-managed fields (ignored on write), validation limits (exclusive and
inclusive ends), placeholders declared in ``variables``, replace with ``If-Match: version=N``
(and its other forms) and 412 when stale, a replace not a merge, unique names (409
name.exists), a rename by PUT (the id, the versions and the binding prompt's templateId kept;
409 name.exists when the new name is taken, the old name free again), a listing never stale,
and delete refused while a gateway prompt binds the
template (409 template.bound), its versions going with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.emulator_api import (
    URL,
    Api,
    P,
    T,
    V,
    assert_error,
    template,
)


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    a = Api()
    yield a
    await a.http.aclose()


async def test_template_defaults_and_server_managed_fields(api: Api) -> None:
    r = await api(
        "POST",
        T,
        json=template(id="ignored", version=99, dateCreated="x", selfUri="y", description=None),
    )
    assert r.status_code == 201
    t = r.json()
    assert t["id"] != "ignored" and t["version"] == 1 and t["max_tokens"] == 4096
    assert t["safety_guardrails"] == {
        "pii_filter": True,
        "jailbreak_detection": True,
        "output_moderation": True,
    }
    assert "description" not in t and "system_instruction" not in t and t["labels"] == {}
    assert t["selfUri"] == f"{URL}{T}/{t['id']}" and t["dateCreated"] == t["dateModified"]
    assert (await api("GET", f"{T}/{t['id']}")).json() == t
    partial = await api.template("partial-guards", safety_guardrails={"pii_filter": False})
    assert partial["safety_guardrails"]["pii_filter"] is False
    assert partial["safety_guardrails"]["output_moderation"] is True


@pytest.mark.parametrize(
    "change",
    [
        {"name": "ab"},
        {"name": "x" * 129},
        {"max_tokens": 255},
        {"max_tokens": 128001},
        {"max_tokens": "4096"},
        {"safety_guardrails": {"pii_filter": "yes"}},
        {"safety_guardrails": {"toxicity": True}},
        {"user_template": "Hi {{who}}", "variables": []},
        {"variables": "m"},
        {"surprise": 1},
    ],
)
async def test_template_validation(api: Api, change: dict[str, Any]) -> None:
    body = assert_error(
        await api("POST", T, json={**template(), **change}), 400, "validation.failed"
    )
    assert body["details"]


async def test_template_limits_are_inclusive(api: Api) -> None:
    await api.template("abc", max_tokens=256)
    await api.template("x" * 128, max_tokens=128000)


async def test_template_replace_with_if_match_and_conflicts(api: Api) -> None:
    t = await api.template()
    other = await api.template("other-template")
    url = f"{T}/{t['id']}"
    assert (await api("GET", T)).json()["entities"][1] == t
    r = await api("PUT", url, json=template(description="d"), headers={"If-Match": "version=1"})
    assert r.status_code == 200 and r.json()["version"] == 2 and r.json()["description"] == "d"
    assert r.json()["dateCreated"] == t["dateCreated"]
    assert (await api("GET", T)).json()["entities"][1] == r.json()  # never a stale page
    body = assert_error(
        await api("PUT", url, json=template(), headers={"If-Match": "version=1"}),
        412,
        "precondition.failed",
    )
    assert "version 2" in body["message"]
    r = await api("PUT", url, json=template(), headers={"If-Match": "2"})
    assert r.status_code == 200 and "description" not in r.json()  # a replace, not a merge
    assert (await api("PUT", url, json=template())).json()["version"] == 4
    assert_error(await api("PUT", url, json=template(other["name"])), 409, "name.exists")
    assert_error(await api("PUT", f"{T}/nope", json=template()), 404, "not.found")


async def test_template_tag_forms_name_the_version(api: Api) -> None:
    t = await api.template()
    url = f"{T}/{t['id']}"
    for n, form in enumerate(("1", "version=2", 'W/"version=3"', '"version=2", "4"'), start=1):
        r = await api("PUT", url, json=template(), headers={"If-Match": form})
        assert r.status_code == 200 and r.json()["version"] == n + 1, (form, r.text)
    body = assert_error(
        await api("DELETE", url, headers={"If-Match": "version=4"}), 412, "precondition.failed"
    )
    assert "version=5" in body["message"]


async def test_template_delete_refused_while_bound(api: Api) -> None:
    t = await api.template()
    await api.version(t["id"], "1.0.0")
    p = await api.prompt(t["id"])
    body = assert_error(await api("DELETE", f"{T}/{t['id']}"), 409, "template.bound")
    assert "support-agent" in body["message"]
    assert (await api("DELETE", f"{P}/{p['id']}")).status_code == 204
    r = await api("DELETE", f"{T}/{t['id']}")
    assert r.status_code == 204 and r.content == b""
    assert_error(await api("GET", f"{T}/{t['id']}"), 404, "not.found")
    assert_error(await api("GET", V(t["id"])), 404, "not.found")


async def test_template_rename_by_put_keeps_the_id_versions_and_binding(api: Api) -> None:
    t = await api.template("old-template-name")
    taken = await api.template("taken-template-name")
    await api.version(t["id"], "1.0.0")
    p = await api.prompt(t["id"])
    url = f"{T}/{t['id']}"
    assert_error(await api("PUT", url, json=template(taken["name"])), 409, "name.exists")
    r = await api("PUT", url, json=template("new-template-name"), headers={"If-Match": "version=1"})
    assert r.status_code == 200 and r.json()["id"] == t["id"] and r.json()["version"] == 2
    names = [e["name"] for e in (await api("GET", T)).json()["entities"]]
    assert sorted(names) == ["new-template-name", "taken-template-name"]
    assert [v["version"] for v in (await api("GET", V(t["id"]))).json()["entities"]] == ["1.0.0"]
    assert (await api("GET", f"{P}/{p['id']}")).json()["templateId"] == t["id"]
    again = await api.template("old-template-name")  # the old name is free again
    assert again["id"] != t["id"]
