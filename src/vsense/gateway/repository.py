"""All SQL of the device gateway: device identity, liveness, messages, commands."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.models import (
    Device,
    DeviceCommand,
    DeviceCredential,
    DeviceEvent,
    DeviceMetric,
    Group,
    PayloadMessage,
)

# SQLite accepts up to 32,766 bound values in one statement; stay well below.
CHUNK = 2000


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """The device behind a device token, with what the gateway needs to know of it."""

    uuid: uuid.UUID
    organization_id: int
    is_online: bool
    keepalive_interval: int | None  # the device's own, else its group's; None: default


def _identity_statement() -> Any:
    return select(
        Device.uuid,
        Device.organization_id,
        Device.is_online,
        func.coalesce(Device.keepalive_interval, Group.keepalive_interval),
    ).outerjoin(Group, Group.id == Device.group_id)


async def device_for_token_hash(session: AsyncSession, token_hash: str) -> DeviceIdentity | None:
    row = (
        await session.execute(
            _identity_statement()
            .join(DeviceCredential, DeviceCredential.device_uuid == Device.uuid)
            .where(DeviceCredential.token_hash == token_hash)
        )
    ).first()
    return None if row is None else DeviceIdentity(row[0], row[1], bool(row[2]), row[3])


async def device_by_uuid(session: AsyncSession, device: uuid.UUID) -> DeviceIdentity | None:
    """A device by its UUID (the MQTT bridge, where the broker authenticated it)."""
    row = (await session.execute(_identity_statement().where(Device.uuid == device))).first()
    return None if row is None else DeviceIdentity(row[0], row[1], bool(row[2]), row[3])


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
    if session.get_bind().dialect.name == "postgresql":
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


async def add_messages(session: AsyncSession, rows: list[dict[str, Any]]) -> list[int]:
    """Insert messages; their ids, in the order of `rows`."""
    if not rows:
        return []
    result = await session.scalars(
        insert(PayloadMessage).returning(PayloadMessage.id, sort_by_parameter_order=True),
        rows,
    )
    return list(result.all())


async def last_message_time(
    session: AsyncSession, device: uuid.UUID, message_type: str
) -> int | None:
    """UNIX time of the device's latest stored message of a type, if any."""
    latest = await session.scalar(
        select(func.max(PayloadMessage.timestamp)).where(
            PayloadMessage.device_uuid == device, PayloadMessage.type == message_type
        )
    )
    return None if latest is None else int(latest.timestamp())


async def add_metrics(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(DeviceMetric), rows)


async def last_metric_value(
    session: AsyncSession, device: uuid.UUID, name: str, marker_id: str | None, since_epoch: int
) -> float | None:
    """The latest value of a metric of a device's marker since a time, for running sums."""
    return await session.scalar(
        select(DeviceMetric.value)
        .where(
            DeviceMetric.device_uuid == device,
            DeviceMetric.name == name,
            DeviceMetric.marker_id == marker_id,
            DeviceMetric.epoch >= since_epoch,
        )
        .order_by(DeviceMetric.epoch.desc(), DeviceMetric.id.desc())
        .limit(1)
    )


async def add_command(session: AsyncSession, command: DeviceCommand) -> None:
    session.add(command)
    await session.flush()


async def has_pending_commands(session: AsyncSession, device: uuid.UUID, now: datetime) -> bool:
    found = await session.scalar(
        select(DeviceCommand.id)
        .where(
            DeviceCommand.device_uuid == device,
            DeviceCommand.taken_at.is_(None),
            DeviceCommand.expires_at > now,
        )
        .limit(1)
    )
    return found is not None


async def take_pending_commands(
    session: AsyncSession, device: uuid.UUID, now: datetime
) -> Sequence[DeviceCommand]:
    """Pending, unexpired commands of a device, marked as taken."""
    statement = (
        select(DeviceCommand)
        .where(
            DeviceCommand.device_uuid == device,
            DeviceCommand.taken_at.is_(None),
            DeviceCommand.expires_at > now,
        )
        .order_by(DeviceCommand.created)
        .limit(20)
    )
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    commands = (await session.scalars(statement)).all()
    if commands:
        await session.execute(
            update(DeviceCommand)
            .where(DeviceCommand.id.in_([c.id for c in commands]))
            .values(taken_at=now)
        )
    return commands


async def complete_command(
    session: AsyncSession,
    device: uuid.UUID,
    command_id: uuid.UUID,
    now: datetime,
    ok: bool,
    error: str | None,
) -> bool:
    result: Any = await session.execute(
        update(DeviceCommand)
        .where(DeviceCommand.id == command_id, DeviceCommand.device_uuid == device)
        .values(completed_at=now, ok=ok, error=error)
    )
    return bool(result.rowcount == 1)


async def purge_messages(session: AsyncSession, before: datetime, limit: int = 5000) -> int:
    """Delete up to `limit` messages received before `before` (their metrics go with
    them) and status events older than that; rows removed."""
    old = select(PayloadMessage.id).where(PayloadMessage.received_at < before).limit(limit)
    messages: Any = await session.execute(delete(PayloadMessage).where(PayloadMessage.id.in_(old)))
    stale = select(DeviceEvent.id).where(DeviceEvent.created < before).limit(limit)
    events: Any = await session.execute(delete(DeviceEvent).where(DeviceEvent.id.in_(stale)))
    return int(messages.rowcount or 0) + int(events.rowcount or 0)


async def purge_commands(session: AsyncSession, before: datetime, limit: int = 5000) -> int:
    """Delete up to `limit` commands that expired before `before` (taken, answered or
    not); rows removed."""
    old = select(DeviceCommand.id).where(DeviceCommand.expires_at < before).limit(limit)
    removed: Any = await session.execute(delete(DeviceCommand).where(DeviceCommand.id.in_(old)))
    return int(removed.rowcount or 0)
