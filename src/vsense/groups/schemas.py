"""API shapes of device groups."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from vsense.kit.schemas import RequestBody, Timestamp


class Group(BaseModel):
    id: int
    name: str
    keepalive_interval: int | None = Field(
        description="Keepalive interval of the group's devices, seconds (null: platform default)"
    )
    device_count: int
    created: Timestamp


def _check_name(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    if value.lower() == "none":
        raise ValueError("`none` is reserved: it filters devices without a group")
    return value


class GroupCreate(RequestBody):
    name: str = Field(min_length=1, max_length=120)
    keepalive_interval: int | None = Field(None, ge=10, le=86400)

    _name = field_validator("name")(_check_name)


class GroupUpdate(RequestBody):
    name: str | None = Field(None, min_length=1, max_length=120)
    keepalive_interval: int | None = Field(None, ge=10, le=86400)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str:
        checked = _check_name(value)
        if checked is None:
            raise ValueError("name must be a non-empty string")
        return checked
