"""The gateway's read half, as the live reader needs it: every collection by listing.

Implements ``live.Reader`` on top of the client's page-number paging (100 a page, later pages
concurrently). Paths come from the endpoint table; nothing here knows HTTP.
"""

from __future__ import annotations

from typing import Any

from reconciler.client import GatewayClient
from reconciler.endpoints import PATHS


class GatewayReader:
    def __init__(self, client: GatewayClient) -> None:
        self.client = client

    async def list_templates(self) -> list[dict[str, Any]]:
        return await self.client.list_pages(PATHS.templates)

    async def list_versions(self, template_id: str) -> list[dict[str, Any]]:
        return await self.client.list_pages(PATHS.versions.format(templateId=template_id))

    async def list_prompts(self) -> list[dict[str, Any]]:
        return await self.client.list_pages(PATHS.prompts)

    async def list_models(self) -> list[dict[str, Any]]:
        return await self.client.list_pages(PATHS.models)

    async def list_vector_stores(self) -> list[dict[str, Any]]:
        return await self.client.list_pages(PATHS.vector_stores)

    async def list_indexes(self, store_id: str) -> list[dict[str, Any]]:
        return await self.client.list_pages(PATHS.indexes.format(vectorStoreId=store_id))
