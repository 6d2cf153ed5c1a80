"""Online and offline: signs of life written in batches, and the sweep for overdue devices.

A keepalive from a device that is already online only moves its deadline; those writes
are gathered in memory and written together (`Liveness.flush`), one statement for many
devices, so that a large fleet keeping alive does not mean one row update per message.
A device that comes back from offline is written at once, with its event, in the
transaction of the message that brought it back. Losing a batch in a crash loses
nothing that matters: the device's next sign of life moves its deadline again.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict, deque
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from vsense.config import Settings
from vsense.db import Database
from vsense.device_auth.identity import DeviceIdentity
from vsense.gateway import repository
from vsense.kit.time import utcnow
from vsense.webhooks.outbox import Item, Outbox, status_items

OFFLINE_FACTOR = 1.5
SWEEP_BATCH = 5000
KEEPALIVE_TIMEOUT = "keepalive_timeout"


def deadline_after(seen: datetime, interval: int) -> datetime:
    """When a device last seen at `seen` goes offline without another sign of life."""
    return seen + timedelta(seconds=OFFLINE_FACTOR * interval)


class Liveness:
    """Devices' signs of life: batched for online devices, written at once (with the
    `status` event) for devices coming back; and the sweep that finds overdue ones."""

    def __init__(self, settings: Settings, database: Database, outbox: Outbox) -> None:
        self.default_interval = settings.default_keepalive_interval
        self.database = database
        self.outbox = outbox
        # device -> (seen, interval); a later sign of life replaces an earlier one.
        self._pending: dict[uuid.UUID, tuple[datetime, int]] = {}
        # The batches written within `auth_cache_ttl` (when, batch): a device's cached
        # identity, read before it came back, may say offline that long.
        self._written: deque[tuple[float, dict[uuid.UUID, tuple[datetime, int]]]] = deque()
        self._remember = settings.auth_cache_ttl.total_seconds()

    def interval(self, device: DeviceIdentity) -> int:
        """The device's keepalive interval: its own, else its group's, else the default."""
        return device.keepalive_interval or self.default_interval

    def note(self, device: uuid.UUID, seen: datetime, interval: int) -> None:
        self._pending[device] = (seen, interval)

    def known_online(self, device: DeviceIdentity) -> bool:
        """Whether the device is online as far as this process knows: its identity says
        so, or it was noted since the last flush or in a batch written since its
        identity may have been cached (`auth_cache_ttl`). A sign of life of such a
        device needs no write of its own: should it have gone offline meanwhile, the
        flush brings it back with its event."""
        return device.is_online or device.uuid in self._pending or self._written_lately(device)

    def _written_lately(self, device: DeviceIdentity) -> bool:
        self._forget_written(time.monotonic())
        return any(device.uuid in batch for _, batch in self._written)

    def _forget_written(self, now: float) -> None:
        while self._written and self._written[0][0] < now - self._remember:
            self._written.popleft()

    def seen_online(self, device: DeviceIdentity) -> None:
        """A sign of life of a device known to be online: joins the next batch."""
        self.note(device.uuid, utcnow(), self.interval(device))

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def sign_of_life(
        self, session: AsyncSession, device: DeviceIdentity, reason: str
    ) -> list[Item]:
        """Any message from a device keeps it online. Already online: batched. Coming
        back: written now, with its status event, in the caller's transaction; the
        `status` webhook event is returned for the caller to queue ahead of the events
        of the message itself (one write to the outbox per message)."""
        now = utcnow()
        interval = self.interval(device)
        # Should the sweep have got to a device known online first, the flush brings it
        # back with its event.
        if self.known_online(device) or not await repository.set_online(
            session, device.uuid, now, deadline_after(now, interval), reason
        ):
            self.note(device.uuid, now, interval)
            return []
        # Noted too: until its cached identity says online, its next signs of life are
        # known online here, with no write of their own.
        self.note(device.uuid, now, interval)
        return status_items([device.uuid], "online", reason, now)

    async def flush(self) -> int:
        """Write what was noted. Devices that went offline meanwhile (the sweep got there
        first) come back online with an event (and its webhooks). Returns how many
        devices were written."""
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
            async with self.database.write() as session:
                for (seen, deadline), devices in by_moment.items():
                    await repository.refresh_online(session, devices, seen, deadline)
                    back = [
                        device
                        for device in await repository.offline_among(session, devices)
                        if await repository.set_online(session, device, seen, deadline, "keepalive")
                    ]
                    await self.outbox.emit_status(session, back, "online", "keepalive", seen)
        except BaseException:
            # Put the batch back (newer notes win) so a failed write is retried.
            for device, value in batch.items():
                self._pending.setdefault(device, value)
            raise
        now = time.monotonic()
        self._forget_written(now)
        self._written.append((now, batch))
        return len(batch)

    async def sweep(self, session: AsyncSession, now: datetime) -> list[uuid.UUID]:
        """Mark online devices past their deadline offline, with an event (and its
        webhooks) each."""
        devices = await repository.overdue(session, now, SWEEP_BATCH)
        if devices:
            await repository.set_offline(session, devices, now, KEEPALIVE_TIMEOUT)
            await self.outbox.emit_status(session, devices, "offline", KEEPALIVE_TIMEOUT, now)
        return devices
