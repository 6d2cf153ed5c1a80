"""The alerts pages: what fires now, the history with filters, acknowledging with a
note; the rules: list, create, edit, enable and disable."""

from __future__ import annotations

from typing import Annotated, Any, get_args

from fastapi import APIRouter, Depends, Request, Response

from vsense.alerts import service
from vsense.alerts.integration import Alerts
from vsense.alerts.schemas import (
    AlertAck,
    AlertRuleCreate,
    AlertRuleUpdate,
    AppType,
    Kind,
    Metric,
    Severity,
)
from vsense.console.deps import ConsoleUserDep
from vsense.console.forms import form_dict, form_list, none_if_blank
from vsense.console.render import CONSOLE, ConsoleRoute, flash, redirect, render
from vsense.deps import SessionDep
from vsense.kit.errors import NotFound
from vsense.kit.parts import part

router = APIRouter(prefix=CONSOLE, route_class=ConsoleRoute, include_in_schema=False)
AlertsDep = Annotated[Alerts, Depends(part(Alerts))]
RULE_FIELDS = (
    "name",
    "device_uuid",
    "group",
    "app_type",
    "metric",
    "reference_marker",
    "rule",
    "trigger_value",
    "clearing_value",
    "for_s",
    "clear_for_s",
    "severity",
)
CHOICES: dict[str, Any] = {
    "kinds": get_args(Kind),
    "severities": get_args(Severity),
    "app_types": get_args(AppType),
    "metrics": get_args(Metric),
}


def _rule_id(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 2_147_483_647:
        raise NotFound("No such alert rule.")
    return int(raw)


async def _rule_fields(request: Request) -> dict[str, Any]:
    fields: dict[str, Any] = none_if_blank(await form_dict(request, RULE_FIELDS))
    enabled = await form_list(request, "enabled")  # a hidden "off", and "on" when ticked
    if enabled:
        fields["enabled"] = "on" in enabled
    return fields


@router.get("/alerts")
async def alerts_page(
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    state: str | None = None,
    severity: str | None = None,
    device_uuid: str | None = None,
    rule_id: str | None = None,
    since: str | None = None,
    until: str | None = None,
    page: str | None = None,
) -> Response:
    principal = user.principal
    firing = await service.list_alerts(session, principal, state="firing", per_page="100")
    filters = {
        "state": state or None,
        "severity": severity or None,
        "device_uuid": device_uuid or None,
        "rule_id": rule_id or None,
        "since": since or None,
        "until": until or None,
    }
    history = await service.list_alerts(session, principal, **filters, page=page, per_page="25")
    return render(
        request,
        "alerts.html",
        user=user,
        nav="alerts",
        firing=firing.data,
        history=history,
        filters={k: v or "" for k, v in filters.items()},
        **CHOICES,
    )


@router.post("/alerts/{alert_uuid}/ack")
async def acknowledge(
    request: Request, alert_uuid: str, user: ConsoleUserDep, session: SessionDep
) -> Response:
    note = (await form_dict(request, ("note",))).get("note") or None
    alert = await service.acknowledge(session, user.principal, alert_uuid, AlertAck(note=note))
    return render(request, "_ack.html", user=user, alert=alert)


@router.get("/alerts/rules")
async def rules_page(
    request: Request, user: ConsoleUserDep, session: SessionDep, page: str | None = None
) -> Response:
    rules = await service.list_rules(
        session, user.principal, device_uuid=None, page=page, per_page="50"
    )
    return render(request, "rules.html", user=user, nav="alerts", rules=rules, rule=None, **CHOICES)


@router.post("/alerts/rules")
async def create_rule(request: Request, user: ConsoleUserDep, session: SessionDep) -> Response:
    body = AlertRuleCreate.model_validate(await _rule_fields(request))
    created = await service.create_rule(session, user.principal, body)
    return redirect(f"{CONSOLE}/alerts/rules/{created.id}", request)


@router.get("/alerts/rules/{rule_id}")
async def rule_page(
    request: Request, rule_id: str, user: ConsoleUserDep, session: SessionDep
) -> Response:
    rule = await service.get_rule(session, user.principal, _rule_id(rule_id))
    return render(request, "rules.html", user=user, nav="alerts", rules=None, rule=rule, **CHOICES)


@router.post("/alerts/rules/{rule_id}")
async def edit_rule(
    request: Request, rule_id: str, user: ConsoleUserDep, session: SessionDep, alerts: AlertsDep
) -> Response:
    """The fields sent; a blank field is left as it is (the API's PATCH)."""
    fields = {k: v for k, v in (await _rule_fields(request)).items() if v is not None}
    body = AlertRuleUpdate.model_validate(fields)
    updated = await service.update_rule(
        session, user.principal, alerts.emit, _rule_id(rule_id), body
    )
    return redirect(f"{CONSOLE}/alerts/rules/{updated.id}", request)


@router.post("/alerts/rules/{rule_id}/enabled")
async def toggle_rule(
    request: Request, rule_id: str, user: ConsoleUserDep, session: SessionDep, alerts: AlertsDep
) -> Response:
    enabled = (await form_dict(request, ("enabled",))).get("enabled") == "on"
    body = AlertRuleUpdate(enabled=enabled)
    rule = await service.update_rule(session, user.principal, alerts.emit, _rule_id(rule_id), body)
    state = "enabled" if rule.enabled else "disabled"
    response = flash(request, f"Rule {rule.name!r} {state}.")
    response.headers["HX-Refresh"] = "true"
    return response
