"""All SQL of device authentication: the device behind a token hash, or a UUID."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.device_auth.identity import DeviceIdentity
from vsense.kit.sql import is_postgres, one_of
from vsense.models import Device, DeviceCredential, Group


def _identity_statement() -> Any:
    return select(
        Device.uuid,
        Device.organization_id,
        Device.is_online,
        func.coalesce(Device.keepalive_interval, Group.keepalive_interval),
    ).outerjoin(Group, Group.id == Device.group_id)


# Built once per database: the device API's batched look-up, run for every few requests
# of a fleet, and the MQTT bridge's, run for every batch. Their rows are read as plain
# rows, with no ORM step around them.
@functools.cache
def _by_token_hashes(postgres: bool) -> Any:
    return (
        _identity_statement()
        .add_columns(DeviceCredential.token_hash)
        .join(DeviceCredential, DeviceCredential.device_uuid == Device.uuid)
        .where(one_of(DeviceCredential.token_hash, "hashes", postgres))
    )


@functools.cache
def _by_uuids(postgres: bool) -> Any:
    return _identity_statement().where(one_of(Device.uuid, "devices", postgres))


async def devices_for_token_hashes(
    session: AsyncSession, token_hashes: Collection[str]
) -> dict[str, DeviceIdentity]:
    """The devices behind those of `token_hashes` that are valid, in one statement."""
    connection = await session.connection()
    rows = await connection.execute(
        _by_token_hashes(is_postgres(session)), {"hashes": list(token_hashes)}
    )
    return {row[4]: DeviceIdentity(row[0], row[1], bool(row[2]), row[3]) for row in rows}


async def device_by_uuid(session: AsyncSession, device: uuid.UUID) -> DeviceIdentity | None:
    """A device by its UUID (the MQTT bridge, where the broker authenticated it)."""
    row = (await session.execute(_identity_statement().where(Device.uuid == device))).first()
    return None if row is None else DeviceIdentity(row[0], row[1], bool(row[2]), row[3])


async def devices_by_uuid(
    session: AsyncSession, devices: Collection[uuid.UUID]
) -> dict[uuid.UUID, DeviceIdentity]:
    """The known devices among `devices`, in one statement (a batch of the MQTT bridge)."""
    connection = await session.connection()
    rows = await connection.execute(_by_uuids(is_postgres(session)), {"devices": list(devices)})
    return {row[0]: DeviceIdentity(row[0], row[1], bool(row[2]), row[3]) for row in rows}
