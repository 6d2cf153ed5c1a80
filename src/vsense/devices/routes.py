"""HTTP routes of the device API: parse, authorize, call one service function.

A device, and the device list, are written by orjson from the service's dataclasses
(`types.DeviceView`, `types.DevicePage`): the list is the busiest read of the API, and
a single device is shown in the same shape. `response_model` documents them; a test
holds the two in step. Everything else is a pydantic model checked by FastAPI.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from vsense.accounts.deps import PrincipalDep
from vsense.deps import CountsDep, SessionDep
from vsense.device_auth.deps import DeviceAuthDep
from vsense.devices import service
from vsense.devices.deps import LIST_PARAMETERS, DeviceListingDep, DeviceReader, ReadableDevice
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
from vsense.kit.pagination import PageParams
from vsense.kit.schemas import Page

router = APIRouter(prefix=f"{API_PREFIX}/devices", tags=["devices"])


@router.get(
    "",
    response_model=DeviceList,
    responses=error_responses(400, 401, 403),
    summary="List the devices the caller may see",
    openapi_extra={"parameters": LIST_PARAMETERS},
)
async def list_devices(listing: DeviceListingDep) -> Response:
    # A read: the session runs in autocommit, so there is nothing to commit here.
    async with listing.database.read_sessionmaker() as session:
        page = await service.list_devices(
            session, listing.caller, listing.counts, listing.query, listing.paging
        )
    return json_response(page)


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


# The device's UUID is parsed in the handler, not by a dependency: a dependency would
# answer a malformed UUID (404) before FastAPI answers a bad body (422).


@router.get(
    "/{device_uuid}",
    response_model=Device,
    responses=error_responses(401, 403, 404),
    summary="One device, not wrapped in `data`",
)
async def get_device(device_uuid: str, session: SessionDep, caller: DeviceReader) -> Response:
    return json_response(
        await service.get_device(session, caller, service.parse_device_uuid(device_uuid))
    )


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
    device = service.parse_device_uuid(device_uuid)
    return json_response(await service.update_device(session, principal, counts, device, body))


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
    device = service.parse_device_uuid(device_uuid)
    await service.delete_device(session, counts, device_auth, principal, device)
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
) -> DeviceCredentials:
    device = service.parse_device_uuid(device_uuid)
    return await service.rotate_credentials(session, device_auth, principal, device)


@router.get(
    "/{device_uuid}/events",
    response_model=Page[DeviceEvent],
    responses=error_responses(400, 401, 403, 404),
    summary="The device's online/offline transitions, newest first",
)
async def list_events(
    device: ReadableDevice, session: SessionDep, paging: PageParams
) -> Page[DeviceEvent]:
    return await service.list_events(session, device, paging)
