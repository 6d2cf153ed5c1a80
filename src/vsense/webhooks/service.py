"""The rules of the webhook API: who may see and change webhooks, what a valid one is,
and the operations on the delivery log (test, redeliver, replay)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from vsense.accounts.principal import Principal
from vsense.accounts.service import require_scope
from vsense.config import Settings
from vsense.devices.service import visible_device
from vsense.kit.errors import BadRequest, Conflict, NotFound, Unprocessable, field_error
from vsense.kit.pagination import page_meta, page_request
from vsense.kit.time import parse_instant, utcnow
from vsense.models import Webhook as WebhookRow
from vsense.webhooks import queue_repository, repository
from vsense.webhooks.dispatcher import DispatchParts, lease_for, send_now
from vsense.webhooks.domain import DeliveryStatus, NewEvent, WebhookStatus
from vsense.webhooks.events import TEST, encode, events_of, new_message_id, test_body
from vsense.webhooks.outbox import Outbox
from vsense.webhooks.schemas import (
    Attempt,
    Delivery,
    DeliveryEvent,
    DeliveryList,
    Queued,
    Replay,
    TestResult,
    Webhook,
    WebhookCreate,
    WebhookCreated,
    WebhookUpdate,
    check_method,
    default_method,
)
from vsense.webhooks.signing import new_secret
from vsense.webhooks.ssrf import AddressPolicy, check_url

READ_SCOPE, WRITE_SCOPE = "webhooks:read", "webhooks:write"
ROTATION_GRACE = timedelta(hours=24)
MAX_REPLAY = 10_000
DELIVERY_STATUSES = tuple(DeliveryStatus)


def view(webhook: WebhookRow) -> Webhook:
    return Webhook.model_validate(
        {
            "id": webhook.id,
            "device_uuid": str(webhook.device_uuid),
            "url": webhook.url,
            "webhook_type": webhook.webhook_type,
            "status": webhook.status,
            "actions": webhook.actions,
            "events": list(events_of(webhook.webhook_type, webhook.actions)),
            "method": webhook.method,
            "data": {"headers": webhook.headers, "params": webhook.params},
            "created": webhook.created,
            "updated": webhook.updated,
            "disabled_reason": webhook.disabled_reason,
            "breaker_open_until": (
                webhook.breaker_open_until
                if webhook.breaker_open_until is not None and webhook.breaker_open_until > utcnow()
                else None
            ),
        }
    )


def _check_url(settings: Settings, url: str) -> None:
    refusal = check_url(url, AddressPolicy.of(settings))
    if refusal:
        raise Unprocessable("The webhook is invalid.", errors=[field_error("url", refusal)])


def _check_method(method: str, webhook_type: str, actions: str) -> None:
    try:
        check_method(method, webhook_type, actions)
    except ValueError as exc:
        raise Unprocessable(
            "The webhook is invalid.", errors=[field_error("method", str(exc))]
        ) from None


async def list_webhooks(
    session: AsyncSession, principal: Principal, device_uuid: str | None
) -> list[Webhook]:
    require_scope(principal, READ_SCOPE)
    device = await visible_device(session, principal, device_uuid) if device_uuid else None
    return [view(w) for w in await repository.list_webhooks(session, principal, device)]


async def get_webhook(session: AsyncSession, principal: Principal, webhook_id: int) -> Webhook:
    """One webhook the caller sees; 404 otherwise."""
    require_scope(principal, READ_SCOPE)
    return view(await _visible(session, principal, webhook_id))


async def _visible(session: AsyncSession, principal: Principal, webhook_id: int) -> WebhookRow:
    webhook = await repository.get_webhook(session, principal, webhook_id)
    if webhook is None:
        raise NotFound("No such webhook.")
    return webhook


async def _device_of(
    session: AsyncSession, principal: Principal, query: str | None, body: str | None
) -> uuid.UUID | None:
    """The device named in the query or in the body (the seed says neither which), the
    two agreeing when both are given."""
    if query and body:
        devices = {await visible_device(session, principal, name) for name in (query, body)}
        if len(devices) > 1:
            raise Unprocessable(
                "`device_uuid` differs between the query and the body.",
                errors=[field_error("device_uuid", "give one device, in the query or the body")],
            )
    name = query or body
    return await visible_device(session, principal, name) if name else None


async def create_webhook(
    session: AsyncSession,
    outbox: Outbox,
    principal: Principal,
    device_uuid: str | None,
    body: WebhookCreate,
) -> WebhookCreated:
    require_scope(principal, WRITE_SCOPE)
    device = await _device_of(session, principal, device_uuid, body.device_uuid)
    if device is None:
        raise BadRequest("`device_uuid` is required, in the query or in the body.")
    _check_url(outbox.settings, body.url)
    method = body.method or default_method(body.webhook_type, body.actions)
    _check_method(method, body.webhook_type, body.actions)
    webhook = WebhookRow(
        organization_id=principal.organization_id,
        device_uuid=device,
        url=body.url,
        webhook_type=body.webhook_type,
        actions=body.actions,
        method=method,
        status=WebhookStatus.ACTIVE.value if body.status is None else body.status,
        headers=[h.model_dump() for h in body.data.headers],
        params=[p.model_dump() for p in body.data.params],
        secret=new_secret(),
    )
    await repository.add_webhook(session, webhook)
    outbox.forget_targets(session)
    return WebhookCreated(**view(webhook).model_dump(), secret=webhook.secret)


async def update_webhook(
    session: AsyncSession,
    outbox: Outbox,
    principal: Principal,
    webhook_id: int,
    device_uuid: str | None,
    body: WebhookUpdate,
) -> Webhook:
    require_scope(principal, WRITE_SCOPE)
    device = await _device_of(session, principal, device_uuid, body.device_uuid)
    webhook = await _visible(session, principal, webhook_id)
    if device is not None and device != uuid.UUID(str(webhook.device_uuid)):
        raise NotFound("No such webhook for this device.")
    return await _apply(session, outbox, webhook, body)


async def update_device_webhook(
    session: AsyncSession,
    outbox: Outbox,
    principal: Principal,
    device_uuid: str | None,
    body: WebhookUpdate,
) -> Webhook:
    """The seed's update, which names a device and no webhook: the device's webhook of
    the body's `webhook_type`, or its only one."""
    require_scope(principal, WRITE_SCOPE)
    device = await _device_of(session, principal, device_uuid, body.device_uuid)
    if device is None:
        raise BadRequest("`device_uuid` is required, or update a webhook by its id.")
    webhooks = await repository.list_webhooks(session, principal, device)
    chosen = [w for w in webhooks if body.webhook_type in (None, w.webhook_type)]
    if len(chosen) == 1:
        return await _apply(session, outbox, chosen[0], body)
    kind = f"`{body.webhook_type}` " if body.webhook_type else ""
    if not chosen:
        where = f" (its webhooks: {_ids(webhooks)})" if webhooks else ""
        raise NotFound(f"This device has no {kind}webhook{where}.", errors=_named(webhooks))
    raise Conflict(
        f"This device has several {kind}webhooks ({_ids(chosen)}): update one by its id, "
        "PUT /api/v1/webhooks/{id}.",
        errors=_named(chosen),
    )


