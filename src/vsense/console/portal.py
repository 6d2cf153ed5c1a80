"""The webhook portal: what a portal link opens, for an admin's customer.

`GET /portal/{token}` checks the link, keeps its token in an HttpOnly, SameSite=Strict
cookie sent to `/portal` only, and moves the browser on to `/portal/`, so that the token
leaves the address bar. It moves on with a refresh from the page rather than a 303: a
browser sends no SameSite=Strict cookie along a redirect chain that a link in another
site (a mail) started, and the portal would open closed.

Every page checks the cookie's link again: once the link expires or is revoked, the
portal answers 403 with "This link has expired or was revoked" and drops the cookie.
The pages show the group's name, its devices' names and UUIDs, their webhooks with
their health, and each webhook's form, Test and delivery log, through the portal
service, which answers 404 for anything outside the group. State-changing requests
carry the CSRF token of the portal session (`ConsoleSessions.portal_csrf_token`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from vsense.console.deps import CSRF_REFUSED, ConsoleSessionsDep, given_csrf
from vsense.console.render import ConsoleRoute, flash, redirect, render
from vsense.console.sessions import PORTAL_COOKIE, clear_portal_cookie, set_portal_cookie
from vsense.console.webhooks import (
    RECENT,
    DispatchDep,
    OutboxDep,
    health,
    parse_id,
    webhook_form,
)
from vsense.db import session_scope
from vsense.deps import READ_METHODS, DatabaseDep, SessionDep, SettingsDep
from vsense.kit.errors import Forbidden, NotFound
from vsense.kit.time import utcnow
from vsense.portal import service as portal
from vsense.portal.schemas import PortalAccess
from vsense.webhooks.schemas import WebhookCreate, WebhookUpdate

PORTAL = portal.PORTAL_PATH
HOOKS = f"{PORTAL}/webhooks"
CLOSED = "This link has expired or was revoked. Ask whoever gave it to you for a new one."
NO_SESSION = "Open the portal link you were given to reach this page."


class PortalClosed(Forbidden):
    """No open portal link behind the request: 403, and the cookie is dropped."""


class PortalRoute(ConsoleRoute):
    """The console's HTML answers, as the portal's pages: a closed link also drops the
    portal's cookie."""

    def error_context(self, request: Request) -> dict[str, Any]:
        return {"portal": True, "closed": getattr(request.state, "portal_closed", False)}

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            response = await handler(request)
            if getattr(request.state, "portal_closed", False):
                clear_portal_cookie(response, request)
            return response

        return route


router = APIRouter(prefix=PORTAL, route_class=PortalRoute, include_in_schema=False)


@dataclass(frozen=True, slots=True)
class PortalVisitor:
    """The holder of an open portal link. Shaped as the console's user where the shared
    templates look (`csrf_token`, `can`): the portal changes webhooks and nothing else."""

    access: PortalAccess
    csrf_token: str

    def can(self, scope: str) -> bool:
        return scope == "webhooks:write"


def _closed(request: Request, message: str = CLOSED) -> PortalClosed:
    request.state.portal_closed = True
    return PortalClosed(message)


async def portal_visitor(
    request: Request, database: DatabaseDep, sessions: ConsoleSessionsDep
) -> PortalVisitor:
    """The open link behind the portal's cookie; on a state-changing request, only with
    the portal session's CSRF token. Declared before the unit of work, as in the console."""
    token = request.cookies.get(PORTAL_COOKIE)
    if not token:
        raise _closed(request, NO_SESSION)
    async with session_scope(database.read_sessionmaker, write=False) as session:
        access = await portal.open_portal(session, token)
    if access is None:
        raise _closed(request)
    if request.method not in READ_METHODS and not sessions.portal_csrf_valid(
        access.token_hash, await given_csrf(request)
    ):
        raise Forbidden(CSRF_REFUSED)
    return PortalVisitor(access, sessions.portal_csrf_token(access.token_hash))


VisitorDep = Annotated[PortalVisitor, Depends(portal_visitor)]


def _page(request: Request, template: str, visitor: PortalVisitor, **context: Any) -> Response:
    return render(
        request,
        template,
        user=visitor,
        portal=True,
        group_name=visitor.access.group_name,
        hooks_url=HOOKS,
        **context,
    )


@router.get("/")
async def portal_page(request: Request, visitor: VisitorDep, session: SessionDep) -> Response:
    """The group's webhooks with their health, and the form for a new one."""
    access = visitor.access
    rows = []
    for hook in await portal.list_webhooks(session, access):
        log = await portal.list_deliveries(
            session, access, hook.id, status=None, page="1", per_page=str(RECENT)
        )
        rows.append((hook, health(hook, log)))
    devices = await portal.devices(session, access)
    names = {str(d.uuid): d.name for d in devices}
    return _page(
        request, "portal.html", visitor, rows=rows, devices=devices, names=names, recent=RECENT
    )


