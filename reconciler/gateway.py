"""The gateway's read half, as the live reader needs it: every collection by listing.

Implements ``live.Reader`` on top of the client's page-number paging (100 a page, later pages
through a window of the client's parallelism, which is also the reader's ``window`` for the
per-template and per-store listings). Paths come from the endpoint table, ids in them
percent-encoded as one segment each; nothing here knows HTTP, and nothing here writes.
"""

from __future__ import annotations

from typing import Any

from reconciler.endpoints import PATHS
from reconciler.live import indexes_path, versions_path
from reconciler.remote import GatewayClient


class GatewayReader:
    def __init__(self, client: GatewayClient) -> None:
        self.client = client

    @property
    def window(self) -> int:
        return self.client.parallelism

    async def list_templates(self) -> list[dict[str, Any]]:
        return await self.client.list_pages(PATHS.templates)

    async def list_versions(self, template_id: str) -> list[dict[str, Any]]:
        return await self.client.list_pages(versions_path(template_id))

    async def list_prompts(self) -> list[dict[str, Any]]:
        return await self.client.list_pages(PATHS.prompts)

    async def list_models(self) -> list[dict[str, Any]]:
        return await self.client.list_pages(PATHS.models)

    async def list_vector_stores(self) -> list[dict[str, Any]]:
        return await self.client.list_pages(PATHS.vector_stores)

    async def list_indexes(self, store_id: str) -> list[dict[str, Any]]:
        return await self.client.list_pages(indexes_path(store_id))
