"""Shapes of the device-facing API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vsense.kit.schemas import RequestBody


class Health(RequestBody):
    """The optional body of a keepalive; unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    fw_version: str | None = Field(None, max_length=64)
    uptime_s: int | None = Field(None, ge=0, lt=2**53)
    temperature_c: float | None = Field(None, ge=-100, le=200)
    cpu_load: float | None = Field(None, ge=0, le=1000)
    free_disk_mb: int | None = Field(None, ge=0, lt=2**53)
    ip: str | None = Field(None, max_length=64)
    signal_dbm: float | None = Field(None, ge=-200, le=50)


class Commands(BaseModel):
    commands: list[dict[str, Any]] = Field(
        description='Pending commands: `{"id", "type", "created", ...arguments}`'
    )


class Accepted(BaseModel):
    accepted: int


class CommandResult(RequestBody):
    ok: bool
    error: str | None = Field(None, max_length=500)
