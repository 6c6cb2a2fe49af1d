"""Gateway prompts and their traffic splits (seeds 003, 001) through the emulator's API
(``state/prompts.py``).

Covers: defaults, ``modelId`` folded into ``modelEndpointRef``, the ETag (header and body),
required fields, merge-PUT with ``If-Match`` (null resets to the default), delete with
``If-Match``, validation (models and their limits, guardrails, semver, the split's versions,
weights and strategy, unknown fields) changing nothing when refused, the split's weight
tolerance; a rename by merge-PUT (``name`` alone: the id, split and labels kept; 409
name.exists when taken); seed reconciliation (003): a prompt without a template splitting over
the release labels it has carried, which survive a snapshot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.emulator_api import (
    Api,
    P,
    assert_error,
    invoke,
    prompt,
)


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    a = Api()
    yield a
    await a.http.aclose()


async def test_prompt_create_defaults_alias_and_etag(api: Api) -> None:
    tid = (await api.template())["id"]
    body = prompt(tid)
    del body["modelEndpointRef"]
    r = await api("POST", P, json={**body, "modelId": "anthropic/claude-3-sonnet", "id": "x"})
    assert r.status_code == 201
    p = r.json()
    assert p["modelEndpointRef"] == "anthropic/claude-3-sonnet" and "modelId" not in p
    assert p["templateId"] == tid and p["id"] != "x" and p["status"]
    assert (p["temperature"], p["topP"], p["maxTokens"], p["fallbackModels"]) == (
        0.7,
        0.95,
        2048,
        [],
    )
    assert p["safetyGuardrails"] == {
        "contentFiltering": [],
        "maxTokens": 4096,
        "blockedCategories": [],
    }
    assert "version" not in p and "trafficDistribution" not in p and p["labels"] == {}
    assert r.headers["ETag"] == p["etag"]
    got = await api("GET", f"{P}/{p['id']}")
    assert got.json() == p and got.headers["ETag"] == p["etag"]
    listed = (await api("GET", P)).json()["entities"]
    assert listed == [p]
    assert_error(await api("POST", P, json=prompt(tid)), 409, "name.exists")


@pytest.mark.parametrize("missing", ["name", "modelEndpointRef", "systemPrompt"])
async def test_prompt_required_fields(api: Api, missing: str) -> None:
    tid = (await api.template())["id"]
    body = prompt(tid)
    del body[missing]
    assert (
        missing
        in assert_error(await api("POST", P, json=body), 400, "validation.failed")["message"]
    )


async def test_prompt_merge_put_if_match_and_delete(api: Api) -> None:
    tid = (await api.template())["id"]
    p = await api.prompt(tid, version="1.0.0", labels={"managed-by": "llmgw"})
    url = f"{P}/{p['id']}"
    r = await api("PUT", url, json={"temperature": 1.1}, headers={"If-Match": p["etag"]})
    assert r.status_code == 200
    q = r.json()
    assert q["temperature"] == 1.1 and q["systemPrompt"] == "You help." and q["version"] == "1.0.0"
    assert q["labels"] == {"managed-by": "llmgw"} and q["etag"] != p["etag"]
    assert r.headers["ETag"] == q["etag"]
    assert_error(
        await api("PUT", url, json={"temperature": 1.2}, headers={"If-Match": p["etag"]}),
        412,
        "precondition.failed",
    )
    r = await api("PUT", url, json={"systemPrompt": "You help more.", "version": "1.1.0"})
    assert r.json()["systemPrompt"] == "You help more." and r.json()["temperature"] == 1.1
    r = await api(
        "PUT", url, json={"temperature": None, "version": None, "modelId": "model-fallback-3"}
    )
    assert r.json()["temperature"] == 0.7 and "version" not in r.json()
    assert r.json()["modelEndpointRef"] == "model-fallback-3"
    assert_error(await api("PUT", f"{P}/nope", json={}), 404, "not.found")
    assert_error(
        await api("DELETE", url, headers={"If-Match": p["etag"]}), 412, "precondition.failed"
    )
    assert (await api("DELETE", url, headers={"If-Match": r.json()["etag"]})).status_code == 204
    assert_error(await api("GET", url), 404, "not.found")


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 2.5},
        {"temperature": -0.1},
        {"topP": 1.5},
        {"modelEndpointRef": "gpt-x"},
        {"fallbackModels": ["gpt-x"]},
        {"maxTokens": 4097},
        {"modelEndpointRef": "model-fallback-3", "maxTokens": 2049},
        {"systemPrompt": "x" * 8001},
        {
            "safetyGuardrails": {"maxTokens": 10, "contentFiltering": [], "blockedCategories": []},
            "systemPrompt": "y" * 44,
        },
        {"safetyGuardrails": {"contentFiltering": ["nsfw"]}},
        {"safetyGuardrails": {"blockedCategories": ["gossip"]}},
        {"version": "latest"},
        {"templateId": "no-such-template"},
        {"trafficDistribution": {"versions": [{"version": "1.0.0", "weight": 0.5}]}},
        {"trafficDistribution": {"versions": [{"version": "9.9.9", "weight": 1.0}]}},
        {"trafficDistribution": {"defaultVersion": "9.9.9"}},
        {
            "trafficDistribution": {
                "versions": [{"version": "1.0.0", "weight": 1}],
                "splitStrategy": "x",
            }
        },
        {"colour": "blue"},
    ],
)
async def test_prompt_validation(api: Api, change: dict[str, Any]) -> None:
    tid = (await api.template())["id"]
    await api.version(tid, "1.0.0")
    p = await api.prompt(tid)
    assert_error(await api("PUT", f"{P}/{p['id']}", json=change), 400, "validation.failed")
    assert (await api("GET", f"{P}/{p['id']}")).json() == p  # nothing changed


async def test_prompt_limits_and_split_tolerance(api: Api) -> None:
    tid = (await api.template())["id"]
    for n in ("1.0.0", "1.1.0"):
        await api.version(tid, n)
    p = await api.prompt(
        tid,
        systemPrompt="z" * 8000,
        safetyGuardrails={"maxTokens": 2000},
        temperature=2.0,
        topP=0,
        maxTokens=4096,
        fallbackModels=["model-fallback-3"],
        trafficDistribution={
            "versions": [
                {"version": "1.0.0", "weight": 0.7},
                {"version": "1.1.0", "weight": 0.295},
            ],
            "splitStrategy": "sticky",
        },
    )
    assert p["safetyGuardrails"]["contentFiltering"] == []
    other = await api.template("other-template")
    assert_error(
        await api("PUT", f"{P}/{p['id']}", json={"templateId": other["id"]}),
        400,
        "validation.failed",
    )  # the split's versions are not the new template's


async def test_seed_003_prompt_without_template_splits_over_its_own_labels(api: Api) -> None:
    # seed 003's calls, in its order: create (no templateId), a new release, then a split
    r = await api(
        "POST",
        P,
        json={
            "name": "support_agent",
            "modelEndpointRef": "anthropic/claude-3-sonnet",
            "systemPrompt": "You are a helpful customer support agent.",
            "temperature": 0.2,
            "safetyGuardrails": {"contentFiltering": ["pii", "profanity"], "maxTokens": 1500},
            "version": "1.0.0",
            "trafficDistribution": {"defaultVersion": "1.0.0"},
        },
    )
    assert r.status_code == 201, r.text
    p = r.json()
    assert {"id", "version", "status"} <= set(p) and "templateId" not in p
    url = f"{P}/{p['id']}"
    r = await api("PUT", url, json={"systemPrompt": "You help, briefly.", "version": "1.1.0"})
    assert r.status_code == 200 and r.json()["version"] == "1.1.0"
    split = {
        "versions": [{"version": "1.0.0", "weight": 0.8}, {"version": "1.1.0", "weight": 0.2}],
        "splitStrategy": "random",
    }
    r = await api("PUT", url, json={"trafficDistribution": split})
    assert r.status_code == 200 and r.json()["trafficDistribution"] == split
    served = {(await invoke(api, p["id"], f"s{i}")).json()["version"] for i in range(40)}
    assert served == {"1.0.0", "1.1.0"}
    # a label the prompt never carried is refused, naming the ones it did
    r = await api("PUT", url, json={"trafficDistribution": {"defaultVersion": "2.0.0"}})
    body = assert_error(r, 400, "validation.failed")
    assert "1.0.0, 1.1.0" in body["message"]
    # a bound prompt's split still names its template's versions, not its own labels
    tid = (await api.template())["id"]
    await api.version(tid, "3.0.0")
    r = await api("PUT", url, json={"templateId": tid})
    assert_error(r, 400, "validation.failed")
    r = await api(
        "PUT", url, json={"templateId": tid, "trafficDistribution": {"defaultVersion": "3.0.0"}}
    )
    assert r.status_code == 200 and r.json()["templateId"] == tid
    # the labels survive a snapshot
    b = Api()
    b.app.emulator.restore(api.app.emulator.snapshot())
    r = await b("PUT", url, json={"templateId": None, "trafficDistribution": split})
    assert r.status_code == 200 and "templateId" not in r.json()


async def test_prompt_rename_by_merge_put_keeps_the_id_split_and_labels(api: Api) -> None:
    tid = (await api.template())["id"]
    await api.version(tid, "1.0.0")
    split = {"defaultVersion": "1.0.0"}
    p = await api.prompt(tid, trafficDistribution=split, labels={"managed-by": "llmgw"})
    taken = await api.prompt(tid, "taken-prompt-name")
    url = f"{P}/{p['id']}"
    assert_error(await api("PUT", url, json={"name": taken["name"]}), 409, "name.exists")
    r = await api("PUT", url, json={"name": "support-bot"}, headers={"If-Match": p["etag"]})
    assert r.status_code == 200
    q = r.json()
    assert (q["id"], q["name"], q["templateId"]) == (p["id"], "support-bot", tid)
    assert q["trafficDistribution"] == split and q["labels"] == {"managed-by": "llmgw"}
    assert q["etag"] != p["etag"]
    names = sorted(e["name"] for e in (await api("GET", P)).json()["entities"])
    assert names == ["support-bot", "taken-prompt-name"]
