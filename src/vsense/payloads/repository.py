"""All SQL of the payload log and of the derived metrics, as integrators read them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Integer, Table, bindparam, delete, func, insert, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.kit.json_text import json_text
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


# --- Writes: the payload log and its derived metrics, as devices send them ---------------


# SQLite: Core statements, built once (the ORM's bulk insert, its per-row bookkeeping,
# cost more of the ingest path's time than the statements themselves). Asked for the ids
# in the rows' order, SQLAlchemy would insert row by row on SQLite (a statement, and a
# hop to the driver's thread, per message). One statement instead: SQLite gives each
# row of it the id one above the largest in the table (a rowid table), so the ids in
# ascending order are the rows' in order.
_MESSAGES = cast(Table, PayloadMessage.__table__)
_ADD_MESSAGES = insert(_MESSAGES).returning(_MESSAGES.c.id)
_ADD_METRICS = insert(cast(Table, DeviceMetric.__table__))


# PostgreSQL: the rows as one array per column (each parameter is named after its
# column), in one statement whose text does not depend on how many there are (one
# prepared statement for every size of group), and without SQLAlchemy's processing of
# each value. Messages get their ids from the sequence in the order of `n`, so the ids
# in ascending order are the rows' in order.
_MESSAGE_COLUMNS = ("device_uuid", "type", "version", "timestamp", "received_at", "payload")
_MESSAGES_FROM_ARRAYS = text(
    """
    INSERT INTO payload_messages (device_uuid, type, version, timestamp, received_at, payload)
    SELECT device_uuid, type, version, timestamp, received_at, payload
    FROM unnest(
        CAST(:device_uuid AS uuid[]), CAST(:type AS varchar[]), CAST(:version AS int[]),
        CAST(:timestamp AS timestamptz[]), CAST(:received_at AS timestamptz[]),
        CAST(:payload AS json[])
    ) WITH ORDINALITY AS v(device_uuid, type, version, timestamp, received_at, payload, n)
    ORDER BY n
    RETURNING id
    """
)
_METRIC_COLUMNS = (
    "device_uuid",
    "message_id",
    "received_at",
    "epoch",
    "name",
    "value",
    "marker_id",
    "marker_name",
)
_METRICS_FROM_ARRAYS = text(
    """
    INSERT INTO device_metrics
        (device_uuid, message_id, received_at, epoch, name, value, marker_id, marker_name)
    SELECT * FROM unnest(
        CAST(:device_uuid AS uuid[]), CAST(:message_id AS bigint[]),
        CAST(:received_at AS timestamptz[]), CAST(:epoch AS bigint[]),
        CAST(:name AS varchar[]), CAST(:value AS float8[]), CAST(:marker_id AS varchar[]),
        CAST(:marker_name AS varchar[])
    )
    """
)


def _columns(rows: list[dict[str, Any]], columns: Sequence[str]) -> dict[str, list[Any]]:
    """`rows` as one list per column."""
    return {column: [row[column] for row in rows] for column in columns}


async def add_messages(session: AsyncSession, rows: list[dict[str, Any]]) -> list[int]:
    """Insert messages; their ids, in the order of `rows`."""
    if not rows:
        return []
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        arrays = _columns(rows, _MESSAGE_COLUMNS)
        arrays["payload"] = [json_text(payload) for payload in arrays["payload"]]
        result = await connection.execute(_MESSAGES_FROM_ARRAYS, arrays)
    else:
        result = await connection.execute(_ADD_MESSAGES, rows)
    return sorted(result.scalars().all())


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
    if not rows:
        return
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        await connection.execute(_METRICS_FROM_ARRAYS, _columns(rows, _METRIC_COLUMNS))
        return
    await connection.execute(_ADD_METRICS, rows)


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


async def purge_messages(session: AsyncSession, before: datetime, limit: int = 5000) -> int:
    """Delete up to `limit` messages received before `before`, and their metrics; rows
    removed. (On PostgreSQL retention drops whole days instead: `vsense.partitions`.)"""
    # In id order, so that both statements pick the same messages (the oldest first).
    old = (
        select(PayloadMessage.id)
        .where(PayloadMessage.received_at < before)
        .order_by(PayloadMessage.id)
        .limit(limit)
    )
    await session.execute(delete(DeviceMetric).where(DeviceMetric.message_id.in_(old)))
    messages: Any = await session.execute(delete(PayloadMessage).where(PayloadMessage.id.in_(old)))
    return int(messages.rowcount or 0)
