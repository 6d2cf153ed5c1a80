"""The rules about alert rules and alerts: who reads and writes them, what a valid rule
is, and what a change of a rule does to its episodes."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from vsense.accounts.principal import Principal
from vsense.accounts.service import require_scope
from vsense.alerts import evaluation, repository
from vsense.alerts.engine import (
    RULE_CHANGED,
    RULE_DELETED,
    RULE_DISABLED,
    THRESHOLD_KINDS,
    VALUE_KINDS,
    check_thresholds,
)
from vsense.alerts.evaluation import Emit
from vsense.alerts.repository import AlertFilter
from vsense.alerts.schemas import AlertAck, AlertRuleCreate, AlertRuleUpdate, AlertView
from vsense.alerts.schemas import AlertRule as AlertRuleView
from vsense.kit.errors import BadRequest, NotFound, Unprocessable, field_error
from vsense.kit.pagination import page_meta, page_request
from vsense.kit.schemas import Page
from vsense.kit.time import parse_instant, utcnow
from vsense.models import Alert, AlertRule
from vsense.payloads.metrics import METRIC_NAMES

READ_SCOPE = "alerts:read"
WRITE_SCOPE = "alerts:write"
ALERT_STATES = ("firing", "cleared")
SEVERITIES = ("info", "warning", "critical")
# Fields whose change makes a rule watch something else: its episodes end.
_WHAT_FIELDS = ("rule", "metric", "reference_marker")
_SCOPE_FIELDS = ("device_uuid", "group", "app_type")


# Rules --------------------------------------------------------------------------------


async def _views(session: AsyncSession, rules: list[AlertRule]) -> list[AlertRuleView]:
    groups = await repository.group_names(
        session, [r.group_id for r in rules if r.group_id is not None]
    )
    return [
        AlertRuleView(
            id=r.id,
            name=r.name,
            device_uuid=r.device_uuid,
            group=groups.get(r.group_id) if r.group_id is not None else None,
            group_id=r.group_id,
            app_type=r.app_type,
            metric=r.metric,
            reference_marker=r.reference_marker,
            rule=r.kind,
            trigger_value=r.trigger_value,
            clearing_value=r.clearing_value,
            for_s=r.for_s,
            clear_for_s=r.clear_for_s,
            severity=r.severity,
            enabled=r.enabled,
            created=r.created,
            updated=r.updated,
        )
        for r in rules
    ]


def _parse_uuid(raw: str | None, name: str) -> uuid.UUID | None:
    if raw is None or raw == "":
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise BadRequest(f"`{name}` must be a UUID.") from None


async def list_rules(
    session: AsyncSession,
    principal: Principal,
    *,
    device_uuid: str | None,
    page: str | None,
    per_page: str | None,
) -> Page[AlertRuleView]:
    """Rules the caller sees, optionally those covering one device."""
    require_scope(principal, READ_SCOPE)
    request = page_request(page, per_page)
    rules, total = await repository.list_rules(
        session,
        principal,
        device=_parse_uuid(device_uuid, "device_uuid"),
        offset=request.offset,
        limit=request.per_page,
    )
    return Page[AlertRuleView].model_validate(
        {"data": await _views(session, rules), "meta": page_meta(request, total, len(rules))}
    )


async def _visible_rule(session: AsyncSession, principal: Principal, rule_id: int) -> AlertRule:
    rule = await repository.get_rule(session, principal, rule_id)
    if rule is None:
        raise NotFound("No such alert rule.")
    return rule


async def get_rule(session: AsyncSession, principal: Principal, rule_id: int) -> AlertRuleView:
    require_scope(principal, READ_SCOPE)
    return (await _views(session, [await _visible_rule(session, principal, rule_id)]))[0]


async def _apply(
    session: AsyncSession, principal: Principal, rule: AlertRule, fields: dict[str, Any]
) -> None:
    """Set the sent fields on a rule and check the whole of it; 422 names each field."""
    errors: list[dict[str, Any]] = []
    device_app_type: str | None = None
    # A device or a group sent alone replaces the other scope.
    if fields.get("device_uuid") is not None and "group" not in fields:
        rule.group_id = None
    if fields.get("group") is not None and "device_uuid" not in fields:
        rule.device_uuid = None
    for name, value in fields.items():
        if name == "rule":
            rule.kind = value
        elif name == "group":
            if value is None:
                rule.group_id = None
            else:
                found = await repository.find_group(session, principal.organization_id, str(value))
                if found is None:
                    errors.append(field_error("group", f"no group {value!r}"))
                rule.group_id = found
        elif name == "device_uuid":
            rule.device_uuid = value
        elif name in ("severity", "enabled", "name") and value is None:
            errors.append(field_error(name, "must not be null"))
        else:
            setattr(rule, name, value)
    if rule.device_uuid is not None:
        device = await repository.device_of(session, principal, rule.device_uuid)
        if device is None:
            errors.append(field_error("device_uuid", "no such device"))
        else:
            device_app_type = device[1]
    if rule.device_uuid is not None and rule.group_id is not None:
        errors.append(field_error("group", "give a device or a group, not both"))
    if rule.device_uuid is None and rule.group_id is None and rule.app_type is None:
        errors.append(
            field_error("app_type", "required when the rule names neither a device nor a group")
        )
    app_type = rule.app_type or device_app_type
    if rule.kind in VALUE_KINDS:
        if rule.metric is None:
            errors.append(field_error("metric", f"required for {rule.kind}"))
        elif app_type in METRIC_NAMES and rule.metric not in METRIC_NAMES[app_type]:
            errors.append(
                field_error(
                    "metric",
                    f"{app_type} devices report {', '.join(METRIC_NAMES[app_type])}",
                )
            )
    else:
        rule.metric = None
        rule.reference_marker = None
    if rule.kind in THRESHOLD_KINDS:
        for name in ("trigger_value", "clearing_value"):
            if getattr(rule, name) is None:
                errors.append(field_error(name, f"required for {rule.kind}"))
        if rule.trigger_value is not None and rule.clearing_value is not None:
            wrong = check_thresholds(rule.kind, rule.trigger_value, rule.clearing_value)
            if wrong:
                errors.append(field_error("clearing_value", wrong))
    else:
        rule.trigger_value = None
        rule.clearing_value = None
        rule.clear_for_s = None
        if not rule.for_s:
            errors.append(field_error("for_s", f"required (seconds, above 0) for {rule.kind}"))
    if errors:
        raise Unprocessable("The alert rule is invalid (see `error`).", errors=errors)


async def create_rule(
    session: AsyncSession, principal: Principal, body: AlertRuleCreate
) -> AlertRuleView:
    """A new rule (admins); it applies from the next value or sweep."""
    require_scope(principal, WRITE_SCOPE)
    rule = AlertRule(organization_id=principal.organization_id)
    fields = body.model_dump()
    fields["name"] = fields["name"].strip() or fields["name"]
    await _apply(session, principal, rule, fields)
    now = utcnow()
    rule.created = now
    rule.updated = now
    await repository.add_rule(session, rule)
    return (await _views(session, [rule]))[0]


async def update_rule(
    session: AsyncSession, principal: Principal, emit: Emit, rule_id: int, body: AlertRuleUpdate
) -> AlertRuleView:
    """Change the sent fields (admins). Thresholds and durations apply from the next value,
    keeping the episodes; a rule that now watches something else (its kind, metric or
    marker) ends its episodes (`RULE_CHANGED`), one no longer covering a device ends that
    device's (`OUT_OF_SCOPE`), and a disabled rule ends them all (`RULE_DISABLED`)."""
    rule = await _visible_rule(session, principal, rule_id)
    require_scope(principal, WRITE_SCOPE)
    fields = body.model_dump(include=body.model_fields_set)
    was_enabled = rule.enabled
    before = {name: getattr(rule, name) for name in ("kind", "metric", "reference_marker")}
    await _apply(session, principal, rule, fields)
    now = utcnow()
    rule.updated = now
    await session.flush()
    changed = any(getattr(rule, name) != value for name, value in before.items())
    if was_enabled and not rule.enabled:
        await evaluation.end_episodes(session, emit, rule.id, RULE_DISABLED, now)
        await repository.reset_states(session, rule.id)
    elif changed:
        await evaluation.end_episodes(session, emit, rule.id, RULE_CHANGED, now)
        await repository.reset_states(session, rule.id)
    elif any(name in fields for name in _SCOPE_FIELDS):
        await evaluation.end_out_of_scope(session, emit, rule.id, now)
    return (await _views(session, [rule]))[0]


