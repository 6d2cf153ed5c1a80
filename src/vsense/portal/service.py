"""The rules of portal links: admins create, list and revoke them; a link's token opens
the portal of one group, where its holder manages that group's webhooks.

Every webhook operation goes through `vsense.webhooks.service`, so the API's rules (URL
policy, headers, methods, events) apply unchanged. Before delegating, each operation
here checks that what it names is in the link's group (a device of the group, a webhook
of one of its devices): anything else is answered 404, as if it did not exist. The
webhook service is then called as the link's delegate: the organization's admin role
narrowed to the webhook permissions, which is what a link hands over.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from vsense.accounts.principal import Principal
from vsense.accounts.scopes import Role
from vsense.accounts.service import require_scope
from vsense.config import Settings
from vsense.kit.crypto import new_token, token_digest
from vsense.kit.errors import Forbidden, NotFound, Unprocessable, field_error
from vsense.kit.pagination import page_meta, page_request
from vsense.kit.schemas import Page
from vsense.kit.time import utcnow
from vsense.models import PortalLink as PortalLinkRow
from vsense.portal import repository
from vsense.portal.schemas import (
    PortalAccess,
    PortalDevice,
    PortalLink,
    PortalLinkCreate,
    PortalLinkCreated,
)
from vsense.webhooks import service as webhooks
from vsense.webhooks.dispatcher import DispatchParts
from vsense.webhooks.outbox import Outbox
from vsense.webhooks.schemas import (
    DeliveryList,
    Queued,
    TestResult,
    Webhook,
    WebhookCreate,
    WebhookCreated,
    WebhookUpdate,
)

TOKEN_PREFIX = "vsp_"
PORTAL_PATH = "/portal"
# What a link's holder may do, through the webhook service: read the group's devices
# (to name one for a webhook), and read and change their webhooks.
PORTAL_SCOPES = frozenset({"devices:read", "webhooks:read", "webhooks:write"})


def _require_admin(principal: Principal) -> None:
    if not principal.sees_whole_organization:
        raise Forbidden("Only an admin of the organization manages portal links.")
    require_scope(principal, "webhooks:write")


def _state(link: PortalLinkRow, now: datetime) -> Literal["active", "expired", "revoked"]:
    if link.revoked_at is not None:
        return "revoked"
    return "active" if link.expires_at > now else "expired"


def _view(link: PortalLinkRow, group_name: str) -> PortalLink:
    return PortalLink(
        id=link.id,
        group_id=link.group_id,
        group_name=group_name,
        label=link.label,
        created_by=link.created_by,
        created=link.created,
        expires_at=link.expires_at,
        revoked_at=link.revoked_at,
        state=_state(link, utcnow()),
    )


def link_url(base_url: str, token: str) -> str:
    """The address handed to the customer: the token in the path, once."""
    return f"{base_url}{PORTAL_PATH}/{token}"


async def create_link(
    session: AsyncSession, principal: Principal, body: PortalLinkCreate, base_url: str
) -> PortalLinkCreated:
    """A new link to one group of the caller's organization (admins); its URL, holding the
    token, is in this answer only."""
    _require_admin(principal)
    group = await repository.get_group(session, principal.organization_id, body.group_id)
    if group is None:
        raise Unprocessable(
            "The portal link is invalid.",
            errors=[field_error("group_id", "no such group in your organization")],
        )
    token = new_token(TOKEN_PREFIX)
    now = utcnow()
    link = PortalLinkRow(
        organization_id=principal.organization_id,
        group_id=group.id,
        label=body.label,
        token_hash=token_digest(token),
        created_by=principal.user_id,
        created=now,
        expires_at=now + timedelta(hours=body.expires_in_hours),
    )
    await repository.add_link(session, link)
    view = _view(link, group.name)
    return PortalLinkCreated(**view.model_dump(), url=link_url(base_url, token))


async def list_links(
    session: AsyncSession, principal: Principal, *, page: str | None, per_page: str | None
) -> Page[PortalLink]:
    """The organization's links, newest first, expired and revoked ones included (admins)."""
    _require_admin(principal)
    request = page_request(page, per_page)
    rows, total = await repository.list_links(
        session, principal.organization_id, offset=request.offset, limit=request.per_page
    )
    return Page[PortalLink].model_validate(
        {
            "data": [_view(link, name) for link, name in rows],
            "meta": page_meta(request, total, len(rows)),
        }
    )


async def revoke_link(session: AsyncSession, principal: Principal, link_id: int) -> PortalLink:
    """End a link now (admins); revoking a revoked link changes nothing."""
    _require_admin(principal)
    found = await repository.get_link(session, principal.organization_id, link_id)
    if found is None:
        raise NotFound("No such portal link.")
    link, group_name = found
    if link.revoked_at is None:
        link.revoked_at = utcnow()
        await session.flush()
    return _view(link, group_name)


