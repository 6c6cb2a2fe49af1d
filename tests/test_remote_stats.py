"""``remote.stats``: per-endpoint metrics.

Covers: requests grouped by endpoint, ids replaced by ``{id}`` (uuids, numbers, versions, and
whatever follows a collection of the endpoint table), counts and errors per row.
"""

from __future__ import annotations

import httpx
import pytest

from reconciler import errors
from reconciler.remote import endpoint_of, stats
from tests.remote_fakes import make, token_ok


async def test_metrics_group_by_endpoint() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/oauth/token":
            return token_ok(req)
        pid = req.url.path.rsplit("/", 1)[1]
        return httpx.Response(200 if "b1" in pid else 404, json={"id": pid})

    async with make(handler) as c:
        await c.request(
            "PUT", "/api/v2/ai/llm/gateway/prompts/b1f3e6a0-aaaa-bbbb-cccc-1234567890ab"
        )
        with pytest.raises(errors.NotFoundError):
            await c.request(
                "PUT", "/api/v2/ai/llm/gateway/prompts/c2f3e6a0-aaaa-bbbb-cccc-1234567890ab"
            )
    (row,) = c.metrics()
    assert row.endpoint == "/api/v2/ai/llm/gateway/prompts/{id}"
    assert (row.count, row.errors) == (2, 1)
    assert endpoint_of("/api/v2/ai/prompt-templates/abc/versions/2.1.0") == (
        "/api/v2/ai/prompt-templates/{id}/versions/{id}"
    )


def test_ids_follow_the_collections_of_the_endpoint_table() -> None:
    """The collections whose next segment is an id, derived from ``endpoints.PATHS``: the five
    names the client once listed by hand."""
    assert sorted(stats.COLLECTIONS) == [
        "indexes",
        "prompt-templates",
        "prompts",
        "vectorstores",
        "versions",
    ]
    assert endpoint_of("/api/v2/ai/vectorstores/store-1/indexes/idx-1") == (
        "/api/v2/ai/vectorstores/{id}/indexes/{id}"
    )
    assert endpoint_of("/api/v2/ai/models?pageSize=100") == "/api/v2/ai/models"
