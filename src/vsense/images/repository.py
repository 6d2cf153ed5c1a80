"""All SQL about snapshot requests."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, delete, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.images.links import KINDS, ImageKind
from vsense.kit.sql import is_postgres
from vsense.models import Device, DeviceCommand, ImageRequest
from vsense.models.images import FAILED, PENDING, READY

# Core statements on the tables, built once: a snapshot's request, uploads and links are
# a burst of small writes and reads, where the unit of work and ORM rows cost more than
# the statements. A request is a row of the table (attributes named as its columns).
REQUESTS = cast(Table, ImageRequest.__table__)
_DEVICES = cast(Table, Device.__table__)
_LOCK_DEVICE = (
    select(_DEVICES.c.uuid).where(_DEVICES.c.uuid == bindparam("device")).with_for_update()
)
_PENDING_FOR_DEVICE = select(REQUESTS).where(
    REQUESTS.c.device_uuid == bindparam("device"), REQUESTS.c.status == PENDING
)
_ADD = insert(REQUESTS)
_GET = select(REQUESTS).where(REQUESTS.c.id == bindparam("id"))
_GET_FOR_UPDATE = _GET.with_for_update()


def _record(kind: str) -> Any:
    return (
        update(REQUESTS)
        .where(REQUESTS.c.id == bindparam("request"))
        .values(
            {
                f"{kind}_type": bindparam("media_type"),
                f"{kind}_sha256": bindparam("sha256"),
                f"{kind}_size": bindparam("size"),
                "status": bindparam("status"),
                "ready_at": bindparam("ready_at"),
            }
        )
        .returning(REQUESTS)
    )


_RECORD = {kind: _record(kind) for kind in KINDS}


async def lock_device(session: AsyncSession, device: uuid.UUID) -> None:
    """Serialise snapshot requests of one device (PostgreSQL; SQLite writers are serial)."""
    if is_postgres(session):
        await session.execute(_LOCK_DEVICE, {"device": device})


async def pending_for_device(session: AsyncSession, device: uuid.UUID) -> Row[Any] | None:
    return (await session.execute(_PENDING_FOR_DEVICE, {"device": device})).first()


async def add(session: AsyncSession, request: dict[str, Any]) -> None:
    """Insert a request, given as its columns' values."""
    await session.execute(_ADD, request)


async def get(session: AsyncSession, request_id: uuid.UUID) -> Row[Any] | None:
    return (await session.execute(_GET, {"id": request_id})).first()


async def get_for_update(session: AsyncSession, request_id: uuid.UUID) -> Row[Any] | None:
    """A request, locked for the rest of the transaction on PostgreSQL (SQLite leaves
    FOR UPDATE out: its writer holds the only write lock)."""
    return (await session.execute(_GET_FOR_UPDATE, {"id": request_id})).first()


async def list_for_device(
    session: AsyncSession, device: uuid.UUID, *, offset: int, limit: int
) -> tuple[Sequence[Row[Any]], int]:
    """A device's requests, newest first, and how many there are."""
    requests = (
        await session.execute(
            select(REQUESTS)
            .where(REQUESTS.c.device_uuid == device)
            .order_by(REQUESTS.c.created.desc(), REQUESTS.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
    ).all()
    total = await session.scalar(
        select(func.count()).select_from(REQUESTS).where(REQUESTS.c.device_uuid == device)
    )
    return requests, int(total or 0)


async def fail(
    session: AsyncSession, request_ids: Sequence[uuid.UUID], error: str
) -> list[uuid.UUID]:
    """Mark pending requests failed; the ids of those that were still pending."""
    if not request_ids:
        return []
    result = await session.execute(
        update(ImageRequest)
        .where(ImageRequest.id.in_(request_ids), ImageRequest.status == PENDING)
        .values(status=FAILED, error=error[:500])
        .returning(ImageRequest.id)
    )
    return list(result.scalars().all())


async def pending_for_command(session: AsyncSession, command_id: uuid.UUID) -> uuid.UUID | None:
    found: uuid.UUID | None = await session.scalar(
        select(ImageRequest.id).where(
            ImageRequest.command_id == command_id, ImageRequest.status == PENDING
        )
    )
    return found


async def overdue(session: AsyncSession, now: datetime, limit: int) -> list[uuid.UUID]:
    """Pending requests past their capture deadline, or whose command expired untaken.
    Locked on PostgreSQL, skipping rows another worker holds."""
    command_expired = exists().where(
        DeviceCommand.id == ImageRequest.command_id,
        DeviceCommand.taken_at.is_(None),
        DeviceCommand.expires_at <= now,
    )
    statement = (
        select(ImageRequest.id)
        .where(
            ImageRequest.status == PENDING,
            or_(ImageRequest.capture_deadline <= now, command_expired),
        )
        .limit(limit)
    )
    if is_postgres(session):
        statement = statement.with_for_update(skip_locked=True)
    return list((await session.scalars(statement)).all())


async def record_upload(
    session: AsyncSession,
    request: Row[Any],
    kind: ImageKind,
    media_type: str,
    sha256: str,
    size: int,
    now: datetime,
) -> Row[Any]:
    """Record one kind's upload of a request read for update: the request as it is now
    (ready once both kinds are there)."""
    others_there = all(
        getattr(request, f"{other}_sha256") is not None for other in KINDS if other != kind
    )
    parameters = {
        "request": request.id,
        "media_type": media_type,
        "sha256": sha256,
        "size": size,
        "status": READY if others_there else request.status,
        "ready_at": now if others_there else request.ready_at,
    }
    recorded = (await session.execute(_RECORD[kind], parameters)).one()
    return recorded


async def delete_created_before(session: AsyncSession, cutoff: datetime) -> int:
    """Delete requests made before `cutoff` (their images go by the store's own age)."""
    result: Any = await session.execute(delete(ImageRequest).where(ImageRequest.created < cutoff))
    return int(result.rowcount or 0)
