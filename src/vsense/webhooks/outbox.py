"""The transactional outbox: events and their deliveries, written in the caller's transaction.

Whatever causes an event (a device message, a status change, a ready snapshot) calls
`emit` inside the transaction that records it, so the deliveries commit with the change
or not at all; nothing is sent from here. The dispatcher is woken after the commit: in
this process through `Outbox.wakeup`, in others through PostgreSQL's NOTIFY.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from vsense.config import Settings
from vsense.db import on_commit
from vsense.kit.cache import TTLCache
from vsense.kit.time import utcnow
from vsense.webhooks import queue_repository, repository
from vsense.webhooks.domain import NewEvent, Target
from vsense.webhooks.events import STATUS, encode, new_message_id, status_body, subscribed

TARGETS = "webhook-targets"  # namespace of the per-device webhook cache
# An event to queue: the device, the event's type, its body.
Item = tuple[uuid.UUID, str, dict[str, Any]]
_WAKE = "outbox.wakeup"  # the after-commit key: one wake-up per transaction


class Outbox:
    """Queues the events of a process's devices: owns the per-device webhook look-up
    (cached), the keepalive throttle, and the wake-up of this process's dispatcher."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # device -> its active webhooks, reused for `auth_cache_ttl` seconds
        self._targets = TTLCache(ttl=settings.auth_cache_ttl.total_seconds(), max_entries=200_000)
        # device -> monotonic time of its last keepalive event (one per min interval)
        self._keepalive_forwarded: dict[uuid.UUID, float] = {}
        # set after a commit that queued deliveries: this process's dispatcher wakes
        self.wakeup = asyncio.Event()

    async def _targets_of(
        self, session: AsyncSession, devices: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[Target]]:
        """Active webhooks per device, cached for `auth_cache_ttl` seconds; changes made
        in this process apply at once (`forget_targets`), in others within that time."""
        found: dict[uuid.UUID, list[Target]] = {}
        missing: list[uuid.UUID] = []
        for device in devices:
            cached = self._targets.get(TARGETS, device)
            if cached is None:
                missing.append(device)
            else:
                found[device] = cached
        if missing:
            loaded = await repository.targets(session, missing)
            for device, targets in loaded.items():
                self._targets.put(TARGETS, device, targets)
            found.update(loaded)
        return found

    def forget_targets(self) -> None:
        """Drop the cached webhooks of every device (a webhook was added, changed or
        removed)."""
        self._targets.invalidate(TARGETS)

    async def wants(self, session: AsyncSession, device: uuid.UUID, kind: str) -> bool:
        """Whether any active webhook of the device takes this event."""
        targets = (await self._targets_of(session, [device]))[device]
        return any(subscribed(t.webhook_type, t.actions, kind) for t in targets)

    def keepalive_due(self, device: uuid.UUID) -> bool:
        """At most one keepalive event per device per `webhook_keepalive_min_interval`
        (counted in this process); True claims the slot."""
        now = time.monotonic()
        last = self._keepalive_forwarded.get(device)
        minimum = self.settings.webhook_keepalive_min_interval.total_seconds()
        if last is not None and now - last < minimum:
            return False
        self._keepalive_forwarded[device] = now
        return True

    async def emit(
        self, session: AsyncSession, *, device_uuid: uuid.UUID, event: str, body: dict[str, Any]
    ) -> int:
        """Queue one event of a device for every active webhook that takes it, in the
        caller's transaction. Returns the number of deliveries written."""
        return await self.emit_many(session, [(device_uuid, event, body)])

    async def emit_many(self, session: AsyncSession, items: Sequence[Item]) -> int:
        """`emit` for many events at once (a batch of messages, a sweep): one look-up of
        the devices' webhooks, one insert of the events and one of their deliveries."""
        if not items:
            return 0
        targets = await self._targets_of(session, list({device for device, _, _ in items}))
        events: list[NewEvent] = []
        for device, kind, body in items:
            wanted = [t for t in targets[device] if subscribed(t.webhook_type, t.actions, kind)]
            if wanted:
                events.append(
                    NewEvent(
                        organization_id=wanted[0].organization_id,
                        device_uuid=device,
                        type=kind,
                        msg_id=new_message_id(),
                        body=encode(body),
                        webhook_ids=[t.webhook_id for t in wanted],
                    )
                )
        if not events:
            return 0
        deliveries = await queue_repository.enqueue(session, events, utcnow(), lease_until=None)
        await self.wake_after_commit(session)
        return len(deliveries)

    async def wake_after_commit(self, session: AsyncSession) -> None:
        """Wake the dispatchers once the caller's transaction commits: this process's at
        once, other processes' through NOTIFY (PostgreSQL)."""
        if on_commit(session, (_WAKE, id(self)), self.wakeup.set):
            await queue_repository.notify(session)

    async def emit_status(
        self,
        session: AsyncSession,
        devices: Sequence[uuid.UUID],
        status: str,
        reason: str,
        at: datetime,
    ) -> int:
        """Queue the `status` event (online or offline) of devices whose status changed."""
        return await self.emit_many(session, status_items(devices, status, reason, at))


def status_items(
    devices: Sequence[uuid.UUID], status: str, reason: str, at: datetime
) -> list[Item]:
    """The `status` events (online or offline) of devices whose status changed."""
    timestamp = int(at.timestamp())
    return [(device, STATUS, status_body(device, timestamp, status, reason)) for device in devices]
