"""Alerts end to end: rules through the API, device messages in, FIRING and CLEARING out,
in the history and to a real HTTP receiver, on both databases."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, text
from time_machine import TimeMachineFixture

from tests.factories import ZONE, Api, Caller, Sensor, in_one_group, sensor, vcz
from tests.receiver import Receiver, running_receiver
from vsense.alerts import repository as alerts_repository
from vsense.alerts.engine import Standing
from vsense.alerts.evaluation import evaluate_values
from vsense.app import create_app
from vsense.components import Components
from vsense.config import Settings
from vsense.db import create_engine, create_sessionmaker, session_scope
from vsense.kit.time import isoformat, utcnow
from vsense.models import Webhook
from vsense.webhooks.dispatcher import Dispatcher, close_sender
from vsense.worker import BackgroundRuntime


@pytest.fixture
async def state(database_settings: Settings, shared_engine: Any) -> AsyncIterator[Components]:
    """State whose webhooks may target the loopback receiver."""
    settings = database_settings.model_copy(update={"webhook_allow_private": True})
    state = Components.for_server(settings, shared_engine)
    yield state
    await close_sender(state)


@pytest.fixture(autouse=True)
async def no_leftover_webhooks(state: Components) -> AsyncIterator[None]:
    """The dispatcher claims from the whole database: webhooks go after each test."""
    yield
    async with session_scope(state.sessionmaker) as session:
        await session.execute(delete(Webhook))


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as running:
        yield running


def hall_rule(device: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": "Hall crowded",
        "device_uuid": device,
        "metric": "count",
        "reference_marker": "Z-0",
        "rule": "GREATER_THAN",
        "trigger_value": 100,
        "clearing_value": 90,
        "severity": "critical",
        **fields,
    }


def total_below_5(device: str, name: str) -> dict[str, Any]:
    """A rule on the device's total count: fires below 5, clears from 10."""
    return hall_rule(
        device,
        name=name,
        reference_marker=None,
        rule="LESS_THAN",
        trigger_value=5,
        clearing_value=10,
    )


async def add_rule(admin: Caller, body: dict[str, Any]) -> dict[str, Any]:
    response = await admin.post("/api/v1/alert-rules", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def alerts(caller: Caller, **params: Any) -> list[dict[str, Any]]:
    response = await caller.get("/api/v1/alerts", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def vcz_sensor(admin: Caller, **fields: Any) -> Sensor:
    device = await sensor(admin, app_type="VCZ", **fields)
    assert (await device.keepalive()).status_code == 200
    return device


async def send(device: Sensor, count: int, timestamp: int | None = None) -> None:
    response = await device.send(vcz(count, timestamp))
    assert response.status_code == 202, response.text


async def deliver(state: Components) -> None:
    try:
        await Dispatcher(state).run_once()
    finally:
        await close_sender(state)


class Clock:
    """The process's clock, moved with time-machine: whatever reads the time (`utcnow`,
    `time.time`) sees it moved, and time itself is not waited for."""

    def __init__(self, machine: TimeMachineFixture) -> None:
        self.machine = machine
        machine.move_to(utcnow(), tick=True)

    def advance(self, **delta: float) -> None:
        self.machine.shift(timedelta(**delta))


@pytest.fixture
def clock(time_machine: TimeMachineFixture) -> Clock:
    return Clock(time_machine)


# Rules API ---------------------------------------------------------------------------


async def test_rule_crud(api: Api) -> None:
    admin = await api.organization()
    device = await vcz_sensor(admin)
    created = await add_rule(admin, hall_rule(device.uuid, for_s=60))
    assert created["rule"] == "GREATER_THAN"
    assert (created["trigger_value"], created["clearing_value"]) == (100, 90)
    assert created["for_s"] == 60 and created["enabled"] is True

    listed = (await admin.get("/api/v1/alert-rules")).json()
    assert [r["id"] for r in listed["data"]] == [created["id"]]
    assert listed["meta"]["total"] == 1
    updated = await admin.put(
        f"/api/v1/alert-rules/{created['id']}", json={"trigger_value": 120, "name": "Busy"}
    )
    assert updated.status_code == 200, updated.text
    assert (updated.json()["trigger_value"], updated.json()["name"]) == (120, "Busy")
    got = await admin.get(f"/api/v1/alert-rules/{created['id']}")
    assert got.json()["trigger_value"] == 120
    assert (await admin.delete(f"/api/v1/alert-rules/{created['id']}")).status_code == 204
    assert (await admin.get(f"/api/v1/alert-rules/{created['id']}")).status_code == 404


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"trigger_value": 90, "clearing_value": 100}, "clearing_value"),
        ({"rule": "LESS_THAN", "trigger_value": 20, "clearing_value": 10}, "clearing_value"),
        ({"trigger_value": None}, "trigger_value"),
        ({"metric": "occupied"}, "metric"),
        ({"rule": "NO_DATA", "for_s": None}, "for_s"),
        ({"device_uuid": None}, "app_type"),
    ],
)
async def test_invalid_rules_are_422_naming_the_field(
    api: Api, fields: dict[str, Any], field: str
) -> None:
    admin = await api.organization()
    device = await vcz_sensor(admin)
    response = await admin.post("/api/v1/alert-rules", json=hall_rule(device.uuid, **fields))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == 4022
    assert field in [e["field"] for e in body["error"]]


