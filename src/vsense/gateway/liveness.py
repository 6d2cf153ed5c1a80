"""Online and offline: signs of life written in batches, and the sweep for overdue devices.

A keepalive from a device that is already online only moves its deadline; those writes
are gathered in memory and written together (`LivenessRecorder.flush`), one statement
for many devices, so that a large fleet keeping alive does not mean one row update per
message. A device that comes back from offline is written at once, with its event, in
the transaction of the message that brought it back. Losing a batch in a crash loses
nothing that matters: the device's next sign of life moves its deadline again.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from vsense.db import session_scope
from vsense.gateway import repository
from vsense.webhooks.outbox import emit_status

if TYPE_CHECKING:  # the state holds the recorder
    from vsense.state import AppState

OFFLINE_FACTOR = 1.5
SWEEP_BATCH = 5000
KEEPALIVE_TIMEOUT = "keepalive_timeout"


def deadline_after(seen: datetime, interval: int) -> datetime:
    """When a device last seen at `seen` goes offline without another sign of life."""
    return seen + timedelta(seconds=OFFLINE_FACTOR * interval)


class LivenessRecorder:
    """Signs of life of online devices, waiting to be written in one batch."""

    def __init__(self) -> None:
        # device -> (seen, interval); a later sign of life replaces an earlier one.
        self._pending: dict[uuid.UUID, tuple[datetime, int]] = {}

    def note(self, device: uuid.UUID, seen: datetime, interval: int) -> None:
        self._pending[device] = (seen, interval)

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self, state: AppState) -> int:
        """Write what was noted. Devices that went offline meanwhile (the sweep got there
        first) come back online with an event (and its webhooks). Returns how many devices
        were written."""
        if not self._pending:
            return 0
        batch, self._pending = self._pending, {}
        by_moment: dict[tuple[datetime, datetime], list[uuid.UUID]] = defaultdict(list)
        latest = max(seen for seen, _ in batch.values())
        for device, (_, interval) in batch.items():
            # One statement per distinct interval: the batch shares its latest time,
            # at most one flush interval later than each device's own.
            by_moment[(latest, deadline_after(latest, interval))].append(device)
        try:
            async with session_scope(state.sessionmaker) as session:
                for (seen, deadline), devices in by_moment.items():
                    await repository.refresh_online(session, devices, seen, deadline)
                    back = [
                        device
                        for device in await repository.offline_among(session, devices)
                        if await repository.set_online(session, device, seen, deadline, "keepalive")
                    ]
                    await emit_status(session, state, back, "online", "keepalive", seen)
        except BaseException:
            # Put the batch back (newer notes win) so a failed write is retried.
            for device, value in batch.items():
                self._pending.setdefault(device, value)
            raise
        return len(batch)


async def sweep(session: AsyncSession, state: AppState, now: datetime) -> list[uuid.UUID]:
    """Mark online devices past their deadline offline, with an event (and its webhooks)
    each."""
    devices = await repository.overdue(session, now, SWEEP_BATCH)
    if devices:
        await repository.set_offline(session, devices, now, KEEPALIVE_TIMEOUT)
        await emit_status(session, state, devices, "offline", KEEPALIVE_TIMEOUT, now)
    return devices
