"""HTTP routes of alert rules and alerts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from vsense.accounts.deps import PrincipalDep
from vsense.alerts import service
from vsense.alerts.integration import Alerts
from vsense.alerts.schemas import AlertAck, AlertRule, AlertRuleCreate, AlertRuleUpdate, AlertView
from vsense.deps import SessionDep
from vsense.kit.http import API_PREFIX, IdPath, error_responses
from vsense.kit.parts import part
from vsense.kit.schemas import Page

rules_router = APIRouter(prefix=f"{API_PREFIX}/alert-rules", tags=["alerts"])
alerts_router = APIRouter(prefix=f"{API_PREFIX}/alerts", tags=["alerts"])
AlertsDep = Annotated[Alerts, Depends(part(Alerts))]
PageQuery = Query(None, description="1-based page number")
PerPageQuery = Query(None, description="Items per page, at most 500")


@rules_router.get("", response_model=Page[AlertRule], responses=error_responses(400, 401, 403))
async def list_rules(
    session: SessionDep,
    principal: PrincipalDep,
    device_uuid: str | None = Query(None, description="Only rules covering this device"),
    page: str | None = PageQuery,
    per_page: str | None = PerPageQuery,
) -> Page[AlertRule]:
    """Rules the caller sees: all of the organization's for admins, those of their
    groups' devices otherwise."""
    return await service.list_rules(
        session, principal, device_uuid=device_uuid, page=page, per_page=per_page
    )


@rules_router.post(
    "", status_code=201, response_model=AlertRule, responses=error_responses(401, 403, 422)
)
async def create_rule(
    body: AlertRuleCreate, session: SessionDep, principal: PrincipalDep
) -> AlertRule:
    """Create a rule (admins)."""
    return await service.create_rule(session, principal, body)


@rules_router.get("/{rule_id}", response_model=AlertRule, responses=error_responses(401, 403, 404))
async def get_rule(rule_id: IdPath, session: SessionDep, principal: PrincipalDep) -> AlertRule:
    """One rule the caller sees."""
    return await service.get_rule(session, principal, rule_id)


@rules_router.put(
    "/{rule_id}", response_model=AlertRule, responses=error_responses(401, 403, 404, 422)
)
async def update_rule(
    rule_id: IdPath,
    body: AlertRuleUpdate,
    session: SessionDep,
    principal: PrincipalDep,
    alerts: AlertsDep,
) -> AlertRule:
    """Change the fields sent (admins)."""
    return await service.update_rule(session, principal, alerts.emit, rule_id, body)


@rules_router.patch(
    "/{rule_id}", response_model=AlertRule, responses=error_responses(401, 403, 404, 422)
)
async def patch_rule(
    rule_id: IdPath,
    body: AlertRuleUpdate,
    session: SessionDep,
    principal: PrincipalDep,
    alerts: AlertsDep,
) -> AlertRule:
    """The same as PUT."""
    return await service.update_rule(session, principal, alerts.emit, rule_id, body)


@rules_router.delete("/{rule_id}", status_code=204, responses=error_responses(401, 403, 404))
async def delete_rule(
    rule_id: IdPath, session: SessionDep, principal: PrincipalDep, alerts: AlertsDep
) -> Response:
    """Delete a rule (admins); its firing episodes end with a CLEARING."""
    await service.delete_rule(session, principal, alerts.emit, rule_id)
    return Response(status_code=204)


@alerts_router.get("", response_model=Page[AlertView], responses=error_responses(400, 401, 403))
async def list_alerts(
    session: SessionDep,
    principal: PrincipalDep,
    state: str | None = Query(None, description="`firing` or `cleared`"),
    device_uuid: str | None = Query(None),
    rule_id: str | None = Query(None),
    severity: str | None = Query(None, description="`info`, `warning` or `critical`"),
    since: str | None = Query(None, description="Fired at or after (ISO 8601 or UNIX)"),
    until: str | None = Query(None, description="Fired before (ISO 8601 or UNIX)"),
    page: str | None = PageQuery,
    per_page: str | None = PerPageQuery,
) -> Page[AlertView]:
    """Alert episodes of the devices the caller sees, newest first."""
    return await service.list_alerts(
        session,
        principal,
        state=state,
        device_uuid=device_uuid,
        rule_id=rule_id,
        severity=severity,
        since=since,
        until=until,
        page=page,
        per_page=per_page,
    )


@alerts_router.get(
    "/{alert_uuid}", response_model=AlertView, responses=error_responses(401, 403, 404)
)
async def get_alert(alert_uuid: str, session: SessionDep, principal: PrincipalDep) -> AlertView:
    """One episode, by its FIRING's uuid or its CLEARING's."""
    return await service.get_alert(session, principal, alert_uuid)


@alerts_router.post(
    "/{alert_uuid}/ack", response_model=AlertView, responses=error_responses(401, 403, 404, 422)
)
async def acknowledge(
    alert_uuid: str, session: SessionDep, principal: PrincipalDep, body: AlertAck | None = None
) -> AlertView:
    """Acknowledge an alert, with an optional note; it silences nothing."""
    return await service.acknowledge(session, principal, alert_uuid, body or AlertAck())