async def test_standard_users_read_the_rules_of_their_devices_and_write_none(api: Api) -> None:
    admin = await api.organization()
    group = await admin.group()
    theirs = await vcz_sensor(admin, group=group["name"])
    other = await vcz_sensor(admin)
    visible = await add_rule(admin, hall_rule(theirs.uuid))
    await add_rule(admin, hall_rule(other.uuid))
    by_group = await add_rule(
        admin, {**hall_rule(theirs.uuid), "device_uuid": None, "group": group["name"]}
    )
    by_type = await add_rule(
        admin, {**hall_rule(theirs.uuid), "device_uuid": None, "app_type": "VCZ"}
    )
    await add_rule(admin, {**hall_rule(theirs.uuid), "device_uuid": None, "app_type": "VCW"})
    user = await admin.user(groups=[group["name"]])

    listed = (await user.get("/api/v1/alert-rules")).json()["data"]
    assert sorted(r["id"] for r in listed) == sorted([visible["id"], by_group["id"], by_type["id"]])
    refused = await user.post("/api/v1/alert-rules", json=hall_rule(theirs.uuid))
    assert refused.status_code == 403
    assert (await user.delete(f"/api/v1/alert-rules/{visible['id']}")).status_code == 403
    reader = api.as_token(await admin.personal_token(["alerts:read"]))
    assert (await reader.get("/api/v1/alert-rules")).status_code == 200
    assert (
        await reader.post("/api/v1/alert-rules", json=hall_rule(theirs.uuid))
    ).status_code == 403


# Evaluation at ingest ----------------------------------------------------------------


async def test_a_value_rule_fires_and_clears_from_messages(api: Api) -> None:
    admin = await api.organization()
    device = await vcz_sensor(admin)
    rule = await add_rule(admin, hall_rule(device.uuid))
    now = int(time.time())

    await send(device, 50, now - 30)
    assert await alerts(admin) == []
    await send(device, 120, now - 20)
    (firing,) = await alerts(admin, state="firing")
    assert firing["rule_id"] == rule["id"] and firing["fired_value"] == 120
    assert firing["reference_marker"] == {"uuid": ZONE, "name": "Z-0"}
    assert firing["fired_state"] == "LIMIT_REACHED"
    await send(device, 95, now - 10)  # between: still firing
    assert len(await alerts(admin, state="firing")) == 1
    await send(device, 80, now)
    assert await alerts(admin, state="firing") == []
    (cleared,) = await alerts(admin, state="cleared")
    assert cleared["uuid"] == firing["uuid"]
    assert (cleared["cleared_state"], cleared["cleared_value"]) == ("LIMIT_CLEARED", 80)
    got = await admin.get(f"/api/v1/alerts/{cleared['clearing_uuid']}")
    assert got.json()["uuid"] == firing["uuid"]


