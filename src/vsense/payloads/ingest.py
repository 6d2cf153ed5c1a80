"""The payload log, device side: keep a device's validated messages with their derived
metrics (the 30-s rule of parking devices, running occupancy), and queue their events.

The gateway hands a checked batch (`batches.py`) here once it knows the device;
integrators read the log through `service.py`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from vsense.config import Settings
from vsense.db import on_commit
from vsense.kit.metrics import Metrics
from vsense.payloads import repository
from vsense.payloads.batches import Batch
from vsense.payloads.metrics import derive_metrics, next_occupancy
from vsense.payloads.schemas import ValidatedMessage
from vsense.webhooks.events import PAYLOAD, payload_body
from vsense.webhooks.outbox import Item, Outbox, takes


class AfterStore(Protocol):
    """What else reads a stored batch's metric rows in its transaction: the alert rules,
    wired by the composition root."""

    async def covered(
        self, session: AsyncSession, devices: Sequence[uuid.UUID]
    ) -> Mapping[uuid.UUID, object]:
        """What applies to each of `devices` (one read for a whole group of batches);
        devices left out are skipped."""

    async def after_store(
        self,
        session: AsyncSession,
        device: uuid.UUID,
        metric_rows: Sequence[Mapping[str, Any]],
        now: datetime,
        known: object = None,
    ) -> object:
        """Read one stored batch's metric rows (`device` is covered; `now`: when the
        batch was received; `known`: what `covered` found for it, unless an earlier
        batch of the device in this group may have changed it)."""


# A batch to record: its device, the batch, the events to queue ahead of its own.
Unit = tuple[uuid.UUID, Batch, Sequence[Item]]
VPM_TYPE = "VPM"
VPM_MIN_SPACING = 30  # seconds between two messages of a parking device


class PayloadLog:
    """Devices' messages into the payload log. Remembers, per process, each parking
    device's last kept time (read from the log for a device not seen yet)."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        outbox: Outbox,
        after_store: AfterStore | None = None,
    ) -> None:
        self.accept_unknown_types = settings.accept_unknown_payload_types
        self.metrics = metrics
        self.outbox = outbox
        self.after_store = after_store
        # device -> timestamp of its last stored VPM message (the 30 s rule)
        self._last_vpm: dict[uuid.UUID, int] = {}

    def forget(self) -> None:
        """Forget the remembered times (as a new process would start)."""
        self._last_vpm.clear()

    async def record(
        self,
        session: AsyncSession,
        device: uuid.UUID,
        batch: Batch,
        *,
        after: Sequence[Item] = (),
    ) -> int:
        """Keep the valid messages of a batch with their metrics, and queue their
        `payload` events (behind the events `after`, the device's own status change),
        then hand their metrics to `after_store` (the alert rules), in the caller's
        transaction; how many were kept."""
        [kept] = await self.record_many(session, [(device, batch, after)])
        return kept

    async def record_many(self, session: AsyncSession, units: Sequence[Unit]) -> list[int]:
        """`record` for the batches of many devices (or many batches of one) at once, in
        the caller's transaction, with the outcome of recording them one after the
        other: one insert of all their messages, one of all their metric rows, one read
        of their devices' webhooks and one of which of them alert rules cover; then,
        batch by batch in order, their events and the alert rules. How many messages of
        each batch were kept."""
        latest: dict[uuid.UUID, int] = {}  # the newest VPM time kept so far, per device
        kept = [
            await self._drop_excess_vpm(session, device, batch.valid, latest)
            for device, batch, _ in units
        ]
        metric_rows = await self._store(
            session,
            [
                (device, messages, batch.received_at)
                for (device, batch, _), messages in zip(units, kept, strict=True)
            ],
        )
        devices = list({device for device, _, _ in units})
        targets = await self.outbox.locked_targets(session, devices)
        covered = (
            await self.after_store.covered(session, devices)
            if self.after_store is not None and any(metric_rows)
            else {}
        )
        evaluated: set[uuid.UUID] = set()
        for (device, batch, after), messages, rows in zip(units, kept, metric_rows, strict=True):
            # Bodies only for a device with a webhook that takes them (`emit_many` would
            # drop them anyway).
            events = (
                [
                    (
                        device,
                        PAYLOAD,
                        payload_body(device, m.type, m.timestamp, m.payload, m.sent_version),
                    )
                    for m in messages
                ]
                if takes(targets[device], PAYLOAD)
                else []
            )
            await self.outbox.emit_many(session, [*after, *events], targets=targets)
            if self.after_store is not None and device in covered and rows:
                # A device's later batch in the group reads again: the earlier one may
                # have moved its states.
                known = None if device in evaluated else covered[device]
                evaluated.add(device)
                await self.after_store.after_store(session, device, rows, batch.received_at, known)
        return [len(messages) for messages in kept]

    async def _drop_excess_vpm(
        self,
        session: AsyncSession,
        device: uuid.UUID,
        messages: list[ValidatedMessage],
        latest_kept: dict[uuid.UUID, int],
    ) -> list[ValidatedMessage]:
        """Parking devices send at most one message per 30 s (spec/devices.md); the excess
        is dropped and counted. Memory only ever drops (it holds committed messages):
        whether to keep is read from the database, where another process may have
        stored one since. `latest_kept`: what the batches before this one (not stored
        yet) kept, per device; this batch's is added."""
        kept: list[ValidatedMessage] = []
        latest: int | None = latest_kept.get(device)  # of the messages kept so far
        for message in messages:
            if message.type != VPM_TYPE:
                kept.append(message)
                continue
            last = _newest(self._last_vpm.get(device), latest)
            if last is None or not last <= message.timestamp < last + VPM_MIN_SPACING:
                stored = await repository.last_message_time(session, device, VPM_TYPE)
                last = _newest(last, stored)
            if last is not None and last <= message.timestamp < last + VPM_MIN_SPACING:
                self.metrics.payloads_dropped.labels(VPM_TYPE, "rate_limited").inc()
                continue
            latest = _newest(message.timestamp, last)
            kept.append(message)
        if latest is not None:
            newest = latest_kept[device] = latest
            on_commit(
                session,
                ("vpm", id(self), device, newest),
                lambda: self._last_vpm.__setitem__(
                    device, _newest(self._last_vpm.get(device), newest) or newest
                ),
            )
        return kept

    @staticmethod
    async def _store(
        session: AsyncSession,
        batches: Sequence[tuple[uuid.UUID, list[ValidatedMessage], datetime]],
    ) -> list[list[dict[str, Any]]]:
        """Store the messages of batches and their metrics (one insert each for them
        all); the metric rows of each batch (the alert rules read them)."""
        ids = iter(
            await repository.add_messages(
                session,
                [
                    {
                        "device_uuid": device,
                        "type": m.type,
                        "version": m.version,
                        "timestamp": datetime.fromtimestamp(m.timestamp, UTC),
                        "received_at": now,
                        "payload": m.payload,
                    }
                    for device, messages, now in batches
                    for m in messages
                ],
            )
        )
        every: list[dict[str, Any]] = []  # in order: running sums look back in it
        per_batch: list[list[dict[str, Any]]] = []
        for device, messages, now in batches:
            first = len(every)
            for message, message_id in zip(messages, ids, strict=False):
                for metric in derive_metrics(message):
                    every.append(
                        {
                            "device_uuid": device,
                            "message_id": message_id,
                            "received_at": now,
                            "epoch": message.timestamp,
                            "name": metric.name,
                            "value": metric.value,
                            "marker_id": metric.marker_id,
                            "marker_name": metric.marker_name,
                        }
                    )
                    if metric.name == "net":
                        every.append(
                            {
                                **every[-1],
                                "name": "occupancy",
                                "value": await _running_occupancy(
                                    session,
                                    device,
                                    metric.marker_id,
                                    message.timestamp,
                                    metric.value,
                                    every,
                                ),
                            }
                        )
            per_batch.append(every[first:])
        await repository.add_metrics(session, every)
        return per_batch


async def _running_occupancy(
    session: AsyncSession,
    device: uuid.UUID,
    marker_id: str | None,
    epoch: int,
    net: float,
    pending: list[dict[str, Any]],
) -> float:
    """A line's occupancy: the sum of `net` since the day began (UTC), never below 0."""
    day_start = epoch - epoch % 86400
    previous = next(
        (
            row["value"]
            for row in reversed(pending[:-1])
            if row["name"] == "occupancy"
            and row["device_uuid"] == device
            and row["marker_id"] == marker_id
            and row["epoch"] >= day_start
        ),
        None,
    )
    if previous is None:
        previous = await repository.last_metric_value(
            session, device, "occupancy", marker_id, day_start
        )
    return next_occupancy(previous or 0.0, net)


def _newest(*times: int | None) -> int | None:
    return max((t for t in times if t is not None), default=None)
