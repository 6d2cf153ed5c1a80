"""All SQL of the device gateway: liveness (online, offline, status events)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.kit.sql import is_postgres
from vsense.models import Device, DeviceEvent

# SQLite accepts up to 32,766 bound values in one statement; stay well below.
CHUNK = 2000


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


async def refresh_online(
    session: AsyncSession, devices: Sequence[uuid.UUID], seen: datetime, deadline: datetime
) -> None:
    """Record a sign of life of devices that are online: one statement per chunk."""
    for chunk in _chunks(devices):
        await session.execute(
            update(Device)
            .where(Device.uuid.in_(chunk), Device.is_online.is_(True))
            .values(last_seen=seen, refreshed=seen, offline_after=deadline)
        )


async def offline_among(session: AsyncSession, devices: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    found: list[uuid.UUID] = []
    for chunk in _chunks(devices):
        rows = await session.scalars(
            select(Device.uuid).where(Device.uuid.in_(chunk), Device.is_online.is_(False))
        )
        found += rows.all()
    return found


async def set_online(
    session: AsyncSession, device: uuid.UUID, seen: datetime, deadline: datetime, reason: str
) -> bool:
    """Bring an offline device online and record the transition; False if it was online."""
    result: Any = await session.execute(
        update(Device)
        .where(Device.uuid == device, Device.is_online.is_(False))
        .values(
            is_online=True,
            status_reason=reason,
            last_seen=seen,
            refreshed=seen,
            offline_after=deadline,
        )
    )
    if result.rowcount != 1:
        return False
    await add_events(session, [device], seen, "online", reason)
    return True


async def overdue(session: AsyncSession, now: datetime, limit: int) -> list[uuid.UUID]:
    """Online devices past their deadline. Rows are locked on PostgreSQL (other sweepers
    skip them) so that several server processes can sweep at once."""
    statement = (
        select(Device.uuid)
        .where(Device.is_online.is_(True), Device.offline_after < now)
        .limit(limit)
    )
    if is_postgres(session):
        statement = statement.with_for_update(skip_locked=True)
    return list((await session.scalars(statement)).all())


async def set_offline(
    session: AsyncSession, devices: Sequence[uuid.UUID], now: datetime, reason: str
) -> None:
    for chunk in _chunks(devices):
        await session.execute(
            update(Device)
            .where(Device.uuid.in_(chunk), Device.is_online.is_(True))
            .values(is_online=False, status_reason=reason, refreshed=now)
        )
    await add_events(session, devices, now, "offline", reason)


async def add_events(
    session: AsyncSession,
    devices: Sequence[uuid.UUID],
    created: datetime,
    status: str,
    reason: str,
) -> None:
    if devices:
        await session.execute(
            insert(DeviceEvent),
            [
                {"device_uuid": d, "created": created, "status": status, "reason": reason}
                for d in devices
            ],
        )


async def purge_events(session: AsyncSession, before: datetime, limit: int = 5000) -> int:
    """Delete up to `limit` status events older than `before`; rows removed."""
    stale = select(DeviceEvent.id).where(DeviceEvent.created < before).limit(limit)
    events: Any = await session.execute(delete(DeviceEvent).where(DeviceEvent.id.in_(stale)))
    return int(events.rowcount or 0)


async def mark_speaks_mqtt(session: AsyncSession, devices: Sequence[uuid.UUID]) -> None:
    """Record that these devices were heard over MQTT (once: only rows not yet marked)."""
    for chunk in _chunks(devices):
        await session.execute(
            update(Device)
            .where(Device.uuid.in_(chunk), Device.speaks_mqtt.is_(False))
            # Not a change of the device an integrator made: `updated` stays.
            .values(speaks_mqtt=True, updated=Device.updated)
            .execution_options(synchronize_session=False)
        )


async def speaks_mqtt(session: AsyncSession, device: uuid.UUID) -> bool:
    """Whether the MQTT bridge (of any process) has heard the device."""
    found = await session.scalar(select(Device.speaks_mqtt).where(Device.uuid == device))
    return bool(found)