async def test_one_batch_can_fire_and_clear(api: Api) -> None:
    admin = await api.organization()
    device = await vcz_sensor(admin)
    await add_rule(admin, hall_rule(device.uuid))
    now = int(time.time())
    batch = [vcz(120, now - 20), vcz(95, now - 10), vcz(10, now)]
    assert (await device.send(batch)).status_code == 202
    (episode,) = await alerts(admin)
    assert (episode["state"], episode["fired_value"], episode["cleared_value"]) == (
        "cleared",
        120,
        10,
    )


async def test_rules_reading_one_marker_and_the_total_each_judge_the_batch(api: Api) -> None:
    # Two rules read the zone, a third the device total and a fourth another zone: each
    # fires on its own threshold from the same batch.
    admin = await api.organization()
    device = await vcz_sensor(admin)
    await add_rule(admin, hall_rule(device.uuid, name="above 100"))
    await add_rule(admin, hall_rule(device.uuid, name="above 150", trigger_value=150))
    await add_rule(admin, total_below_5(device.uuid, "total below 5"))
    await add_rule(
        admin,
        hall_rule(
            device.uuid,
            name="other zone",
            reference_marker="Z-9",
            trigger_value=1,
            clearing_value=0,
        ),
    )
    now = int(time.time())
    batch = [vcz(120, now - 20), vcz(3, now - 10), vcz(95, now)]
    assert (await device.send(batch)).status_code == 202
    episodes = {episode["rule_name"]: episode for episode in await alerts(admin)}
    assert sorted(episodes) == ["above 100", "total below 5"]
    assert (episodes["above 100"]["state"], episodes["above 100"]["fired_value"]) == (
        "cleared",
        120,
    )
    assert episodes["above 100"]["cleared_value"] == 3
    total = episodes["total below 5"]
    assert (total["state"], total["fired_value"], total["cleared_value"]) == ("cleared", 3, 95)
    assert total["reference_marker"] is None


async def test_a_batch_is_judged_in_the_time_order_of_its_messages(api: Api) -> None:
    # Sent out of order: in time order the zone fires on 120 and clears on 3, and the
    # total fires on 3 and clears on 95; in the order sent the zone would still fire.
    admin = await api.organization()
    device = await vcz_sensor(admin)
    await add_rule(admin, hall_rule(device.uuid, name="zone"))
    await add_rule(admin, total_below_5(device.uuid, "total"))
    now = int(time.time())
    batch = [vcz(3, now - 10), vcz(95, now), vcz(120, now - 20)]
    assert (await device.send(batch)).status_code == 202

    def at(epoch: int) -> str:
        return isoformat(datetime.fromtimestamp(epoch, UTC))

    episodes = {episode["rule_name"]: episode for episode in await alerts(admin)}
    zone, total = episodes["zone"], episodes["total"]
    assert (zone["state"], zone["fired_value"], zone["cleared_value"]) == ("cleared", 120, 3)
    assert (zone["fired_at"], zone["cleared_at"]) == (at(now - 20), at(now - 10))
    assert (total["state"], total["fired_value"], total["cleared_value"]) == ("cleared", 3, 95)
    assert (total["fired_at"], total["cleared_at"]) == (at(now - 10), at(now))


