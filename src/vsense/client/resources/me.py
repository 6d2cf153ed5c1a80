"""`client.me`: the caller."""

from __future__ import annotations

from vsense.client.models import Me
from vsense.client.resources._resource import AsyncResource, SyncResource


class MeResource(SyncResource):
    def get(self) -> Me:
        """The caller: role, organization, groups and effective scopes."""
        return self._client._call("GET", "/me", cast=Me)


class AsyncMeResource(AsyncResource):
    async def get(self) -> Me:
        """The caller: role, organization, groups and effective scopes."""
        return await self._client._call("GET", "/me", cast=Me)
