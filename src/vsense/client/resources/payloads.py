"""`client.payloads`: what devices sent, and the JSON Schemas of the message types."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

from vsense.client._base import query
from vsense.client.models import Page, Payload
from vsense.client.pagination import DEFAULT_PER_PAGE, aiterate_pages, iterate_pages
from vsense.client.resources._resource import AsyncResource, SyncResource, path

Instant = datetime | int | str | None


def _query(
    since: Instant, until: Instant, type: str | None, page: int | None, per_page: int | None
) -> dict[str, str]:
    return query(since=since, until=until, type=type, page=page, per_page=per_page)


class Payloads(SyncResource):
    def list(
        self,
        device_uuid: str,
        *,
        since: Instant = None,
        until: Instant = None,
        type: str | None = None,
        page: int | None = None,
        per_page: int | None = None,
    ) -> Page[Payload]:
        """One page of the messages a device sent, newest first. `since`/`until` bound
        the messages' own time (datetimes, UNIX seconds or ISO 8601); `type` e.g. `VCZ`."""
        return self._client._call(
            "GET",
            f"/devices/{path(device_uuid)}/payloads",
            cast=Page[Payload],
            params=_query(since, until, type, page, per_page),
        )

    def list_all(
        self,
        device_uuid: str,
        *,
        since: Instant = None,
        until: Instant = None,
        type: str | None = None,
        per_page: int = DEFAULT_PER_PAGE,
    ) -> Iterator[Payload]:
        """Every message of a device matching the filters of `list`, newest first."""
        return iterate_pages(
            lambda number: self.list(
                device_uuid, since=since, until=until, type=type, page=number, per_page=per_page
            )
        )

    def schema(self, message_type: str, *, version: int = 1) -> dict[str, Any]:
        """The JSON Schema of a message type and version, to validate payloads."""
        response = self._client.request(
            "GET", f"/schemas/payloads/{path(message_type)}", params=query(version=version)
        )
        schema: dict[str, Any] = response.json()
        return schema


class AsyncPayloads(AsyncResource):
    async def list(
        self,
        device_uuid: str,
        *,
        since: Instant = None,
        until: Instant = None,
        type: str | None = None,
        page: int | None = None,
        per_page: int | None = None,
    ) -> Page[Payload]:
        """One page of the messages a device sent, newest first (see `Payloads.list`)."""
        return await self._client._call(
            "GET",
            f"/devices/{path(device_uuid)}/payloads",
            cast=Page[Payload],
            params=_query(since, until, type, page, per_page),
        )

    def list_all(
        self,
        device_uuid: str,
        *,
        since: Instant = None,
        until: Instant = None,
        type: str | None = None,
        per_page: int = DEFAULT_PER_PAGE,
    ) -> AsyncIterator[Payload]:
        """Every message of a device matching the filters of `list` (`async for`)."""
        return aiterate_pages(
            lambda number: self.list(
                device_uuid, since=since, until=until, type=type, page=number, per_page=per_page
            )
        )

    async def schema(self, message_type: str, *, version: int = 1) -> dict[str, Any]:
        """The JSON Schema of a message type and version, to validate payloads."""
        response = await self._client.request(
            "GET", f"/schemas/payloads/{path(message_type)}", params=query(version=version)
        )
        schema: dict[str, Any] = response.json()
        return schema
