"""Deep pages of the device list: a page found from a row already seen (its sort key)
holds the same devices as the page found by its offset."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from tests.factories import Api, Caller
from vsense.accounts.principal import Principal
from vsense.accounts.scopes import effective_scopes
from vsense.devices import repository
from vsense.devices.types import DeviceFilter, DeviceOrder, DeviceSortKey
from vsense.models import User

CITIES = ("Lyon", "Berlin", "Lyon", "Porto")


async def fleet(admin: Caller) -> None:
    """Thirteen devices with repeated names and cities (ties break on uuid), in two
    groups and none, some online."""
    await admin.group("North")
    await admin.group("South")
    for n in range(13):
        group = ("North", "South", None)[n % 3]
        await admin.device(
            name=f"Dev {n % 5}", geo_city=CITIES[n % 4], geo_country="FR", group=group
        )


async def admin_principal(api: Api, admin: Caller) -> Principal:
    async with api.state.database.read_sessionmaker() as session:
        user = (await session.execute(select(User).where(User.email == admin.email))).scalar_one()
    return Principal(
        user_id=user.id,
        organization_id=user.organization_id,
        role=user.role,
        scopes=effective_scopes(user.role),
        token_kind="access",
    )


async def page(
    api: Api,
    principal: Principal,
    device_filter: DeviceFilter,
    order: DeviceOrder,
    *,
    offset: int,
    limit: int,
    anchor: repository.Anchor | None = None,
) -> list[Any]:
    async with api.state.database.read_sessionmaker() as session:
        return list(
            await repository.list_devices(
                session, principal, device_filter, order, offset=offset, limit=limit, anchor=anchor
            )
        )


def uuids(rows: list[Any]) -> list[uuid.UUID]:
    return [uuid.UUID(str(row[0])) for row in rows]


@pytest.mark.parametrize(
    "key", [DeviceSortKey.NAME, DeviceSortKey.IS_ONLINE, DeviceSortKey.GEO_CITY]
)
@pytest.mark.parametrize("descending", [False, True], ids=["asc", "desc"])
@pytest.mark.parametrize("group", [None, "North"], ids=["all", "group"])
async def test_a_page_from_a_seen_row_equals_the_page_at_its_offset(
    api: Api, key: DeviceSortKey, descending: bool, group: str | None
) -> None:
    admin = await api.organization()
    await fleet(admin)
    principal = await admin_principal(api, admin)
    order = DeviceOrder(key, descending)
    device_filter = DeviceFilter(group=group)
    everything = await page(api, principal, device_filter, order, offset=0, limit=500)
    assert len(everything) >= 4
    for offset in range(1, len(everything)):
        expected = uuids(await page(api, principal, device_filter, order, offset=offset, limit=3))
        for position in (offset - 1, offset):
            anchor_key = repository.anchor_key(order, everything[position])
            assert anchor_key is not None
            anchor = repository.Anchor(anchor_key, offset - position)
            found = await page(
                api, principal, device_filter, order, offset=offset, limit=3, anchor=anchor
            )
            assert uuids(found) == expected, (offset, position)


async def test_walking_the_pages_gives_what_the_offsets_give(api: Api) -> None:
    admin = await api.organization()
    await fleet(admin)
    for sort in ("name", "-geo_city", "refreshed"):
        by_offset = []
        for number in range(1, 6):
            api.state.counts.clear()  # no row seen: every page by its offset
            body = (await admin.get(f"/api/v1/devices?sort={sort}&per_page=3&page={number}")).json()
            by_offset.append(body)
        walked = [
            (await admin.get(f"/api/v1/devices?sort={sort}&per_page=3&page={number}")).json()
            for number in (1, 2, 3, 4, 5, 5, 4, 3, 3)
        ]
        assert walked == [by_offset[n - 1] for n in (1, 2, 3, 4, 5, 5, 4, 3, 3)], sort


def test_only_sorts_on_columns_without_nulls_start_from_a_row() -> None:
    row = (uuid.uuid4(), "Gate", "id", None, True, "Lyon", "FR", None, None, None, None, None)
    assert repository.anchor_key(DeviceOrder(DeviceSortKey.NAME), row) == ("Gate", row[0])
    assert repository.anchor_key(DeviceOrder(DeviceSortKey.IS_ONLINE), row) == (
        True,
        "Gate",
        row[0],
    )
    assert repository.anchor_key(DeviceOrder(DeviceSortKey.REFRESHED), row) is None
    assert repository.anchor_key(DeviceOrder(DeviceSortKey.CREATED), row) is None