async def open_portal(session: AsyncSession, token: str | None) -> PortalAccess | None:
    """What a token opens: its link if neither expired nor revoked, else None. The token
    is looked up by its hash, so no comparison of secrets depends on their content."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    token_hash = token_digest(token)
    found = await repository.open_link(session, token_hash, utcnow())
    if found is None:
        return None
    link, group_name = found
    return PortalAccess(
        link_id=link.id,
        organization_id=link.organization_id,
        group_id=link.group_id,
        group_name=group_name,
        label=link.label,
        token_hash=token_hash,
        created_by=link.created_by,
        expires_at=link.expires_at,
    )


def _delegate(access: PortalAccess) -> Principal:
    return Principal(
        user_id=access.created_by or 0,
        organization_id=access.organization_id,
        role=Role.ADMIN,
        scopes=PORTAL_SCOPES,
        token_kind="access",
    )


async def devices(session: AsyncSession, access: PortalAccess) -> list[PortalDevice]:
    """The group's devices: their names and UUIDs, nothing more."""
    rows = await repository.group_devices(session, access.organization_id, access.group_id)
    return [PortalDevice(uuid=device, name=name) for device, name in rows]


async def _require_device(session: AsyncSession, access: PortalAccess, device: str) -> None:
    try:
        parsed = uuid.UUID(device)
    except ValueError:
        raise NotFound("No such device.") from None
    if not await repository.device_in_group(
        session, access.organization_id, access.group_id, parsed
    ):
        raise NotFound("No such device.")


async def _require_webhook(session: AsyncSession, access: PortalAccess, webhook_id: int) -> None:
    if not await repository.webhook_in_group(
        session, access.organization_id, access.group_id, webhook_id
    ):
        raise NotFound("No such webhook.")


async def list_webhooks(session: AsyncSession, access: PortalAccess) -> list[Webhook]:
    """The webhooks of the group's devices, oldest first."""
    group = {str(d.uuid) for d in await devices(session, access)}
    found = await webhooks.list_webhooks(session, _delegate(access), None)
    return [w for w in found if w.device_uuid in group]


async def get_webhook(session: AsyncSession, access: PortalAccess, webhook_id: int) -> Webhook:
    await _require_webhook(session, access, webhook_id)
    return await webhooks.get_webhook(session, _delegate(access), webhook_id)


async def create_webhook(
    session: AsyncSession, outbox: Outbox, access: PortalAccess, body: WebhookCreate
) -> WebhookCreated:
    """A webhook on one of the group's devices; another device is answered 404."""
    if body.device_uuid:
        await _require_device(session, access, body.device_uuid)
    return await webhooks.create_webhook(session, outbox, _delegate(access), None, body)


async def update_webhook(
    session: AsyncSession,
    outbox: Outbox,
    access: PortalAccess,
    webhook_id: int,
    body: WebhookUpdate,
) -> Webhook:
    await _require_webhook(session, access, webhook_id)
    if body.device_uuid:
        await _require_device(session, access, body.device_uuid)
    return await webhooks.update_webhook(session, outbox, _delegate(access), webhook_id, None, body)


async def delete_webhook(
    session: AsyncSession, outbox: Outbox, access: PortalAccess, webhook_id: int
) -> None:
    await _require_webhook(session, access, webhook_id)
    await webhooks.delete_webhook(session, outbox, _delegate(access), webhook_id)


async def rotate_secret(
    session: AsyncSession, access: PortalAccess, webhook_id: int
) -> WebhookCreated:
    await _require_webhook(session, access, webhook_id)
    return await webhooks.rotate_secret(session, _delegate(access), webhook_id)


async def list_deliveries(
    session: AsyncSession,
    access: PortalAccess,
    webhook_id: int,
    *,
    status: str | None,
    page: str | None,
    per_page: str | None,
) -> DeliveryList:
    await _require_webhook(session, access, webhook_id)
    return await webhooks.list_deliveries(
        session, _delegate(access), webhook_id, status=status, page=page, per_page=per_page
    )


async def redeliver(
    session: AsyncSession, outbox: Outbox, access: PortalAccess, webhook_id: int, delivery_id: int
) -> Queued:
    await _require_webhook(session, access, webhook_id)
    return await webhooks.redeliver(session, outbox, _delegate(access), webhook_id, delivery_id)


async def queue_test(
    session: AsyncSession, settings: Settings, access: PortalAccess, webhook_id: int
) -> list[int]:
    """As the webhook service's test: commit, then `send_test`."""
    await _require_webhook(session, access, webhook_id)
    return await webhooks.queue_test(session, settings, _delegate(access), webhook_id)


async def send_test(parts: DispatchParts, delivery_ids: list[int]) -> TestResult:
    return await webhooks.send_test(parts, delivery_ids)
