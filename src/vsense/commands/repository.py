"""All SQL of device commands."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.models import DeviceCommand

TAKE_AT_ONCE = 20


async def add_command(session: AsyncSession, command: DeviceCommand) -> None:
    session.add(command)
    await session.flush()


# Built once: the keepalives' batched look-up.
_PENDING_AMONG = (
    select(DeviceCommand.device_uuid)
    .where(
        DeviceCommand.device_uuid.in_(bindparam("devices", expanding=True)),
        DeviceCommand.taken_at.is_(None),
        DeviceCommand.expires_at > bindparam("now"),
    )
    .distinct()
)


async def devices_with_pending_commands(
    session: AsyncSession, devices: Collection[uuid.UUID], now: datetime
) -> set[uuid.UUID]:
    """Those of `devices` that have pending, unexpired commands (one statement)."""
    found = await session.scalars(_PENDING_AMONG, {"devices": list(devices), "now": now})
    return set(found)


async def take_pending_commands(
    session: AsyncSession, device: uuid.UUID, now: datetime
) -> Sequence[DeviceCommand]:
    """Pending, unexpired commands of a device, oldest first, marked as taken (one
    statement)."""
    pending = (
        select(DeviceCommand.id)
        .where(
            DeviceCommand.device_uuid == device,
            DeviceCommand.taken_at.is_(None),
            DeviceCommand.expires_at > now,
        )
        .order_by(DeviceCommand.created)
        .limit(TAKE_AT_ONCE)
    )
    if session.get_bind().dialect.name == "postgresql":
        pending = pending.with_for_update(skip_locked=True)
    taken = await session.scalars(
        update(DeviceCommand)
        .where(DeviceCommand.id.in_(pending.scalar_subquery()))
        .values(taken_at=now)
        .returning(DeviceCommand),
        execution_options={"synchronize_session": False},
    )
    return sorted(taken.all(), key=lambda command: (command.created, str(command.id)))


async def complete_command(
    session: AsyncSession,
    device: uuid.UUID,
    command_id: uuid.UUID,
    now: datetime,
    ok: bool,
    error: str | None,
) -> str | None:
    """Record a command's result; its type, or None when the device has no such command."""
    kind: str | None = await session.scalar(
        update(DeviceCommand)
        .where(DeviceCommand.id == command_id, DeviceCommand.device_uuid == device)
        .values(completed_at=now, ok=ok, error=error)
        .returning(DeviceCommand.type)
    )
    return kind


async def purge_commands(session: AsyncSession, before: datetime, limit: int = 5000) -> int:
    """Delete up to `limit` commands that expired before `before` (taken, answered or
    not); rows removed."""
    old = select(DeviceCommand.id).where(DeviceCommand.expires_at < before).limit(limit)
    removed: Any = await session.execute(delete(DeviceCommand).where(DeviceCommand.id.in_(old)))
    return int(removed.rowcount or 0)
