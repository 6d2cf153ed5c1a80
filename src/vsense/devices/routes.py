"""HTTP routes of the device API: parse, authorize, call one service function."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from vsense.accounts.deps import PrincipalDep
from vsense.deps import CountsDep, SessionDep
from vsense.device_auth.deps import DeviceAuthDep
from vsense.devices import service
from vsense.devices.schemas import (
    Device,
    DeviceCreate,
    DeviceCredentials,
    DeviceEvent,
    DeviceList,
    DeviceOnboarded,
    DeviceUpdate,
)
from vsense.kit.http import API_PREFIX, error_responses, json_response
from vsense.kit.schemas import Page

router = APIRouter(prefix=f"{API_PREFIX}/devices", tags=["devices"])


@router.get(
    "",
    response_model=DeviceList,
    responses=error_responses(400, 401, 403),
    summary="List the devices the caller may see",
)
async def list_devices(
    session: SessionDep,
    principal: PrincipalDep,
    counts: CountsDep,
    sort: str | None = Query(
        None,
        description="name (default), -name, refreshed, -refreshed, is_online, -is_online "
        "(ties by name), geo_city, -geo_city, geo_country, -geo_country, created, -created",
    ),
    group: str | None = Query(None, description="A group's name or id; `none` for no group"),
    is_online: str | None = Query(
        None, description="Online or Offline (also 1/0, true/false, any case)"
    ),
    search: str | None = Query(
        None, description="Case-insensitive substring of name or client_identifier"
    ),
    page: str | None = Query(None, description="1-based page number, default 1"),
    per_page: str | None = Query(None, description="Items per page, default 25, at most 500"),
) -> Response:
    return json_response(
        await service.list_devices(
            session,
            principal,
            counts,
            sort=sort,
            group=group,
            is_online=is_online,
            search=search,
            page=page,
            per_page=per_page,
        )
    )


@router.post(
    "",
    status_code=201,
    response_model=DeviceOnboarded,
    responses=error_responses(401, 403, 422),
    summary="Onboard a device; its token is shown once",
)
async def onboard_device(
    body: DeviceCreate, session: SessionDep, principal: PrincipalDep, counts: CountsDep
) -> Response:
    return json_response(await service.onboard_device(session, principal, counts, body), 201)


@router.get(
    "/{device_uuid}",
    response_model=Device,
    responses=error_responses(401, 403, 404),
    summary="One device, not wrapped in `data`",
)
async def get_device(device_uuid: str, session: SessionDep, principal: PrincipalDep) -> Response:
    return json_response(await service.get_device(session, principal, device_uuid))


_UPDATE_SUMMARY = (
    "Change name, client_identifier, geo_city, geo_country, group or keepalive_interval"
)


@router.put(
    "/{device_uuid}",
    response_model=Device,
    responses=error_responses(401, 403, 404, 422),
    summary=_UPDATE_SUMMARY,
)
async def update_device(
    device_uuid: str,
    body: DeviceUpdate,
    session: SessionDep,
    principal: PrincipalDep,
    counts: CountsDep,
) -> Response:
    return json_response(await service.update_device(session, principal, counts, device_uuid, body))


@router.patch(
    "/{device_uuid}",
    response_model=Device,
    responses=error_responses(401, 403, 404, 422),
    summary=_UPDATE_SUMMARY + " (same as PUT)",
)
async def patch_device(
    device_uuid: str,
    body: DeviceUpdate,
    session: SessionDep,
    principal: PrincipalDep,
    counts: CountsDep,
) -> Response:
    return await update_device(device_uuid, body, session, principal, counts)


@router.delete(
    "/{device_uuid}",
    status_code=204,
    responses=error_responses(401, 403, 404),
    summary="Remove a device and its credentials",
)
async def delete_device(
    device_uuid: str,
    session: SessionDep,
    principal: PrincipalDep,
    counts: CountsDep,
    device_auth: DeviceAuthDep,
) -> Response:
    await service.delete_device(session, counts, device_auth, principal, device_uuid)
    return Response(status_code=204)


@router.post(
    "/{device_uuid}/credentials",
    status_code=201,
    response_model=DeviceCredentials,
    responses=error_responses(401, 403, 404),
    summary="Rotate the device token; the old one stops working",
)
async def rotate_credentials(
    device_uuid: str, session: SessionDep, principal: PrincipalDep, device_auth: DeviceAuthDep
) -> Response:
    return json_response(
        await service.rotate_credentials(session, device_auth, principal, device_uuid), 201
    )


@router.get(
    "/{device_uuid}/events",
    response_model=Page[DeviceEvent],
    responses=error_responses(400, 401, 403, 404),
    summary="The device's online/offline transitions, newest first",
)
async def list_events(
    device_uuid: str,
    session: SessionDep,
    principal: PrincipalDep,
    page: str | None = Query(None, description="1-based page number"),
    per_page: str | None = Query(None, description="Items per page, at most 500"),
) -> Response:
    return json_response(
        await service.list_events(session, principal, device_uuid, page=page, per_page=per_page)
    )
