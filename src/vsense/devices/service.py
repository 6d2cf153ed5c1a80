"""The rules of the device API: visibility, who may change what, the list's count."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from vsense.accounts.principal import Principal
from vsense.accounts.service import DEVICE_PREFIX, require_scope
from vsense.device_auth.service import DeviceAuth
from vsense.devices import repository
from vsense.devices.schemas import DeviceCreate, DeviceCredentials, DeviceEvent, DeviceUpdate
from vsense.devices.types import (
    DeviceFilter,
    DeviceListQuery,
    DeviceOrder,
    DevicePage,
    DeviceView,
    OnboardedDevice,
    ReadableDeviceId,
)
from vsense.kit.cache import TTLCache
from vsense.kit.crypto import new_token, token_digest
from vsense.kit.errors import NotFound, Unprocessable, field_error
from vsense.kit.pagination import PageRequest, page_meta
from vsense.kit.schemas import ListMeta, Page
from vsense.kit.time import utcnow
from vsense.models import Device

READ_SCOPE = "devices:read"


def parse_device_uuid(raw: str) -> uuid.UUID:
    """A device UUID from a path, any case; anything else is simply not found."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound("No such device.") from None


def require_read(principal: Principal) -> None:
    """403 unless the caller may read devices."""
    require_scope(principal, READ_SCOPE)


async def list_devices(
    session: AsyncSession,
    principal: Principal,
    count_cache: TTLCache,
    query: DeviceListQuery,
    paging: PageRequest,
) -> DevicePage:
    """The seed's `{"data", "meta"}` page of the devices the caller may see."""
    require_read(principal)
    device_filter = query.filter
    visibility = "org" if principal.sees_whole_organization else principal.user_id
    anchors = (ANCHOR, visibility, device_filter, query.order)
    offset = paging.offset
    rows = await repository.list_devices(
        session,
        principal,
        device_filter,
        query.order,
        offset=offset,
        limit=paging.per_page,
        anchor=_anchor(count_cache, principal.organization_id, anchors, offset),
    )
    if rows:
        _remember(count_cache, principal.organization_id, anchors, query.order, offset, rows)
    total = await _count(session, principal, device_filter, count_cache)
    if paging.offset == 0 and len(rows) < paging.per_page:
        total = len(rows)  # the first page holds everything: the count is exact for free
    elif rows and total < paging.offset + len(rows):
        total = paging.offset + len(rows)  # a cached count can lag behind new devices
    return DevicePage(
        data=[DeviceView.from_driver_row(row) for row in rows],
        meta=page_meta(paging, total, len(rows)),
    )


# Deep pages. An offset walks every row before the page; a page can instead start from
# a row already seen at a known position (its sort key, `repository.Anchor`). The first
# and last rows of each page served are remembered, with the counts and for as long
# (`count_cache_ttl`, dropped by a write in this process), so that the same page again
# and the next page are found on the index from there. They are the rows the offset
# gives, unless devices changed meanwhile in a way this process did not drop its caches
# for (another process's writes, a status the gateway changed): the staleness the
# total already allows, for as long.
ANCHOR = "anchor"


def _anchor(
    cache: TTLCache, organization_id: int, anchors: tuple[Any, ...], offset: int
) -> repository.Anchor | None:
    if offset == 0:
        return None
    for position in (offset, offset - 1):
        key = cache.get(organization_id, (*anchors, position))
        if key is not None:
            return repository.Anchor(key, offset - position)
    return None


def _remember(
    cache: TTLCache,
    organization_id: int,
    anchors: tuple[Any, ...],
    order: DeviceOrder,
    offset: int,
    rows: Sequence[Sequence[Any]],
) -> None:
    first, last = repository.anchor_key(order, rows[0]), repository.anchor_key(order, rows[-1])
    if first is None or last is None:
        return
    cache.put(organization_id, (*anchors, offset), first)
    cache.put(organization_id, (*anchors, offset + len(rows) - 1), last)


async def count_devices(
    session: AsyncSession, principal: Principal, count_cache: TTLCache, device_filter: DeviceFilter
) -> int:
    """How many devices the caller sees that match `device_filter` (the list's total,
    from the same cache)."""
    require_read(principal)
    return await _count(session, principal, device_filter, count_cache)


async def _count(
    session: AsyncSession, principal: Principal, device_filter: DeviceFilter, cache: TTLCache
) -> int:
    # Counting is a scan; it is done at most once per `count_cache_ttl` for each
    # (visibility, filter), by one request while the others wait for its result, and a
    # write in this process makes the next read recount.
    visibility = "org" if principal.sees_whole_organization else principal.user_id
    total: int = await cache.get_or_compute(
        principal.organization_id,
        (visibility, device_filter),
        lambda: repository.count_devices(session, principal, device_filter),
    )
    return total


