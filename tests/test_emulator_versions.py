"""Template versions (seed 000) through the emulator's API (``state/versions.py``).

Covers: create, read and list in semver order, the content hash, the A/B trigger against its
``X-Genesys-AB-Test`` header, 409 version.exists, 404 for an unknown template or version,
validation (the variable matrix against the placeholders, the byte limit counted in UTF-8,
semver, types), immutability (422 immutable.field; only rollbackDirective, metadata and labels
change), withdrawal rules (409 version.routed while traffic routes to it, 409
version.withdrawn for a split naming a withdrawn one); seed reconciliations: a version created
withdrawn, and seed 000's request, body and header, as the tutorial sends it.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from reconciler.endpoints import HEADERS
from tests.emulator_api import (
    Api,
    P,
    V,
    assert_error,
    prompt,
    version,
)


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    a = Api()
    yield a
    await a.http.aclose()


async def test_version_create_read_and_list(api: Api) -> None:
    tid = (await api.template())["id"]
    r = await api(
        "POST",
        V(tid),
        json=version(
            "1.2.0",
            abTestingTrigger={"enabled": True, "trafficPercent": 0.2, "variantId": "b"},
            metadata={"owner": "ops"},
        ),
        headers={HEADERS.ab_test: "variant=b,traffic=20"},
    )
    assert r.status_code == 201
    v = r.json()
    assert v["status"] == "ACTIVE" and v["rollbackDirective"] is False and v["dateCreated"]
    assert v["templateId"] == tid and v["metadata"] == {"owner": "ops"}
    assert v["contentHash"] == "sha256:" + hashlib.sha256(b"Hello {{m}}").hexdigest()
    assert (await api("GET", V(tid, "1.2.0"))).json() == v
    for n in ("1.10.0", "1.0.0"):
        await api.version(tid, n)
    listing = (await api("GET", V(tid))).json()
    assert [x["version"] for x in listing["entities"]] == ["1.0.0", "1.2.0", "1.10.0"]
    assert_error(await api("POST", V(tid), json=version("1.0.0")), 409, "version.exists")
    assert_error(await api("GET", V(tid, "9.9.9")), 404, "not.found")
    assert_error(await api("POST", V("nope"), json=version("1.0.0")), 404, "not.found")
    r = await api(
        "POST",
        V(tid),
        json=version("2.0.0", abTestingTrigger={"enabled": True, "trafficPercent": 0.2}),
        headers={HEADERS.ab_test: "variant=b,traffic=30"},
    )
    assert "traffic 30" in assert_error(r, 400, "validation.failed")["message"]
    r = await api("POST", V(tid), json=version("2.0.0"), headers={HEADERS.ab_test: "50%"})
    assert HEADERS.ab_test in assert_error(r, 400, "validation.failed")["message"]


@pytest.mark.parametrize(
    "change",
    [
        {"content": "Hi {{m}} {{x}}"},  # a placeholder missing from the matrix
        {"variables": {"m": "string", "z": "number"}},  # a matrix key unused
        {"content": "é" * 2047 + "{{m}}"},  # 4099 bytes of UTF-8, 2052 characters
        {"version": "v2"},
        {"content": ""},
        {"rollbackDirective": "yes"},
        {"abTestingTrigger": {"trafficPercent": 1.5}},
        {"metadata": {"n": 1}},
        {"colour": "blue"},
    ],
)
async def test_version_validation(api: Api, change: dict[str, Any]) -> None:
    tid = (await api.template())["id"]
    assert_error(
        await api("POST", V(tid), json={**version("1.0.0"), **change}), 400, "validation.failed"
    )


async def test_version_content_limit_counts_bytes(api: Api) -> None:
    tid = (await api.template())["id"]
    await api.version(tid, "1.0.0", content="é" * 2045 + "{{m}}")  # 4095 bytes


async def test_version_patch_changes_only_mutable_fields(api: Api) -> None:
    tid = (await api.template())["id"]
    v = await api.version(tid, "1.0.0")
    body = assert_error(
        await api("PATCH", V(tid, "1.0.0"), json={"content": "changed {{m}}"}),
        422,
        "immutable.field",
    )
    assert body["details"] == ["content"]
    assert_error(
        await api("PATCH", V(tid, "1.0.0"), json={"abTestingTrigger": {"enabled": True}}),
        422,
        "immutable.field",
    )
    assert_error(
        await api("PATCH", V(tid, "1.0.0"), json={"colour": "x"}), 400, "validation.failed"
    )
    r = await api(
        "PATCH",
        V(tid, "1.0.0"),
        json={"metadata": {"owner": "x"}, "labels": {"team": "a"}, "content": v["content"]},
    )
    assert r.status_code == 200
    assert r.json()["metadata"] == {"owner": "x"} and r.json()["labels"] == {"team": "a"}
    assert r.json()["contentHash"] == v["contentHash"]


async def test_version_withdrawal_rules(api: Api) -> None:
    tid = (await api.template())["id"]
    for n in ("1.0.0", "1.1.0"):
        await api.version(tid, n)
    p = await api.prompt(tid, trafficDistribution={"defaultVersion": "1.0.0"})
    assert_error(
        await api("PATCH", V(tid, "1.0.0"), json={"rollbackDirective": True}), 409, "version.routed"
    )
    assert_error(await api("DELETE", V(tid, "1.0.0")), 409, "version.routed")
    split = {"versions": [{"version": "1.0.0", "weight": 0.0}, {"version": "1.1.0", "weight": 1.0}]}
    r = await api("PUT", f"{P}/{p['id']}", json={"trafficDistribution": split})
    assert r.status_code == 200
    r = await api("PATCH", V(tid, "1.0.0"), json={"rollbackDirective": True})
    assert r.status_code == 200 and r.json()["status"] == "WITHDRAWN"
    body = assert_error(
        await api(
            "PUT", f"{P}/{p['id']}", json={"trafficDistribution": {"defaultVersion": "1.0.0"}}
        ),
        409,
        "version.withdrawn",
    )
    assert "1.0.0" in body["message"]
    half = {"versions": [{"version": "1.0.0", "weight": 0.5}, {"version": "1.1.0", "weight": 0.5}]}
    assert_error(
        await api("PUT", f"{P}/{p['id']}", json={"trafficDistribution": half}),
        409,
        "version.withdrawn",
    )
    w = await api.version(tid, "2.0.0", rollbackDirective=True)
    assert w["status"] == "WITHDRAWN"
    r = await api("PATCH", V(tid, "1.0.0"), json={"rollbackDirective": False})
    assert r.json()["status"] == "ACTIVE"
    assert (await api("DELETE", V(tid, "2.0.0"))).status_code == 204
    assert_error(await api("GET", V(tid, "2.0.0")), 404, "not.found")


async def test_seed_000_version_created_withdrawn(api: Api) -> None:
    # accepted: an org rebuilt from git recreates its withdrawn versions too
    tid = (await api.template())["id"]
    v = await api.version(tid, "2.1.0", rollbackDirective=True)
    assert v["status"] == "WITHDRAWN" and v["rollbackDirective"] is True
    # what seed 000 calls "promoting a version with an active rollback flag" stays a 409
    r = await api("POST", P, json=prompt(tid, trafficDistribution={"defaultVersion": "2.1.0"}))
    assert_error(r, 409, "version.withdrawn")


async def test_seed_000_version_request_as_the_tutorial_sends_it(api: Api) -> None:
    tid = (await api.template())["id"]
    body = {
        "templateId": tid,
        "version": "2.1.0",
        "content": "You are a support agent. Analyze the customer issue: {{customer_issue}}. "
        "Provide a resolution using {{tone_preference}}. Reference policy: {{policy_doc}}.",
        "variables": {
            "customer_issue": "string",
            "tone_preference": "string",
            "policy_doc": "string",
        },
        "rollbackDirective": False,
        "abTestingTrigger": {"enabled": True, "trafficPercent": 0.2, "variantId": "v2_1_0_beta"},
        "metadata": {"author": "automation-pipeline", "purpose": "escalation-routing"},
    }
    headers = {HEADERS.ab_test: "variant=v2_1_0_beta,traffic=20"}
    r = await api("POST", V(tid), json=body, headers=headers)
    assert r.status_code == 201, r.text
    assert r.json()["abTestingTrigger"] == body["abTestingTrigger"]
