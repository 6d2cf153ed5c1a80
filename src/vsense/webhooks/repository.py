"""All SQL of the `webhooks` table, and the API's reads of the delivery log (redelivery
and replay queue through the queue repository). `_visible` is the one visibility rule
of the API: a caller sees the webhooks of its organization. The delivery engine's reads
and writes (targets of the outbox, health, disabling) take no caller."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.accounts.principal import Principal
from vsense.kit.sql import is_postgres, one_of
from vsense.models import Webhook, WebhookAttempt, WebhookDelivery, WebhookEvent
from vsense.webhooks import queue_repository
from vsense.webhooks.domain import Destination, Target, WebhookStatus

CHUNK = 2000
REASON_LENGTH = 200  # `disabled_reason` column


def _visible(principal: Principal) -> Any:
    return Webhook.organization_id == principal.organization_id


async def list_webhooks(
    session: AsyncSession, principal: Principal, device: uuid.UUID | None
) -> Sequence[Webhook]:
    """The webhooks the caller sees (of one device, if given), oldest first."""
    statement = select(Webhook).where(_visible(principal)).order_by(Webhook.id)
    if device is not None:
        statement = statement.where(Webhook.device_uuid == device)
    return (await session.scalars(statement)).all()


async def get_webhook(
    session: AsyncSession, principal: Principal, webhook_id: int
) -> Webhook | None:
    """A webhook the caller sees, or None."""
    return await session.scalar(
        select(Webhook).where(_visible(principal), Webhook.id == webhook_id)
    )


async def add_webhook(session: AsyncSession, webhook: Webhook) -> None:
    """Insert a webhook (its id is set on return)."""
    session.add(webhook)
    await session.flush()


async def delete_webhook(session: AsyncSession, webhook: Webhook) -> None:
    """Delete a webhook; its deliveries and their attempts go with it."""
    await session.delete(webhook)
    await session.flush()


async def list_deliveries(
    session: AsyncSession, webhook_id: int, status: str | None, offset: int, limit: int
) -> tuple[list[tuple[WebhookDelivery, WebhookEvent]], int]:
    """A page of a webhook's deliveries, newest first, with their events, and the total."""
    where = [WebhookDelivery.webhook_id == webhook_id]
    if status is not None:
        where.append(WebhookDelivery.status == status)
    total = await session.scalar(select(func.count()).select_from(WebhookDelivery).where(*where))
    rows = await session.execute(
        select(WebhookDelivery, WebhookEvent)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .where(*where)
        .order_by(WebhookDelivery.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [(d, e) for d, e in rows], int(total or 0)


async def attempts_of(
    session: AsyncSession, delivery_ids: Sequence[int]
) -> dict[int, list[WebhookAttempt]]:
    """The attempts of each delivery, oldest first."""
    found: dict[int, list[WebhookAttempt]] = {d: [] for d in delivery_ids}
    if delivery_ids:
        rows = await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(list(delivery_ids)))
            .order_by(WebhookAttempt.id)
        )
        for attempt in rows:
            found[attempt.delivery_id].append(attempt)
    return found


async def get_delivery(
    session: AsyncSession, webhook_id: int, delivery_id: int
) -> WebhookDelivery | None:
    """A delivery of a webhook, or None."""
    return await session.scalar(
        select(WebhookDelivery).where(
            WebhookDelivery.id == delivery_id, WebhookDelivery.webhook_id == webhook_id
        )
    )


async def events_in_window(
    session: AsyncSession, webhook_id: int, since: datetime, until: datetime, limit: int
) -> list[tuple[int, uuid.UUID]]:
    """Events that were delivered (or due) to a webhook in a window, oldest first."""
    rows = await session.execute(
        select(WebhookEvent.id, WebhookEvent.device_uuid)
        .where(
            WebhookEvent.id.in_(
                select(WebhookDelivery.event_id).where(WebhookDelivery.webhook_id == webhook_id)
            ),
            WebhookEvent.created >= since,
            WebhookEvent.created < until,
        )
        .order_by(WebhookEvent.id)
        .limit(limit)
    )
    return [(event_id, device) for event_id, device in rows]


