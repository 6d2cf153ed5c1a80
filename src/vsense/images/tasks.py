"""Background work of snapshots: failing overdue requests, deleting old images."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from vsense.images import repository
from vsense.images.snapshots import Snapshots

BATCH = 500
TIMEOUT_ERROR = "timeout"


async def fail_overdue(session: AsyncSession, now: datetime) -> int:
    """Fail pending requests whose device did not upload within the capture timeout, or
    never took the command before it expired. One batch; how many were failed."""
    overdue = await repository.overdue(session, now, BATCH)
    return len(await repository.fail(session, overdue, TIMEOUT_ERROR))


async def apply_retention(session: AsyncSession, snapshots: Snapshots, now: datetime) -> int:
    """Delete images and requests older than `image_retention`; the images deleted.

    The store is swept by the age of its objects rather than through the requests, so
    images whose request or device is gone (a deleted device, a crash between storing
    and recording) go too.
    """
    cutoff = now - snapshots.settings.image_retention
    if await repository.delete_created_before(session, cutoff):
        snapshots.ready.clear()
    return await snapshots.store.delete_older_than(cutoff)
