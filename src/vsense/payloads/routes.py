"""HTTP routes: a device's payload log and metrics; the published payload schemas."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from vsense.accounts.deps import PrincipalDep
from vsense.deps import SessionDep
from vsense.kit.http import API_PREFIX, error_responses, json_response
from vsense.payloads import service

router = APIRouter(prefix=API_PREFIX, tags=["payloads"])


@router.get(
    "/devices/{device_uuid}/payloads",
    response_model=dict[str, Any],
    responses=error_responses(400, 401, 403, 404),
    summary="Messages the device sent, newest first",
)
async def list_payloads(
    device_uuid: str,
    session: SessionDep,
    principal: PrincipalDep,
    since: str | None = Query(None, description="ISO 8601 or UNIX seconds (message time)"),
    until: str | None = Query(None, description="ISO 8601 or UNIX seconds (message time)"),
    type: str | None = Query(None, description="VPM, VYD, VCZ, VCB or VCW"),
    page: str | None = Query(None, description="1-based page number"),
    per_page: str | None = Query(None, description="Items per page, at most 500"),
) -> Response:
    return json_response(
        await service.list_payloads(
            session,
            principal,
            device_uuid,
            since=since,
            until=until,
            message_type=type,
            page=page,
            per_page=per_page,
        )
    )


@router.get(
    "/devices/{device_uuid}/metrics",
    response_model=dict[str, Any],
    responses=error_responses(400, 401, 403, 404),
    summary="The device's application values (counts, occupancy) per interval",
)
async def device_metrics(
    device_uuid: str,
    session: SessionDep,
    principal: PrincipalDep,
    interval: str | None = Query(None, description="30s, 5m (default), 1h, 1d, ..."),
    since: str | None = Query(None, description="ISO 8601 or UNIX seconds; default until-24h"),
    until: str | None = Query(None, description="ISO 8601 or UNIX seconds; default now"),
    name: str | None = Query(None, description="count, occupied, in, out, net, occupancy, ..."),
    marker: str | None = Query(None, description="A zone, line or spot, by id or name"),
) -> Response:
    return json_response(
        await service.metrics(
            session,
            principal,
            device_uuid,
            interval=interval,
            since=since,
            until=until,
            name=name,
            marker=marker,
        )
    )


@router.get(
    "/schemas/payloads/{message_type}",
    response_model=dict[str, Any],
    responses=error_responses(401, 404),
    summary="JSON Schema of a message type, to validate payloads on the integrator's side",
)
async def payload_schema(
    message_type: str,
    principal: PrincipalDep,
    version: Annotated[int, Query(ge=1, le=1000)] = 1,
) -> Response:
    return json_response(service.payload_schema(principal, message_type, version))
