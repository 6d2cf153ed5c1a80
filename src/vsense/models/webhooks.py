"""Webhooks, the events sent to them, and the delivery queue (the transactional outbox).

An event is stored once (its body serialized once, so every attempt sends the same
bytes); each webhook it goes to has a delivery row. Pending deliveries are the queue:
a partial index holds only them, so the queue stays small however long the log grows.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from vsense.kit.time import utcnow
from vsense.kit.types import UTCDateTime
from vsense.models.base import Base, CreatedMixin
from vsense.models.gateway import BigId

PENDING = "pending"
_PENDING_ONLY = text("status = 'pending'")


class Webhook(CreatedMixin, Base):
    """An integrator's endpoint attached to one device."""

    __tablename__ = "webhooks"
    __table_args__ = (
        # Endpoints with a breaker set (few): what every claim leaves out while open.
        Index(
            "ix_webhooks_breaker_open",
            "breaker_open_until",
            sqlite_where=text("breaker_open_until IS NOT NULL"),
            postgresql_where=text("breaker_open_until IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    device_uuid: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("devices.uuid", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(2048))
    webhook_type: Mapped[str] = mapped_column(String(16))
    actions: Mapped[str] = mapped_column(String(200), default="")
    method: Mapped[str] = mapped_column(String(8), default="POST")
    status: Mapped[int] = mapped_column(Integer, default=1)
    headers: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    params: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    secret: Mapped[str] = mapped_column(String(100))
    # During a rotation the old secret keeps signing alongside the new one until then.
    previous_secret: Mapped[str | None] = mapped_column(String(100), nullable=True)
    previous_secret_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Start of the current run of failed attempts (none since the last success).
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The endpoint's circuit breaker, shared by every dispatcher process: consecutive
    # endpoint failures, until when claims leave its deliveries alone, and for how long it
    # was last opened (doubling while the failures go on).
    breaker_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    breaker_open_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    breaker_open_seconds: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    updated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class WebhookEvent(Base):
    """Something that happened to a device, in the body every receiver gets."""

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_device_created", "device_uuid", "created"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # `webhook-id`: the same on every attempt, redelivery and replay of this event.
    msg_id: Mapped[str] = mapped_column(String(40))
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    device_uuid: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("devices.uuid", ondelete="CASCADE")
    )
    type: Mapped[str] = mapped_column(String(16))
    created: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    body: Mapped[str] = mapped_column(Text)


class WebhookDelivery(Base):
    """One event on its way to one webhook: pending, then succeeded, failed or dead."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # The queue: due pending deliveries in order. Only pending rows are indexed.
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            "id",
            sqlite_where=_PENDING_ONLY,
            postgresql_where=_PENDING_ONLY,
        ),
        # Per device and webhook, the earlier pending deliveries (order while healthy).
        Index(
            "ix_webhook_deliveries_order",
            "webhook_id",
            "device_uuid",
            "id",
            sqlite_where=_PENDING_ONLY,
            postgresql_where=_PENDING_ONLY,
        ),
        # Deliveries out with a worker: what a claim must leave alone (few rows).
        Index(
            "ix_webhook_deliveries_leased",
            "lease_until",
            sqlite_where=_PENDING_ONLY,
            postgresql_where=_PENDING_ONLY,
        ),
        Index("ix_webhook_deliveries_log", "webhook_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True
    )
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    device_uuid: Mapped[uuid.UUID] = mapped_column(Uuid)
    status: Mapped[str] = mapped_column(String(12), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Claims whose worker vanished before writing an outcome (a possible duplicate send).
    reclaims: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)


class WebhookAttempt(Base):
    """One HTTP request of a delivery and what came back."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration_ms: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    response_head: Mapped[str] = mapped_column(Text, default="")
