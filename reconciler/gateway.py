"""The gateway's read half, as the kinds read the live org: every collection by listing.

Implements ``kinds.base.Reader`` on top of the client's page-number paging (100 a page, later
pages through a window of the client's parallelism, which is also the reader's ``window`` for a
kind's per-parent listings, such as versions per template). The kinds give the paths, from the
endpoint table, ids in them percent-encoded; nothing here knows a kind, HTTP or writes.
"""

from __future__ import annotations

from typing import Any

from reconciler.remote import GatewayClient


class GatewayReader:
    def __init__(self, client: GatewayClient) -> None:
        self.client = client

    @property
    def window(self) -> int:
        return self.client.parallelism

    async def list(self, path: str) -> list[dict[str, Any]]:
        """Every entity of the page-number collection at ``path``."""
        entities: list[dict[str, Any]] = await self.client.list_pages(path)
        return entities