async def test_a_device_s_batches_in_one_group_are_evaluated_in_turn(
    api: Api, state: Components
) -> None:
    # The group reads the rules of all its devices at once; a device's later batch in
    # the group sees the episode its earlier one opened.
    admin = await api.organization()
    device, other = await vcz_sensor(admin), await vcz_sensor(admin)
    await add_rule(admin, hall_rule(device.uuid))
    await add_rule(admin, hall_rule(other.uuid))
    now = int(time.time())
    responses = await in_one_group(
        state,
        [
            device.send(vcz(120, now - 20)),
            other.send(vcz(130, now - 20)),
            device.send(vcz(10, now - 10)),
        ],
    )
    assert [r.status_code for r in responses] == [202, 202, 202]
    (cleared,) = await alerts(admin, state="cleared")
    assert (cleared["fired_value"], cleared["cleared_value"]) == (120, 10)
    (firing,) = await alerts(admin, state="firing")
    assert firing["fired_value"] == 130


async def test_the_device_total_and_app_type_rules(api: Api) -> None:
    admin = await api.organization()
    device = await vcz_sensor(admin)
    await add_rule(
        admin,
        {
            "name": "every VCZ",
            "app_type": "VCZ",
            "metric": "count",
            "rule": "LESS_THAN",
            "trigger_value": 1,
            "clearing_value": 5,
        },
    )
    await send(device, 0)
    (episode,) = await alerts(admin, device_uuid=device.uuid)
    assert episode["reference_marker"] is None and episode["fired_value"] == 0


async def test_for_s_fires_on_a_later_value_or_on_the_sweep(api: Api, clock: Clock) -> None:
    admin = await api.organization()
    device = await vcz_sensor(admin)
    await add_rule(admin, hall_rule(device.uuid, for_s=120, clear_for_s=60))
    now = int(time.time())
    await send(device, 150, now - 200)
    await send(device, 150, now - 100)  # 100 s held: not yet
    assert await alerts(admin) == []
    await send(device, 140, now - 80)  # 120 s held
    (firing,) = await alerts(admin, state="firing")
    assert firing["fired_value"] == 140

    await send(device, 10, now)  # below the clearing value, for 60 s to come
    runtime = BackgroundRuntime(api.state)
    clock.advance(seconds=30)
    await runtime.alert_sweep()
    assert len(await alerts(admin, state="firing")) == 1
    clock.advance(seconds=31)
    await runtime.alert_sweep()
    (cleared,) = await alerts(admin, state="cleared")
    assert cleared["cleared_value"] == 10


async def test_editing_a_rule_applies_to_the_next_value(api: Api) -> None:
    admin = await api.organization()
    device = await vcz_sensor(admin)
    rule = await add_rule(admin, hall_rule(device.uuid))
    await send(device, 120)
    assert len(await alerts(admin, state="firing")) == 1
    edited = await admin.put(
        f"/api/v1/alert-rules/{rule['id']}", json={"trigger_value": 200, "clearing_value": 150}
    )
    assert edited.status_code == 200
    assert len(await alerts(admin, state="firing")) == 1  # the episode goes on
    await send(device, 140)  # below the new clearing value
    (episode,) = await alerts(admin)
    assert (episode["state"], episode["cleared_value"]) == ("cleared", 140)


@pytest.mark.parametrize(
    ("change", "state_name"),
    [("disable", "RULE_DISABLED"), ("delete", "RULE_DELETED"), ("retarget", "RULE_CHANGED")],
)
async def test_ending_a_firing_rule_sends_a_clearing_that_says_why(
    api: Api, receiver: Receiver, change: str, state_name: str
) -> None:
    admin = await api.organization()
    device = await vcz_sensor(admin)
    await hook(admin, device.uuid, receiver.on("/alerts"))
    rule = await add_rule(admin, hall_rule(device.uuid))
    await send(device, 120)
    path = f"/api/v1/alert-rules/{rule['id']}"
    if change == "disable":
        assert (await admin.put(path, json={"enabled": False})).status_code == 200
    elif change == "delete":
        assert (await admin.delete(path)).status_code == 204
    else:
        assert (await admin.put(path, json={"reference_marker": "Z-9"})).status_code == 200
    await deliver(api.state)

    bodies = [json.loads(r.body)["alert"][0] for r in receiver.to("/alerts")]
    assert [(b["type"], b["state"]) for b in bodies] == [
        ("FIRING", "LIMIT_REACHED"),
        ("CLEARING", state_name),
    ]
    assert bodies[1]["previous_uuid"] == bodies[0]["uuid"]
    (episode,) = await alerts(admin)
    assert episode["cleared_state"] == state_name
    if change == "disable":  # enabled again, it starts afresh and fires again
        assert (await admin.put(path, json={"enabled": True})).status_code == 200
        await send(device, 130)
        assert len(await alerts(admin, state="firing")) == 1


