"""Snapshots, integrator side: ask a device for images, list the requests, serve the links.

A request queues a `capture_image` command for the device (it takes it on its long
poll, its keepalive answer, or over MQTT) and answers at once with two signed links.
The device uploads both images (`uploads.py`); the links answer 202 until then.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.accounts.principal import Principal
from vsense.accounts.service import require_scope
from vsense.commands.service import Commands
from vsense.db import Database
from vsense.devices import repository as devices_repository
from vsense.devices.service import parse_device_uuid
from vsense.images import repository
from vsense.images.cache import ReadyImages
from vsense.images.links import link_pair, verify
from vsense.images.schemas import (
    ImageRequested,
    ImageRequestItem,
    ImageRequestList,
    ImageRequestMeta,
)
from vsense.images.snapshots import Snapshots
from vsense.images.storage import image_key
from vsense.kit.errors import AppError, Conflict, Forbidden, NotFound
from vsense.kit.pagination import page_meta, page_request
from vsense.kit.schemas import ListMeta
from vsense.kit.time import utcnow
from vsense.models.images import FAILED, PENDING, READY

CAPTURE_COMMAND = "capture_image"
RETRY_AFTER_S = 2  # what a pending link suggests; a device needs ~20 s on real hardware
EXPIRED = "expired"


class CaptureFailed(AppError):
    """504: the device reported a failure, or did not upload within the capture timeout."""

    status_code, code = 504, 5004
    default_message = "The device did not deliver the snapshot."

    def body(self) -> dict[str, Any]:
        return {**super().body(), "status": FAILED}


@dataclass(frozen=True, slots=True)
class LinkAnswer:
    """What a signed link answers once its image is there: the image (200), not
    modified (304) or a redirect to the store (307)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    media_type: str | None = None


def effective_status(request: Row[Any], now: datetime) -> str:
    """pending, ready or failed as stored, a pending request past its capture deadline
    counting as failed before the sweep has recorded it."""
    status: str = request.status
    if status == PENDING and request.capture_deadline <= now:
        return FAILED
    return status


async def _visible_device(session: AsyncSession, principal: Principal, raw: str) -> Any:
    # Visibility first: a device the caller cannot see is 404 whatever its rights.
    row = await devices_repository.get_device_row(session, principal, parse_device_uuid(raw))
    if row is None:
        raise NotFound("No such device.")
    require_scope(principal, "images:request")
    return row


# What `request_image` refuses with, always before it writes anything: in a group
# commit (SQLite), such a refusal answers its own request alone.
REFUSALS = (NotFound, Forbidden, Conflict)


async def request_image(
    session: AsyncSession,
    snapshots: Snapshots,
    commands: Commands,
    principal: Principal,
    device_uuid: str,
    request_base: str,
) -> ImageRequested:
    """The seed's `{"data": [raw link, annotated link]}` plus `meta`; a pending request of
    the same device is reused rather than a second capture asked for. The edge runs it
    as one unit of work with its checks (`Database.write_unit`): on SQLite, a burst of
    requests shares one write turn and one COMMIT. Safe to run again after a rollback."""
    row = await _visible_device(session, principal, device_uuid)
    device = uuid.UUID(str(row.uuid))
    if not row.is_online:
        raise Conflict("The device is offline; it can take a snapshot once it is back online.")
    await repository.lock_device(session, device)
    now = utcnow()
    request = await repository.pending_for_device(session, device)
    if request is not None and request.capture_deadline <= now:
        await repository.fail(session, [request.id], "timeout")  # the sweep has not run yet
        request = None
    if request is None:
        request_id, expires_at = await _new_request(
            session, snapshots, commands, device, request_base, now
        )
        status = PENDING
    else:
        request_id, status, expires_at = request.id, request.status, request.expires_at
    base = snapshots.public_base(request_base)
    return ImageRequested(
        data=link_pair(snapshots.link_key, base, request_id, expires_at),
        meta=ImageRequestMeta(request_id=str(request_id), status=status, expires_at=expires_at),
    )


async def _new_request(
    session: AsyncSession,
    snapshots: Snapshots,
    commands: Commands,
    device: uuid.UUID,
    request_base: str,
    now: datetime,
) -> tuple[uuid.UUID, datetime]:
    """A new pending request and its command: its id and when its links expire."""
    settings = snapshots.settings
    request_id = uuid.uuid4()
    command = await commands.create(
        session, device, CAPTURE_COMMAND, {"request_id": str(request_id)}
    )
    expires_at = now + settings.image_link_ttl
    await repository.add(
        session,
        {
            "id": request_id,
            "device_uuid": device,
            "command_id": command.id,
            "status": PENDING,
            "created": now,
            "expires_at": expires_at,
            "capture_deadline": now + settings.image_capture_timeout,
            "base_url": snapshots.public_base(request_base)[:300],
        },
    )
    return request_id, expires_at


