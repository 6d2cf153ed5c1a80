"""API shapes of devices. The first seven fields are the seed's, in the seed's order."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from vsense.kit.schemas import ListMeta, RequestBody, Timestamp


class AppType(StrEnum):
    VPM = "VPM"
    VYD = "VYD"
    VCZ = "VCZ"
    VCB = "VCB"
    VCW = "VCW"


# Documents a device for the OpenAPI document; what is written is `types.DeviceView`.
class Device(BaseModel):
    uuid: str
    name: str
    client_identifier: str
    refreshed: str = Field(
        description="Last time the platform updated the status (ISO 8601, UTC); until the "
        "first update, the onboarding time. Never null."
    )
    is_online: Literal[0, 1]
    geo_city: str
    geo_country: str
    group: str | None = Field(description="Name of the device's group, or null.")
    group_id: int | None
    app_type: AppType | None
    keepalive_interval: int | None = Field(
        description="The device's own keepalive interval in seconds; null inherits the group's."
    )
    created: str
    last_seen: str | None
    status_reason: str | None


class DeviceEvent(BaseModel):
    id: int
    status: Literal["online", "offline"]
    reason: str
    created: Timestamp = Field(description="ISO 8601, UTC")


class DeviceList(BaseModel):
    data: list[Device]
    meta: ListMeta


class DeviceOnboarded(Device):
    device_token: str = Field(description="The device's token, shown once.")


class DeviceCredentials(BaseModel):
    uuid: str
    device_token: str = Field(description="The device's new token, shown once.")


GroupReference = int | str


class DeviceUpdate(RequestBody):
    """Any device fields; only these change. Read-only fields that are sent are ignored."""

    name: str | None = Field(None, min_length=1, max_length=120)
    client_identifier: str | None = Field(None, max_length=120)
    geo_city: str | None = Field(None, max_length=120)
    geo_country: str | None = Field(
        None, max_length=60, description="ISO 3166-1 alpha-2 code or a country name."
    )
    group: GroupReference | None = Field(
        None, description="A group's name or id; null takes the device out of its group."
    )
    keepalive_interval: int | None = Field(
        None, ge=10, le=86400, description="Seconds; null inherits the group's interval."
    )

    @field_validator("name")
    @classmethod
    def _name_not_null(cls, value: str | None) -> str:
        if value is None or not value.strip():
            raise ValueError("name must be a non-empty string")
        return value


class DeviceCreate(RequestBody):
    name: str = Field(min_length=1, max_length=120)
    client_identifier: str = Field("", max_length=120)
    group: GroupReference | None = None
    app_type: AppType | None = None
    geo_city: str = Field("", max_length=120)
    geo_country: str = Field("", max_length=60)
    keepalive_interval: int | None = Field(None, ge=10, le=86400)
