"""HTTP routes of snapshots: ask for one, list them, and the signed links themselves."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Header, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.accounts.deps import PrincipalDep, caller_of
from vsense.commands.service import Commands
from vsense.deps import DatabaseDep, SessionDep
from vsense.device_auth.deps import GatedDeviceDep
from vsense.images import service, uploads
from vsense.images.links import ImageKind
from vsense.images.schemas import ImagePending, ImageRequested, ImageRequestList
from vsense.images.snapshots import Snapshots
from vsense.kit.http import API_PREFIX, error_responses, json_response
from vsense.kit.origin import public_base_url
from vsense.kit.parts import part
from vsense.kit.schemas import ErrorBody
from vsense.webhooks.outbox import Outbox

router = APIRouter(prefix=API_PREFIX, tags=["images"])
device_router = APIRouter(prefix="/device/v1", tags=["device"])
SnapshotsDep = Annotated[Snapshots, Depends(part(Snapshots))]
CommandsDep = Annotated[Commands, Depends(part(Commands))]
OutboxDep = Annotated[Outbox, Depends(part(Outbox))]


def _base_url(request: Request, snapshots: Snapshots) -> str:
    """The base of the links answered (and sent in the `image` event): never a forged Host."""
    settings = snapshots.settings
    return public_base_url(request, settings.public_url, settings.allowed_hosts)


@router.post(
    "/devices/{device_uuid}/image",
    response_model=ImageRequested,
    responses=error_responses(401, 403, 404, 409),
    summary="Ask the device for a snapshot: two signed links, usable once it has uploaded",
)
async def request_image(
    device_uuid: str,
    request: Request,
    background: BackgroundTasks,
    database: DatabaseDep,
    snapshots: SnapshotsDep,
    commands: CommandsDep,
) -> ImageRequested:
    """Answers at once; the links answer 202 until the device has uploaded (about 20 s
    on real hardware) and stay valid for `image_link_ttl` seconds from the request. A
    request while one is pending for the device returns the pending one."""
    # No request session: the request is one unit of work of its own (`write_unit`).
    principal = await caller_of(request, background)
    base = _base_url(request, snapshots)
    return await database.write_unit(
        lambda session: service.request_image(
            session, snapshots, commands, principal, device_uuid, base
        ),
        refusals=service.REFUSALS,
    )


@router.get(
    "/devices/{device_uuid}/images",
    response_model=ImageRequestList,
    responses=error_responses(400, 401, 403, 404),
    summary="The device's recent snapshot requests, newest first",
)
async def list_images(
    device_uuid: str,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    snapshots: SnapshotsDep,
    page: str | None = Query(None, description="1-based page number"),
    per_page: str | None = Query(None, description="Items per page, at most 500"),
) -> Response:
    found = await service.list_images(
        session,
        snapshots,
        principal,
        device_uuid,
        _base_url(request, snapshots),
        page=page,
        per_page=per_page,
    )
    return json_response(found.model_dump(mode="json", by_alias=True))


@router.get(
    "/images/{token}/{name}",
    response_class=Response,
    responses={
        200: {
            "content": {"image/jpeg": {}, "image/png": {}},
            "description": "The image, with `ETag` and `Cache-Control: private`",
        },
        202: {"model": ImagePending, "description": "Not uploaded yet; see `Retry-After`"},
        304: {"description": "Not modified (`If-None-Match`)"},
        307: {"description": "Redirect to a presigned URL of the image store (S3)"},
        403: {"model": ErrorBody, "description": "The link has expired or is forged"},
        404: {"model": ErrorBody, "description": "The image is no longer stored"},
        504: {"model": ErrorBody, "description": 'The capture failed (`"status": "failed"`)'},
    },
    summary="A signed image link (no bearer token)",
)
async def image_link(
    token: str,
    name: str,
    database: DatabaseDep,
    snapshots: SnapshotsDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    answer = await service.serve_link(database, snapshots, token, name, if_none_match)
    return Response(
        answer.body,
        status_code=answer.status,
        media_type=answer.media_type,
        headers=answer.headers,
    )


IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            media_type: {"schema": {"type": "string", "format": "binary"}}
            for media_type in (uploads.JPEG, uploads.PNG)
        },
    }
}


@device_router.put(
    "/images/{request_id}/{kind}",
    status_code=204,
    responses=error_responses(401, 404, 409, 413, 422),
    openapi_extra=IMAGE_BODY,
)
async def upload_image(
    request_id: str,
    kind: ImageKind,
    request: Request,
    database: DatabaseDep,
    device: GatedDeviceDep,
    snapshots: SnapshotsDep,
    outbox: OutboxDep,
) -> Response:
    """One image of a `capture_image` command: `raw` or `annotated`, JPEG or PNG (told
    from the bytes), at most `image_max_bytes`. Uploads for another device's request are
    refused (404)."""
    # Received, checked and staged in the image store before any transaction opens: a
    # slow upload holds no connection (and, on SQLite, not the write lock) while its
    # bytes arrive or are written.
    image = uploads.check_upload(snapshots, request_id, kind, await request.body())
    async with snapshots.store.stage(image.key, image.data, image.media_type) as staged:

        async def store(session: AsyncSession) -> None:
            await uploads.store_upload(session, snapshots, outbox, device.uuid, image, staged)

        if staged.quick:
            # Kept by a rename: in a transaction shared with the device requests of the
            # moment (group commit), answered once it has committed. On PostgreSQL the
            # units of a group lock their requests in turn; two groups can only wait on
            # each other over two requests uploaded at once in opposite orders, which
            # PostgreSQL detects, and the group then runs each unit alone (keeping again
            # does nothing).
            await database.grouped(store, refusals=uploads.REFUSALS)
        else:
            # An S3 put: in a transaction of its own, so that no other request waits
            # for its transfer.
            async with database.write() as session:
                await store(session)
    return Response(status_code=204)