def _ids(webhooks: Sequence[WebhookRow]) -> str:
    return ", ".join(str(w.id) for w in webhooks)


def _named(webhooks: Sequence[WebhookRow]) -> list[dict[str, Any]]:
    """The envelope's `error` entries naming webhooks: `{"field": "id", "message": "12
    (payload)"}`."""
    return [field_error("id", f"{w.id} ({w.webhook_type})") for w in webhooks]


async def _apply(
    session: AsyncSession, outbox: Outbox, webhook: WebhookRow, body: WebhookUpdate
) -> Webhook:
    """Change the fields that were sent."""
    sent = body.model_dump(exclude_unset=True)
    if sent.get("url") is not None:
        _check_url(outbox.settings, sent["url"])
    webhook_type = sent.get("webhook_type") or webhook.webhook_type
    actions = sent["actions"] if sent.get("actions") is not None else webhook.actions
    method = sent.get("method") or webhook.method
    if sent.get("method") is None and method == "GET":
        # Not asked for: a GET follows the events, and becomes POST once they are not
        # keepalives only (GET cannot carry them).
        method = default_method(webhook_type, actions)
    _check_method(method, webhook_type, actions)
    webhook.webhook_type, webhook.actions, webhook.method = webhook_type, actions, method
    if sent.get("url") is not None:
        webhook.url = sent["url"]
    if body.data is not None:
        if "headers" in body.data.model_fields_set:
            webhook.headers = [h.model_dump() for h in body.data.headers]
        if "params" in body.data.model_fields_set:
            webhook.params = [p.model_dump() for p in body.data.params]
    if body.status is not None:
        if body.status == WebhookStatus.ACTIVE.value:
            webhook.disabled_reason, webhook.failing_since = None, None
        webhook.status = body.status
    webhook.updated = utcnow()
    await session.flush()
    outbox.forget_targets(session)
    return view(webhook)


async def delete_webhook(
    session: AsyncSession, outbox: Outbox, principal: Principal, webhook_id: int
) -> None:
    require_scope(principal, WRITE_SCOPE)
    await repository.delete_webhook(session, await _visible(session, principal, webhook_id))
    outbox.forget_targets(session)


