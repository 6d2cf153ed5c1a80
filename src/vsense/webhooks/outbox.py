"""The transactional outbox: events and their deliveries, written in the caller's transaction.

Whatever causes an event (a device message, a status change, a ready snapshot) calls
`emit` inside the transaction that records it, so the deliveries commit with the change
or not at all; nothing is sent from here. The webhooks an event goes to are read in that
same transaction, locked against deletion (`Outbox`). The dispatcher is woken after the
commit: in this process through `Outbox.wakeup`, in others through PostgreSQL's NOTIFY.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from vsense.accounts import throttle_repository
from vsense.changes import ChangeFeed
from vsense.config import Settings
from vsense.db import on_commit
from vsense.kit.cache import TTLCache
from vsense.kit.time import utcnow
from vsense.webhooks import queue_repository, repository
from vsense.webhooks.domain import NewEvent, Target
from vsense.webhooks.events import (
    KEEPALIVE,
    STATUS,
    encode,
    new_message_id,
    status_body,
    subscribed,
)

TARGETS = "webhook-targets"  # namespace of the per-device webhook cache
# An event to queue: the device, the event's type, its body.
Item = tuple[uuid.UUID, str, dict[str, Any]]
MAX_KEEPALIVE_SLOTS = 200_000  # devices whose taken slot this process remembers
_WAKE = "outbox.wakeup"  # the after-commit key: one wake-up per transaction


def takes(targets: Sequence[Target], kind: str) -> bool:
    """Whether any of a device's webhooks takes this kind of event."""
    return any(subscribed(t.webhook_type, t.actions, kind) for t in targets)


class Outbox:
    """Queues the events of a process's devices.

    Which webhooks get an event is decided in the transaction that writes the
    deliveries (`repository.targets(lock=True)`), never from a cache: a webhook whose
    creation committed is never missed, one whose deletion committed never written to.
    The keepalive's fast path asks `wants` and `keepalive_due` outside a transaction, to
    open none for most keepalives; both are hints (`_hints`, dropped in every process
    when a webhook changes, through `vsense.changes`; the slots this process saw taken),
    and the slot itself is claimed in the database (`throttle_counters`) with the event.
    """

    def __init__(self, settings: Settings, changes: ChangeFeed) -> None:
        self.settings = settings
        self.changes = changes
        # device -> its active webhooks, a hint reused for `auth_cache_ttl` seconds
        self._hints = TTLCache(ttl=settings.auth_cache_ttl.total_seconds(), max_entries=200_000)
        changes.subscribe(TARGETS, lambda _key: self._hints.invalidate(TARGETS))
        # device -> monotonic time until which its keepalive slot is known to be taken
        self._keepalive_taken: dict[uuid.UUID, float] = {}
        # set after a commit that queued deliveries: this process's dispatcher wakes
        self.wakeup = asyncio.Event()

    def forget_targets(self, session: AsyncSession | None = None) -> None:
        """A webhook was added, changed or removed (in `session`'s transaction: every
        process drops its hints when it commits; without one, only this process)."""
        self._hints.invalidate(TARGETS)
        if session is not None:
            self.changes.announce(session, TARGETS)

    def _hint(self, device: uuid.UUID) -> list[Target] | None:
        found: list[Target] | None = self._hints.get(
            TARGETS, device, self.changes.horizon(self._hints.ttl)
        )
        return found

    def known_unwanted(self, device: uuid.UUID, kind: str) -> bool:
        """Whether the device is known, without the database, to have no active webhook
        taking this event (a hint, as `wants`)."""
        targets = self._hint(device)
        return targets is not None and not takes(targets, kind)

    async def wants(self, session: AsyncSession, device: uuid.UUID, kind: str) -> bool:
        """Whether any active webhook of the device takes this event: a hint, which
        `emit_many` checks again in its transaction."""
        return device in await self.wanting(session, [device], kind)

    async def wanting(
        self, session: AsyncSession, devices: Collection[uuid.UUID], kind: str
    ) -> set[uuid.UUID]:
        """Those of `devices` with an active webhook taking this event (hints, as
        `wants`; one read for the devices not known here)."""
        known = {device: self._hint(device) for device in devices}
        unknown = [device for device, targets in known.items() if targets is None]
        if unknown:
            epoch = self._hints.epoch
            found = await repository.targets(session, unknown)
            for device, targets in found.items():
                self._hints.put(TARGETS, device, targets, since=epoch)
                known[device] = targets
        return {device for device, targets in known.items() if takes(targets or (), kind)}

    def keepalive_due(self, device: uuid.UUID) -> bool:
        """Whether the device's keepalive event may be due: False while its slot (one per
        `webhook_keepalive_min_interval`) is known taken, by this process or another.
        The slot is taken in the database by `emit_many`."""
        until = self._keepalive_taken.get(device)
        return until is None or time.monotonic() >= until

    async def _claim_keepalive(self, session: AsyncSession, device: uuid.UUID) -> bool:
        """Take the device's keepalive slot in the database, for every process."""
        interval = self.settings.webhook_keepalive_min_interval
        now = utcnow()
        claimed = await throttle_repository.claim(session, KEEPALIVE, str(device), now, interval)
        taken_at = now
        if not claimed:
            found = await throttle_repository.windows(session, KEEPALIVE, [str(device)])
            taken_at = found[str(device)][1] if str(device) in found else now
        if len(self._keepalive_taken) >= MAX_KEEPALIVE_SLOTS:
            self._keepalive_taken.clear()
        left = (taken_at + interval - now).total_seconds()
        self._keepalive_taken[device] = time.monotonic() + left
        return claimed

    async def emit(
        self, session: AsyncSession, *, device_uuid: uuid.UUID, event: str, body: dict[str, Any]
    ) -> int:
        """Queue one event of a device for every active webhook that takes it, in the
        caller's transaction. Returns the number of deliveries written."""
        return await self.emit_many(session, [(device_uuid, event, body)])

    async def locked_targets(
        self, session: AsyncSession, devices: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[Target]]:
        """The devices' active webhooks, read and locked in the caller's transaction (see
        `Outbox`): for callers that queue the events of many devices in several calls of
        `emit_many` (`targets=`), reading them once."""
        return await repository.targets(session, devices, lock=True)

    async def emit_many(
        self,
        session: AsyncSession,
        items: Sequence[Item],
        *,
        targets: Mapping[uuid.UUID, list[Target]] | None = None,
    ) -> int:
        """`emit` for many events at once (a batch of messages, a sweep): one look-up of
        the devices' webhooks (locked, see `Outbox`; `targets` when the caller read them
        with `locked_targets` in this transaction), one insert of the events and one of
        their deliveries. A keepalive event takes its device's slot first, and is left
        out when another process took it within the interval."""
        if not items:
            return 0
        devices = list({device for device, _, _ in items})
        if targets is None or any(device not in targets for device in devices):
            targets = await repository.targets(session, devices, lock=True)
        events: list[NewEvent] = []
        for device, kind, body in items:
            wanted = [t for t in targets[device] if subscribed(t.webhook_type, t.actions, kind)]
            if wanted and kind == KEEPALIVE and not await self._claim_keepalive(session, device):
                continue
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
