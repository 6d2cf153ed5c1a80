"""The `alert` webhook body, in the vendor's format (spec/delivery.md), built here only."""

from __future__ import annotations

import uuid
from typing import Any

from vsense.alerts.engine import CLEARING, THRESHOLD_KINDS

ALERT_VERSION = 1


def _number(value: float | None) -> float | int | None:
    """Whole values as integers (`112`, not `112.0`), as the vendor's examples show them."""
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


def rule_summary(
    kind: str,
    trigger_value: float | None,
    clearing_value: float | None,
    for_s: int | None,
    clear_for_s: int | None,
) -> dict[str, Any]:
    """The rule as configured: the vendor's three keys, plus `for_s` and `clear_for_s`
    when the rule has them (the time rules always have `for_s`)."""
    summary: dict[str, Any] = {
        "rule": kind,
        "trigger_value": _number(trigger_value),
        "clearing_value": _number(clearing_value),
    }
    if for_s or kind not in THRESHOLD_KINDS:
        summary["for_s"] = for_s
    if clear_for_s:
        summary["clear_for_s"] = clear_for_s
    return summary


def alert_body(
    *,
    device: uuid.UUID,
    app_type: str | None,
    alert_uuid: uuid.UUID,
    summary: dict[str, Any],
    actual_value: float | None,
    timestamp: int,
    transition: str,
    state: str,
    marker_id: str | None,
    marker_name: str | None,
    previous_uuid: uuid.UUID | None = None,
) -> dict[str, Any]:
    """One FIRING or CLEARING: `{"version", "stream_id", "type", "timestamp", "alert": [..]}`.

    `reference_marker` is the zone, line or spot (`{"uuid", "name"}`), null for a rule on
    the device total; a CLEARING carries `previous_uuid`, the FIRING it ends.
    """
    item: dict[str, Any] = {
        "uuid": str(alert_uuid),
        "rule_summary": summary,
        "deviceUuid": str(device),
        "app_type": app_type,
        "actual_value": _number(actual_value),
        "timestamp": timestamp,
        "type": transition,
        "state": state,
        "reference_marker": (
            None if marker_id is None else {"uuid": marker_id, "name": marker_name}
        ),
    }
    if transition == CLEARING:
        item["previous_uuid"] = None if previous_uuid is None else str(previous_uuid)
    return {
        "version": ALERT_VERSION,
        "stream_id": str(device),
        "type": app_type,
        "timestamp": timestamp,
        "alert": [item],
    }
