"""The device behind a device token; a user or API token opens nothing here."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy.ext.asyncio import AsyncSession

from vsense.accounts.service import DEVICE_PREFIX
from vsense.changes import ChangeFeed
from vsense.config import Settings
from vsense.db import Database
from vsense.device_auth import repository
from vsense.device_auth.identity import DeviceIdentity
from vsense.kit.batching import Batcher
from vsense.kit.cache import TTLCache
from vsense.kit.crypto import token_digest
from vsense.kit.errors import Unauthorized

DEVICE_TOKENS = "device-tokens"  # namespace of the identity cache
MAX_IDENTITIES = 200_000  # device identities a process keeps (about 40 MB)


def bearer(header: str | None) -> str:
    scheme, _, token = (header or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(DEVICE_PREFIX):
        raise Unauthorized("A device token is required (Authorization: Bearer vsd_...).")
    return token


class DeviceAuth:
    """Device tokens to devices, a verified identity reused for `auth_cache_ttl` seconds
    while `changes` hears every process (else for at most a second): a rotation or a
    removal drops it at once in this process and when it commits in the others
    (`forget`). Its `is_online` may be stale; that is safe, because a batched sign of
    life finds devices that went offline and brings them back.

    The device API's requests are verified outside any transaction (`verify`): those
    that miss the cache at the same time share one read (`Batcher`), which is what a
    large fleet costs, each device's keepalive minutes after its last one."""

    def __init__(self, settings: Settings, changes: ChangeFeed, database: Database) -> None:
        self._cache = TTLCache(
            ttl=settings.auth_cache_ttl.total_seconds(), max_entries=MAX_IDENTITIES
        )
        self._changes = changes
        self._database = database
        self._reads: Batcher[str, DeviceIdentity] = Batcher(self._read)
        changes.subscribe(DEVICE_TOKENS, lambda _key: self._cache.invalidate(DEVICE_TOKENS))

    def cached(self, header: str | None) -> DeviceIdentity | None:
        """The identity verified for this header within `auth_cache_ttl`, without the
        database (401 for a missing or malformed header)."""
        found: DeviceIdentity | None = self._cache.get(
            DEVICE_TOKENS,
            token_digest(bearer(header)),
            self._changes.horizon(self._cache.ttl),
        )
        return found

    async def verify(self, header: str | None) -> DeviceIdentity:
        """The device of a request (401 when there is none), from the cache or from a
        read shared with the concurrent requests that missed it too."""
        cached = self.cached(header)
        if cached is not None:
            return cached
        identity = await self._reads.get(token_digest(bearer(header)))
        if identity is None:
            raise Unauthorized("The device token is invalid or has been rotated.")
        return identity

    async def _read(self, token_hashes: list[str]) -> dict[str, DeviceIdentity]:
        epoch = self._cache.epoch  # a change heard during the read keeps it out of the cache
        async with self._database.read_sessionmaker() as session:
            found = await repository.devices_for_token_hashes(session, token_hashes)
        for token_hash, identity in found.items():
            self._cache.put(DEVICE_TOKENS, token_hash, identity, since=epoch)
        return found

    async def by_uuid(self, session: AsyncSession, device: uuid.UUID) -> DeviceIdentity | None:
        """A device the transport authenticated itself (the MQTT broker)."""
        return await repository.device_by_uuid(session, device)

    async def by_uuids(
        self, session: AsyncSession, devices: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, DeviceIdentity]:
        """The known devices among those the transport authenticated (a batch of the MQTT
        bridge), in one read."""
        return await repository.devices_by_uuid(session, devices)

    def forget(self, session: AsyncSession) -> None:
        """Drop every cached device identity: a token was rotated or a device removed in
        `session`'s transaction (every process drops them when it commits)."""
        self._changes.announce(session, DEVICE_TOKENS)
