"""Devices and their credentials."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Uuid, false
from sqlalchemy.orm import Mapped, mapped_column

from vsense.kit.time import utcnow
from vsense.kit.types import UTCDateTime
from vsense.models.base import Base, CreatedMixin

# Byte order on both databases: SQLite compares text as bytes, and PostgreSQL's "C"
# collation does the same, so sorting by name gives one order everywhere.
SortableText = String(120).with_variant(String(120, collation="C"), "postgresql")


class Device(CreatedMixin, Base):
    __tablename__ = "devices"
    __table_args__ = (
        Index("ix_devices_org_name", "organization_id", "name", "uuid"),
        # A null `refreshed` sorts as the oldest. SQLite puts nulls first by nature; on
        # PostgreSQL the index says so, and one index then serves both directions.
        Index(
            "ix_devices_org_refreshed",
            "organization_id",
            "refreshed",
            "uuid",
            postgresql_ops={"refreshed": "NULLS FIRST"},
        ),
        Index("ix_devices_org_created", "organization_id", "created", "uuid"),
        # `sort=is_online`: online status, then name, then uuid.
        Index("ix_devices_org_online_name", "organization_id", "is_online", "name", "uuid"),
        Index("ix_devices_org_city", "organization_id", "geo_city", "uuid"),
        Index("ix_devices_org_country", "organization_id", "geo_country", "uuid"),
        Index("ix_devices_online_deadline", "is_online", "offline_after"),
        Index(
            "ix_devices_org_group_online",
            "organization_id",
            "group_id",
            "is_online",
            "name",
            "uuid",
        ),
    )

    uuid: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("groups.id", ondelete="SET NULL"), nullable=True, index=True
    )
    name: Mapped[str] = mapped_column(SortableText)
    client_identifier: Mapped[str] = mapped_column(String(120), default="")
    geo_city: Mapped[str] = mapped_column(SortableText, default="")
    geo_country: Mapped[str] = mapped_column(
        String(60).with_variant(String(60, collation="C"), "postgresql"), default=""
    )
    app_type: Mapped[str | None] = mapped_column(String(8), nullable=True)
    # Null means "inherit": the group's interval, else the platform default.
    keepalive_interval: Mapped[int | None] = mapped_column(Integer, nullable=True)
    is_online: Mapped[bool] = mapped_column(Boolean, default=False)
    # The last time the platform updated the device's status; the onboarding time until
    # then. Never null since migration 0006 (the column stays nullable so that old rows
    # could be filled in place).
    refreshed: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, default=utcnow)
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    status_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # When the device goes offline unless it shows a sign of life before: set at each
    # sign of life from its effective keepalive interval, so the sweep is one indexed
    # comparison on both databases.
    offline_after: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Set by the MQTT bridge when it first hears the device: any server process then
    # pushes the device's new commands to its commands topic, not only the one that
    # heard it.
    speaks_mqtt: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    updated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class DeviceCredential(CreatedMixin, Base):
    """The hash of a device's current token; rotating replaces it."""

    __tablename__ = "device_credentials"

    device_uuid: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("devices.uuid", ondelete="CASCADE"), primary_key=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
