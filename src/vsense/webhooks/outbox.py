"""The transactional outbox: events and their deliveries, written in the caller's transaction.

Whatever causes an event (a device message, a status change, a ready snapshot) calls
`emit` inside the transaction that records it, so the deliveries commit with the change
or not at all; nothing is sent from here. The dispatcher is woken after the commit: in
this process through `state.webhook_wakeup`, in others through PostgreSQL's NOTIFY.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from vsense.kit.time import utcnow
from vsense.webhooks import queue_repository, repository
from vsense.webhooks.domain import NewEvent, Target
from vsense.webhooks.events import STATUS, encode, new_message_id, status_body, subscribed

if TYPE_CHECKING:  # the state holds the gateway, which emits through here
    from vsense.state import AppState

TARGETS = "webhook-targets"  # namespace of the per-device webhook cache
_WAKE = "vsense.webhook_wakeup"


@event.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    wakeup = session.info.pop(_WAKE, None)
    if wakeup is not None:
        wakeup.set()


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_WAKE, None)


async def _targets(
    session: AsyncSession, state: AppState, devices: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Target]]:
    """Active webhooks per device, cached for `auth_cache_ttl` seconds; changes made in
    this process apply at once (`forget_targets`), in other processes within that time."""
    found: dict[uuid.UUID, list[Target]] = {}
    missing: list[uuid.UUID] = []
    for device in devices:
        cached = state.webhook_targets.get(TARGETS, device)
        if cached is None:
            missing.append(device)
        else:
            found[device] = cached
    if missing:
        loaded = await repository.targets(session, missing)
        for device, targets in loaded.items():
            state.webhook_targets.put(TARGETS, device, targets)
        found.update(loaded)
    return found


def forget_targets(state: AppState) -> None:
    """Drop the cached webhooks of every device (a webhook was added, changed or removed)."""
    state.webhook_targets.invalidate(TARGETS)


async def wants(session: AsyncSession, state: AppState, device: uuid.UUID, kind: str) -> bool:
    """Whether any active webhook of the device takes this event."""
    targets = (await _targets(session, state, [device]))[device]
    return any(subscribed(t.webhook_type, t.actions, kind) for t in targets)


def keepalive_due(state: AppState, device: uuid.UUID) -> bool:
    """At most one keepalive event per device per `webhook_keepalive_min_interval`
    (counted in this process); True claims the slot."""
    now = time.monotonic()
    last = state.keepalive_forwarded.get(device)
    minimum = state.settings.webhook_keepalive_min_interval.total_seconds()
    if last is not None and now - last < minimum:
        return False
    state.keepalive_forwarded[device] = now
    return True


async def emit(
    session: AsyncSession,
    state: AppState,
    *,
    device_uuid: uuid.UUID,
    event: str,
    body: dict[str, Any],
) -> int:
    """Queue one event of a device for every active webhook that takes it, in the
    caller's transaction. Returns the number of deliveries written."""
    return await emit_many(session, state, [(device_uuid, event, body)])


async def emit_many(
    session: AsyncSession,
    state: AppState,
    items: Sequence[tuple[uuid.UUID, str, dict[str, Any]]],
) -> int:
    """`emit` for many events at once (a batch of messages, a sweep): one look-up of the
    devices' webhooks, one insert of the events and one of their deliveries."""
    if not items:
        return 0
    targets = await _targets(session, state, list({device for device, _, _ in items}))
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
    await wake_after_commit(session, state)
    return len(deliveries)


async def wake_after_commit(session: AsyncSession, state: AppState) -> None:
    """Wake the dispatchers once the caller's transaction commits: this process's at once,
    other processes' through NOTIFY (PostgreSQL)."""
    if _WAKE not in session.sync_session.info:
        session.sync_session.info[_WAKE] = state.webhook_wakeup
        await queue_repository.notify(session)


async def emit_status(
    session: AsyncSession,
    state: AppState,
    devices: Sequence[uuid.UUID],
    status: str,
    reason: str,
    at: datetime,
) -> int:
    """Queue the `status` event (online or offline) of devices whose status changed."""
    timestamp = int(at.timestamp())
    return await emit_many(
        session,
        state,
        [(device, STATUS, status_body(device, timestamp, status, reason)) for device in devices],
    )
