"""The MQTT bridge against the machine's Mosquitto (127.0.0.1:1883), on both databases."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiomqtt
import httpx
import orjson
import pytest

from tests.factories import Api, Caller, has_pending_command, vcz
from vsense.app import create_app
from vsense.components import Components
from vsense.db import session_scope
from vsense.gateway import mqtt_batch as mqtt_module
from vsense.gateway.mqtt import MqttBridge, parse_topic
from vsense.worker import BackgroundRuntime

BROKER = "mqtt://127.0.0.1:1883"


@pytest.fixture
async def bridge(state: Components) -> AsyncIterator[MqttBridge]:
    # A share group of its own, so no other server on this broker takes the messages.
    state.settings = state.settings.model_copy(
        update={"mqtt_url": BROKER, "mqtt_share_group": f"test-{uuid.uuid4().hex[:8]}"}
    )
    running = state.mqtt_bridge()
    task = asyncio.create_task(running.run())
    await asyncio.wait_for(running.connected.wait(), 10)
    yield running
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def device_client() -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client("127.0.0.1", 1883, protocol=aiomqtt.ProtocolVersion.V5) as client:
        yield client


def counted(bridge: MqttBridge, outcome: str) -> float:
    value = bridge.metrics.registry.get_sample_value(
        "vsense_mqtt_messages_total", {"outcome": outcome}
    )
    return value or 0.0


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def onboard(admin: Caller) -> str:
    return str((await admin.device(app_type="VCZ"))["uuid"])


def test_topics_are_parsed_strictly() -> None:
    device = uuid.uuid4()
    assert parse_topic(f"vsense/{device}/keepalive") == (device, "keepalive", None)
    assert parse_topic(f"vsense/{device}/commands/abc/result") == (device, "result", "abc")
    for topic in (
        "vsense/not-a-uuid/keepalive",
        f"other/{device}/keepalive",
        f"vsense/{device}/commands",
        f"vsense/{device}/payloads/extra",
    ):
        assert parse_topic(topic) is None


@pytest.mark.mqtt
async def test_keepalive_over_mqtt_brings_the_device_online(
    api: Api, bridge: MqttBridge, device_client: aiomqtt.Client
) -> None:
    admin = await api.organization()
    device = await onboard(admin)
    await device_client.publish(f"vsense/{device}/keepalive", b'{"uptime_s": 5}', qos=1)

    async def online() -> bool:
        shown = (await admin.get(f"/api/v1/devices/{device}")).json()
        return bool(shown["is_online"])

    await eventually(online)
    assert counted(bridge, "accepted") == 1


@pytest.mark.mqtt
async def test_payloads_over_mqtt_are_stored(
    api: Api, bridge: MqttBridge, device_client: aiomqtt.Client
) -> None:
    admin = await api.organization()
    device = await onboard(admin)
    await device_client.publish(f"vsense/{device}/payloads", orjson.dumps(vcz(7)), qos=1)

    async def stored() -> bool:
        log = (await admin.get(f"/api/v1/devices/{device}/payloads")).json()
        return bool(log["meta"]["total"] == 1)

    await eventually(stored)
    log = (await admin.get(f"/api/v1/devices/{device}/payloads")).json()
    assert log["data"][0]["payload"][0]["count"] == 7


@pytest.mark.mqtt
async def test_unknown_devices_and_bad_messages_are_dropped_and_counted(
    api: Api, bridge: MqttBridge, device_client: aiomqtt.Client
) -> None:
    admin = await api.organization()
    device = await onboard(admin)
    await device_client.publish(f"vsense/{uuid.uuid4()}/payloads", orjson.dumps(vcz(1)), qos=1)
    await device_client.publish(f"vsense/{device}/payloads", b"{not json", qos=1)
    await device_client.publish(f"vsense/{device}/payloads", b'{"type": "VCZ"}', qos=1)

    async def all_counted() -> bool:
        return counted(bridge, "unknown_device") == 1 and counted(bridge, "invalid") == 2

    await eventually(all_counted)
    log = (await admin.get(f"/api/v1/devices/{device}/payloads")).json()
    assert log["meta"]["total"] == 0


@pytest.mark.mqtt
async def test_pending_commands_are_published_to_the_device(
    api: Api, state: Components, bridge: MqttBridge, device_client: aiomqtt.Client
) -> None:
    admin = await api.organization()
    device = await onboard(admin)
    async with session_scope(state.sessionmaker) as session:
        command = await state.commands.create(session, uuid.UUID(device), "reboot")
    await device_client.subscribe(f"vsense/{device}/commands", qos=1)
    await device_client.publish(f"vsense/{device}/keepalive", b"", qos=1)
    received: dict[str, Any] = {}

    async def first_command() -> None:
        async for message in device_client.messages:
            received.update(orjson.loads(message.payload))  # type: ignore[arg-type]
            return

    await asyncio.wait_for(first_command(), 10)
    assert received["id"] == str(command.id) and received["type"] == "reboot"
    result = orjson.dumps({"ok": True})
    await device_client.publish(f"vsense/{device}/commands/{command.id}/result", result, qos=1)
    await eventually(lambda: _accepted_at_least(bridge, 2))


async def _accepted_at_least(bridge: MqttBridge, count: int) -> bool:
    return counted(bridge, "accepted") >= count


@pytest.mark.mqtt
async def test_commands_reach_a_device_heard_over_mqtt_without_waiting_for_its_keepalive(
    api: Api, state: Components, bridge: MqttBridge, device_client: aiomqtt.Client
) -> None:
    admin = await api.organization()
    device = await onboard(admin)
    await device_client.subscribe(f"vsense/{device}/commands", qos=1)
    await device_client.publish(f"vsense/{device}/keepalive", b"", qos=1)
    await eventually(lambda: _accepted_at_least(bridge, 1))

    async with session_scope(state.sessionmaker) as session:
        command = await state.commands.create(
            session, uuid.UUID(device), "capture_image", {"request_id": "r1"}
        )
    received: dict[str, Any] = {}

    async def first_command() -> None:
        async for message in device_client.messages:
            received.update(orjson.loads(message.payload))  # type: ignore[arg-type]
            return

    await asyncio.wait_for(first_command(), 10)  # no keepalive sent since the command
    assert received["id"] == str(command.id) and received["type"] == "capture_image"

    async def taken() -> bool:
        # Published before the bridge commits (so a broker failure leaves it pending):
        # the device may hold it a moment before the commit lands.
        return not await has_pending_command(state, uuid.UUID(device))

    await eventually(taken)  # taken: a keepalive or a poll will not hand it out again


def bridge_failures(bridge: MqttBridge, reason: str) -> float:
    value = bridge.metrics.registry.get_sample_value(
        "vsense_mqtt_bridge_failures_total", {"reason": reason}
    )
    return value or 0.0


async def stored_counts(admin: Caller, device: str) -> list[int]:
    log = (await admin.get(f"/api/v1/devices/{device}/payloads")).json()
    return sorted(entry["payload"][0]["count"] for entry in log["data"])


@pytest.mark.mqtt
@pytest.mark.faults
async def test_a_message_whose_handling_fails_is_not_acknowledged_and_comes_back(
    api: Api, bridge: MqttBridge, device_client: aiomqtt.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = await api.organization()
    device = await onboard(admin)
    real_store = bridge.gateway.store_many  # where batches and lone messages are stored
    calls: list[int] = []

    async def store_failing_once(*args: Any, **kwargs: Any) -> list[int]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a fault nobody foresaw")
        return await real_store(*args, **kwargs)

    monkeypatch.setattr(bridge.gateway, "store_many", store_failing_once)
    await device_client.publish(f"vsense/{device}/payloads", orjson.dumps(vcz(41)), qos=1)

    async def stored() -> bool:
        return await stored_counts(admin, device) == [41]

    await eventually(stored, 20)
    assert bridge_failures(bridge, "error") == 1
    assert counted(bridge, "retried") == 1 and counted(bridge, "accepted") == 1
    # The bridge carries on with the next messages.
    await device_client.publish(f"vsense/{device}/payloads", orjson.dumps(vcz(42)), qos=1)

    async def both() -> bool:
        return await stored_counts(admin, device) == [41, 42]

    await eventually(both, 20)


@pytest.mark.mqtt
@pytest.mark.faults
async def test_a_message_that_keeps_failing_is_dropped_and_the_rest_go_on(
    api: Api, bridge: MqttBridge, device_client: aiomqtt.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mqtt_module, "FIRST_BACKOFF", 0.05)
    monkeypatch.setattr(mqtt_module, "MAX_BACKOFF", 0.1)
    admin = await api.organization()
    device = await onboard(admin)
    real_store = bridge.gateway.store_many

    async def poisoned(session: Any, batches: Any) -> list[int]:
        counts = [m.payload[0]["count"] for _, batch in batches for m in batch.valid]
        if 13 in counts:
            raise RuntimeError("this message always breaks something")
        return await real_store(session, batches)

    monkeypatch.setattr(bridge.gateway, "store_many", poisoned)
    await device_client.publish(f"vsense/{device}/payloads", orjson.dumps(vcz(13)), qos=1)
    await device_client.publish(f"vsense/{device}/payloads", orjson.dumps(vcz(14)), qos=1)

    async def went_on() -> bool:
        return await stored_counts(admin, device) == [14] and counted(bridge, "failed") == 1

    await eventually(went_on, 20)
    assert bridge_failures(bridge, "error") == mqtt_module.MAX_ATTEMPTS


@pytest.mark.mqtt
@pytest.mark.faults
async def test_readiness_reports_a_bridge_without_its_broker(
    api: Api, state: Components, bridge: MqttBridge
) -> None:
    runtime = BackgroundRuntime(state)
    app = create_app(state=state)
    app.state.background = runtime
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        runtime.mqtt = bridge  # connected to the machine's broker
        assert (await client.get("/readyz")).status_code == 200
        state.settings = state.settings.model_copy(update={"mqtt_url": "mqtt://127.0.0.1:1"})
        cut_off = state.mqtt_bridge()
        task = asyncio.create_task(cut_off.run())
        try:
            runtime.mqtt = cut_off

            async def failed_once() -> bool:
                return bridge_failures(cut_off, "broker") >= 1

            await eventually(failed_once)
            answer = await client.get("/readyz")
            assert answer.status_code == 503
            assert answer.json()["code"] == 5003 and "MQTT" in answer.json()["message"]
            metrics = (await client.get("/metrics")).text
            assert "vsense_mqtt_bridge_connected 0.0" in metrics
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
