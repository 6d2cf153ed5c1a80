"""Where alerts meet the rest of a process: the part that evaluates, over the outbox it
emits through. Ingest asks it which devices its rules cover (once per group of batches)
and calls it once per stored batch of those, the sweep once per round."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from vsense.alerts import evaluation, repository
from vsense.alerts.engine import VALUE_KINDS
from vsense.alerts.evaluation import Emit
from vsense.webhooks.outbox import Outbox


class Alerts:
    """Alert evaluation over this process's outbox. It holds no state of its own: every
    rule and state is read from the database in the caller's transaction."""

    def __init__(self, outbox: Outbox) -> None:
        self.emit: Emit = outbox.emit_many

    async def covered(
        self, session: AsyncSession, devices: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, repository.DeviceRules]:
        """The value rules that cover each of `devices` and their states (one statement);
        devices no rule covers are left out."""
        return await repository.rules_of_devices(session, devices, VALUE_KINDS)

    async def after_store(
        self,
        session: AsyncSession,
        device: uuid.UUID,
        metric_rows: Sequence[Mapping[str, Any]],
        now: datetime,
        known: object = None,
    ) -> int:
        """Ingest's call, once per stored batch of a covered device, in its transaction;
        `known`: what `covered` read for the device, when nothing has changed it since."""
        rules = known if isinstance(known, repository.DeviceRules) else None
        return await evaluation.evaluate_values(session, self.emit, device, metric_rows, now, rules)

    async def sweep(self, session: AsyncSession, now: datetime) -> int:
        """The sweep's job: time rules, pending durations, devices out of scope."""
        return await evaluation.sweep(session, self.emit, now)