@router.post("/webhooks/new")
async def create_webhook(
    request: Request, visitor: VisitorDep, session: SessionDep, outbox: OutboxDep
) -> Response:
    body = WebhookCreate.model_validate(await webhook_form(request))
    created = await portal.create_webhook(session, outbox, visitor.access, body)
    names = {str(d.uuid): d.name for d in await portal.devices(session, visitor.access)}
    return _page(
        request, "portal_webhook.html", visitor, webhook=created, secret=created.secret, names=names
    )


@router.get("/webhooks/{webhook_id}")
async def webhook_page(
    request: Request, webhook_id: str, visitor: VisitorDep, session: SessionDep
) -> Response:
    hook = await portal.get_webhook(session, visitor.access, parse_id(webhook_id))
    names = {str(d.uuid): d.name for d in await portal.devices(session, visitor.access)}
    return _page(request, "portal_webhook.html", visitor, webhook=hook, secret=None, names=names)


@router.post("/webhooks/{webhook_id}")
async def edit_webhook(
    request: Request, webhook_id: str, visitor: VisitorDep, session: SessionDep, outbox: OutboxDep
) -> Response:
    body = WebhookUpdate.model_validate(await webhook_form(request))
    hook_id = parse_id(webhook_id)
    await portal.update_webhook(session, outbox, visitor.access, hook_id, body)
    return redirect(f"{HOOKS}/{hook_id}", request)


@router.post("/webhooks/{webhook_id}/delete")
async def delete_webhook(
    request: Request, webhook_id: str, visitor: VisitorDep, session: SessionDep, outbox: OutboxDep
) -> Response:
    await portal.delete_webhook(session, outbox, visitor.access, parse_id(webhook_id))
    return redirect(f"{PORTAL}/", request)


@router.get("/webhooks/{webhook_id}/deliveries")
async def deliveries_fragment(
    request: Request,
    webhook_id: str,
    visitor: VisitorDep,
    session: SessionDep,
    status: str | None = None,
    page: str | None = None,
) -> Response:
    hook_id = parse_id(webhook_id)
    log = await portal.list_deliveries(
        session, visitor.access, hook_id, status=status or None, page=page, per_page="20"
    )
    return _page(
        request, "_deliveries.html", visitor, webhook_id=hook_id, log=log, status=status or ""
    )


@router.post("/webhooks/{webhook_id}/test")
async def test_webhook(
    request: Request,
    webhook_id: str,
    visitor: VisitorDep,
    session: SessionDep,
    settings: SettingsDep,
    dispatch: DispatchDep,
) -> Response:
    """As the console's Test: committed first, then sent while the browser waits."""
    delivery_ids = await portal.queue_test(session, settings, visitor.access, parse_id(webhook_id))
    await session.commit()
    result = await portal.send_test(dispatch, delivery_ids)
    response = _page(request, "_test_result.html", visitor, result=result)
    response.headers["HX-Trigger"] = "deliveries-changed"
    return response


@router.post("/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver")
async def redeliver(
    request: Request,
    webhook_id: str,
    delivery_id: str,
    visitor: VisitorDep,
    session: SessionDep,
    outbox: OutboxDep,
) -> Response:
    queued = await portal.redeliver(
        session, outbox, visitor.access, parse_id(webhook_id), parse_id(delivery_id)
    )
    message = f"Queued again as delivery {', '.join(map(str, queued.delivery_ids))}."
    return flash(request, message, trigger="deliveries-changed")


@router.post("/webhooks/{webhook_id}/rotate-secret")
async def rotate_secret(
    request: Request, webhook_id: str, visitor: VisitorDep, session: SessionDep
) -> Response:
    rotated = await portal.rotate_secret(session, visitor.access, parse_id(webhook_id))
    return _page(request, "_secret.html", visitor, secret=rotated.secret)


# Last: a link's token is one path segment, like the names above.
@router.get("/{token}")
async def open_link(request: Request, token: str, database: DatabaseDep) -> Response:
    """Check the link, keep its token in the portal's cookie, and move on to `/portal/`."""
    if not token.startswith(portal.TOKEN_PREFIX):
        raise NotFound("No such page.")  # a mistyped page, not a link: the session stays
    async with session_scope(database.read_sessionmaker, write=False) as session:
        access = await portal.open_portal(session, token)
    if access is None:
        raise _closed(request)
    response = render(request, "portal_open.html", portal=True, target=f"{PORTAL}/")
    # The token is in this page's address: no Referer carries it anywhere.
    response.headers["Referrer-Policy"] = "no-referrer"
    lifetime = (access.expires_at - utcnow()) // timedelta(seconds=1)
    set_portal_cookie(response, request, token, lifetime)
    return response