async def delete_rule(
    session: AsyncSession, principal: Principal, emit: Emit, rule_id: int
) -> None:
    """Delete a rule (admins); its firing episodes end with a `RULE_DELETED` CLEARING."""
    rule = await _visible_rule(session, principal, rule_id)
    require_scope(principal, WRITE_SCOPE)
    await evaluation.end_episodes(session, emit, rule.id, RULE_DELETED, utcnow())
    await repository.delete_rule(session, rule)


# Alerts -------------------------------------------------------------------------------


def alert_view(alert: Alert) -> AlertView:
    return AlertView(
        uuid=alert.uuid,
        state="cleared" if alert.cleared_at is not None else "firing",
        rule_id=alert.rule_id,
        rule_name=alert.rule_name,
        rule_summary=alert.rule_summary,
        severity=alert.severity,
        device_uuid=alert.device_uuid,
        app_type=alert.app_type,
        metric=alert.metric,
        reference_marker=(
            None
            if alert.marker_id is None
            else {"uuid": alert.marker_id, "name": alert.marker_name}
        ),
        fired_at=alert.fired_at,
        fired_state=alert.fired_state,
        fired_value=alert.fired_value,
        clearing_uuid=alert.clearing_uuid,
        cleared_at=alert.cleared_at,
        cleared_state=alert.cleared_state,
        cleared_value=alert.cleared_value,
        acknowledged_at=alert.acknowledged_at,
        acknowledged_by=alert.acknowledged_by,
        ack_note=alert.ack_note,
    )


