"""Shapes of the snapshot API (documentation of the answers; the routes send orjson)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from vsense.kit.schemas import ListMeta, Timestamp

ImageStatus = Literal["pending", "ready", "failed", "expired"]


class ImageRequestMeta(BaseModel):
    request_id: str
    status: Literal["pending", "ready", "failed"]
    expires_at: Timestamp = Field(description="When the two links stop working")


class ImageRequested(BaseModel):
    """The seed's answer: the raw and the annotated link, in that order, plus `meta`."""

    data: list[str] = Field(description="[raw image link, annotated image link]")
    meta: ImageRequestMeta


class ImageRequestItem(BaseModel):
    request_id: str
    status: ImageStatus = Field(
        description="pending, ready, failed (the device reported a failure or did not upload "
        "within the capture timeout) or expired (the links no longer work)"
    )
    created: Timestamp
    expires_at: Timestamp
    ready_at: Timestamp | None
    error: str | None
    links: list[str] = Field(description="[raw, annotated] while the links are valid, else []")


class ImageRequestList(BaseModel):
    data: list[ImageRequestItem]
    meta: ListMeta


class ImagePending(BaseModel):
    status: Literal["pending"]