async def rotate_secret(
    session: AsyncSession, principal: Principal, webhook_id: int
) -> WebhookCreated:
    """A new secret; the old one keeps signing alongside it for 24 hours."""
    require_scope(principal, WRITE_SCOPE)
    webhook = await _visible(session, principal, webhook_id)
    now = utcnow()
    webhook.previous_secret, webhook.previous_secret_until = webhook.secret, now + ROTATION_GRACE
    webhook.secret, webhook.updated = new_secret(), now
    await session.flush()
    return WebhookCreated(**view(webhook).model_dump(), secret=webhook.secret)


async def list_deliveries(
    session: AsyncSession,
    principal: Principal,
    webhook_id: int,
    *,
    status: str | None,
    page: str | None,
    per_page: str | None,
) -> DeliveryList:
    require_scope(principal, READ_SCOPE)
    webhook = await _visible(session, principal, webhook_id)
    if status is not None and status not in DELIVERY_STATUSES:
        raise BadRequest(f"`status` must be one of {', '.join(DELIVERY_STATUSES)}.")
    request = page_request(page, per_page)
    rows, total = await repository.list_deliveries(
        session, webhook.id, status, request.offset, request.per_page
    )
    attempts = await repository.attempts_of(session, [d.id for d, _ in rows])
    data = [
        Delivery(
            id=d.id,
            event=DeliveryEvent(id=e.msg_id, type=e.type, created=e.created),
            status=d.status,
            attempts=d.attempts,
            next_attempt_at=d.next_attempt_at if d.status == DeliveryStatus.PENDING else None,
            reclaims=d.reclaims,
            created=d.created,
            attempt_log=[
                Attempt(
                    attempted_at=a.attempted_at,
                    status_code=a.status_code,
                    duration_ms=a.duration_ms,
                    error=a.error,
                    response=a.response_head,
                )
                for a in attempts[d.id]
            ],
        )
        for d, e in rows
    ]
    return DeliveryList.model_validate({"data": data, "meta": page_meta(request, total, len(data))})


async def redeliver(
    session: AsyncSession, outbox: Outbox, principal: Principal, webhook_id: int, delivery_id: int
) -> Queued:
    """Queue one delivery's event again to its webhook (a new delivery, same `webhook-id`)."""
    require_scope(principal, WRITE_SCOPE)
    webhook = await _visible(session, principal, webhook_id)
    delivery = await repository.get_delivery(session, webhook.id, delivery_id)
    if delivery is None:
        raise NotFound("No such delivery of this webhook.")
    ids = await repository.requeue(
        session, webhook.id, [(delivery.event_id, delivery.device_uuid)], utcnow()
    )
    await outbox.wake_after_commit(session)
    return Queued(queued=len(ids), delivery_ids=ids)


async def replay(
    session: AsyncSession, outbox: Outbox, principal: Principal, webhook_id: int, body: Replay
) -> Queued:
    """Queue again every event of a time window that went (or was due) to the webhook."""
    require_scope(principal, WRITE_SCOPE)
    webhook = await _visible(session, principal, webhook_id)
    since = parse_instant("since", body.since)
    until = parse_instant("until", body.until) or utcnow()
    if since is None or since >= until:
        raise BadRequest("`since` must be a time before `until`.")
    events = await repository.events_in_window(session, webhook.id, since, until, MAX_REPLAY + 1)
    if len(events) > MAX_REPLAY:
        raise BadRequest(f"At most {MAX_REPLAY} events per replay; narrow the window.")
    ids = await repository.requeue(session, webhook.id, events, utcnow())
    await outbox.wake_after_commit(session)
    return Queued(queued=len(ids), delivery_ids=ids)


async def queue_test(
    session: AsyncSession, settings: Settings, principal: Principal, webhook_id: int
) -> list[int]:
    """Write a `test` event and its delivery, born leased to this process (which sends it
    itself once the caller has committed: `send_test`). The attempt is then in the
    delivery log like any other."""
    require_scope(principal, WRITE_SCOPE)
    webhook = await _visible(session, principal, webhook_id)
    now = utcnow()
    device = uuid.UUID(str(webhook.device_uuid))
    event = NewEvent(
        organization_id=webhook.organization_id,
        device_uuid=device,
        type=TEST,
        msg_id=new_message_id(),
        body=encode(test_body(device, int(now.timestamp()))),
        webhook_ids=[webhook.id],
    )
    return await queue_repository.enqueue(
        session, [event], now, lease_until=now + lease_for(settings)
    )


async def send_test(parts: DispatchParts, delivery_ids: list[int]) -> TestResult:
    """Send the committed test delivery now; its outcome."""
    (outcome,) = await send_now(parts, delivery_ids)
    return TestResult(
        delivery_id=outcome.delivery_id,
        status=outcome.status,
        status_code=outcome.status_code,
        duration_ms=round(outcome.duration_ms, 3),
        error=outcome.error,
        response=outcome.response_head,
    )
