"""HTTP routes of the device-facing API, /device/v1 (device tokens only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request, Response

from vsense.deps import SessionDep, StateDep
from vsense.gateway import service
from vsense.gateway.schemas import Accepted, CommandResult, Commands, Health
from vsense.images import uploads
from vsense.images.links import ImageKind
from vsense.kit.http import error_responses, json_response

router = APIRouter(prefix="/device/v1", tags=["device"])
AuthorizationHeader = Annotated[str | None, Header(alias="Authorization")]


@router.post("/keepalive", response_model=Commands, responses=error_responses(401, 422))
async def keepalive(
    state: StateDep,
    authorization: AuthorizationHeader = None,
    health: Annotated[Health | None, Body()] = None,
) -> Response:
    """A sign of life, with optional health figures; answered with pending commands."""
    return json_response({"commands": await service.keepalive(state, authorization, health)})


@router.post(
    "/payloads",
    status_code=202,
    response_model=Accepted,
    responses=error_responses(400, 401, 413, 422),
)
async def payloads(
    session: SessionDep,
    state: StateDep,
    messages: Annotated[
        Any,
        Body(
            description="One message `{type, timestamp, payload, version}` or a list of up to 500"
        ),
    ],
    authorization: AuthorizationHeader = None,
) -> Response:
    """Application messages. A refused message is named by its index in the 422; the
    accepted messages of the same batch are kept."""
    device = await service.authenticate(session, authorization, state)
    accepted = await service.ingest(session, state, device, messages)
    return json_response({"accepted": accepted}, 202)


@router.get("/commands", response_model=Commands, responses=error_responses(400, 401))
async def commands(
    state: StateDep,
    authorization: AuthorizationHeader = None,
    wait: Annotated[float, Query(ge=0, le=service.MAX_WAIT)] = 25,
) -> Response:
    """Long poll: pending commands as soon as there are some, or [] after `wait` s."""
    with state.metrics.long_polls.track_inprogress():
        commands = await service.wait_for_commands(state, authorization, wait)
    return json_response({"commands": commands})


@router.post(
    "/commands/{command_id}/result", status_code=204, responses=error_responses(401, 404, 422)
)
async def command_result(
    command_id: str,
    body: CommandResult,
    session: SessionDep,
    authorization: AuthorizationHeader = None,
) -> Response:
    """The outcome of a command the device took."""
    device = await service.authenticate(session, authorization)
    await service.complete_command(session, device, command_id, body.ok, body.error)
    return Response(status_code=204)


IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            media_type: {"schema": {"type": "string", "format": "binary"}}
            for media_type in (uploads.JPEG, uploads.PNG)
        },
    }
}


@router.put(
    "/images/{request_id}/{kind}",
    status_code=204,
    responses=error_responses(401, 404, 409, 413, 422),
    openapi_extra=IMAGE_BODY,
)
async def upload_image(
    request_id: str,
    kind: ImageKind,
    request: Request,
    session: SessionDep,
    state: StateDep,
    authorization: AuthorizationHeader = None,
) -> Response:
    """One image of a `capture_image` command: `raw` or `annotated`, JPEG or PNG (told
    from the bytes), at most `image_max_bytes`. Uploads for another device's request are
    refused (404)."""
    device = await service.authenticate(session, authorization, state)
    await uploads.store_upload(session, state, device.uuid, request_id, kind, await request.body())
    return Response(status_code=204)
