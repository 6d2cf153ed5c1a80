"""The fleet page: counts, the device table with search, filters, sort and paging, and
a short poll that redraws the table so statuses change without a reload.

Everything comes from the devices service's list and count (the API's device list and
its count cache), so a page of 100,000 devices costs what one API page costs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response

from vsense.console.deps import ConsoleUserDep
from vsense.console.render import CONSOLE, ConsoleRoute, redirect, render
from vsense.deps import CountsDep, SessionDep
from vsense.devices import service as devices
from vsense.devices.deps import NO_GROUP, parse_is_online, parse_sort
from vsense.devices.types import DeviceFilter, DeviceListQuery, DeviceSortKey
from vsense.groups import service as groups
from vsense.kit.pagination import page_request

router = APIRouter(prefix=CONSOLE, route_class=ConsoleRoute, include_in_schema=False)
PER_PAGE_CHOICES = (25, 50, 100)
POLL_SECONDS = 5
COLUMNS = (
    ("name", "Name", DeviceSortKey.NAME),
    ("group", "Group", None),
    ("app_type", "App type", None),
    ("geo_city", "City", DeviceSortKey.GEO_CITY),
    ("geo_country", "Country", DeviceSortKey.GEO_COUNTRY),
    ("is_online", "Status", DeviceSortKey.IS_ONLINE),
    ("refreshed", "Last seen", DeviceSortKey.REFRESHED),
    ("created", "Created", DeviceSortKey.CREATED),
)


@dataclass(frozen=True, slots=True)
class FleetQuery:
    """The fleet page's query string, as typed values and back as links."""

    search: str = ""
    group: str = ""
    status: str = ""
    sort: str = "name"
    page: int = 1
    per_page: int = 25

    def link(self, **changes: object) -> str:
        values = {
            "search": self.search,
            "group": self.group,
            "status": self.status,
            "sort": self.sort,
            "page": self.page,
            "per_page": self.per_page,
            **changes,
        }
        query = {k: v for k, v in values.items() if v not in ("", None)}
        return f"{CONSOLE}/?{urlencode(query)}"

    def table_link(self) -> str:
        """The same query, for the poll that redraws the counts and the table."""
        return self.link().replace(f"{CONSOLE}/?", f"{CONSOLE}/fleet/table?", 1)

    def sort_link(self, key: str) -> str:
        return self.link(sort=f"-{key}" if self.sort == key else key, page=1)

    def sort_state(self, key: str) -> str:
        if self.sort == key:
            return "ascending"
        return "descending" if self.sort == f"-{key}" else "none"


def _query(
    search: str | None,
    group: str | None,
    status: str | None,
    sort: str | None,
    page: str | None,
    per_page: str | None,
) -> FleetQuery:
    paging = page_request(page, per_page)
    return FleetQuery(
        search=(search or "").strip(),
        group=(group or "").strip(),
        status=(status or "").strip().lower(),
        sort=(sort or "name").strip(),
        page=paging.page,
        per_page=paging.per_page if paging.per_page in PER_PAGE_CHOICES else 25,
    )


async def _fleet(
    session: SessionDep, user: ConsoleUserDep, counts: CountsDep, query: FleetQuery
) -> dict[str, Any]:
    principal = user.principal
    order = parse_sort(query.sort)
    without_group = query.group.lower() == NO_GROUP
    device_filter = DeviceFilter(
        group=None if without_group or not query.group else query.group,
        without_group=without_group,
        is_online=parse_is_online(query.status),
        search=query.search or None,
    )
    paging = page_request(str(query.page), str(query.per_page))
    page = await devices.list_devices(
        session, principal, counts, DeviceListQuery(filter=device_filter, order=order), paging
    )
    online = await devices.count_devices(session, principal, counts, DeviceFilter(is_online=True))
    offline = await devices.count_devices(session, principal, counts, DeviceFilter(is_online=False))
    return {
        "devices": page.data,
        "meta": page.meta,
        "query": query,
        "counts": {"total": online + offline, "online": online, "offline": offline},
        "columns": COLUMNS,
        "poll_seconds": POLL_SECONDS,
    }


@router.get("")
async def console_root(request: Request) -> Response:
    return redirect(f"{CONSOLE}/", request)


@router.get("/")
async def fleet_page(
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    counts: CountsDep,
    search: str | None = None,
    group: str | None = None,
    status: str | None = None,
    sort: str | None = None,
    page: str | None = None,
    per_page: str | None = None,
) -> Response:
    query = _query(search, group, status, sort, page, per_page)
    context = await _fleet(session, user, counts, query)
    choices = await groups.group_choices(session, user.principal)
    return render(
        request,
        "fleet.html",
        user=user,
        groups=choices,
        per_page_choices=PER_PAGE_CHOICES,
        **context,
    )


@router.get("/fleet/table")
async def fleet_table(
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    counts: CountsDep,
    search: str | None = None,
    group: str | None = None,
    status: str | None = None,
    sort: str | None = None,
    page: str | None = None,
    per_page: str | None = None,
) -> Response:
    """The counts and the table alone: what the page's poll swaps in."""
    query = _query(search, group, status, sort, page, per_page)
    context = await _fleet(session, user, counts, query)
    return render(request, "_fleet_table.html", user=user, **context)
