"""Snapshot requests: a raw and an annotated image asked of a device, and where they are."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from vsense.kit.types import UTCDateTime
from vsense.models.base import Base

PENDING, READY, FAILED = "pending", "ready", "failed"


class ImageRequest(Base):
    """One snapshot request. Its id is the `request_id` of the links, the command and the
    uploads; the images themselves are in the image store, keyed by request and kind."""

    __tablename__ = "image_requests"
    __table_args__ = (
        Index("ix_image_requests_device_created", "device_uuid", "created"),
        Index("ix_image_requests_status_deadline", "status", "capture_deadline"),
        Index("ix_image_requests_created", "created"),
        # At most one pending request per device: a second request reuses it.
        Index(
            "uq_image_requests_pending_device",
            "device_uuid",
            unique=True,
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    device_uuid: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("devices.uuid", ondelete="CASCADE")
    )
    command_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    # The links' expiry (created + image_link_ttl), and when a device that has not
    # uploaded both images by then has failed (created + image_capture_timeout).
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    capture_deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Scheme and host the integrator asked through, for links built without a request
    # (the `image` webhook); `public_url` overrides it.
    base_url: Mapped[str] = mapped_column(String(300))
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # Per kind: the detected media type, the SHA-256 of the bytes (the ETag), the size.
    raw_type: Mapped[str | None] = mapped_column(String(16), nullable=True)
    raw_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    raw_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    annotated_type: Mapped[str | None] = mapped_column(String(16), nullable=True)
    annotated_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    annotated_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
