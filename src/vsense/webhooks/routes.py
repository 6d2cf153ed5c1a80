"""HTTP routes of webhooks and their delivery log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from vsense.accounts.deps import PrincipalDep
from vsense.deps import SessionDep, SettingsDep
from vsense.kit.http import API_PREFIX, IdPath, error_responses
from vsense.kit.parts import part
from vsense.webhooks import service
from vsense.webhooks.dispatcher import DispatchParts
from vsense.webhooks.outbox import Outbox
from vsense.webhooks.schemas import (
    DeliveryList,
    Queued,
    Replay,
    TestResult,
    WebhookAnswer,
    WebhookCreate,
    WebhookCreated,
    WebhookCreatedAnswer,
    WebhookList,
    WebhookUpdate,
)

router = APIRouter(prefix=f"{API_PREFIX}/webhooks", tags=["webhooks"])
DeviceQuery = Query(None, description="A device's UUID")
OutboxDep = Annotated[Outbox, Depends(part(Outbox))]
DispatchDep = Annotated[DispatchParts, Depends(part(DispatchParts))]


@router.get("", response_model=WebhookList, responses=error_responses(400, 401, 403, 404))
async def list_webhooks(
    session: SessionDep, principal: PrincipalDep, device_uuid: str | None = DeviceQuery
) -> WebhookList:
    """The webhooks of a device, or every webhook the caller may see."""
    return WebhookList(data=await service.list_webhooks(session, principal, device_uuid))


@router.post(
    "",
    status_code=201,
    response_model=WebhookCreatedAnswer,
    responses=error_responses(400, 401, 403, 404, 422),
)
async def create_webhook(
    body: WebhookCreate,
    session: SessionDep,
    principal: PrincipalDep,
    outbox: OutboxDep,
    device_uuid: str | None = Query(None, description="The device's UUID (or in the body)"),
) -> WebhookCreatedAnswer:
    """Attach a webhook to a device. The signing secret is in the answer, once."""
    created = await service.create_webhook(session, outbox, principal, device_uuid, body)
    return WebhookCreatedAnswer(data=created)


# One decorator per method, so that each operation of the OpenAPI document has its own id.
@router.put(
    "/{webhook_id}",
    response_model=WebhookAnswer,
    responses=error_responses(400, 401, 403, 404, 422),
)
@router.patch(
    "/{webhook_id}",
    response_model=WebhookAnswer,
    responses=error_responses(400, 401, 403, 404, 422),
)
async def update_webhook(
    webhook_id: IdPath,
    body: WebhookUpdate,
    session: SessionDep,
    principal: PrincipalDep,
    outbox: OutboxDep,
    device_uuid: str | None = DeviceQuery,
) -> WebhookAnswer:
    """Change any fields; `status` 1 (or `active` true) re-enables a disabled webhook."""
    updated = await service.update_webhook(
        session, outbox, principal, webhook_id, device_uuid, body
    )
    return WebhookAnswer(data=updated)


@router.put(
    "", response_model=WebhookAnswer, responses=error_responses(400, 401, 403, 404, 409, 422)
)
@router.patch(
    "", response_model=WebhookAnswer, responses=error_responses(400, 401, 403, 404, 409, 422)
)
async def update_device_webhook(
    body: WebhookUpdate,
    session: SessionDep,
    principal: PrincipalDep,
    outbox: OutboxDep,
    device_uuid: str | None = Query(None, description="The device's UUID (or in the body)"),
) -> WebhookAnswer:
    """The seed's update by device: the device's webhook of the body's `webhook_type`,
    or its only webhook (409 naming them when several match, 404 when none does)."""
    updated = await service.update_device_webhook(session, outbox, principal, device_uuid, body)
    return WebhookAnswer(data=updated)


@router.delete("/{webhook_id}", status_code=204, responses=error_responses(401, 403, 404))
async def delete_webhook(
    webhook_id: IdPath, session: SessionDep, principal: PrincipalDep, outbox: OutboxDep
) -> Response:
    """Remove a webhook and its delivery log."""
    await service.delete_webhook(session, outbox, principal, webhook_id)
    return Response(status_code=204)


@router.post(
    "/{webhook_id}/test", response_model=TestResult, responses=error_responses(401, 403, 404)
)
async def test_webhook(
    webhook_id: IdPath,
    session: SessionDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    dispatch: DispatchDep,
) -> TestResult:
    """Send a `test` event now; the answer is the attempt's outcome."""
    delivery_ids = await service.queue_test(session, settings, principal, webhook_id)
    # This route commits before it returns, on purpose: the answer is the
    # attempt's outcome, so the event is sent while the caller waits, and nothing is sent
    # from inside a transaction. The test event and its delivery (born leased to this
    # process) commit first; the attempt is then written by the dispatcher in a
    # transaction of its own, as every attempt is. Held open instead, the write
    # transaction would keep every other writer of a SQLite database waiting for up to
    # the webhook timeout, and the dispatcher's session would not see the delivery.
    await session.commit()
    return await service.send_test(dispatch, delivery_ids)


@router.post(
    "/{webhook_id}/rotate-secret",
    response_model=WebhookCreated,
    responses=error_responses(401, 403, 404),
)
async def rotate_secret(
    webhook_id: IdPath, session: SessionDep, principal: PrincipalDep
) -> WebhookCreated:
    """A new signing secret; the old one keeps signing alongside it for 24 hours."""
    return await service.rotate_secret(session, principal, webhook_id)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=DeliveryList,
    responses=error_responses(400, 401, 403, 404),
)
async def list_deliveries(
    webhook_id: IdPath,
    session: SessionDep,
    principal: PrincipalDep,
    status: str | None = Query(None, description="pending, succeeded, failed or dead"),
    page: str | None = Query(None, description="1-based page number"),
    per_page: str | None = Query(None, description="Items per page, at most 500"),
) -> DeliveryList:
    """The delivery log, newest first: each delivery's event, status and attempts."""
    return await service.list_deliveries(
        session, principal, webhook_id, status=status, page=page, per_page=per_page
    )


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=Queued,
    responses=error_responses(401, 403, 404),
)
async def redeliver(
    webhook_id: IdPath,
    delivery_id: IdPath,
    session: SessionDep,
    principal: PrincipalDep,
    outbox: OutboxDep,
) -> Queued:
    """Queue one delivery's event again (same `webhook-id`)."""
    return await service.redeliver(session, outbox, principal, webhook_id, delivery_id)


@router.post(
    "/{webhook_id}/replay",
    status_code=202,
    response_model=Queued,
    responses=error_responses(400, 401, 403, 404, 422),
)
async def replay(
    webhook_id: IdPath,
    body: Replay,
    session: SessionDep,
    principal: PrincipalDep,
    outbox: OutboxDep,
) -> Queued:
    """Queue again every event of a time window that went to this webhook."""
    return await service.replay(session, outbox, principal, webhook_id, body)