async def test_group_rules_follow_the_membership(api: Api) -> None:
    admin = await api.organization()
    group = await admin.group()
    device = await vcz_sensor(admin)
    rule = await add_rule(
        admin, {**hall_rule(device.uuid), "device_uuid": None, "group": group["name"]}
    )
    await send(device, 120)
    assert await alerts(admin) == []  # not in the group yet

    joined = await admin.put(f"/api/v1/devices/{device.uuid}", json={"group": group["name"]})
    assert joined.status_code == 200
    await send(device, 121)
    assert len(await alerts(admin, state="firing")) == 1

    other = await vcz_sensor(admin, group=group["name"])
    await send(other, 150)
    assert len(await alerts(admin, state="firing")) == 2

    left = await admin.put(f"/api/v1/devices/{device.uuid}", json={"group": None})
    assert left.status_code == 200
    await BackgroundRuntime(api.state).alert_sweep()
    (episode,) = await alerts(admin, device_uuid=device.uuid)
    assert episode["cleared_state"] == "OUT_OF_SCOPE"
    await send(device, 130)
    (still,) = await alerts(admin, state="firing")
    assert still["device_uuid"] == other.uuid

    # The rule moved to one device: the group's other device leaves its scope at once.
    moved = await admin.put(f"/api/v1/alert-rules/{rule['id']}", json={"device_uuid": device.uuid})
    assert moved.status_code == 200 and moved.json()["group"] is None
    (ended,) = await alerts(admin, device_uuid=other.uuid)
    assert ended["cleared_state"] == "OUT_OF_SCOPE"
    await send(device, 140)
    (again,) = await alerts(admin, state="firing")
    assert again["device_uuid"] == device.uuid


async def test_a_group_named_by_rules_is_kept_until_they_go(api: Api) -> None:
    admin = await api.organization()
    group = await admin.group()
    device = await vcz_sensor(admin, group=group["name"])
    rule = await add_rule(
        admin, {**hall_rule(device.uuid), "device_uuid": None, "group": group["id"]}
    )
    assert rule["group"] == group["name"] and rule["group_id"] == group["id"]
    assert (await admin.delete(f"/api/v1/groups/{group['id']}")).status_code == 409
    assert (await admin.delete(f"/api/v1/alert-rules/{rule['id']}")).status_code == 204
    assert (await admin.delete(f"/api/v1/groups/{group['id']}")).status_code == 204


async def test_an_episode_survives_a_restart(
    api: Api, database_settings: Settings, shared_engine: Any
) -> None:
    admin = await api.organization()
    device = await vcz_sensor(admin)
    await add_rule(admin, hall_rule(device.uuid))
    await send(device, 120)
    (firing,) = await alerts(admin, state="firing")

    # A new process: fresh state and application over the same database.
    fresh = Components.for_server(database_settings, shared_engine)
    transport = httpx.ASGITransport(app=create_app(state=fresh))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        device.client = http
        await send(device, 130)  # still above: no second FIRING
        await send(device, 50)
    (episode,) = await alerts(admin)
    assert episode["uuid"] == firing["uuid"] and episode["state"] == "cleared"


# Time rules --------------------------------------------------------------------------


