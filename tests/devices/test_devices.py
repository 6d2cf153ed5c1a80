"""The device API: shapes, paging, sorting, filters, updates, onboarding, visibility."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import insert, select, text, update
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tests.environment import TEST_SECRET
from tests.factories import Api, Caller
from vsense.config import Settings, load_settings
from vsense.db import create_engine, create_sessionmaker, session_scope
from vsense.devices import service as devices_service
from vsense.devices.repository import DEVICE_COLUMNS
from vsense.devices.schemas import Device as DeviceSchema
from vsense.devices.schemas import DeviceList, DeviceOnboarded
from vsense.devices.types import DeviceView
from vsense.migrate import alembic_config, upgrade_async
from vsense.models import Device, Organization

SEED_FIELDS = [
    "uuid",
    "name",
    "client_identifier",
    "refreshed",
    "is_online",
    "geo_city",
    "geo_country",
]


async def set_status(
    api: Api, device_uuid: str, *, online: bool, refreshed: datetime | None
) -> None:
    """Stand in for the device gateway: what a keepalive or the sweep would write."""
    async with session_scope(api.state.sessionmaker) as session:
        await session.execute(
            update(Device)
            .where(Device.uuid == uuid.UUID(device_uuid))
            .values(is_online=online, refreshed=refreshed, last_seen=refreshed)
        )
    api.state.counts.clear()


async def test_onboarding_returns_the_device_and_its_token_once(api: Api) -> None:
    admin = await api.organization()
    group = await admin.group("North")
    body = await admin.device(
        name="Gate A",
        client_identifier="site-12/cam-3",
        group="North",
        app_type="VCB",
        geo_city="Lyon",
        geo_country="FR",
        keepalive_interval=300,
    )
    assert list(body)[:7] == SEED_FIELDS
    assert body["device_token"].startswith("vsd_")
    assert body["is_online"] == 0 and body["refreshed"] == body["created"]
    assert body["group"] == "North" and body["group_id"] == group["id"]
    assert body["app_type"] == "VCB" and body["keepalive_interval"] == 300
    fetched = (await admin.get(f"/api/v1/devices/{body['uuid']}")).json()
    assert "device_token" not in fetched
    assert fetched == {k: v for k, v in body.items() if k != "device_token"}


async def test_get_answers_a_flat_object_and_matches_uuid_in_any_case(api: Api) -> None:
    admin = await api.organization()
    device = await admin.device(name="Gate")
    response = await admin.get(f"/api/v1/devices/{device['uuid'].upper()}")
    assert response.status_code == 200
    body = response.json()
    assert "data" not in body
    assert body["uuid"] == device["uuid"] and body["uuid"] == body["uuid"].lower()
    assert body["created"].endswith("Z")


async def test_unknown_or_malformed_uuid_is_404(api: Api) -> None:
    admin = await api.organization()
    for path in (str(uuid.uuid4()), "not-a-uuid"):
        response = await admin.get(f"/api/v1/devices/{path}")
        assert response.status_code == 404
        assert response.json()["code"] == 4004


async def test_onboarding_validates_fields(api: Api) -> None:
    admin = await api.organization()
    response = await admin.post(
        "/api/v1/devices", json={"name": "", "app_type": "XYZ", "keepalive_interval": 1}
    )
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["error"]}
    assert {"name", "app_type", "keepalive_interval"} <= fields
    missing_group = await admin.post("/api/v1/devices", json={"name": "x", "group": "nope"})
    assert missing_group.status_code == 422
    assert missing_group.json()["error"][0]["field"] == "group"


async def make_devices(admin: Caller, count: int, **fields: Any) -> list[dict[str, Any]]:
    return [await admin.device(name=f"Dev {i:03d}", **fields) for i in range(count)]


@pytest.mark.parametrize(
    ("count", "page", "per_page", "expected"),
    [
        (
            0,
            1,
            25,
            {
                "current_page": 1,
                "from": 0,
                "to": 0,
                "total": 0,
                "last_page": 1,
                "total_pages": 1,
                "per_page": 25,
            },
        ),
        (
            6,
            1,
            3,
            {
                "current_page": 1,
                "from": 1,
                "to": 3,
                "total": 6,
                "last_page": 2,
                "total_pages": 2,
                "per_page": 3,
            },
        ),
        (
            6,
            2,
            3,
            {
                "current_page": 2,
                "from": 4,
                "to": 6,
                "total": 6,
                "last_page": 2,
                "total_pages": 2,
                "per_page": 3,
            },
        ),
        (
            7,
            3,
            3,
            {
                "current_page": 3,
                "from": 7,
                "to": 7,
                "total": 7,
                "last_page": 3,
                "total_pages": 3,
                "per_page": 3,
            },
        ),
        (
            6,
            5,
            3,
            {
                "current_page": 5,
                "from": 0,
                "to": 0,
                "total": 6,
                "last_page": 2,
                "total_pages": 2,
                "per_page": 3,
            },
        ),
    ],
    ids=["empty", "exact-multiple-first", "exact-multiple-last", "partial-last", "past-the-end"],
)
async def test_pagination_meta_at_the_edges(
    api: Api, count: int, page: int, per_page: int, expected: dict[str, int]
) -> None:
    admin = await api.organization()
    await make_devices(admin, count)
    body = (await admin.get(f"/api/v1/devices?page={page}&per_page={per_page}")).json()
    assert body["meta"] == expected
    assert (
        len(body["data"]) == max(0, expected["to"] - expected["from"] + 1)
        if expected["from"]
        else body["data"] == []
    )


async def test_pages_cover_every_device_once(api: Api) -> None:
    admin = await api.organization()
    created = {d["uuid"] for d in await make_devices(admin, 7)}
    seen: list[str] = []
    for page in (1, 2, 3):
        body = (await admin.get(f"/api/v1/devices?page={page}&per_page=3")).json()
        seen += [d["uuid"] for d in body["data"]]
    assert sorted(seen) == sorted(created)


@pytest.mark.parametrize("value", ["0", "-1", "x", "501", "1.5"])
async def test_bad_per_page_is_400(api: Api, value: str) -> None:
    admin = await api.organization()
    response = await admin.get(f"/api/v1/devices?per_page={value}")
    assert response.status_code == 400
    assert response.json()["code"] == 4000


async def test_per_page_of_500_is_allowed(api: Api) -> None:
    admin = await api.organization()
    assert (await admin.get("/api/v1/devices?per_page=500")).status_code == 200


async def sorted_fixture(api: Api) -> tuple[Caller, list[dict[str, Any]]]:
    admin = await api.organization()
    now = datetime.now(UTC).replace(microsecond=0)
    specs = [
        ("Charlie", "Paris", "FR", now - timedelta(hours=1)),
        ("alpha", "Berlin", "DE", None),
        ("Bravo", "Lyon", "FR", now - timedelta(hours=3)),
        ("Delta", "Austin", "US", now - timedelta(hours=2)),
        ("Bravo", "Zurich", "CH", None),
    ]
    devices = []
    for name, city, country, refreshed in specs:
        device = await admin.device(name=name, geo_city=city, geo_country=country)
        await set_status(api, device["uuid"], online=refreshed is not None, refreshed=refreshed)
        devices.append({**device, "refreshed_at": refreshed})
    return admin, devices


def expected_order(devices: list[dict[str, Any]], key: str, descending: bool) -> list[str]:
    def sort_value(device: dict[str, Any]) -> tuple[Any, str]:
        if key == "refreshed":
            stamp = device["refreshed_at"]
            # A device never refreshed counts as the oldest.
            return (stamp.timestamp() if stamp else float("-inf"), device["uuid"])
        if key == "created":
            return (device["created"], device["uuid"])
        return (device[key].encode(), device["uuid"])

    return [d["uuid"] for d in sorted(devices, key=sort_value, reverse=descending)]


@pytest.mark.parametrize("key", ["name", "refreshed", "geo_city", "geo_country", "created"])
@pytest.mark.parametrize("descending", [False, True], ids=["asc", "desc"])
async def test_each_sort_key_both_ways(api: Api, key: str, descending: bool) -> None:
    admin, devices = await sorted_fixture(api)
    if key == "created":
        # Creation times can share a second; give them distinct, known values.
        base = datetime.now(UTC).replace(microsecond=0)
        async with session_scope(api.state.sessionmaker) as session:
            for index, device in enumerate(devices):
                stamp = base - timedelta(minutes=index * 7 % 5)
                await session.execute(
                    update(Device)
                    .where(Device.uuid == uuid.UUID(device["uuid"]))
                    .values(created=stamp)
                )
                device["created"] = stamp.timestamp()
    sort = f"-{key}" if descending else key
    body = (await admin.get(f"/api/v1/devices?sort={sort}")).json()
    assert [d["uuid"] for d in body["data"]] == expected_order(devices, key, descending)


async def test_default_sort_is_by_name(api: Api) -> None:
    admin, devices = await sorted_fixture(api)
    body = (await admin.get("/api/v1/devices")).json()
    assert [d["uuid"] for d in body["data"]] == expected_order(devices, "name", False)


async def test_bad_sort_is_400_naming_the_accepted_values(api: Api) -> None:
    admin = await api.organization()
    response = await admin.get("/api/v1/devices?sort=colour")
    assert response.status_code == 400
    assert "-refreshed" in response.json()["message"]


@pytest.mark.parametrize(
    ("spelling", "online"),
    [
        ("Online", True),
        ("online", True),
        ("ONLINE", True),
        ("1", True),
        ("true", True),
        ("True", True),
        ("Offline", False),
        ("offline", False),
        ("0", False),
        ("false", False),
        ("FALSE", False),
    ],
)
async def test_is_online_spellings(api: Api, spelling: str, online: bool) -> None:
    admin = await api.organization()
    up = await admin.device(name="up")
    down = await admin.device(name="down")
    await set_status(api, up["uuid"], online=True, refreshed=datetime.now(UTC))
    body = (await admin.get(f"/api/v1/devices?is_online={spelling}")).json()
    assert [d["uuid"] for d in body["data"]] == [up["uuid"] if online else down["uuid"]]
    assert body["data"][0]["is_online"] == (1 if online else 0)


async def test_bad_is_online_is_400(api: Api) -> None:
    admin = await api.organization()
    response = await admin.get("/api/v1/devices?is_online=maybe")
    assert response.status_code == 400
    assert "Online" in response.json()["message"]


async def test_group_filter_by_name_id_and_none(api: Api) -> None:
    admin = await api.organization()
    north = await admin.group("North")
    south = await admin.group("South")
    in_north = await admin.device(group="North")
    in_south = await admin.device(group=south["id"])
    loose = await admin.device()

    async def uuids(query: str) -> list[str]:
        return [d["uuid"] for d in (await admin.get(f"/api/v1/devices?{query}")).json()["data"]]

    assert await uuids("group=North") == [in_north["uuid"]]
    assert await uuids(f"group={north['id']}") == [in_north["uuid"]]
    assert await uuids(f"group={south['id']}") == [in_south["uuid"]]
    assert await uuids("group=none") == [loose["uuid"]]
    body = (await admin.get("/api/v1/devices?group=Nowhere")).json()
    assert body["data"] == [] and body["meta"]["total"] == 0


async def test_group_and_online_filters_combine(api: Api) -> None:
    admin = await api.organization()
    await admin.group("North")
    on = await admin.device(group="North")
    await admin.device(group="North")
    await admin.device()
    await set_status(api, on["uuid"], online=True, refreshed=datetime.now(UTC))
    body = (await admin.get("/api/v1/devices?group=North&is_online=Online")).json()
    assert [d["uuid"] for d in body["data"]] == [on["uuid"]]
    assert body["meta"]["total"] == 1


async def test_search_matches_name_or_client_identifier_case_insensitively(api: Api) -> None:
    admin = await api.organization()
    by_name = await admin.device(name="Main GATE")
    by_client = await admin.device(name="Other", client_identifier="site-12/gate-2")
    await admin.device(name="Dock", client_identifier="site-1/cam_3")
    body = (await admin.get("/api/v1/devices?search=gate")).json()
    assert {d["uuid"] for d in body["data"]} == {by_name["uuid"], by_client["uuid"]}
    # LIKE wildcards in the search are taken literally.
    assert (await admin.get("/api/v1/devices?search=%25")).json()["data"] == []
    assert len((await admin.get("/api/v1/devices?search=cam_")).json()["data"]) == 1


async def test_update_changes_only_the_allowed_fields(api: Api) -> None:
    admin = await api.organization()
    await admin.group("East")
    device = await admin.device(name="Old", geo_city="Lyon")
    read_back = (await admin.get(f"/api/v1/devices/{device['uuid']}")).json()
    sent = {
        **read_back,
        "name": "New",
        "geo_country": "FR",
        "group": "East",
        "is_online": 1,
        "refreshed": "2020-01-01T00:00:00Z",
        "uuid": str(uuid.uuid4()),
    }
    response = await admin.put(f"/api/v1/devices/{device['uuid']}", json=sent)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["uuid"] == device["uuid"]
    assert (body["name"], body["geo_country"], body["group"]) == ("New", "FR", "East")
    assert body["is_online"] == 0 and body["refreshed"] == device["refreshed"]
    assert body["geo_city"] == "Lyon"


async def test_patch_applies_only_the_fields_sent(api: Api) -> None:
    admin = await api.organization()
    await admin.group("East")
    device = await admin.device(name="Keep", geo_city="Lyon", group="East", keepalive_interval=120)
    response = await admin.patch(f"/api/v1/devices/{device['uuid']}", json={"geo_city": "Nice"})
    body = response.json()
    assert (body["name"], body["geo_city"], body["group"], body["keepalive_interval"]) == (
        "Keep",
        "Nice",
        "East",
        120,
    )
    cleared = await admin.patch(
        f"/api/v1/devices/{device['uuid']}", json={"group": None, "keepalive_interval": None}
    )
    assert cleared.json()["group"] is None and cleared.json()["keepalive_interval"] is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("name", "x" * 121),
        ("name", None),
        ("client_identifier", "x" * 121),
        ("geo_country", "x" * 61),
        ("geo_city", "x" * 121),
        ("keepalive_interval", 5),
        ("name", "nul\u0000byte"),
    ],
)
async def test_update_limits_are_422_naming_the_field(api: Api, field: str, value: Any) -> None:
    admin = await api.organization()
    device = await admin.device()
    response = await admin.put(f"/api/v1/devices/{device['uuid']}", json={field: value})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == 4022
    assert response.json()["error"]


async def test_delete_removes_the_device_and_its_credentials(api: Api) -> None:
    admin = await api.organization()
    device = await admin.device()
    assert (await admin.delete(f"/api/v1/devices/{device['uuid']}")).status_code == 204
    assert (await admin.get(f"/api/v1/devices/{device['uuid']}")).status_code == 404
    assert (await admin.delete(f"/api/v1/devices/{device['uuid']}")).status_code == 404
    assert (await admin.get("/api/v1/devices")).json()["meta"]["total"] == 0


async def test_rotating_credentials_gives_a_new_token(api: Api) -> None:
    admin = await api.organization()
    device = await admin.device()
    response = await admin.post(f"/api/v1/devices/{device['uuid']}/credentials")
    assert response.status_code == 201
    new_token = response.json()["device_token"]
    assert new_token.startswith("vsd_") and new_token != device["device_token"]
    async with session_scope(api.state.sessionmaker, write=False) as session:
        found = await devices_service.device_for_token(session, new_token)
        assert found == uuid.UUID(device["uuid"])
        assert await devices_service.device_for_token(session, device["device_token"]) is None


async def test_standard_user_sees_only_the_devices_of_their_groups(api: Api) -> None:
    admin = await api.organization()
    mine = await admin.group("Mine")
    await admin.group("Theirs")
    visible = await admin.device(group="Mine")
    hidden = await admin.device(group="Theirs")
    loose = await admin.device()
    user = await admin.user(groups=[mine["id"]])
    body = (await user.get("/api/v1/devices")).json()
    assert [d["uuid"] for d in body["data"]] == [visible["uuid"]]
    assert body["meta"]["total"] == 1
    assert (await user.get(f"/api/v1/devices/{visible['uuid']}")).status_code == 200
    for other in (hidden, loose):
        assert (await user.get(f"/api/v1/devices/{other['uuid']}")).status_code == 404
    assert (await user.get("/api/v1/devices?group=Theirs")).json()["data"] == []
    assert (await user.get("/api/v1/devices?group=none")).json()["data"] == []


async def test_standard_user_is_read_only(api: Api) -> None:
    admin = await api.organization()
    group = await admin.group()
    device = await admin.device(group=group["name"])
    hidden = await admin.device()
    user = await admin.user(groups=[group["id"]])
    refused = await user.put(f"/api/v1/devices/{device['uuid']}", json={"name": "x"})
    assert refused.status_code == 403
    assert (await user.post("/api/v1/devices", json={"name": "x"})).status_code == 403
    assert (await user.delete(f"/api/v1/devices/{device['uuid']}")).status_code == 403
    # Outside their groups, even a write answers 404: existence does not leak.
    assert (
        await user.put(f"/api/v1/devices/{hidden['uuid']}", json={"name": "x"})
    ).status_code == 404


async def test_organizations_are_isolated(api: Api) -> None:
    first = await api.organization()
    second = await api.organization()
    theirs = await second.device(name="Theirs")
    await second.group("Shared name")
    await first.group("Shared name")
    assert (await first.get("/api/v1/devices")).json()["data"] == []
    for method, body in (("get", None), ("put", {"name": "x"}), ("delete", None)):
        response = await getattr(first, method)(
            f"/api/v1/devices/{theirs['uuid']}", **({"json": body} if body else {})
        )
        assert response.status_code == 404
    assert (await first.post(f"/api/v1/devices/{theirs['uuid']}/credentials")).status_code == 404
    response = await first.post("/api/v1/devices", json={"name": "x", "group": "Shared name"})
    assert response.status_code == 201
    assert (
        response.json()["group_id"] != (await second.get("/api/v1/groups")).json()["data"][0]["id"]
    )


async def test_total_follows_new_devices(api: Api) -> None:
    admin = await api.organization()
    await make_devices(admin, 3)
    assert (await admin.get("/api/v1/devices?per_page=2")).json()["meta"]["total"] == 3
    await admin.device()
    assert (await admin.get("/api/v1/devices?per_page=2")).json()["meta"]["total"] == 4


async def test_written_devices_match_their_documented_shapes(api: Api) -> None:
    # Devices are written by orjson from `DeviceView`; `Device` only documents them.
    fields = [field.name for field in dataclasses.fields(DeviceView)]
    assert fields == list(DeviceSchema.model_fields)
    assert fields == [column.key for column in DEVICE_COLUMNS]
    admin = await api.organization()
    await admin.group("North")
    onboarded = await admin.device(name="Shaped", group="North", app_type="VCZ")
    assert list(DeviceOnboarded.model_validate(onboarded).model_dump()) == list(onboarded)
    one = (await admin.get(f"/api/v1/devices/{onboarded['uuid']}")).json()
    assert list(DeviceSchema.model_validate(one).model_dump()) == list(one) == fields
    DeviceList.model_validate((await admin.get("/api/v1/devices")).json())


async def test_a_missing_permission_is_answered_before_bad_parameters(api: Api) -> None:
    admin = await api.organization()
    device = await admin.device()
    webhooks_only = api.as_token(await admin.personal_token(["webhooks:read"]))
    for path in (
        "/api/v1/devices?sort=colour&is_online=maybe&page=0",
        f"/api/v1/devices/{device['uuid']}?page=0",
        f"/api/v1/devices/{device['uuid']}/events?page=0",
        f"/api/v1/devices/{device['uuid']}/payloads?page=0&since=never",
        f"/api/v1/devices/{device['uuid']}/metrics?interval=5x",
        "/api/v1/devices/not-a-uuid/events?page=0",
    ):
        response = await webhooks_only.get(path)
        assert response.status_code == 403, path
        assert "devices:read" in response.json()["message"]


async def test_list_parameters_are_checked_in_order(api: Api) -> None:
    admin = await api.organization()
    device = (await admin.device())["uuid"]
    answers = {
        "/api/v1/devices?sort=colour&is_online=maybe&page=0": "`sort`",
        "/api/v1/devices?is_online=maybe&page=0": "`is_online`",
        "/api/v1/devices?page=0&per_page=0": "`page`",
        f"/api/v1/devices/{uuid.uuid4()}/events?page=0": "No such device.",
        "/api/v1/devices/not-a-uuid/payloads?page=0": "No such device.",
        f"/api/v1/devices/{device}/events?per_page=501": "`per_page`",
        f"/api/v1/devices/{device}/payloads?page=0&since=never": "`page`",
        f"/api/v1/devices/{device}/payloads?since=never&until=never": "`since`",
        f"/api/v1/devices/{device}/metrics?interval=5x&until=never": "`interval`",
        f"/api/v1/devices/{device}/metrics?until=never&since=never": "`until`",
    }
    for path, expected in answers.items():
        response = await admin.get(path)
        assert response.status_code in (400, 404), path
        assert response.json()["message"].startswith(expected), (path, response.text)


@pytest.mark.parametrize("descending", [False, True], ids=["asc", "desc"])
async def test_sort_by_online_status_breaks_ties_by_name_then_uuid(
    api: Api, descending: bool
) -> None:
    admin = await api.organization()
    now = datetime.now(UTC)
    devices = []
    for name, online in [("b", True), ("a", False), ("b", True), ("C", True), ("a", False)]:
        device = await admin.device(name=name)
        await set_status(api, device["uuid"], online=online, refreshed=now)
        devices.append((online, name.encode(), device["uuid"]))
    expected = [uuid for _, _, uuid in sorted(devices, reverse=descending)]

    sort = "-is_online" if descending else "is_online"
    body = (await admin.get("/api/v1/devices", params={"sort": sort})).json()

    assert [d["uuid"] for d in body["data"]] == expected
    first = 1 if descending else 0
    assert [d["is_online"] for d in body["data"]] == [first] * (3 if first else 2) + [1 - first] * (
        2 if first else 3
    )
    paged = [
        d["uuid"]
        for page in (1, 2, 3)
        for d in (
            await admin.get("/api/v1/devices", params={"sort": sort, "per_page": 2, "page": page})
        ).json()["data"]
    ]
    assert paged == expected
    message = (await admin.get("/api/v1/devices?sort=online")).json()["message"]
    assert "is_online" in message and "-is_online" in message


async def test_a_device_never_heard_from_was_refreshed_when_onboarded(api: Api) -> None:
    admin = await api.organization()
    device = await admin.device()
    listed = (await admin.get("/api/v1/devices")).json()["data"]
    assert [d["refreshed"] for d in listed] == [device["created"]]
    assert device["refreshed"].endswith("Z") and device["last_seen"] is None


async def test_the_migration_fills_a_null_refreshed(
    database_settings: Settings, tmp_path: Path
) -> None:
    """Devices onboarded before `refreshed` was set at onboarding get their last sign of
    life, else their onboarding time."""
    settings = await _empty_database(database_settings, tmp_path)
    await asyncio.to_thread(command.upgrade, alembic_config(settings), "0005")
    engine = create_engine(settings)
    onboarded = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    seen = onboarded + timedelta(hours=1)
    never, once, current = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            organization = Organization(name="old")
            session.add(organization)
            await session.flush()
            # Core, not the ORM: an explicit null, where the model would fill in a time;
            # and only the columns a device has at revision 0005.
            columns = Device.__table__.c
            names = (
                "uuid", "organization_id", "name", "client_identifier", "geo_city",
                "geo_country", "is_online", "created", "updated", "last_seen", "refreshed",
            )  # fmt: skip
            await session.execute(
                insert(sa.table("devices", *(sa.column(n, columns[n].type) for n in names))),
                [
                    {
                        "uuid": device_uuid,
                        "organization_id": organization.id,
                        "name": str(device_uuid),
                        "client_identifier": "",
                        "geo_city": "",
                        "geo_country": "",
                        "is_online": False,
                        "created": onboarded,
                        "updated": onboarded,
                        "last_seen": last_seen,
                        "refreshed": refreshed,
                    }
                    for device_uuid, last_seen, refreshed in [
                        (never, None, None),
                        (once, seen, None),
                        (current, seen, seen + timedelta(minutes=1)),
                    ]
                ],
            )
        await upgrade_async(settings)
        async with session_scope(create_sessionmaker(engine)) as session:
            rows = dict((await session.execute(select(Device.uuid, Device.refreshed))).all())
    finally:
        await engine.dispose()
        await _drop(settings)
    assert rows == {never: onboarded, once: seen, current: seen + timedelta(minutes=1)}


async def _empty_database(settings: Settings, tmp_path: Path) -> Settings:
    """A new, empty database of the same backend as `settings`."""
    if settings.is_embedded_database:
        return load_settings(data_dir=tmp_path, environment="test", secret_key=TEST_SECRET)
    url = make_url(settings.resolved_database_url)
    name = f"{url.database}_backfill"
    admin = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    return load_settings(
        data_dir=tmp_path,
        environment="test",
        secret_key=TEST_SECRET,
        database_url=url.set(database=name).render_as_string(hide_password=False),
    )


async def _drop(settings: Settings) -> None:
    if settings.is_embedded_database:
        return
    url = make_url(settings.resolved_database_url)
    admin = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{url.database}"'))
    await admin.dispose()
