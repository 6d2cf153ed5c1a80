"""API shapes of portal links."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from vsense.kit.schemas import RequestBody, Timestamp

MIN_LIFETIME_HOURS = 1
MAX_LIFETIME_HOURS = 30 * 24
DEFAULT_LIFETIME_HOURS = 7 * 24


class PortalLinkCreate(RequestBody):
    group_id: int = Field(ge=1, le=2_147_483_647, description="The group the link opens")
    label: str = Field(
        min_length=1, max_length=120, description="Whom the link is for, as the admin names it"
    )
    expires_in_hours: int = Field(
        DEFAULT_LIFETIME_HOURS,
        ge=MIN_LIFETIME_HOURS,
        le=MAX_LIFETIME_HOURS,
        description="Lifetime of the link: 1 hour to 30 days, 7 days if not given",
    )

    @field_validator("label")
    @classmethod
    def _label_not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value


class PortalLink(BaseModel):
    id: int
    group_id: int
    group_name: str
    label: str
    created_by: int | None = Field(description="The admin who created it (null once deleted)")
    created: Timestamp
    expires_at: Timestamp
    revoked_at: Timestamp | None
    state: Literal["active", "expired", "revoked"]


class PortalLinkCreated(PortalLink):
    url: str = Field(
        description="The link to hand over, holding its token: shown once, only its hash is stored."
    )


@dataclass(frozen=True, slots=True)
class PortalAccess:
    """What an open portal link grants: one group of one organization."""

    link_id: int
    organization_id: int
    group_id: int
    group_name: str
    label: str
    token_hash: str
    created_by: int | None
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class PortalDevice:
    """All the portal shows of a device: its name and UUID."""

    uuid: uuid.UUID
    name: str
