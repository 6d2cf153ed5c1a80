"""All SQL about snapshot requests."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.models import Device, DeviceCommand, ImageRequest
from vsense.models.images import FAILED, PENDING, READY


async def lock_device(session: AsyncSession, device: uuid.UUID) -> None:
    """Serialise snapshot requests of one device (PostgreSQL; SQLite writers are serial)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(Device.uuid).where(Device.uuid == device).with_for_update())


async def pending_for_device(session: AsyncSession, device: uuid.UUID) -> ImageRequest | None:
    request: ImageRequest | None = await session.scalar(
        select(ImageRequest).where(
            ImageRequest.device_uuid == device, ImageRequest.status == PENDING
        )
    )
    return request


async def add(session: AsyncSession, request: ImageRequest) -> None:
    session.add(request)
    await session.flush()


async def get(session: AsyncSession, request_id: uuid.UUID) -> ImageRequest | None:
    return await session.get(ImageRequest, request_id)


async def get_for_update(session: AsyncSession, request_id: uuid.UUID) -> ImageRequest | None:
    statement = select(ImageRequest).where(ImageRequest.id == request_id)
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update()
    request: ImageRequest | None = await session.scalar(statement)
    return request


async def list_for_device(
    session: AsyncSession, device: uuid.UUID, *, offset: int, limit: int
) -> tuple[Sequence[ImageRequest], int]:
    """A device's requests, newest first, and how many there are."""
    requests = (
        await session.scalars(
            select(ImageRequest)
            .where(ImageRequest.device_uuid == device)
            .order_by(ImageRequest.created.desc(), ImageRequest.id.desc())
            .offset(offset)
            .limit(limit)
        )
    ).all()
    total = await session.scalar(
        select(func.count()).select_from(ImageRequest).where(ImageRequest.device_uuid == device)
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
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    return list((await session.scalars(statement)).all())


async def record_upload(
    session: AsyncSession,
    request: ImageRequest,
    kind: str,
    media_type: str,
    sha256: str,
    size: int,
    now: datetime,
) -> bool:
    """Record one kind's upload; True when the request became ready with it."""
    setattr(request, f"{kind}_type", media_type)
    setattr(request, f"{kind}_sha256", sha256)
    setattr(request, f"{kind}_size", size)
    if request.raw_sha256 is not None and request.annotated_sha256 is not None:
        request.status = READY
        request.ready_at = now
    await session.flush()
    return request.status == READY


async def delete_created_before(session: AsyncSession, cutoff: datetime) -> int:
    """Delete requests made before `cutoff` (their images go by the store's own age)."""
    result: Any = await session.execute(delete(ImageRequest).where(ImageRequest.created < cutoff))
    return int(result.rowcount or 0)
