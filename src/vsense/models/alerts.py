"""Alert rules, their state per (rule, device, marker), and the alert history."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from vsense.kit.time import utcnow
from vsense.kit.types import UTCDateTime
from vsense.models.base import Base, CreatedMixin
from vsense.models.gateway import BigId


class AlertRule(CreatedMixin, Base):
    """A rule: its scope (a device, a group, or every device of an app type in the
    organization), what it looks at, its kind and thresholds."""

    __tablename__ = "alert_rules"
    __table_args__ = (
        Index("ix_alert_rules_org_enabled", "organization_id", "enabled"),
        Index("ix_alert_rules_device", "device_uuid"),
        Index("ix_alert_rules_group", "group_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))
    device_uuid: Mapped[UUID | None] = mapped_column(
        Uuid, ForeignKey("devices.uuid", ondelete="CASCADE"), nullable=True
    )
    # A group with rules cannot be deleted (its rules must end their episodes first).
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("groups.id", ondelete="RESTRICT"), nullable=True
    )
    app_type: Mapped[str | None] = mapped_column(String(8), nullable=True)
    metric: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reference_marker: Mapped[str | None] = mapped_column(String(120), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))
    trigger_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    clearing_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    for_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    clear_for_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    severity: Mapped[str] = mapped_column(String(16), default="warning")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    updated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AlertState(Base):
    """Where one (rule, device, marker) stands. `version` is bumped by every change, and
    every change is conditional on the version read (compare and set), so an episode
    fires once and clears once whatever the number of processes evaluating it."""

    __tablename__ = "alert_states"
    __table_args__ = (UniqueConstraint("rule_id", "device_uuid", "marker_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rules.id", ondelete="CASCADE"))
    device_uuid: Mapped[UUID] = mapped_column(
        Uuid, ForeignKey("devices.uuid", ondelete="CASCADE"), index=True
    )
    # The marker's id, or "" for the device total (a unique key cannot hold NULLs).
    marker_key: Mapped[str] = mapped_column(String(64), default="")
    marker_name: Mapped[str | None] = mapped_column(String(120), nullable=True)
    firing: Mapped[bool] = mapped_column(Boolean, default=False)
    # Since when the condition that would change `firing` has held (durations).
    pending_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The last value seen, and since when it has been that value (FROZEN).
    last_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    value_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    alert_uuid: Mapped[UUID | None] = mapped_column(Uuid, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Alert(Base):
    """One episode: its FIRING, and its CLEARING once it ended. `uuid` is the FIRING's
    uuid on the wire, `clearing_uuid` the CLEARING's."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_org_fired", "organization_id", "fired_at", "uuid"),
        Index("ix_alerts_device_fired", "device_uuid", "fired_at"),
        Index("ix_alerts_cleared", "cleared_at"),
    )

    uuid: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    # No foreign key: the history outlives its rule, and stays findable by the rule's id.
    rule_id: Mapped[int] = mapped_column(Integer, index=True)
    rule_name: Mapped[str] = mapped_column(String(120))
    rule_summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    severity: Mapped[str] = mapped_column(String(16))
    device_uuid: Mapped[UUID] = mapped_column(Uuid, ForeignKey("devices.uuid", ondelete="CASCADE"))
    app_type: Mapped[str | None] = mapped_column(String(8), nullable=True)
    metric: Mapped[str | None] = mapped_column(String(32), nullable=True)
    marker_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    marker_name: Mapped[str | None] = mapped_column(String(120), nullable=True)
    fired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fired_state: Mapped[str] = mapped_column(String(32))
    fired_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    clearing_uuid: Mapped[UUID | None] = mapped_column(Uuid, nullable=True, unique=True)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cleared_state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    cleared_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(254), nullable=True)
    acknowledged_by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    ack_note: Mapped[str | None] = mapped_column(String(1000), nullable=True)
