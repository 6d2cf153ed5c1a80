"""The webhooks pages: every webhook with its health; create and edit with the seed's
fields; Test with the attempt inline; the delivery log; redeliver, replay, rotate.

Health is read from the delivery log the service answers (the last success, the share
of failed attempts among the recent ones) and from the webhook itself (whether the
circuit breaker that every dispatcher shares holds the endpoint's deliveries).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from vsense.console.deps import ConsoleUser, ConsoleUserDep
from vsense.console.forms import form_dict, form_list, name_values
from vsense.console.render import CONSOLE, ConsoleRoute, flash, redirect, render
from vsense.deps import SessionDep, SettingsDep
from vsense.kit.errors import NotFound
from vsense.kit.parts import part
from vsense.webhooks import service
from vsense.webhooks.dispatcher import DispatchParts
from vsense.webhooks.outbox import Outbox
from vsense.webhooks.schemas import (
    DeliveryList,
    Replay,
    Webhook,
    WebhookCreate,
    WebhookUpdate,
)

router = APIRouter(prefix=CONSOLE, route_class=ConsoleRoute, include_in_schema=False)
OutboxDep = Annotated[Outbox, Depends(part(Outbox))]
DispatchDep = Annotated[DispatchParts, Depends(part(DispatchParts))]
RECENT = 20  # deliveries the health is read from
LOG_PER_PAGE = 20
FIELDS = ("url", "webhook_type", "actions", "method", "device_uuid")


@dataclass(frozen=True, slots=True)
class Health:
    last_success: datetime | None
    attempts: int
    failure_rate: float | None
    breaker_open: bool


def health(hook: Webhook, log: DeliveryList) -> Health:
    attempts = sorted(
        (a for d in log.data for a in d.attempt_log), key=lambda a: a.attempted_at, reverse=True
    )
    failed = [a.error is not None or not (200 <= (a.status_code or 0) < 300) for a in attempts]
    successes = [a.attempted_at for a, f in zip(attempts, failed, strict=True) if not f]
    return Health(
        last_success=successes[0] if successes else None,
        attempts=len(attempts),
        failure_rate=sum(failed) / len(failed) if failed else None,
        breaker_open=hook.breaker_open_until is not None,
    )


def parse_id(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise NotFound("No such webhook.") from None
    if not 1 <= value <= 2_147_483_647:
        raise NotFound("No such webhook.")
    return value


async def webhook_form(request: Request) -> dict[str, Any]:
    """The form as the API's body: headers and params from their text areas."""
    fields = await form_dict(request, (*FIELDS, "headers", "params"))
    active = await form_list(request, "active")  # a hidden "off", and "on" when ticked
    body: dict[str, Any] = {k: v for k, v in fields.items() if k in FIELDS and v}
    body["data"] = {
        "headers": name_values(fields.get("headers", "")),
        "params": name_values(fields.get("params", "")),
    }
    if active:
        body["active"] = "on" in active
    return body


def _page(request: Request, user: ConsoleUser, **context: Any) -> Response:
    return render(request, "webhook.html", user=user, nav="webhooks", **context)


@router.get("/webhooks")
async def webhooks_page(request: Request, user: ConsoleUserDep, session: SessionDep) -> Response:
    hooks = await service.list_webhooks(session, user.principal, None)
    rows = []
    for hook in hooks:
        log = await service.list_deliveries(
            session, user.principal, hook.id, status=None, page="1", per_page=str(RECENT)
        )
        rows.append((hook, health(hook, log)))
    return render(request, "webhooks.html", user=user, nav="webhooks", rows=rows)


@router.get("/webhooks/new")
async def new_webhook_page(
    request: Request, user: ConsoleUserDep, device_uuid: str | None = None
) -> Response:
    return _page(request, user, webhook=None, device_uuid=device_uuid or "")


@router.post("/webhooks/new")
async def create_webhook(
    request: Request, user: ConsoleUserDep, session: SessionDep, outbox: OutboxDep
) -> Response:
    body = WebhookCreate.model_validate(await webhook_form(request))
    created = await service.create_webhook(session, outbox, user.principal, None, body)
    return _page(request, user, webhook=created, secret=created.secret, log=None)


@router.get("/webhooks/{webhook_id}")
async def webhook_page(
    request: Request, webhook_id: str, user: ConsoleUserDep, session: SessionDep
) -> Response:
    hook = await service.get_webhook(session, user.principal, parse_id(webhook_id))
    return _page(request, user, webhook=hook, secret=None)


@router.post("/webhooks/{webhook_id}")
async def edit_webhook(
    request: Request,
    webhook_id: str,
    user: ConsoleUserDep,
    session: SessionDep,
    outbox: OutboxDep,
) -> Response:
    body = WebhookUpdate.model_validate(await webhook_form(request))
    hook_id = parse_id(webhook_id)
    await service.update_webhook(session, outbox, user.principal, hook_id, None, body)
    return redirect(f"{CONSOLE}/webhooks/{hook_id}", request)


@router.get("/webhooks/{webhook_id}/deliveries")
async def deliveries_fragment(
    request: Request,
    webhook_id: str,
    user: ConsoleUserDep,
    session: SessionDep,
    status: str | None = None,
    page: str | None = None,
) -> Response:
    hook_id = parse_id(webhook_id)
    log = await service.list_deliveries(
        session, user.principal, hook_id, status=status or None, page=page, per_page="20"
    )
    return render(
        request,
        "_deliveries.html",
        user=user,
        webhook_id=hook_id,
        log=log,
        status=status or "",
    )


@router.post("/webhooks/{webhook_id}/test")
async def test_webhook(
    request: Request,
    webhook_id: str,
    user: ConsoleUserDep,
    session: SessionDep,
    settings: SettingsDep,
    dispatch: DispatchDep,
) -> Response:
    """As the API's test: the event and its delivery commit first, then it is sent
    while the browser waits, and the attempt is answered inline."""
    delivery_ids = await service.queue_test(session, settings, user.principal, parse_id(webhook_id))
    await session.commit()
    result = await service.send_test(dispatch, delivery_ids)
    response = render(request, "_test_result.html", user=user, result=result)
    response.headers["HX-Trigger"] = "deliveries-changed"
    return response


@router.post("/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver")
async def redeliver(
    request: Request,
    webhook_id: str,
    delivery_id: str,
    user: ConsoleUserDep,
    session: SessionDep,
    outbox: OutboxDep,
) -> Response:
    queued = await service.redeliver(
        session, outbox, user.principal, parse_id(webhook_id), parse_id(delivery_id)
    )
    message = f"Queued again as delivery {', '.join(map(str, queued.delivery_ids))}."
    return flash(request, message, trigger="deliveries-changed")


@router.post("/webhooks/{webhook_id}/replay")
async def replay(
    request: Request,
    webhook_id: str,
    user: ConsoleUserDep,
    session: SessionDep,
    outbox: OutboxDep,
) -> Response:
    fields = await form_dict(request, ("since", "until"))
    body = Replay.model_validate(
        {"since": fields.get("since", ""), "until": fields.get("until") or None}
    )
    queued = await service.replay(session, outbox, user.principal, parse_id(webhook_id), body)
    return flash(request, f"{queued.queued} events queued again.", trigger="deliveries-changed")


@router.post("/webhooks/{webhook_id}/rotate-secret")
async def rotate_secret(
    request: Request, webhook_id: str, user: ConsoleUserDep, session: SessionDep
) -> Response:
    rotated = await service.rotate_secret(session, user.principal, parse_id(webhook_id))
    return render(request, "_secret.html", user=user, secret=rotated.secret)
