"""Snapshots, device side: the uploads of a capture and its failure."""

from __future__ import annotations

import hashlib
import io
import uuid
import warnings
from dataclasses import dataclass
from typing import Any

from PIL import Image
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.commands.service import CommandOutcome
from vsense.db import on_commit
from vsense.images import repository
from vsense.images.cache import ReadyImages
from vsense.images.links import ImageKind, link_pair
from vsense.images.snapshots import Snapshots
from vsense.images.storage import Staged, image_key
from vsense.kit.errors import Conflict, NotFound, PayloadTooLarge, Unprocessable, field_error
from vsense.kit.time import utcnow
from vsense.models.images import PENDING, READY
from vsense.webhooks.outbox import Outbox

JPEG = "image/jpeg"
PNG = "image/png"
IMAGE_EVENT = "image"


_MEDIA_TYPES = {"JPEG": JPEG, "PNG": PNG}


def media_type_of(data: bytes) -> str | None:
    """JPEG or PNG, told from the bytes themselves (whatever the header said); else None.

    The image header is decoded (Pillow, restricted to these two formats), so a few
    magic bytes before anything else do not pass: the dimensions must be there, and a
    PNG's chunks must be whole and their checksums right. Decompression bombs are
    refused too.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=list(_MEDIA_TYPES)) as image:
                media_type = _MEDIA_TYPES.get(image.format or "")
                width, height = image.size
                image.verify()
    except Exception:  # Pillow signals a bad image with many exception types
        return None
    return media_type if width > 0 and height > 0 else None


def image_body(snapshots: Snapshots, request: Row[Any], timestamp: int) -> dict[str, Any]:
    """The `image` webhook event (spec/delivery.md)."""
    base = snapshots.settings.public_url or request.base_url
    return {
        "stream_id": str(request.device_uuid),
        "type": "IMAGE",
        "timestamp": timestamp,
        "request_id": str(request.id),
        "links": link_pair(snapshots.link_key, base, request.id, request.expires_at),
        "expires_at": int(request.expires_at.timestamp()),
    }


@dataclass(frozen=True, slots=True)
class CheckedImage:
    """The bytes of an upload, known to be a JPEG or PNG image within the size limit,
    for the request and kind it names."""

    request_id: uuid.UUID
    kind: ImageKind
    data: bytes
    media_type: str
    sha256: str

    @property
    def key(self) -> str:
        """Its key in the image store."""
        return image_key(self.request_id, self.kind)


def check_upload(
    snapshots: Snapshots, request_id: str, kind: ImageKind, data: bytes
) -> CheckedImage:
    """An upload checked before any database work (413 too large, 422 not an image, 404
    not a request id)."""
    max_bytes = snapshots.settings.image_max_bytes
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"An image may be at most {max_bytes} bytes.")
    media_type = media_type_of(data)
    if media_type is None:
        raise Unprocessable(
            "The upload is not a JPEG or PNG image.",
            errors=[field_error("body", "expected the bytes of a JPEG or PNG image")],
        )
    try:
        parsed = uuid.UUID(request_id)
    except ValueError:
        raise NotFound("No such image request for this device.") from None
    return CheckedImage(parsed, kind, data, media_type, hashlib.sha256(data).hexdigest())


# What `store_upload` refuses with, always before it writes anything (in the store or
# the database): in a group commit, such a refusal answers its upload alone.
REFUSALS = (NotFound, Conflict)


async def store_upload(
    session: AsyncSession,
    snapshots: Snapshots,
    outbox: Outbox,
    device: uuid.UUID,
    image: CheckedImage,
    staged: Staged,
) -> None:
    """Keep one checked image of a capture, staged in the image store. The request
    becomes ready with its second image, and the `image` webhook event is queued in the
    same transaction. Sending the same bytes again (a retry after a lost answer) is
    accepted and changes nothing. Its refusals (404, 409) come before it writes
    anything, in the store or the database."""
    kind = image.kind
    request = await repository.get_for_update(session, image.request_id)
    if request is None or request.device_uuid != device:
        raise NotFound("No such image request for this device.")
    if getattr(request, f"{kind}_sha256") == image.sha256:
        return  # the same image again
    now = utcnow()
    if request.status == READY:
        raise Conflict("Both images of this request are already uploaded.")
    if request.status != PENDING or request.capture_deadline <= now:
        raise Conflict("The request has failed or timed out; the upload is no longer wanted.")
    # Kept before it is recorded: a crash in between leaves a file that retention
    # removes, never a row that points at nothing.
    await staged.keep()
    # Bytes under (key, SHA-256) are those bytes for good: the links that will ask for
    # them right away are served without reading the store.
    snapshots.ready.remember_image(image.key, image.sha256, image.data)
    recorded = await repository.record_upload(
        session, request, kind, image.media_type, image.sha256, len(image.data), now
    )
    if recorded.status == READY:
        body = image_body(snapshots, recorded, int(now.timestamp()))
        await outbox.emit(session, device_uuid=device, event=IMAGE_EVENT, body=body)
        ready = ReadyImages.of(recorded)
        # Final once committed: its links need no database read from then on.
        on_commit(session, ("ready", request.id), lambda: snapshots.ready.remember_request(ready))


async def capture_result(session: AsyncSession, outcome: CommandOutcome) -> None:
    """The device's result of a `capture_image` command: a failure fails its request."""
    if outcome.ok:
        return
    request_id = await repository.pending_for_command(session, outcome.command_id)
    if request_id is not None:
        await repository.fail(
            session, [request_id], outcome.error or "the device reported a failure"
        )