async def test_no_data_fires_for_a_silent_online_device_and_clears_on_data(
    api: Api, clock: Clock
) -> None:
    admin = await api.organization()
    device = await vcz_sensor(admin)
    await send(device, 3)
    await add_rule(
        admin, {"name": "blind", "device_uuid": device.uuid, "rule": "NO_DATA", "for_s": 600}
    )
    runtime = BackgroundRuntime(api.state)
    clock.advance(seconds=590)
    await runtime.alert_sweep()
    assert await alerts(admin) == []
    clock.advance(seconds=20)
    await runtime.alert_sweep()
    (firing,) = await alerts(admin, state="firing")
    assert firing["fired_state"] == "NO_DATA" and firing["fired_value"] >= 600
    clock.advance(seconds=60)
    await runtime.alert_sweep()
    assert len(await alerts(admin, state="firing")) == 1
    await send(device, 4)
    clock.advance(seconds=15)
    await runtime.alert_sweep()
    (cleared,) = await alerts(admin, state="cleared")
    assert cleared["cleared_state"] == "DATA_RESUMED"


async def test_offline_fires_after_for_s_and_clears_when_back(api: Api, clock: Clock) -> None:
    admin = await api.organization()
    device = await sensor(admin, app_type="VCZ")  # never seen: offline since onboarding
    await add_rule(
        admin, {"name": "gone", "device_uuid": device.uuid, "rule": "OFFLINE", "for_s": 900}
    )
    runtime = BackgroundRuntime(api.state)
    clock.advance(seconds=800)
    await runtime.alert_sweep()
    assert await alerts(admin) == []
    clock.advance(seconds=101)
    await runtime.alert_sweep()
    clock.advance(seconds=600)
    await runtime.alert_sweep()
    (firing,) = await alerts(admin, state="firing")
    assert firing["fired_value"] >= 900
    assert (await device.keepalive()).status_code == 200
    await runtime.alert_sweep()
    (episode,) = await alerts(admin)
    assert (episode["fired_state"], episode["cleared_state"]) == ("DEVICE_OFFLINE", "DEVICE_ONLINE")


async def test_frozen_fires_on_an_unchanging_metric_and_clears_on_a_change(
    api: Api, clock: Clock
) -> None:
    admin = await api.organization()
    device = await vcz_sensor(admin)
    await add_rule(
        admin,
        {
            "name": "stuck",
            "device_uuid": device.uuid,
            "rule": "FROZEN",
            "metric": "count",
            "reference_marker": ZONE,
            "for_s": 1800,
        },
    )
    await send(device, 7)
    clock.advance(seconds=60)
    await send(device, 7)  # the same value: it has held since the first
    runtime = BackgroundRuntime(api.state)
    clock.advance(seconds=1700)
    await runtime.alert_sweep()
    assert await alerts(admin) == []
    clock.advance(seconds=45)
    await runtime.alert_sweep()
    (firing,) = await alerts(admin, state="firing")
    assert (firing["fired_state"], firing["fired_value"]) == ("VALUE_FROZEN", 7)
    await send(device, 8)
    (cleared,) = await alerts(admin, state="cleared")
    assert (cleared["cleared_state"], cleared["cleared_value"]) == ("VALUE_CHANGED", 8)


# Delivery ----------------------------------------------------------------------------


