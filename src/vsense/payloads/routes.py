"""HTTP routes: a device's payload log and metrics; the published payload schemas.

Times and intervals are read as text and parsed here, after the device and the page,
so that a bad value is a 400 naming the parameter, checked in the order it always was.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from vsense.accounts.deps import PrincipalDep
from vsense.deps import SessionDep
from vsense.devices.deps import ReadableDevice
from vsense.kit.http import API_PREFIX, error_responses, json_response
from vsense.kit.pagination import PageParams
from vsense.kit.schemas import Page
from vsense.kit.time import parse_instant
from vsense.payloads import service
from vsense.payloads.schemas import Metrics, StoredMessage

router = APIRouter(prefix=API_PREFIX, tags=["payloads"])

Instant = Annotated[str | None, Query(description="ISO 8601 or UNIX seconds (message time)")]


@router.get(
    "/devices/{device_uuid}/payloads",
    response_model=Page[StoredMessage],
    responses=error_responses(400, 401, 403, 404),
    summary="Messages the device sent, newest first",
)
async def list_payloads(
    device: ReadableDevice,
    session: SessionDep,
    paging: PageParams,
    since: Instant = None,
    until: Instant = None,
    type: Annotated[str | None, Query(description="VPM, VYD, VCZ, VCB or VCW")] = None,
) -> Page[StoredMessage]:
    return await service.list_payloads(
        session,
        device,
        paging,
        since=parse_instant("since", since),
        until=parse_instant("until", until),
        message_type=type or None,
    )


@router.get(
    "/devices/{device_uuid}/metrics",
    response_model=Metrics,
    responses=error_responses(400, 401, 403, 404),
    summary="The device's application values (counts, occupancy) per interval",
)
async def device_metrics(
    device: ReadableDevice,
    session: SessionDep,
    interval: Annotated[str | None, Query(description="30s, 5m (default), 1h, 1d, ...")] = None,
    since: Annotated[
        str | None, Query(description="ISO 8601 or UNIX seconds; default until-24h")
    ] = None,
    until: Annotated[str | None, Query(description="ISO 8601 or UNIX seconds; default now")] = None,
    name: Annotated[
        str | None, Query(description="count, occupied, in, out, net, occupancy, ...")
    ] = None,
    marker: Annotated[str | None, Query(description="A zone, line or spot, by id or name")] = None,
) -> Metrics:
    step = service.parse_interval(interval)
    end = parse_instant("until", until)
    return await service.metrics(
        session,
        device,
        interval=step,
        since=parse_instant("since", since),
        until=end,
        name=name or None,
        marker=marker or None,
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
