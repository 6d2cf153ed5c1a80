"""API shapes of alert rules and alerts."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from vsense.kit.schemas import RequestBody, Timestamp

Kind = Literal["GREATER_THAN", "LESS_THAN", "NO_DATA", "FROZEN", "OFFLINE"]
Severity = Literal["info", "warning", "critical"]
AppType = Literal["VPM", "VYD", "VCZ", "VCB", "VCW"]
Metric = Literal["count", "occupied", "in", "out", "net", "occupancy", "dwell_s", "is_active"]
# A week: longer conditions are better watched by a person than by a rule.
MAX_DURATION = 7 * 86400


class AlertRule(BaseModel):
    id: int
    name: str
    device_uuid: UUID | None = Field(description="The one device the rule covers, if so")
    group: str | None = Field(description="The group whose devices the rule covers, if so")
    group_id: int | None
    app_type: str | None = Field(
        description="Devices of this type (with neither device nor group: all of the "
        "organization's)"
    )
    metric: str | None
    reference_marker: str | None = Field(
        description="A zone, line or spot by uuid or name; null: the device total"
    )
    rule: Kind
    trigger_value: float | None
    clearing_value: float | None
    for_s: int | None
    clear_for_s: int | None
    severity: Severity
    enabled: bool
    created: Timestamp
    updated: Timestamp


class AlertRuleCreate(RequestBody):
    name: str = Field(min_length=1, max_length=120)
    device_uuid: UUID | None = None
    group: str | int | None = Field(None, description="A group's name or id")
    app_type: AppType | None = None
    metric: Metric | None = None
    reference_marker: str | None = Field(None, min_length=1, max_length=120)
    rule: Kind
    trigger_value: float | None = Field(None, allow_inf_nan=False)
    clearing_value: float | None = Field(None, allow_inf_nan=False)
    for_s: int | None = Field(None, ge=0, le=MAX_DURATION)
    clear_for_s: int | None = Field(None, ge=0, le=MAX_DURATION)
    severity: Severity = "warning"
    enabled: bool = True


class AlertRuleUpdate(RequestBody):
    """Any fields of a rule; only those sent change. Scope fields may be set to null."""

    name: str | None = Field(None, min_length=1, max_length=120)
    device_uuid: UUID | None = None
    group: str | int | None = None
    app_type: AppType | None = None
    metric: Metric | None = None
    reference_marker: str | None = Field(None, min_length=1, max_length=120)
    rule: Kind | None = None
    trigger_value: float | None = Field(None, allow_inf_nan=False)
    clearing_value: float | None = Field(None, allow_inf_nan=False)
    for_s: int | None = Field(None, ge=0, le=MAX_DURATION)
    clear_for_s: int | None = Field(None, ge=0, le=MAX_DURATION)
    severity: Severity | None = None
    enabled: bool | None = None


class AlertAck(RequestBody):
    note: str | None = Field(None, max_length=1000)


class AlertView(BaseModel):
    """One episode: fired, and cleared once it ended."""

    uuid: UUID
    state: Literal["firing", "cleared"]
    rule_id: int
    rule_name: str
    rule_summary: dict[str, Any]
    severity: str
    device_uuid: UUID
    app_type: str | None
    metric: str | None
    reference_marker: dict[str, Any] | None
    fired_at: Timestamp
    fired_state: str
    fired_value: float | None
    clearing_uuid: UUID | None
    cleared_at: Timestamp | None
    cleared_state: str | None
    cleared_value: float | None
    acknowledged_at: Timestamp | None
    acknowledged_by: str | None
    ack_note: str | None