async def list_images(
    session: AsyncSession,
    snapshots: Snapshots,
    principal: Principal,
    device_uuid: str,
    request_base: str,
    *,
    page: str | None,
    per_page: str | None,
) -> ImageRequestList:
    """A device's snapshot requests, newest first, with their links while they are valid."""
    row = await _visible_device(session, principal, device_uuid)
    paging = page_request(page, per_page)
    requests, total = await repository.list_for_device(
        session, uuid.UUID(str(row.uuid)), offset=paging.offset, limit=paging.per_page
    )
    now = utcnow()
    key, base = snapshots.link_key, snapshots.public_base(request_base)
    items = []
    for request in requests:
        valid = request.expires_at > now
        status = effective_status(request, now)
        items.append(
            ImageRequestItem(
                request_id=str(request.id),
                status=status if valid or status == FAILED else EXPIRED,
                created=request.created,
                expires_at=request.expires_at,
                ready_at=request.ready_at,
                error=request.error or ("timeout" if status == FAILED else None),
                links=link_pair(key, base, request.id, request.expires_at) if valid else [],
            )
        )
    return ImageRequestList(
        data=items, meta=ListMeta.model_validate(page_meta(paging, total, len(items)))
    )


async def serve_link(
    database: Database, snapshots: Snapshots, token: str, name: str, if_none_match: str | None
) -> LinkAnswer:
    """What a signed link answers: 202 while pending, the image (or a redirect to it)
    once uploaded, 403 when expired or forged, 504 when the capture failed.

    A request known to be ready is served from the process's cache: no session at all.
    """
    now = utcnow()
    link = verify(snapshots.link_key, token, name, now)
    if link is None:
        raise Forbidden("The link has expired or its signature does not match.")
    ready = snapshots.ready.request(link.request_id)
    if ready is None:
        async with database.read_sessionmaker() as session:
            ready = await _ready_or_answer(session, snapshots, link.request_id, link.kind, now)
    sha256, media_type = ready.sha256[link.kind], ready.types[link.kind]
    remaining = max(1, int((link.expires_at - now).total_seconds()))
    headers = {"ETag": f'"{sha256}"', "Cache-Control": f"private, max-age={remaining}"}
    if if_none_match is not None and _matches(if_none_match, headers["ETag"]):
        return LinkAnswer(304, headers)
    store = snapshots.store
    key = image_key(link.request_id, link.kind)
    if snapshots.settings.image_s3_delivery == "redirect":
        location = store.presigned_url(key, remaining)
        if location is not None:
            return LinkAnswer(307, {**headers, "Location": location})
    data = snapshots.ready.image(key, sha256)
    if data is None:
        data = await store.get(key)
        if data is None:
            raise NotFound("The image is no longer stored.")
        snapshots.ready.remember_image(key, sha256, data)
    return LinkAnswer(200, headers, data, media_type)


class _Pending(AppError):
    """Not an error: the answer of a link whose image is not uploaded yet (202)."""

    status_code, code = 202, 0

    def __init__(self) -> None:
        super().__init__(
            "pending", headers={"Retry-After": str(RETRY_AFTER_S), "Cache-Control": "no-store"}
        )

    def body(self) -> dict[str, Any]:
        return {"status": PENDING}


async def _ready_or_answer(
    session: AsyncSession, snapshots: Snapshots, request_id: uuid.UUID, kind: str, now: datetime
) -> ReadyImages:
    """The facts of the link's image from the database; raises the answer when the image
    is not there (404 gone, 504 failed, 202 pending)."""
    request = await repository.get(session, request_id)
    if request is None:
        raise NotFound("The image is no longer stored.")
    if effective_status(request, now) == FAILED:
        raise CaptureFailed(
            f"The device did not deliver the snapshot ({request.error or 'timeout'})."
        )
    found = ReadyImages.of(request)
    if kind not in found.sha256 or kind not in found.types:
        raise _Pending()
    if request.status == READY:  # final from now on
        snapshots.ready.remember_request(found)
    return found


def _matches(if_none_match: str, etag: str) -> bool:
    """Whether an If-None-Match header names this ETag (weak comparison, RFC 9110)."""
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags
