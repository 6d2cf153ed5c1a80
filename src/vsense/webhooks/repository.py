"""All SQL of the webhook API: webhooks, the delivery log, redelivery and replay.
`_visible` is the one visibility rule: a caller sees the webhooks of its organization."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.accounts.principal import Principal
from vsense.models import Webhook, WebhookAttempt, WebhookDelivery, WebhookEvent
from vsense.webhooks import queue


def _visible(principal: Principal) -> Any:
    return Webhook.organization_id == principal.organization_id


async def list_webhooks(
    session: AsyncSession, principal: Principal, device: uuid.UUID | None
) -> Sequence[Webhook]:
    statement = select(Webhook).where(_visible(principal)).order_by(Webhook.id)
    if device is not None:
        statement = statement.where(Webhook.device_uuid == device)
    return (await session.scalars(statement)).all()


async def get_webhook(
    session: AsyncSession, principal: Principal, webhook_id: int
) -> Webhook | None:
    return await session.scalar(
        select(Webhook).where(_visible(principal), Webhook.id == webhook_id)
    )


async def add_webhook(session: AsyncSession, webhook: Webhook) -> None:
    session.add(webhook)
    await session.flush()


async def delete_webhook(session: AsyncSession, webhook: Webhook) -> None:
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
    return await queue.add_deliveries(
        session, [(event_id, webhook_id, device) for event_id, device in events], now
    )
