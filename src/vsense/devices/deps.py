"""Request dependencies of the device routes: the query parsed into typed values.

Each is declared in the order its checks ran before they moved here, so that a request
with several faults is answered for the same one: the caller (401), its permission
(403), the device (404), then the parameters (400) in the order of the list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import BackgroundTasks, Depends, Request

from vsense.accounts.deps import PrincipalDep, caller_of, scoped_caller
from vsense.accounts.principal import Principal
from vsense.db import Database
from vsense.deps import SessionDep
from vsense.devices import service
from vsense.devices.types import (
    DeviceFilter,
    DeviceListQuery,
    DeviceOrder,
    DeviceSortKey,
    ReadableDeviceId,
)
from vsense.kit.cache import CountCache
from vsense.kit.errors import BadRequest
from vsense.kit.pagination import PAGE_DESCRIPTION, PER_PAGE_DESCRIPTION, PageRequest, page_request
from vsense.kit.parts import part

ONLINE_SPELLINGS = {
    "online": True,
    "1": True,
    "true": True,
    "offline": False,
    "0": False,
    "false": False,
}
SORT_VALUES = tuple(v for key in DeviceSortKey for v in (key.value, f"-{key.value}"))
NO_GROUP = "none"


def parse_sort(raw: str | None) -> DeviceOrder:
    value = (raw or DeviceSortKey.NAME.value).strip()
    descending = value.startswith("-")
    try:
        key = DeviceSortKey(value[1:] if descending else value)
    except ValueError:
        raise BadRequest(f"`sort` must be one of: {', '.join(SORT_VALUES)}.") from None
    return DeviceOrder(key, descending)


def parse_is_online(raw: str | None) -> bool | None:
    if raw is None or raw == "":
        return None
    try:
        return ONLINE_SPELLINGS[raw.strip().lower()]
    except KeyError:
        raise BadRequest(
            "`is_online` must be Online or Offline (also 1/0, true/false, any case)."
        ) from None


def _text_parameter(name: str, description: str) -> dict[str, object]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {
            "anyOf": [{"type": "string"}, {"type": "null"}],
            "description": description,
            "title": name.replace("_", " ").title(),
        },
    }


# The list's query parameters in the OpenAPI document, as FastAPI would write them.
LIST_PARAMETERS = [
    _text_parameter(
        "sort",
        "name (default), -name, refreshed, -refreshed, is_online, -is_online "
        "(ties by name), geo_city, -geo_city, geo_country, -geo_country, created, -created",
    ),
    _text_parameter("group", "A group's name or id; `none` for no group"),
    _text_parameter("is_online", "Online or Offline (also 1/0, true/false, any case)"),
    _text_parameter("search", "Case-insensitive substring of name or client_identifier"),
    _text_parameter("page", PAGE_DESCRIPTION),
    _text_parameter("per_page", PER_PAGE_DESCRIPTION),
]


# Dependencies are async on purpose: FastAPI runs plain functions in a thread pool.


@dataclass(frozen=True, slots=True)
class DeviceListing:
    """Who asks for the device list, for what, and the parts that answer it."""

    caller: Principal
    query: DeviceListQuery
    paging: PageRequest
    database: Database
    counts: CountCache


_database_of = part(Database)
_counts_of = part(CountCache)


async def device_listing(request: Request, background: BackgroundTasks) -> DeviceListing:
    """The caller (401), its permission (403), then `sort`, `is_online`, `page` and
    `per_page` (400), in that order.

    The list's only dependency: the caller, the query, the page and the parts in one.
    Each dependency and each query parameter FastAPI solves costs tens of microseconds
    per request, and this is the busiest route: the parameters are read here from the
    query string (all are text, parsed by the functions above) and documented by
    `LIST_PARAMETERS`; the route opens its read session itself.
    """
    principal = await caller_of(request, background)
    service.require_read(principal)
    query = request.query_params
    order = parse_sort(query.get("sort"))
    online = parse_is_online(query.get("is_online"))
    paging = page_request(query.get("page"), query.get("per_page"))
    group = query.get("group") or None
    search = query.get("search") or None
    without_group = group is not None and group.strip().lower() == NO_GROUP
    device_filter = DeviceFilter(
        group=None if without_group else group,
        without_group=without_group,
        is_online=online,
        search=search,
    )
    return DeviceListing(
        principal,
        DeviceListQuery(filter=device_filter, order=order),
        paging,
        await _database_of(request),
        await _counts_of(request),
    )


async def readable_device(
    device_uuid: str, session: SessionDep, principal: PrincipalDep
) -> ReadableDeviceId:
    """The device of the path, if the caller may read it; 404 otherwise."""
    return await service.visible_device(session, principal, device_uuid)


DeviceReader = Annotated[Principal, Depends(scoped_caller(service.READ_SCOPE))]
DeviceListingDep = Annotated[DeviceListing, Depends(device_listing)]
ReadableDevice = Annotated[ReadableDeviceId, Depends(readable_device)]