async def requeue(
    session: AsyncSession,
    webhook_id: int,
    events: Sequence[tuple[int, uuid.UUID]],
    now: datetime,
) -> list[int]:
    """New due deliveries of existing events to a webhook (same `webhook-id` each)."""
    return await queue_repository.add_deliveries(
        session, [(event_id, webhook_id, device) for event_id, device in events], now
    )


# -- the delivery engine's reads and writes --------------------------------------------


# Built once per database and lock: on the ingest path, building the statement (coercing
# each device of the `IN`) cost more of the process's time than running it.
@functools.cache
def _targets_statement(postgres: bool, lock: bool) -> Any:
    statement = select(
        Webhook.device_uuid,
        Webhook.id,
        Webhook.organization_id,
        Webhook.webhook_type,
        Webhook.actions,
    ).where(
        one_of(Webhook.device_uuid, "devices", postgres),
        Webhook.status == WebhookStatus.ACTIVE,
    )
    return statement.with_for_update(read=True, key_share=True) if lock else statement


async def targets(
    session: AsyncSession, devices: Sequence[uuid.UUID], *, lock: bool = False
) -> dict[uuid.UUID, list[Target]]:
    """Active webhooks of each device.

    With `lock`, in the transaction that writes their deliveries: each statement reads
    what was committed when it began (READ COMMITTED), so a webhook whose creation
    committed is found; and the rows are locked `FOR KEY SHARE` (what the foreign key
    check of the deliveries takes anyway), so a delete waits for this transaction and
    then removes its deliveries with the webhook, instead of this insert failing on the
    foreign key. SQLite's writer holds the only write lock; no clause is needed there.
    """
    found: dict[uuid.UUID, list[Target]] = {device: [] for device in devices}
    statement = _targets_statement(is_postgres(session), lock)
    connection = await session.connection()  # plain rows: no ORM step around them
    for start in range(0, len(devices), CHUNK):
        rows = await connection.execute(
            statement, {"devices": list(devices[start : start + CHUNK])}
        )
        for device, webhook_id, organization_id, webhook_type, actions in rows:
            found[device].append(Target(webhook_id, organization_id, webhook_type, actions))
    return found


async def destinations_by_id(session: AsyncSession, ids: Iterable[int]) -> dict[int, Destination]:
    """What attempts need of the webhooks `ids` (those of claimed deliveries), by id."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    statement = _destinations_statement(is_postgres(session))
    connection = await session.connection()  # plain rows: no ORM step around them
    rows = await connection.execute(statement, {"ids": wanted})
    return {row[0]: Destination(*row) for row in rows}


@functools.cache
def _destinations_statement(postgres: bool) -> Any:
    columns = (
        Webhook.id,
        Webhook.status,
        Webhook.method,
        Webhook.url,
        Webhook.params,
        Webhook.headers,
        Webhook.secret,
        Webhook.previous_secret,
        Webhook.previous_secret_until,
    )
    return select(*columns).where(one_of(Webhook.id, "ids", postgres))


async def note_health(
    session: AsyncSession, recovered: Sequence[int], failing: Sequence[int], now: datetime
) -> None:
    """End the run of failures of `recovered` webhooks; start one at `now` for `failing`
    webhooks that had none."""
    if recovered:
        await session.execute(
            update(Webhook)
            .where(Webhook.id.in_(recovered), Webhook.failing_since.is_not(None))
            .values(failing_since=None)
        )
    if failing:
        await session.execute(
            update(Webhook)
            .where(Webhook.id.in_(failing), Webhook.failing_since.is_(None))
            .values(failing_since=now)
        )


async def disable(
    session: AsyncSession,
    webhook_ids: Sequence[int],
    reason: str,
    *,
    failing_since_before: datetime | None = None,
) -> list[int]:
    """Disable those of `webhook_ids` that are active (and, with `failing_since_before`,
    failing since before then); returns the ones disabled now."""
    if not webhook_ids:
        return []
    where: list[Any] = [Webhook.id.in_(webhook_ids), Webhook.status == WebhookStatus.ACTIVE]
    if failing_since_before is not None:
        where.append(Webhook.failing_since <= failing_since_before)
    disabled = await session.scalars(
        update(Webhook)
        .where(*where)
        .values(status=WebhookStatus.INACTIVE, disabled_reason=reason[:REASON_LENGTH])
        .returning(Webhook.id)
    )
    return list(disabled.all())