async def hook(admin: Caller, device: str, url: str) -> dict[str, Any]:
    response = await admin.post(
        "/api/v1/webhooks", params={"device_uuid": device}, json={"url": url, "actions": "alert"}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_the_alert_webhook_is_the_vendors_format(api: Api, receiver: Receiver) -> None:
    admin = await api.organization()
    device = await vcz_sensor(admin)
    await hook(admin, device.uuid, receiver.on("/alerts"))
    await add_rule(admin, hall_rule(device.uuid))
    now = int(time.time())
    await send(device, 112, now - 10)
    await send(device, 85, now)
    await deliver(api.state)

    firing, clearing = (json.loads(r.body) for r in receiver.to("/alerts"))
    alert_uuid = firing["alert"][0]["uuid"]
    # The spec's example, key for key (spec/delivery.md, "alert").
    assert firing == {
        "version": 1,
        "stream_id": device.uuid,
        "type": "VCZ",
        "timestamp": now - 10,
        "alert": [
            {
                "uuid": alert_uuid,
                "rule_summary": {
                    "rule": "GREATER_THAN",
                    "trigger_value": 100,
                    "clearing_value": 90,
                },
                "deviceUuid": device.uuid,
                "app_type": "VCZ",
                "actual_value": 112,
                "timestamp": now - 10,
                "type": "FIRING",
                "state": "LIMIT_REACHED",
                "reference_marker": {"uuid": ZONE, "name": "Z-0"},
            }
        ],
    }
    assert clearing["alert"][0] == {
        "uuid": clearing["alert"][0]["uuid"],
        "rule_summary": {"rule": "GREATER_THAN", "trigger_value": 100, "clearing_value": 90},
        "deviceUuid": device.uuid,
        "app_type": "VCZ",
        "actual_value": 85,
        "timestamp": now,
        "type": "CLEARING",
        "state": "LIMIT_CLEARED",
        "reference_marker": {"uuid": ZONE, "name": "Z-0"},
        "previous_uuid": alert_uuid,
    }
    assert clearing["alert"][0]["uuid"] != alert_uuid


async def test_only_webhooks_taking_alerts_get_them(api: Api, receiver: Receiver) -> None:
    admin = await api.organization()
    device = await vcz_sensor(admin)
    await hook(admin, device.uuid, receiver.on("/alerts"))
    response = await admin.post(
        "/api/v1/webhooks",
        params={"device_uuid": device.uuid},
        json={"url": receiver.on("/payloads"), "actions": "payload"},
    )
    assert response.status_code == 201
    await add_rule(admin, hall_rule(device.uuid))
    await send(device, 150)
    await deliver(api.state)
    assert [json.loads(r.body)["alert"][0]["type"] for r in receiver.to("/alerts")] == ["FIRING"]
    assert ["alert" not in json.loads(r.body) for r in receiver.to("/payloads")] == [True]


# History -----------------------------------------------------------------------------


async def test_alerts_are_filtered_paged_and_acknowledged(api: Api) -> None:
    admin = await api.organization()
    first = await vcz_sensor(admin)
    second = await vcz_sensor(admin)
    rule = await add_rule(admin, hall_rule(first.uuid))
    await add_rule(admin, hall_rule(second.uuid, severity="info"))
    await send(first, 120)
    await send(first, 50)
    await send(first, 130)
    await send(second, 150)

    assert len(await alerts(admin)) == 3
    assert len(await alerts(admin, state="firing")) == 2
    assert len(await alerts(admin, device_uuid=first.uuid)) == 2
    assert len(await alerts(admin, rule_id=rule["id"], state="cleared")) == 1
    assert [a["device_uuid"] for a in await alerts(admin, severity="info")] == [second.uuid]
    assert await alerts(admin, since=(utcnow() + timedelta(minutes=1)).isoformat()) == []
    assert len(await alerts(admin, until=(utcnow() + timedelta(minutes=1)).isoformat())) == 3
    page = (await admin.get("/api/v1/alerts", params={"per_page": 2, "page": 2})).json()
    assert page["meta"]["total"] == 3 and len(page["data"]) == 1
    bad = await admin.get("/api/v1/alerts", params={"state": "open"})
    assert bad.status_code == 400

    target = (await alerts(admin, severity="info"))[0]
    acked = await admin.post(f"/api/v1/alerts/{target['uuid']}/ack", json={"note": "on it"})
    assert acked.status_code == 200, acked.text
    assert acked.json()["ack_note"] == "on it"
    assert acked.json()["acknowledged_by"] == admin.email
    assert acked.json()["state"] == "firing"  # acknowledging silences nothing
    plain = await admin.post(f"/api/v1/alerts/{target['uuid']}/ack")
    assert plain.status_code == 200


async def test_standard_users_see_the_alerts_of_their_devices_only(api: Api) -> None:
    admin = await api.organization()
    group = await admin.group()
    theirs = await vcz_sensor(admin, group=group["name"])
    other = await vcz_sensor(admin)
    await add_rule(admin, hall_rule(theirs.uuid))
    await add_rule(admin, hall_rule(other.uuid))
    await send(theirs, 120)
    await send(other, 120)
    user = await admin.user(groups=[group["name"]])
    seen = await alerts(user)
    assert [a["device_uuid"] for a in seen] == [theirs.uuid]
    hidden = next(a for a in await alerts(admin) if a["device_uuid"] == other.uuid)
    assert (await user.get(f"/api/v1/alerts/{hidden['uuid']}")).status_code == 404
    stranger = await api.organization()
    assert await alerts(stranger) == []


async def test_ended_alerts_are_purged_after_the_retention(api: Api) -> None:
    admin = await api.organization()
    device = await vcz_sensor(admin)
    await add_rule(admin, hall_rule(device.uuid))
    await send(device, 120)
    await send(device, 50)
    await send(device, 120)
    retention = api.state.settings.payload_retention
    await BackgroundRuntime(api.state).purge_once(utcnow() + retention + timedelta(seconds=60))
    (kept,) = await alerts(admin)
    assert kept["state"] == "firing"


# Concurrency -------------------------------------------------------------------------


async def _lock_waiters(engine: Any) -> int:
    async with engine.connect() as connection:
        found = await connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
        )
    return int(found or 0)


