"""All SQL of device commands.

Core statements on the table, not the ORM: commands are written and taken on the device
paths (a snapshot's request, long poll and result), where the unit of work and ORM rows
cost more than the statements themselves.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.kit.sql import is_postgres, one_of
from vsense.models import DeviceCommand

TAKE_AT_ONCE = 20
COMMANDS = cast(Table, DeviceCommand.__table__)
_ADD = insert(COMMANDS)


async def add_command(
    session: AsyncSession,
    command_id: uuid.UUID,
    device: uuid.UUID,
    command_type: str,
    arguments: dict[str, Any],
    created: datetime,
    expires_at: datetime,
) -> None:
    values = {
        "id": command_id,
        "device_uuid": device,
        "type": command_type,
        "arguments": arguments,
        "created": created,
        "expires_at": expires_at,
    }
    await session.execute(_ADD, values)


# Built once per database: the keepalives' batched look-up (plain rows).
@functools.cache
def _pending_among(postgres: bool) -> Any:
    return (
        select(COMMANDS.c.device_uuid)
        .where(
            one_of(COMMANDS.c.device_uuid, "devices", postgres),
            COMMANDS.c.taken_at.is_(None),
            COMMANDS.c.expires_at > bindparam("now"),
        )
        .distinct()
    )


async def devices_with_pending_commands(
    session: AsyncSession, devices: Collection[uuid.UUID], now: datetime
) -> set[uuid.UUID]:
    """Those of `devices` that have pending, unexpired commands (one statement)."""
    connection = await session.connection()
    found = await connection.scalars(
        _pending_among(is_postgres(session)), {"devices": list(devices), "now": now}
    )
    return set(found)


# Built once: a long poll's or keepalive's take. The rows are locked on PostgreSQL,
# skipping those another process is taking (SQLite leaves FOR UPDATE out: its writer
# holds the only write lock).
_TAKE = (
    update(COMMANDS)
    .where(
        COMMANDS.c.id.in_(
            select(COMMANDS.c.id)
            .where(
                COMMANDS.c.device_uuid == bindparam("device"),
                COMMANDS.c.taken_at.is_(None),
                COMMANDS.c.expires_at > bindparam("now"),
            )
            .order_by(COMMANDS.c.created)
            .limit(TAKE_AT_ONCE)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
    )
    .values(taken_at=bindparam("now"))
    .returning(COMMANDS.c.id, COMMANDS.c.type, COMMANDS.c.arguments, COMMANDS.c.created)
)


async def take_pending_commands(
    session: AsyncSession, device: uuid.UUID, now: datetime
) -> list[Row[Any]]:
    """Pending, unexpired commands of a device, oldest first, marked as taken (one
    statement): rows of `id`, `type`, `arguments` and `created`."""
    taken = await session.execute(_TAKE, {"device": device, "now": now})
    return sorted(taken.all(), key=lambda command: (command.created, str(command.id)))


_COMPLETE = (
    update(COMMANDS)
    .where(COMMANDS.c.id == bindparam("command"), COMMANDS.c.device_uuid == bindparam("device"))
    .values(completed_at=bindparam("now"), ok=bindparam("ok"), error=bindparam("error"))
    .returning(COMMANDS.c.type)
)


async def complete_command(
    session: AsyncSession,
    device: uuid.UUID,
    command_id: uuid.UUID,
    now: datetime,
    ok: bool,
    error: str | None,
) -> str | None:
    """Record a command's result; its type, or None when the device has no such command."""
    parameters = {"command": command_id, "device": device, "now": now, "ok": ok, "error": error}
    kind: str | None = await session.scalar(_COMPLETE, parameters)
    return kind


async def purge_commands(session: AsyncSession, before: datetime, limit: int = 5000) -> int:
    """Delete up to `limit` commands that expired before `before` (taken, answered or
    not); rows removed."""
    old = select(DeviceCommand.id).where(DeviceCommand.expires_at < before).limit(limit)
    removed: Any = await session.execute(delete(DeviceCommand).where(DeviceCommand.id.in_(old)))
    return int(removed.rowcount or 0)