def _filter(
    state: str | None,
    device_uuid: str | None,
    rule_id: str | None,
    severity: str | None,
    since: str | None,
    until: str | None,
) -> AlertFilter:
    if state not in (None, "", *ALERT_STATES):
        raise BadRequest("`state` must be firing or cleared.")
    if severity not in (None, "", *SEVERITIES):
        raise BadRequest(f"`severity` must be one of: {', '.join(SEVERITIES)}.")
    rule: int | None = None
    if rule_id not in (None, ""):
        try:
            rule = int(rule_id)
        except ValueError:
            raise BadRequest("`rule_id` must be an integer.") from None
    return AlertFilter(
        state=state or None,
        device=_parse_uuid(device_uuid, "device_uuid"),
        rule_id=rule,
        severity=severity or None,
        since=parse_instant("since", since),
        until=parse_instant("until", until),
    )


async def list_alerts(
    session: AsyncSession,
    principal: Principal,
    *,
    state: str | None = None,
    device_uuid: str | None = None,
    rule_id: str | None = None,
    severity: str | None = None,
    since: str | None = None,
    until: str | None = None,
    page: str | None = None,
    per_page: str | None = None,
) -> Page[AlertView]:
    """Episodes of the devices the caller sees, newest first."""
    require_scope(principal, READ_SCOPE)
    request = page_request(page, per_page)
    where = _filter(state, device_uuid, rule_id, severity, since, until)
    alerts, total = await repository.list_alerts(
        session, principal, where, offset=request.offset, limit=request.per_page
    )
    return Page[AlertView].model_validate(
        {
            "data": [alert_view(a) for a in alerts],
            "meta": page_meta(request, total, len(alerts)),
        }
    )


async def _visible_alert(session: AsyncSession, principal: Principal, raw: str) -> Alert:
    try:
        key = uuid.UUID(raw)
    except ValueError:
        raise NotFound("No such alert.") from None
    alert = await repository.get_alert(session, principal, key)
    if alert is None:
        raise NotFound("No such alert.")
    return alert


async def get_alert(session: AsyncSession, principal: Principal, raw: str) -> AlertView:
    require_scope(principal, READ_SCOPE)
    return alert_view(await _visible_alert(session, principal, raw))


async def acknowledge(
    session: AsyncSession, principal: Principal, raw: str, body: AlertAck
) -> AlertView:
    """Note who acknowledged an alert, when, and why (`alerts:write`). It silences
    nothing: the episode clears, and webhooks receive it, as they would have."""
    alert = await _visible_alert(session, principal, raw)
    require_scope(principal, WRITE_SCOPE)
    alert.acknowledged_at = utcnow()
    alert.acknowledged_by = await repository.user_email(session, principal.user_id)
    alert.acknowledged_by_user_id = principal.user_id
    alert.ack_note = body.note
    await session.flush()
    return alert_view(alert)
