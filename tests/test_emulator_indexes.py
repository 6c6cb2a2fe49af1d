"""Vector stores and indexes (seed 004) through the emulator's API (``state/indexes.py``).

Covers: PUT creating (201) and replacing (200), PROCESSING -> ACTIVE on the injected clock (409
index.processing meanwhile; no delay: ACTIVE at once), 004's 409 precondition.failed for
``If-Match``/``If-None-Match`` (every tag form), immutable dimensions, metric and format (422),
validation (400 for dimensions, 422 otherwise), 404 for an unknown store; seed reconciliation
(004): Go's zero values (an empty webhook URL is absent) and the id answered beside indexId.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.emulator_api import (
    IDX,
    INDEX,
    Api,
    assert_error,
)


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    a = Api()
    yield a
    await a.http.aclose()


async def test_index_lifecycle_with_ingest_delay(api: Api) -> None:
    spec = {**INDEX, "autoIngestTrigger": True, "webhookSyncUrl": "https://hooks.example/x"}
    r = await api("PUT", f"{IDX}/idx-1", json=spec, headers={"If-None-Match": "*"})
    assert r.status_code == 201
    idx = r.json()
    assert idx["status"] == "PROCESSING" and idx["indexId"] == "idx-1"
    assert idx["etag"] == r.headers["ETag"] and idx["syncEventId"] and idx["updatedAt"]
    assert idx["webhookSyncUrl"] == spec["webhookSyncUrl"] and 0 < idx["retrievalPrecision"] <= 1
    assert_error(
        await api("PUT", f"{IDX}/idx-1", json=spec, headers={"If-None-Match": "*"}),
        409,
        "precondition.failed",
    )
    assert_error(
        await api("PUT", f"{IDX}/idx-1", json=spec, headers={"If-Match": idx["etag"]}),
        409,
        "index.processing",
    )
    api.clock.t += 4
    assert (await api("GET", f"{IDX}/idx-1")).json()["status"] == "PROCESSING"
    api.clock.t += 1
    got = await api("GET", f"{IDX}/idx-1")
    assert got.json()["status"] == "ACTIVE" and got.headers["ETag"] == idx["etag"]
    body = assert_error(
        await api(
            "PUT",
            f"{IDX}/idx-1",
            json={**spec, "dimensions": 768},
            headers={"If-Match": idx["etag"]},
        ),
        422,
        "immutable.field",
    )
    assert body["details"] == ["dimensions"]
    assert_error(
        await api("PUT", f"{IDX}/idx-1", json={**spec, "embeddingFormat": "int8"}),
        422,
        "immutable.field",
    )
    assert_error(
        await api("PUT", f"{IDX}/idx-1", json=spec, headers={"If-Match": '"stale"'}),
        409,
        "precondition.failed",
    )
    r = await api(
        "PUT",
        f"{IDX}/idx-1",
        json={**INDEX, "labels": {"a": "b"}},
        headers={"If-Match": idx["etag"]},
    )
    assert (
        r.status_code == 200 and r.json()["status"] == "ACTIVE" and r.json()["etag"] != idx["etag"]
    )
    assert "webhookSyncUrl" not in r.json() and r.json()["autoIngestTrigger"] is False
    listing = (await api("GET", IDX)).json()
    assert listing["total"] == 1 and listing["entities"] == [r.json()]
    assert_error(
        await api("DELETE", f"{IDX}/idx-1", headers={"If-Match": idx["etag"]}),
        409,
        "precondition.failed",
    )
    assert (await api("DELETE", f"{IDX}/idx-1")).status_code == 204
    assert_error(await api("GET", f"{IDX}/idx-1"), 404, "not.found")
    assert_error(await api("DELETE", f"{IDX}/idx-1"), 404, "not.found")


async def test_index_preconditions_and_validation(api: Api) -> None:
    assert_error(
        await api("PUT", f"{IDX}/new", json=INDEX, headers={"If-Match": '"x"'}),
        409,
        "precondition.failed",
    )
    for dims in (0, 4097, "8"):
        assert_error(
            await api("PUT", f"{IDX}/new", json={**INDEX, "dimensions": dims}),
            400,
            "validation.failed",
        )
    for change in (
        {"similarityMetric": "l7"},
        {"embeddingFormat": "float64"},
        {"autoIngestTrigger": "yes"},
        {"webhookSyncUrl": "ftp://x"},
        {"shards": 3},
        {"indexId": "other"},
    ):
        assert_error(
            await api("PUT", f"{IDX}/new", json={**INDEX, **change}), 422, "validation.failed"
        )
    for path in (
        "/api/v2/ai/vectorstores/nope/indexes/x",
        "/api/v2/ai/vectorstores/nope/indexes",
    ):
        assert_error(await api("GET", path), 404, "not.found")
    assert_error(
        await api("PUT", "/api/v2/ai/vectorstores/nope/indexes/x", json=INDEX), 404, "not.found"
    )
    r = await api("PUT", f"{IDX}/new", json={**INDEX, "autoIngestTrigger": False})
    assert r.status_code == 201 and r.json()["status"] == "ACTIVE"


async def test_ingest_delay_zero_is_active_at_once() -> None:
    a = Api(ingest_delay=0)
    r = await a("PUT", f"{IDX}/i", json={**INDEX, "autoIngestTrigger": True})
    assert r.json()["status"] == "ACTIVE"


async def test_if_none_match_on_an_index_reads_tags_too(api: Api) -> None:
    tag = (await api("PUT", f"{IDX}/i", json=INDEX)).json()["etag"]
    for form in ("*", tag, f'W/{tag}, "other"'):
        r = await api("PUT", f"{IDX}/i", json=INDEX, headers={"If-None-Match": form})
        assert_error(r, 409, "precondition.failed")
    r = await api("PUT", f"{IDX}/i", json=INDEX, headers={"If-None-Match": '"other"'})
    assert r.status_code == 200


async def test_seed_004_go_zero_values_and_the_id_beside_index_id(api: Api) -> None:
    config = {  # seed 004's IndexConfig as Go marshals it: no omitempty, so "" when unset
        "indexId": "prod-embedding-index-v2",
        "dimensions": 1536,
        "similarityMetric": "cosine",
        "embeddingFormat": "float32",
        "autoIngestTrigger": False,
        "webhookSyncUrl": "",
    }
    r = await api("PUT", f"{IDX}/prod-embedding-index-v2", json=config)
    assert r.status_code == 201, r.text
    idx = r.json()
    assert idx["id"] == idx["indexId"] == "prod-embedding-index-v2"
    assert "webhookSyncUrl" not in idx  # the zero value is absent, not an invalid URL
    assert {"status", "updatedAt", "syncEventId", "retrievalPrecision"} <= set(idx)
    # the answer sent back as a body: server-managed id ignored, like the other server fields
    r = await api("PUT", f"{IDX}/prod-embedding-index-v2", json={**idx, "id": "whatever"})
    assert r.status_code == 200 and r.json()["id"] == "prod-embedding-index-v2"
    r = await api("PUT", f"{IDX}/prod-embedding-index-v2", json={**config, "webhookSyncUrl": " "})
    assert_error(r, 422, "validation.failed")
