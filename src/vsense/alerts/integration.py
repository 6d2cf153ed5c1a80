"""Where alerts meet the rest of a process: the outbox they emit through, the one call
of ingest and the one job of the sweep."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from vsense.alerts import evaluation
from vsense.alerts.evaluation import Emit, EventItem
from vsense.webhooks import outbox

if TYPE_CHECKING:
    from vsense.state import AppState


def emitter(state: AppState) -> Emit:
    """The outbox of this process, as alerts emit through it."""

    async def emit(session: AsyncSession, items: Sequence[EventItem]) -> int:
        return await outbox.emit_many(session, state, items)

    return emit


async def after_store(
    session: AsyncSession,
    state: AppState,
    device: uuid.UUID,
    metric_rows: Sequence[Mapping[str, Any]],
    now: datetime,
) -> int:
    """Ingest's call, once per stored batch, in its transaction."""
    return await evaluation.evaluate_values(session, emitter(state), device, metric_rows, now)


async def sweep(session: AsyncSession, state: AppState, now: datetime) -> int:
    """The sweep's job: time rules, pending durations, devices out of scope."""
    return await evaluation.sweep(session, emitter(state), now)
