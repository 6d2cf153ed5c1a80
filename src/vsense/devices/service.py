"""The rules of the device API: query parsing, visibility, who may change what."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from vsense.accounts.principal import Principal
from vsense.accounts.service import DEVICE_PREFIX, require_scope
from vsense.device_auth.service import DeviceAuth
from vsense.devices import repository
from vsense.devices.repository import SORT_COLUMNS, DeviceFilter
from vsense.devices.schemas import DeviceCreate, DeviceUpdate, device_json
from vsense.kit.cache import TTLCache
from vsense.kit.crypto import new_token, token_digest
from vsense.kit.errors import BadRequest, NotFound, Unprocessable, field_error
from vsense.kit.pagination import page_meta, page_request
from vsense.kit.time import utcnow
from vsense.models import Device

ONLINE_SPELLINGS = {
    "online": True,
    "1": True,
    "true": True,
    "offline": False,
    "0": False,
    "false": False,
}
SORT_VALUES = tuple(k for key in SORT_COLUMNS for k in (key, f"-{key}"))
NO_GROUP = "none"


def parse_sort(raw: str | None) -> tuple[str, bool]:
    value = (raw or "name").strip()
    descending = value.startswith("-")
    key = value[1:] if descending else value
    if key not in SORT_COLUMNS:
        raise BadRequest(f"`sort` must be one of: {', '.join(SORT_VALUES)}.")
    return key, descending


def parse_is_online(raw: str | None) -> bool | None:
    if raw is None or raw == "":
        return None
    try:
        return ONLINE_SPELLINGS[raw.strip().lower()]
    except KeyError:
        raise BadRequest(
            "`is_online` must be Online or Offline (also 1/0, true/false, any case)."
        ) from None


def parse_device_uuid(raw: str) -> uuid.UUID:
    """A device UUID from a path, any case; anything else is simply not found."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound("No such device.") from None


async def list_devices(
    session: AsyncSession,
    principal: Principal,
    count_cache: TTLCache,
    *,
    sort: str | None,
    group: str | None,
    is_online: str | None,
    search: str | None,
    page: str | None,
    per_page: str | None,
) -> dict[str, Any]:
    """The seed's `{"data", "meta"}` page of the devices the caller may see."""
    require_scope(principal, "devices:read")
    sort_key, descending = parse_sort(sort)
    online = parse_is_online(is_online)
    request = page_request(page, per_page)
    group = group or None
    without_group = group is not None and group.strip().lower() == NO_GROUP
    device_filter = DeviceFilter(
        group=None if without_group else group,
        without_group=without_group,
        is_online=online,
        search=search or None,
    )
    rows = await repository.list_devices(
        session,
        principal,
        device_filter,
        sort_key=sort_key,
        descending=descending,
        offset=request.offset,
        limit=request.per_page,
    )
    fields = rows[0]._fields if rows else ()
    total = await _count(session, principal, device_filter, count_cache)
    if request.offset == 0 and len(rows) < request.per_page:
        total = len(rows)  # the first page holds everything: the count is exact for free
    elif rows and total < request.offset + len(rows):
        total = request.offset + len(rows)  # a cached count can lag behind new devices
    return {
        "data": [device_json(row, fields) for row in rows],
        "meta": page_meta(request, total, len(rows)),
    }


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
    session: AsyncSession, principal: Principal, device_uuid: str
) -> uuid.UUID:
    """The UUID of a device the caller may read; 404 otherwise."""
    require_scope(principal, "devices:read")
    row = await repository.get_device_row(session, principal, parse_device_uuid(device_uuid))
    if row is None:
        raise NotFound("No such device.")
    return uuid.UUID(str(row.uuid))


async def list_events(
    session: AsyncSession,
    principal: Principal,
    device_uuid: str,
    *,
    page: str | None,
    per_page: str | None,
) -> dict[str, Any]:
    """A device's online/offline transitions, newest first."""
    device = await visible_device(session, principal, device_uuid)
    request = page_request(page, per_page)
    events, total = await repository.list_events(
        session, device, offset=request.offset, limit=request.per_page
    )
    return {
        "data": [
            {"id": e.id, "status": e.status, "reason": e.reason, "created": e.created}
            for e in events
        ],
        "meta": page_meta(request, total, len(events)),
    }


async def get_device(
    session: AsyncSession, principal: Principal, device_uuid: str
) -> dict[str, Any]:
    require_scope(principal, "devices:read")
    row = await repository.get_device_row(session, principal, parse_device_uuid(device_uuid))
    if row is None:
        raise NotFound("No such device.")
    return device_json(row)


async def _changeable_device(
    session: AsyncSession, principal: Principal, device_uuid: str
) -> Device:
    parsed = parse_device_uuid(device_uuid)
    # Visibility first: a device the caller cannot see is 404 whatever its rights.
    device = await repository.get_device(session, principal, parsed)
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
    device_uuid: str,
    body: DeviceUpdate,
) -> dict[str, Any]:
    """Apply the fields that were sent; 200 with the device as it now is."""
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
    return await get_device(session, principal, str(device.uuid))


async def onboard_device(
    session: AsyncSession, principal: Principal, count_cache: TTLCache, body: DeviceCreate
) -> dict[str, Any]:
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
    return {**await get_device(session, principal, str(device.uuid)), "device_token": token}


async def delete_device(
    session: AsyncSession,
    count_cache: TTLCache,
    device_auth: DeviceAuth,
    principal: Principal,
    device_uuid: str,
) -> None:
    device = await _changeable_device(session, principal, device_uuid)
    await repository.delete_device(session, device)
    count_cache.invalidate(principal.organization_id)
    device_auth.forget()


async def rotate_credentials(
    session: AsyncSession, device_auth: DeviceAuth, principal: Principal, device_uuid: str
) -> dict[str, str]:
    """A new device token; the old one stops working at once."""
    device = await _changeable_device(session, principal, device_uuid)
    token = new_token(DEVICE_PREFIX)
    await repository.replace_credential(session, device.uuid, token_digest(token))
    device_auth.forget()
    return {"uuid": str(device.uuid), "device_token": token}


async def device_for_token(session: AsyncSession, token: str) -> uuid.UUID | None:
    """The device a device token belongs to, or None (for the device gateway)."""
    if not token.startswith(DEVICE_PREFIX):
        return None
    return await repository.device_for_token_hash(session, token_digest(token))
