"""`client.groups`: device groups (admins change them; everyone lists their own)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from vsense.client._base import query
from vsense.client.models import Group, Page
from vsense.client.pagination import DEFAULT_PER_PAGE, aiterate_pages, iterate_pages
from vsense.client.resources._resource import (
    NOT_GIVEN,
    AsyncResource,
    NotGiven,
    SyncResource,
    body,
    path,
)


class Groups(SyncResource):
    def list(self, *, page: int | None = None, per_page: int | None = None) -> Page[Group]:
        """One page of the groups the caller sees (all of the organization for admins)."""
        params = query(page=page, per_page=per_page)
        return self._client._call("GET", "/groups", cast=Page[Group], params=params)

    def list_all(self, *, per_page: int = DEFAULT_PER_PAGE) -> Iterator[Group]:
        """Every group the caller sees."""
        return iterate_pages(lambda number: self.list(page=number, per_page=per_page))

    def get(self, group_id: int) -> Group:
        """One group."""
        return self._client._call("GET", f"/groups/{path(group_id)}", cast=Group)

    def create(self, *, name: str, keepalive_interval: int | NotGiven | None = NOT_GIVEN) -> Group:
        """Create a group (admins); `keepalive_interval` applies to its devices."""
        payload = body(name=name, keepalive_interval=keepalive_interval)
        return self._client._call("POST", "/groups", cast=Group, json=payload)

    def update(
        self,
        group_id: int,
        *,
        name: str | NotGiven = NOT_GIVEN,
        keepalive_interval: int | NotGiven | None = NOT_GIVEN,
    ) -> Group:
        """Rename a group or change its devices' keepalive interval (admins)."""
        payload = body(name=name, keepalive_interval=keepalive_interval)
        return self._client._call("PUT", f"/groups/{path(group_id)}", cast=Group, json=payload)

    def delete(self, group_id: int) -> None:
        """Delete a group (admins); its devices are kept, without a group."""
        self._client._call_empty("DELETE", f"/groups/{path(group_id)}")


class AsyncGroups(AsyncResource):
    async def list(self, *, page: int | None = None, per_page: int | None = None) -> Page[Group]:
        """One page of the groups the caller sees (all of the organization for admins)."""
        params = query(page=page, per_page=per_page)
        return await self._client._call("GET", "/groups", cast=Page[Group], params=params)

    def list_all(self, *, per_page: int = DEFAULT_PER_PAGE) -> AsyncIterator[Group]:
        """Every group the caller sees (`async for`)."""
        return aiterate_pages(lambda number: self.list(page=number, per_page=per_page))

    async def get(self, group_id: int) -> Group:
        """One group."""
        return await self._client._call("GET", f"/groups/{path(group_id)}", cast=Group)

    async def create(
        self, *, name: str, keepalive_interval: int | NotGiven | None = NOT_GIVEN
    ) -> Group:
        """Create a group (admins); `keepalive_interval` applies to its devices."""
        payload = body(name=name, keepalive_interval=keepalive_interval)
        return await self._client._call("POST", "/groups", cast=Group, json=payload)

    async def update(
        self,
        group_id: int,
        *,
        name: str | NotGiven = NOT_GIVEN,
        keepalive_interval: int | NotGiven | None = NOT_GIVEN,
    ) -> Group:
        """Rename a group or change its devices' keepalive interval (admins)."""
        payload = body(name=name, keepalive_interval=keepalive_interval)
        return await self._client._call(
            "PUT", f"/groups/{path(group_id)}", cast=Group, json=payload
        )

    async def delete(self, group_id: int) -> None:
        """Delete a group (admins); its devices are kept, without a group."""
        await self._client._call_empty("DELETE", f"/groups/{path(group_id)}")
