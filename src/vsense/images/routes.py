"""HTTP routes of snapshots: ask for one, list them, and the signed links themselves."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response

from vsense.deps import PrincipalDep, SessionDep, StateDep
from vsense.images import service
from vsense.images.schemas import ImagePending, ImageRequested, ImageRequestList
from vsense.kit.http import API_PREFIX, error_responses, json_response
from vsense.kit.origin import public_base_url
from vsense.kit.schemas import ErrorBody
from vsense.state import AppState

router = APIRouter(prefix=API_PREFIX, tags=["images"])


def _base_url(request: Request, state: AppState) -> str:
    """The base of the links answered (and sent in the `image` event): never a forged Host."""
    return public_base_url(request, state.settings.public_url, state.settings.allowed_hosts)


@router.post(
    "/devices/{device_uuid}/image",
    response_model=ImageRequested,
    responses=error_responses(401, 403, 404, 409),
    summary="Ask the device for a snapshot: two signed links, usable once it has uploaded",
)
async def request_image(
    device_uuid: str,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    state: StateDep,
) -> Response:
    """Answers at once; the links answer 202 until the device has uploaded (about 20 s
    on real hardware) and stay valid for `image_link_ttl` seconds from the request. A
    request while one is pending for the device returns the pending one."""
    return json_response(
        await service.request_image(
            session, state, principal, device_uuid, _base_url(request, state)
        )
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
    state: StateDep,
    page: str | None = Query(None, description="1-based page number"),
    per_page: str | None = Query(None, description="Items per page, at most 500"),
) -> Response:
    return json_response(
        await service.list_images(
            session,
            state,
            principal,
            device_uuid,
            _base_url(request, state),
            page=page,
            per_page=per_page,
        )
    )


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
    session: SessionDep,
    state: StateDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    return await service.serve_link(session, state, token, name, if_none_match)