async def visible_device(
    session: AsyncSession, principal: Principal, device_uuid: str | uuid.UUID
) -> ReadableDeviceId:
    """The UUID of a device the caller may read; 404 otherwise (a malformed UUID too)."""
    require_read(principal)
    parsed = device_uuid if isinstance(device_uuid, uuid.UUID) else parse_device_uuid(device_uuid)
    row = await repository.get_device_row(session, principal, parsed)
    if row is None:
        raise NotFound("No such device.")
    return ReadableDeviceId(uuid.UUID(str(row.uuid)))


async def list_events(
    session: AsyncSession, device: ReadableDeviceId, paging: PageRequest
) -> Page[DeviceEvent]:
    """A device's online/offline transitions, newest first."""
    events, total = await repository.list_events(
        session, device, offset=paging.offset, limit=paging.per_page
    )
    return Page[DeviceEvent](
        data=[
            DeviceEvent(id=e.id, status=e.status, reason=e.reason, created=e.created)
            for e in events
        ],
        meta=ListMeta.model_validate(page_meta(paging, total, len(events))),
    )


async def get_device(
    session: AsyncSession, principal: Principal, device_uuid: uuid.UUID
) -> DeviceView:
    require_read(principal)
    row = await repository.get_device_row(session, principal, device_uuid)
    if row is None:
        raise NotFound("No such device.")
    return DeviceView.from_row(row)


async def _changeable_device(
    session: AsyncSession, principal: Principal, device_uuid: uuid.UUID
) -> Device:
    # Visibility first: a device the caller cannot see is 404 whatever its rights.
    device = await repository.get_device(session, principal, device_uuid)
    if device is None:
        raise NotFound("No such device.")
    require_scope(principal, "devices:write")
    return device


async def _resolve_group(session: AsyncSession, principal: Principal, reference: int | str) -> int:
    found = await repository.find_group_id(session, principal.organization_id, str(reference))
    if found is None:
        raise Unprocessable(
            "The group does not exist.",
            errors=[field_error("group", f"no group named or numbered {reference!r}")],
        )
    return found


async def update_device(
    session: AsyncSession,
    principal: Principal,
    count_cache: TTLCache,
    device_uuid: uuid.UUID,
    body: DeviceUpdate,
) -> DeviceView:
    """Apply the fields that were sent; the device as it now is."""
    device = await _changeable_device(session, principal, device_uuid)
    sent = body.model_fields_set
    for field in ("name", "client_identifier", "geo_city", "geo_country"):
        if field in sent:
            setattr(device, field, getattr(body, field) or "")
    if "keepalive_interval" in sent:
        device.keepalive_interval = body.keepalive_interval
    if "group" in sent:
        device.group_id = (
            None if body.group is None else await _resolve_group(session, principal, body.group)
        )
    await session.flush()
    count_cache.invalidate(principal.organization_id)
    return await get_device(session, principal, device.uuid)


async def onboard_device(
    session: AsyncSession, principal: Principal, count_cache: TTLCache, body: DeviceCreate
) -> OnboardedDevice:
    """A new device and its token (shown once)."""
    require_scope(principal, "devices:write")
    group_id = None if body.group is None else await _resolve_group(session, principal, body.group)
    now = utcnow()
    device = Device(
        uuid=uuid.uuid4(),
        created=now,
        refreshed=now,  # the status is as of onboarding: never seen
        organization_id=principal.organization_id,
        group_id=group_id,
        name=body.name,
        client_identifier=body.client_identifier,
        app_type=body.app_type.value if body.app_type else None,
        geo_city=body.geo_city,
        geo_country=body.geo_country,
        keepalive_interval=body.keepalive_interval,
        is_online=False,
        status_reason="never_seen",
    )
    token = new_token(DEVICE_PREFIX)
    await repository.add_device(session, device, token_digest(token))
    count_cache.invalidate(principal.organization_id)
    view = await get_device(session, principal, device.uuid)
    return OnboardedDevice(**vars(view), device_token=token)


async def delete_device(
    session: AsyncSession,
    count_cache: TTLCache,
    device_auth: DeviceAuth,
    principal: Principal,
    device_uuid: uuid.UUID,
) -> None:
    device = await _changeable_device(session, principal, device_uuid)
    await repository.delete_device(session, device)
    count_cache.invalidate(principal.organization_id)
    device_auth.forget(session)


async def rotate_credentials(
    session: AsyncSession, device_auth: DeviceAuth, principal: Principal, device_uuid: uuid.UUID
) -> DeviceCredentials:
    """A new device token; the old one stops working at once."""
    device = await _changeable_device(session, principal, device_uuid)
    token = new_token(DEVICE_PREFIX)
    await repository.replace_credential(session, device.uuid, token_digest(token))
    device_auth.forget(session)
    return DeviceCredentials(uuid=str(device.uuid), device_token=token)


async def device_for_token(session: AsyncSession, token: str) -> uuid.UUID | None:
    """The device a device token belongs to, or None (for the device gateway)."""
    if not token.startswith(DEVICE_PREFIX):
        return None
    return await repository.device_for_token_hash(session, token_digest(token))
