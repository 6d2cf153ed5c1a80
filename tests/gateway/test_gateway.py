"""The device-facing API: identity, keepalives, payloads, commands, liveness."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from tests.factories import ZONE, Api, in_one_group, sensor, vcz
from vsense.components import Components
from vsense.db import session_scope
from vsense.device_auth.identity import DeviceIdentity
from vsense.gateway import liveness as liveness_module
from vsense.kit.time import utcnow
from vsense.models import DeviceCommand, DeviceMetric, PayloadMessage
from vsense.worker import BackgroundRuntime

LINE = "6fa459ea-ee8a-3ca4-894e-db77e160355e"


def vcb(entered: int, left: int, timestamp: int) -> dict[str, Any]:
    return {
        "type": "VCB",
        "timestamp": timestamp,
        "version": 1,
        "payload": [
            {
                "id": LINE,
                "name": "Entrance",
                "in": entered,
                "out": left,
                "by_class": {"person": {"in": entered, "out": left}},
                "period_start": timestamp - 60,
                "period_end": timestamp,
            }
        ],
    }


async def test_first_keepalive_brings_a_device_online_with_an_event(api: Api) -> None:
    admin = await api.organization()
    device = await sensor(admin, app_type="VCZ")
    response = await device.keepalive({"fw_version": "1.2.3", "uptime_s": 42})
    assert response.status_code == 200
    assert response.json() == {"commands": []}
    shown = (await admin.get(f"/api/v1/devices/{device.uuid}")).json()
    assert shown["is_online"] == 1 and shown["status_reason"] == "keepalive"
    assert shown["refreshed"] is not None and shown["last_seen"] is not None
    events = (await admin.get(f"/api/v1/devices/{device.uuid}/events")).json()
    assert [(e["status"], e["reason"]) for e in events["data"]] == [("online", "keepalive")]


async def test_tokens_do_not_cross_between_users_and_devices(api: Api) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    for header in (admin.headers, {}, {"Authorization": "Bearer vsd_forged"}):
        response = await admin.client.post("/device/v1/keepalive", headers=header)
        assert response.status_code == 401
        assert response.json()["code"] == 4001
    assert (await admin.client.get("/api/v1/me", headers=device.headers)).status_code == 401


async def test_rotated_device_token_stops_working(api: Api) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    await admin.post(f"/api/v1/devices/{device.uuid}/credentials")
    assert (await device.keepalive()).status_code == 401


async def test_keepalives_of_online_devices_are_written_in_one_batch(api: Api) -> None:
    admin = await api.organization()
    devices = [await sensor(admin) for _ in range(3)]
    for device in devices:
        await device.keepalive()
    before = {
        d.uuid: (await admin.get(f"/api/v1/devices/{d.uuid}")).json()["last_seen"] for d in devices
    }
    await asyncio.sleep(1.1)  # last_seen has whole seconds
    for device in devices:
        await device.keepalive()
    assert api.state.liveness.pending == 3
    assert await api.state.liveness.flush() == 3
    for device in devices:
        shown = (await admin.get(f"/api/v1/devices/{device.uuid}")).json()
        assert shown["last_seen"] > before[device.uuid]
        assert shown["is_online"] == 1


async def test_a_device_back_online_writes_nothing_more_while_its_cached_identity_is_stale(
    api: Api,
) -> None:
    """Its identity, cached as it came back, says offline for a while: its signs of
    life after the next flush still join the batch, with no write of their own."""
    admin = await api.organization()
    device = await sensor(admin)
    await device.keepalive()  # back online, written at once; its identity was cached offline
    assert await api.state.liveness.flush() == 1
    device_writes: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE DEVICES"):
            device_writes.append(statement)

    engine = api.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert (await device.keepalive()).status_code == 200
        assert (await device.send(vcz(3))).status_code == 202
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert device_writes == []
    assert api.state.liveness.pending == 1
    events = (await admin.get(f"/api/v1/devices/{device.uuid}/events")).json()["data"]
    assert [(e["status"], e["reason"]) for e in events] == [("online", "keepalive")]


async def test_a_written_batch_vouches_for_its_devices_only_while_an_identity_may_be_stale(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    liveness = api.state.liveness
    admin = await api.organization()
    device = await sensor(admin)
    await device.keepalive()
    assert await liveness.flush() == 1
    stale = DeviceIdentity(uuid.UUID(device.uuid), 1, is_online=False, keepalive_interval=None)
    assert liveness.known_online(stale)
    later = time.monotonic() + api.state.settings.auth_cache_ttl.total_seconds() + 1
    monkeypatch.setattr(liveness_module.time, "monotonic", lambda: later)
    assert not liveness.known_online(stale)


async def test_sweep_marks_overdue_devices_offline_with_a_reason(api: Api) -> None:
    admin = await api.organization()
    await admin.group("Fast", keepalive_interval=60)
    default = await sensor(admin)
    grouped = await sensor(admin, group="Fast")
    own = await sensor(admin, group="Fast", keepalive_interval=20)
    for device in (default, grouped, own):
        await device.keepalive()
    runtime = BackgroundRuntime(api.state)
    now = utcnow()

    async def online_after(seconds: float) -> set[str]:
        await runtime.sweep_once(now + timedelta(seconds=seconds))
        listing = await admin.get("/api/v1/devices?is_online=Online")
        return {d["uuid"] for d in listing.json()["data"]}

    assert await online_after(29) == {default.uuid, grouped.uuid, own.uuid}
    assert await online_after(31) == {default.uuid, grouped.uuid}  # 1.5 x 20 s
    assert await online_after(91) == {default.uuid}  # 1.5 x the group's 60 s
    assert await online_after(901) == set()  # 1.5 x the default 600 s
    shown = (await admin.get(f"/api/v1/devices/{own.uuid}")).json()
    assert shown["status_reason"] == "keepalive_timeout"
    events = (await admin.get(f"/api/v1/devices/{own.uuid}/events")).json()["data"]
    assert [(e["status"], e["reason"]) for e in events] == [
        ("offline", "keepalive_timeout"),
        ("online", "keepalive"),
    ]


async def test_a_batched_sign_of_life_revives_a_device_swept_meanwhile(api: Api) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    await device.keepalive()
    await device.keepalive()  # online now: this one waits in the batch
    await BackgroundRuntime(api.state).sweep_once(utcnow() + timedelta(hours=1))
    assert (await admin.get(f"/api/v1/devices/{device.uuid}")).json()["is_online"] == 0
    await api.state.liveness.flush()
    assert (await admin.get(f"/api/v1/devices/{device.uuid}")).json()["is_online"] == 1
    events = (await admin.get(f"/api/v1/devices/{device.uuid}/events")).json()["data"]
    assert [e["status"] for e in events] == ["online", "offline", "online"]


async def test_a_message_is_stored_and_served_in_the_payload_log(api: Api) -> None:
    admin = await api.organization()
    device = await sensor(admin, app_type="VCZ")
    message = vcz(4)
    response = await device.send(message)
    assert response.status_code == 202 and response.json() == {"accepted": 1}
    log = (await admin.get(f"/api/v1/devices/{device.uuid}/payloads")).json()
    assert log["meta"]["total"] == 1
    stored = log["data"][0]
    assert stored["type"] == "VCZ" and stored["payload"] == message["payload"]
    assert stored["timestamp"].endswith("Z")
    # A payload is a sign of life too.
    assert (await admin.get(f"/api/v1/devices/{device.uuid}")).json()["is_online"] == 1


async def test_what_a_payload_holds_is_served_exactly_as_sent(api: Api) -> None:
    # Fields a model ignores are kept and forwarded: an integer beyond 64 bits (which
    # the fast JSON writer cannot write) and text beyond ASCII come back unchanged.
    admin = await api.organization()
    device = await sensor(admin, app_type="VCZ")
    message = vcz(4)
    message["payload"][0] |= {"serial": 2**70, "label": "Entrée 🚪", "ratio": 0.1}
    assert (await device.send(message)).status_code == 202
    log = (await admin.get(f"/api/v1/devices/{device.uuid}/payloads")).json()
    assert log["data"][0]["payload"] == message["payload"]


async def test_each_metric_of_a_batch_belongs_to_the_message_it_came_from(api: Api) -> None:
    admin = await api.organization()
    device = await sensor(admin, app_type="VCZ")
    other = await sensor(admin, app_type="VCZ")
    assert (await other.send([vcz(90 + n) for n in range(3)])).status_code == 202
    now = int(time.time())
    batch = [vcz(n, now - 60 * (40 - n)) for n in range(40)]
    assert (await device.send(batch)).status_code == 202
    async with api.state.read_sessionmaker() as session:
        rows = await session.execute(
            select(PayloadMessage.payload, DeviceMetric.value)
            .join(DeviceMetric, DeviceMetric.message_id == PayloadMessage.id)
            .where(PayloadMessage.device_uuid == uuid.UUID(device.uuid))
            .where(DeviceMetric.name == "count")
        )
        pairs = rows.all()
    assert len(pairs) == len(batch)
    assert all(payload[0]["count"] == value for payload, value in pairs)


async def test_a_batch_keeps_its_accepted_messages_and_names_the_refused(api: Api) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    bad_count = vcz(1)
    bad_count["payload"][0]["count"] = "4"
    batch = [
        vcz(1),
        bad_count,
        vcz(3),
        {"type": "NOPE", "timestamp": int(time.time()), "payload": []},
    ]
    response = await device.send(batch)
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == 4022 and "2 of 4" in body["message"]
    assert {(e["index"], e["field"]) for e in body["error"]} >= {(1, "payload.0.count")}
    assert {e["index"] for e in body["error"]} == {1, 3}
    log = (await admin.get(f"/api/v1/devices/{device.uuid}/payloads")).json()
    assert log["meta"]["total"] == 2


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ([vcz(1)] * 501, 422),
        ([], 422),
        ({"type": "VCZ", "timestamp": int(time.time()) + 3 * 86400, "payload": []}, 422),
        ({"type": "VCZ", "timestamp": int(time.time()) - 60 * 86400, "payload": []}, 422),
        ({"type": "VCZ", "timestamp": "yesterday", "payload": []}, 422),
        ("just a string", 422),
    ],
    ids=["501-messages", "empty", "far-future", "far-past", "text-timestamp", "not-an-object"],
)
async def test_hostile_batches_are_refused(api: Api, body: Any, status: int) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    response = await device.send(body)
    assert response.status_code == status, response.text
    assert response.json()["httpError"] == status


async def test_nan_deep_nesting_bad_json_and_huge_bodies_are_refused(api: Api) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    headers = {**device.headers, "Content-Type": "application/json"}
    now = int(time.time())
    nan = (
        f'{{"type": "VCW", "timestamp": {now}, "payload": [{{"id": "{ZONE}", "name": "Hall",'
        f' "count": 3, "density": NaN, "period_start": {now - 60}, "period_end": {now}}}]}}'
    )
    nested = "[" * 200 + "]" * 200
    deep = f'{{"type": "VCZ", "timestamp": {now}, "payload": {nested}}}'
    cases = [(nan, 422), (deep, 422), ('{"type": ', 400), ("[" + "1," * 3_000_000 + "1]", 413)]
    for content, status in cases:
        response = await device.client.post("/device/v1/payloads", headers=headers, content=content)
        assert response.status_code == status, (content[:40], response.text[:200])
    log = (await admin.get(f"/api/v1/devices/{device.uuid}/payloads")).json()
    assert log["meta"]["total"] == 0


async def test_counting_by_line_derives_in_out_net_and_running_occupancy(api: Api) -> None:
    admin = await api.organization()
    device = await sensor(admin, app_type="VCB")
    # Yesterday 01:00 UTC: all three messages fall in one day (occupancy resets daily).
    base = int(time.time()) // 86400 * 86400 - 86400 + 3600
    messages = [vcb(10, 2, base), vcb(3, 6, base + 60), vcb(0, 9, base + 120)]
    assert (await device.send(messages)).json() == {"accepted": 3}
    response = await admin.get(
        f"/api/v1/devices/{device.uuid}/metrics",
        params={"interval": "1m", "since": base - 1, "until": base + 121, "name": "occupancy"},
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [point["max"] for point in data] == [8.0, 5.0, 0.0]  # 8, 8-3, max(0, 5-9)
    assert data[0]["marker_name"] == "Entrance" and data[0]["marker_id"] == LINE
    nets = (
        await admin.get(
            f"/api/v1/devices/{device.uuid}/metrics",
            params={"interval": "1h", "since": base - 1, "until": base + 121, "name": "net"},
        )
    ).json()["data"]
    assert len(nets) in (1, 2) and sum(p["count"] for p in nets) == 3


async def test_metrics_are_bucketed_by_interval(api: Api) -> None:
    admin = await api.organization()
    device = await sensor(admin, app_type="VCZ")
    start = (int(time.time()) - 3600) // 300 * 300
    await device.send([vcz(2, start + 10), vcz(6, start + 20), vcz(10, start + 310)])
    data = (
        await admin.get(
            f"/api/v1/devices/{device.uuid}/metrics",
            params={"interval": "5m", "since": start, "until": start + 600, "name": "count"},
        )
    ).json()["data"]
    assert [(p["avg"], p["min"], p["max"], p["count"]) for p in data] == [
        (4.0, 2.0, 6.0, 2),
        (10.0, 10.0, 10.0, 1),
    ]
    assert data[0]["start"].endswith("Z")
    bad = await admin.get(f"/api/v1/devices/{device.uuid}/metrics", params={"interval": "5x"})
    assert bad.status_code == 400


async def test_payload_log_filters_and_visibility(api: Api) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    now = int(time.time())
    await device.send([vcz(1, now - 7200), vcz(2, now - 60)])
    recent = (
        await admin.get(f"/api/v1/devices/{device.uuid}/payloads", params={"since": now - 3600})
    ).json()
    assert [m["payload"][0]["count"] for m in recent["data"]] == [2]
    assert (
        await admin.get(f"/api/v1/devices/{device.uuid}/payloads", params={"type": "VPM"})
    ).json()["data"] == []
    assert (
        await admin.get(f"/api/v1/devices/{device.uuid}/payloads", params={"since": "never"})
    ).status_code == 400
    other = await api.organization()
    for path in ("payloads", "metrics", "events"):
        assert (await other.get(f"/api/v1/devices/{device.uuid}/{path}")).status_code == 404


async def test_commands_reach_the_device_once_and_take_results(api: Api) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    neighbour = await sensor(admin)
    async with session_scope(api.state.sessionmaker) as session:
        command = await api.state.commands.create(session, uuid.UUID(device.uuid), "reboot")
    answered = (await device.keepalive()).json()["commands"]
    assert answered == [
        {"id": str(command.id), "type": "reboot", "created": int(command.created.timestamp())}
    ]
    assert (await device.keepalive()).json()["commands"] == []
    path = f"/device/v1/commands/{command.id}/result"
    assert (
        await neighbour.client.post(path, headers=neighbour.headers, json={"ok": True})
    ).status_code == 404
    assert (
        await device.client.post(path, headers=device.headers, json={"ok": True})
    ).status_code == 204


async def test_long_polls_and_results_of_many_devices_share_a_write_transaction(
    api: Api, state: Components
) -> None:
    admin = await api.organization()
    devices = [await sensor(admin) for _ in range(3)]
    for device in devices:  # online now, as far as this process knows
        assert (await device.keepalive()).status_code == 200
    async with session_scope(state.sessionmaker) as session:
        commands = [
            await state.commands.create(session, uuid.UUID(device.uuid), "reboot")
            for device in devices
        ]

    def poll(device: Any) -> Any:
        return device.client.get("/device/v1/commands", params={"wait": 0}, headers=device.headers)

    def result(device: Any, command_id: Any) -> Any:
        path = f"/device/v1/commands/{command_id}/result"
        return device.client.post(path, headers=device.headers, json={"ok": True})

    # The three polls take their commands in one transaction (`in_one_group` checks it).
    polled = await in_one_group(state, [poll(device) for device in devices])
    assert [answer.json()["commands"][0]["id"] for answer in polled] == [
        str(command.id) for command in commands
    ]
    # So do the results; one for another device's command is refused alone (404).
    results = await in_one_group(
        state,
        [result(device, command.id) for device, command in zip(devices, commands, strict=True)]
        + [result(devices[0], commands[1].id)],
    )
    assert [answer.status_code for answer in results] == [204, 204, 204, 404]
    async with state.read_sessionmaker() as session:
        completed = await session.scalars(
            select(DeviceCommand.completed_at).where(
                DeviceCommand.id.in_([command.id for command in commands])
            )
        )
        assert all(when is not None for when in completed)


async def test_long_poll_returns_as_soon_as_a_command_arrives(api: Api) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    empty = await device.client.get(
        "/device/v1/commands", params={"wait": 0}, headers=device.headers
    )
    assert empty.status_code == 200 and empty.json() == {"commands": []}

    async def queue_later() -> None:
        await asyncio.sleep(0.3)
        async with session_scope(api.state.sessionmaker) as session:
            await api.state.commands.create(
                session, uuid.UUID(device.uuid), "capture_image", {"request_id": "r-1"}
            )

    started = time.monotonic()
    task = asyncio.create_task(queue_later())
    response = await device.client.get(
        "/device/v1/commands", params={"wait": 20}, headers=device.headers
    )
    await task
    assert response.json()["commands"][0]["request_id"] == "r-1"
    assert time.monotonic() - started < 10  # woken by the command, not by the 20 s wait
    too_long = await device.client.get(
        "/device/v1/commands", params={"wait": 56}, headers=device.headers
    )
    assert too_long.status_code == 400


async def test_payload_schemas_are_published(api: Api) -> None:
    admin = await api.organization()
    schema = (await admin.get("/api/v1/schemas/payloads/VPM")).json()
    assert "is_active" in json.dumps(schema)
    assert (await admin.get("/api/v1/schemas/payloads/XYZ")).status_code == 404
    assert (await api.client.get("/api/v1/schemas/payloads/VPM")).status_code == 401


async def test_unknown_types_are_kept_when_the_server_accepts_them(
    api: Api, state: Components
) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    message = {"type": "VXX", "timestamp": int(time.time()), "payload": {"anything": [1, 2]}}
    assert (await device.send(message)).status_code == 422
    state.payloads.accept_unknown_types = True  # as a server configured so would
    assert (await device.send(message)).status_code == 202


def vpm(timestamp: int, active: bool) -> dict[str, Any]:
    return {
        "type": "VPM",
        "timestamp": timestamp,
        "payload": [
            {
                "id": ZONE,
                "name": "P-0",
                "is_active": active,
                "deactivated": False,
                "cls": "car" if active else None,
                "event_ts": timestamp,
            }
        ],
    }


async def test_parking_messages_closer_than_30_s_are_dropped_and_counted(
    api: Api, state: Components
) -> None:
    admin = await api.organization()
    device = await sensor(admin, app_type="VPM")
    now = int(time.time()) - 300
    response = await device.send([vpm(now, True), vpm(now + 10, False), vpm(now + 30, False)])
    assert response.status_code == 202 and response.json() == {"accepted": 2}
    # A later process, with nothing in memory, still knows the last kept message.
    state.payloads.forget()
    assert (await device.send(vpm(now + 45, True))).json() == {"accepted": 0}
    assert (await device.send(vpm(now + 61, True))).json() == {"accepted": 1}
    log = (await admin.get(f"/api/v1/devices/{device.uuid}/payloads")).json()
    assert log["meta"]["total"] == 3
    dropped = state.metrics.registry.get_sample_value(
        "vsense_payload_messages_dropped_total", {"type": "VPM", "reason": "rate_limited"}
    )
    assert dropped == 2


async def test_a_removed_devices_token_stops_working_at_once(api: Api) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    assert (await device.keepalive()).status_code == 200  # its identity is now cached
    assert (await admin.delete(f"/api/v1/devices/{device.uuid}")).status_code == 204
    assert (await device.keepalive()).status_code == 401
    assert (await device.send(vcz(1))).status_code == 401


async def test_lone_surrogates_are_refused_by_index_and_never_poison_the_log(api: Api) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    surrogate_value = vcz(2) | {"firmware_note": "\ud800"}  # an unknown, forwarded field
    surrogate_key = vcz(3)
    surrogate_key["payload"][0]["by_class"] = {"\udfff": 3}
    surrogate_name = vcz(4)
    surrogate_name["payload"][0]["name"] = "Z\ud83d"
    batch = [vcz(1), surrogate_value, surrogate_key, surrogate_name]
    # json.dumps writes them as `\ud800` escapes, as a device's JSON library would.
    response = await device.client.post(
        "/device/v1/payloads",
        headers={**device.headers, "Content-Type": "application/json"},
        content=json.dumps(batch),
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert "1 of 4" in body["message"]
    assert {(e["index"], e["field"]) for e in body["error"]} == {
        (1, "firmware_note"),
        (2, "payload.0.by_class"),
        (3, "payload.0.name"),
    }
    assert all("surrogate" in e["message"] for e in body["error"])
    log = await admin.get(f"/api/v1/devices/{device.uuid}/payloads")
    assert log.status_code == 200, log.text
    assert [m["payload"][0]["count"] for m in log.json()["data"]] == [1]


async def test_lone_surrogates_are_refused_in_every_stored_text(api: Api) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    json_headers = {"Content-Type": "application/json"}
    hook = {"url": "https://example.com/hook", "data": {"headers": [], "params": []}}
    cases = [
        ("POST", "/api/v1/devices", {"name": "cam-\ud800"}),
        ("PATCH", f"/api/v1/devices/{device.uuid}", {"name": "\udc00"}),
        ("POST", "/api/v1/groups", {"name": "g\ud800"}),
        ("POST", f"/api/v1/webhooks?device_uuid={device.uuid}", {**hook, "actions": "\ud800"}),
        (
            "POST",
            f"/api/v1/webhooks?device_uuid={device.uuid}",
            {**hook, "data": {"headers": [], "params": [{"name": "a", "value": "\ud800"}]}},
        ),
        (
            "POST",
            "/api/v1/users",
            {"email": "x@example.com", "name": "\ud800", "password": "a long passphrase 7"},
        ),
        ("POST", "/api/v1/tokens", {"name": "t\ud800", "scopes": ["devices:read"]}),
    ]
    for method, path, payload in cases:
        response = await admin.request(
            method, path, content=json.dumps(payload), headers=json_headers
        )
        assert response.status_code == 422, (path, response.text)
        assert "surrogate" in response.text, response.text
    listed = await admin.get("/api/v1/devices")
    assert listed.status_code == 200 and len(listed.json()["data"]) == 1
    # A device's own texts: a keepalive's health and a command result.
    keepalive = await device.client.post(
        "/device/v1/keepalive",
        headers={**device.headers, **json_headers},
        content=json.dumps({"fw_version": "1.\ud800"}),
    )
    assert keepalive.status_code == 422, keepalive.text


async def test_the_retention_job_purges_commands_that_expired_long_ago(api: Api) -> None:
    from sqlalchemy import select, update

    from vsense.models import DeviceCommand

    admin = await api.organization()
    device = await sensor(admin)
    retention = api.state.settings.payload_retention
    async with session_scope(api.state.sessionmaker) as session:
        old = await api.state.commands.create(session, uuid.UUID(device.uuid), "reboot")
        recent = await api.state.commands.create(session, uuid.UUID(device.uuid), "reboot")
        created = utcnow() - retention - timedelta(days=1)
        await session.execute(
            update(DeviceCommand)
            .where(DeviceCommand.id == old.id)
            .values(created=created, expires_at=created + api.state.settings.command_ttl)
        )
        old_id, recent_id = old.id, recent.id
    await BackgroundRuntime(api.state).purge_once()
    async with session_scope(api.state.sessionmaker) as session:
        left = set(
            await session.scalars(
                select(DeviceCommand.id).where(DeviceCommand.device_uuid == uuid.UUID(device.uuid))
            )
        )
    assert left == {recent_id} and old_id not in left


async def test_a_device_s_requests_in_one_group_see_each_other_as_if_in_turn(
    api: Api, state: Components
) -> None:
    # The group's messages are written together; the running occupancy of a line and
    # the 30-s rule of parking devices still count the group's earlier requests.
    admin = await api.organization()
    line, parking = await sensor(admin, app_type="VCB"), await sensor(admin, app_type="VPM")
    base = int(time.time()) // 86400 * 86400 - 86400 + 3600  # all in one day, yesterday
    responses = await in_one_group(
        state,
        [line.send(vcb(5, 1, base + 60 * n)) for n in range(4)]
        + [parking.send(vpm(base + 10 * n, n % 2 == 0)) for n in range(3)],
    )
    assert [r.json()["accepted"] for r in responses] == [1, 1, 1, 1, 1, 0, 0]
    data = (
        await admin.get(
            f"/api/v1/devices/{line.uuid}/metrics",
            params={"interval": "1m", "since": base - 1, "until": base + 300, "name": "occupancy"},
        )
    ).json()["data"]
    assert sorted(point["max"] for point in data) == [4.0, 8.0, 12.0, 16.0]
    log = (await admin.get(f"/api/v1/devices/{parking.uuid}/payloads")).json()
    assert log["meta"]["total"] == 1