async def test_two_processes_evaluating_one_device_at_once_fire_once(
    api: Api, database_settings: Settings, backend: str
) -> None:
    admin = await api.organization()
    device = await vcz_sensor(admin)
    await add_rule(admin, hall_rule(device.uuid))
    at = int(time.time())
    rows = [
        {
            "message_id": 1,
            "epoch": at,
            "name": "count",
            "value": 150.0,
            "marker_id": ZONE,
            "marker_name": "Z-0",
        }
    ]
    emitted: list[Any] = []

    async def emit(session: Any, items: Any) -> int:
        emitted.extend(items)
        return len(items)

    # The second evaluation runs on an engine of its own, as another process would.
    other = create_engine(database_settings)
    try:

        async def evaluate(sessionmaker: Any) -> int:
            async with session_scope(sessionmaker) as session:
                return await evaluate_values(session, emit, uuid.UUID(device.uuid), rows, utcnow())

        async with session_scope(api.state.sessionmaker) as first:
            assert await evaluate_values(first, emit, uuid.UUID(device.uuid), rows, utcnow()) == 1
            second = asyncio.create_task(evaluate(create_sessionmaker(other)))
            if backend == "postgresql":  # the second waits on the first's row lock
                async with asyncio.timeout(10):
                    while await _lock_waiters(other) == 0:  # noqa: ASYNC110 - another connection's state
                        await asyncio.sleep(0.01)
            else:  # the second waits for the write lock (BEGIN IMMEDIATE)
                await asyncio.sleep(0)
        assert await second == 0
    finally:
        await other.dispose()
    assert [item[2]["alert"][0]["type"] for item in emitted] == ["FIRING"]
    assert len(await alerts(admin)) == 1


async def test_a_rule_deleted_under_an_evaluation_costs_the_batch_nothing(api: Api) -> None:
    admin = await api.organization()
    device = await vcz_sensor(admin)
    async with session_scope(api.state.sessionmaker) as session:
        written = await alerts_repository.compare_and_set(
            session,
            rule_id=2_000_000_000,  # no such rule: as if deleted by another process
            device=uuid.UUID(device.uuid),
            marker_key="",
            marker_name=None,
            read=alerts_repository.new_state(),
            standing=Standing(firing=True),
            alert_uuid=None,
            now=utcnow(),
        )
        assert written is False
        # The transaction goes on: the device's messages would still be stored.
        assert (await session.execute(text("SELECT 1"))).scalar() == 1
