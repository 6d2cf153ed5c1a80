"""All SQL of the payload log and of the derived metrics, as integrators read them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.models import DeviceMetric, PayloadMessage


async def list_messages(
    session: AsyncSession,
    device: uuid.UUID,
    *,
    since: datetime | None,
    until: datetime | None,
    message_type: str | None,
    offset: int,
    limit: int,
) -> tuple[Sequence[PayloadMessage], int]:
    clauses = [PayloadMessage.device_uuid == device]
    if since is not None:
        clauses.append(PayloadMessage.timestamp >= since)
    if until is not None:
        clauses.append(PayloadMessage.timestamp <= until)
    if message_type:
        clauses.append(PayloadMessage.type == message_type)
    total = await session.scalar(select(func.count()).select_from(PayloadMessage).where(*clauses))
    rows = await session.scalars(
        select(PayloadMessage)
        .where(*clauses)
        .order_by(PayloadMessage.timestamp.desc(), PayloadMessage.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return rows.all(), int(total or 0)


async def metric_buckets(
    session: AsyncSession,
    device: uuid.UUID,
    *,
    since: int,
    until: int,
    interval: int,
    name: str | None,
    marker: str | None,
) -> list[tuple[Any, ...]]:
    """avg/min/max/count of each metric and marker per `interval` seconds (UTC-aligned)."""
    step = bindparam("step", interval, type_=Integer)
    bucket = (DeviceMetric.epoch - DeviceMetric.epoch % step).label("bucket")
    clauses = [
        DeviceMetric.device_uuid == device,
        DeviceMetric.epoch >= since,
        DeviceMetric.epoch <= until,
    ]
    if name:
        clauses.append(DeviceMetric.name == name)
    if marker:
        clauses.append(or_(DeviceMetric.marker_id == marker, DeviceMetric.marker_name == marker))
    statement = (
        select(
            DeviceMetric.name,
            DeviceMetric.marker_id,
            DeviceMetric.marker_name,
            bucket,
            func.avg(DeviceMetric.value),
            func.min(DeviceMetric.value),
            func.max(DeviceMetric.value),
            func.count(),
        )
        .where(*clauses)
        .group_by(DeviceMetric.name, DeviceMetric.marker_id, DeviceMetric.marker_name, bucket)
        .order_by(DeviceMetric.name, DeviceMetric.marker_id, bucket)
    )
    return [tuple(row) for row in (await session.execute(statement)).all()]
