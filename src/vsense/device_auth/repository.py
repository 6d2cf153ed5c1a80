"""All SQL of device authentication: the device behind a token hash, or a UUID."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.device_auth.identity import DeviceIdentity
from vsense.models import Device, DeviceCredential, Group


def _identity_statement() -> Any:
    return select(
        Device.uuid,
        Device.organization_id,
        Device.is_online,
        func.coalesce(Device.keepalive_interval, Group.keepalive_interval),
    ).outerjoin(Group, Group.id == Device.group_id)


# Built once: the device API's batched look-up, run for every few requests of a fleet.
_BY_TOKEN_HASHES = (
    _identity_statement()
    .add_columns(DeviceCredential.token_hash)
    .join(DeviceCredential, DeviceCredential.device_uuid == Device.uuid)
    .where(DeviceCredential.token_hash.in_(bindparam("hashes", expanding=True)))
)


async def devices_for_token_hashes(
    session: AsyncSession, token_hashes: Collection[str]
) -> dict[str, DeviceIdentity]:
    """The devices behind those of `token_hashes` that are valid, in one statement."""
    rows = await session.execute(_BY_TOKEN_HASHES, {"hashes": list(token_hashes)})
    return {row[4]: DeviceIdentity(row[0], row[1], bool(row[2]), row[3]) for row in rows}


async def device_by_uuid(session: AsyncSession, device: uuid.UUID) -> DeviceIdentity | None:
    """A device by its UUID (the MQTT bridge, where the broker authenticated it)."""
    row = (await session.execute(_identity_statement().where(Device.uuid == device))).first()
    return None if row is None else DeviceIdentity(row[0], row[1], bool(row[2]), row[3])


async def devices_by_uuid(
    session: AsyncSession, devices: Collection[uuid.UUID]
) -> dict[uuid.UUID, DeviceIdentity]:
    """The known devices among `devices`, in one statement (a batch of the MQTT bridge)."""
    rows = await session.execute(_identity_statement().where(Device.uuid.in_(list(devices))))
    return {row[0]: DeviceIdentity(row[0], row[1], bool(row[2]), row[3]) for row in rows}
