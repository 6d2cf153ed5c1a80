"""What devices send and receive: the payload log, derived metrics, status events, commands."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from vsense.kit.types import UTCDateTime
from vsense.models.base import Base

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit key.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class PayloadMessage(Base):
    """One accepted device message, stored as received.

    On PostgreSQL the table is partitioned by week of `received_at` (`vsense.partitions`,
    migration 0009) and its primary key is `(id, received_at)`, as a partitioned table's
    key must hold the partition key; `id` comes from one sequence and stays unique, and
    it alone identifies a row here (SQLite auto-increments a single-column key only).
    """

    __tablename__ = "payload_messages"
    __table_args__ = (Index("ix_payload_messages_device_time", "device_uuid", "timestamp", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_uuid: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("devices.uuid", ondelete="CASCADE")
    )
    type: Mapped[str] = mapped_column(String(32))
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    payload: Mapped[Any] = mapped_column(JSON)


class DeviceMetric(Base):
    """A value derived from a message (occupied, count, in, out, net, occupancy, dwell_s).

    `epoch` repeats the time as UNIX seconds so that bucketing is integer arithmetic,
    the same on both databases. `received_at` repeats the message's: on PostgreSQL the
    table is partitioned by it like the log, so a message's metrics are in the same week
    and retention drops them together. `message_id` is not a foreign key: one into a
    partitioned table would make dropping a week scan this one for rows pointing into it.
    """

    __tablename__ = "device_metrics"
    __table_args__ = (Index("ix_device_metrics_device_epoch", "device_uuid", "epoch"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_uuid: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("devices.uuid", ondelete="CASCADE")
    )
    message_id: Mapped[int] = mapped_column(BigId, index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    epoch: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(32))
    value: Mapped[float] = mapped_column(Float)
    marker_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    marker_name: Mapped[str | None] = mapped_column(String(120), nullable=True)


class DeviceEvent(Base):
    """A status transition: online or offline, with its reason.

    Partitioned by week of `created` on PostgreSQL, with `(id, created)` as its key there
    (see `PayloadMessage`).
    """

    __tablename__ = "device_events"
    __table_args__ = (Index("ix_device_events_device_created", "device_uuid", "created", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_uuid: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("devices.uuid", ondelete="CASCADE")
    )
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(64))


class DeviceCommand(Base):
    """A command waiting for, or taken by, a device (capture_image, reboot)."""

    __tablename__ = "device_commands"
    __table_args__ = (Index("ix_device_commands_device_pending", "device_uuid", "taken_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    device_uuid: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("devices.uuid", ondelete="CASCADE")
    )
    type: Mapped[str] = mapped_column(String(32))
    arguments: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    taken_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ok: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
