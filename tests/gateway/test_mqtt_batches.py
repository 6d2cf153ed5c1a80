"""The MQTT bridge's batches, subscribers, command push and drop watch, against the
machine's Mosquitto (127.0.0.1:1883) where a broker is the subject, on both databases."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiomqtt
import httpx
import orjson
import pytest

from tests.factories import Api, Caller, has_pending_command, in_one_group, vcz
from vsense.app import create_app
from vsense.components import Components
from vsense.db import session_scope
from vsense.gateway import mqtt_batch
from vsense.gateway import repository as gateway_repository
from vsense.gateway.mqtt import MqttBridge
from vsense.gateway.mqtt_batch import Incoming
from vsense.gateway.mqtt_push import DROPPED_TOPIC, SYS_TOPICS
from vsense.gateway.service import CommandJson
from vsense.worker import BackgroundRuntime

BROKER = "mqtt://127.0.0.1:1883"


def bridge_of(state: Components, group: str | None = None, **settings: Any) -> MqttBridge:
    """A bridge over `state` with a share group of its own unless given (so no other
    server on this broker takes its messages)."""
    state.settings = state.settings.model_copy(
        update={
            "mqtt_url": BROKER,
            "mqtt_share_group": group or f"test-{uuid.uuid4().hex[:8]}",
            **settings,
        }
    )
    return state.mqtt_bridge()


@pytest.fixture
async def running() -> AsyncIterator[Callable[[MqttBridge], Awaitable[None]]]:
    tasks: list[asyncio.Task[None]] = []

    async def start(bridge: MqttBridge) -> None:
        tasks.append(asyncio.create_task(bridge.run()))
        await asyncio.wait_for(bridge.connected.wait(), 10)

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
async def device_client() -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client("127.0.0.1", 1883, protocol=aiomqtt.ProtocolVersion.V5) as client:
        yield client


def counted(bridge: MqttBridge, name: str, **labels: str) -> float:
    return bridge.metrics.registry.get_sample_value(name, labels) or 0.0


def outcome(bridge: MqttBridge, which: str) -> float:
    return counted(bridge, "vsense_mqtt_messages_total", outcome=which)


def failures(bridge: MqttBridge, reason: str) -> float:
    return counted(bridge, "vsense_mqtt_bridge_failures_total", reason=reason)


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def stored_counts(admin: Caller, device: str) -> list[int]:
    log = (await admin.get(f"/api/v1/devices/{device}/payloads", params={"per_page": 100})).json()
    return sorted(entry["payload"][0]["count"] for entry in log["data"])


def payload(device: str, count: int) -> Incoming:
    return Incoming(f"vsense/{device}/payloads", orjson.dumps(vcz(count)))


async def no_publish(device: uuid.UUID, commands: list[CommandJson]) -> None:
    raise AssertionError("nothing to publish here")


def counts_of(batches: Any) -> list[int]:
    """The zone counts of the VCZ messages of the batches `Gateway.store_many` takes."""
    return [m.payload[0]["count"] for _, batch in batches for m in batch.valid]


def poison(bridge: MqttBridge, monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    """Make every store of the message with zone count `count` fail, and the bridge's
    retries quick."""
    monkeypatch.setattr(mqtt_batch, "FIRST_BACKOFF", 0.01)
    monkeypatch.setattr(mqtt_batch, "MAX_BACKOFF", 0.02)
    real_store = bridge.gateway.store_many

    async def poisoned(session: Any, batches: Any) -> list[int]:
        if count in counts_of(batches):
            raise RuntimeError("this message always breaks something")
        return await real_store(session, batches)

    monkeypatch.setattr(bridge.gateway, "store_many", poisoned)


@pytest.mark.mqtt
async def test_a_failing_batch_is_handled_again_one_by_one_and_each_message_stored_once(
    api: Api, state: Components, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = await api.organization()
    device = str((await admin.device(app_type="VCZ"))["uuid"])
    bridge = bridge_of(state)
    real_store = bridge.gateway.store_many  # where batches and lone messages are stored
    failed: list[int] = []

    async def failing_once_on_three(session: Any, batches: Any) -> list[int]:
        if 3 in counts_of(batches) and not failed:
            failed.append(3)
            raise RuntimeError("a fault nobody foresaw")
        return await real_store(session, batches)

    monkeypatch.setattr(bridge.gateway, "store_many", failing_once_on_three)
    await bridge.handler.handle([payload(device, n) for n in range(1, 6)], no_publish)

    # Messages 1 and 2 were in the transaction that rolled back: stored once, not twice.
    assert await stored_counts(admin, device) == [1, 2, 3, 4, 5]
    assert outcome(bridge, "accepted") == 5 and outcome(bridge, "retried") == 5
    assert failures(bridge, "error") == 1


@pytest.mark.mqtt
async def test_a_poisoned_message_is_isolated_from_its_batch_and_given_up(
    api: Api, state: Components, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = await api.organization()
    device = str((await admin.device(app_type="VCZ"))["uuid"])
    bridge = bridge_of(state)
    poison(bridge, monkeypatch, 13)
    await bridge.handler.handle([payload(device, n) for n in (12, 13, 14)], no_publish)

    assert await stored_counts(admin, device) == [12, 14]
    assert outcome(bridge, "failed") == 1 and outcome(bridge, "accepted") == 2
    # Its batch's failure counts as its first attempt.
    assert failures(bridge, "error") == mqtt_batch.MAX_ATTEMPTS


@pytest.mark.mqtt
async def test_refused_messages_of_a_batch_do_not_undo_the_others(
    api: Api, state: Components
) -> None:
    admin = await api.organization()
    device = str((await admin.device(app_type="VCZ"))["uuid"])
    bridge = bridge_of(state)
    batch = [
        payload(device, 1),
        payload(str(uuid.uuid4()), 2),  # unknown device
        Incoming(f"vsense/{device}/payloads", b"{not json"),
        Incoming(f"vsense/{device}/payloads", b'{"type": "VCZ"}'),  # refused by the rules
        Incoming(f"vsense/{device}/elsewhere", b"{}"),
        payload(device, 6),
    ]
    await bridge.handler.handle(batch, no_publish)

    assert await stored_counts(admin, device) == [1, 6]
    assert outcome(bridge, "accepted") == 2 and outcome(bridge, "invalid") == 2
    assert outcome(bridge, "unknown_device") == 1 and outcome(bridge, "bad_topic") == 1
    assert failures(bridge, "error") == 0


@pytest.mark.mqtt
async def test_a_message_holds_over_mqtt_exactly_what_it_holds_over_http(
    api: Api, state: Components
) -> None:
    # Integers beyond 64 bits, which the fast JSON reader turns into floats, in fields
    # no model reads: kept as sent, as over HTTP (test_gateway).
    admin = await api.organization()
    device = str((await admin.device(app_type="VCZ"))["uuid"])
    bridge = bridge_of(state)
    message = vcz(7)
    message["payload"][0] |= {"serial": 2**70, "debt": -(2**63) - 1, "label": "Entrée"}
    raw = json.dumps(message).encode()  # the fast writer cannot write them either
    await bridge.handler.handle([Incoming(f"vsense/{device}/payloads", raw)], no_publish)

    assert outcome(bridge, "accepted") == 1
    log = (await admin.get(f"/api/v1/devices/{device}/payloads")).json()
    assert log["data"][0]["payload"] == message["payload"]
    assert type(log["data"][0]["payload"][0]["serial"]) is int


@pytest.mark.mqtt
async def test_a_keepalive_in_a_batch_publishes_its_commands_before_they_are_taken(
    api: Api, state: Components
) -> None:
    admin = await api.organization()
    device = str((await admin.device(app_type="VCZ"))["uuid"])
    async with session_scope(state.sessionmaker) as session:
        command = await state.commands.create(session, uuid.UUID(device), "reboot")
    bridge = bridge_of(state)
    keepalive = Incoming(f"vsense/{device}/keepalive", b"{}")

    async def broker_away(device_uuid: uuid.UUID, commands: list[CommandJson]) -> None:
        raise aiomqtt.MqttError("the broker went away")

    with pytest.raises(aiomqtt.MqttError):
        await bridge.handler.handle([keepalive, payload(device, 1)], broker_away)
    # Not acknowledged by the broker: still pending, for the next keepalive.
    assert await has_pending_command(state, uuid.UUID(device))
    published: list[CommandJson] = []

    async def broker(device_uuid: uuid.UUID, commands: list[CommandJson]) -> None:
        published.extend(commands)

    await bridge.handler.handle([keepalive, payload(device, 1)], broker)
    assert [c["id"] for c in published] == [str(command.id)]
    assert not await has_pending_command(state, uuid.UUID(device))
    assert await stored_counts(admin, device) == [1]


@pytest.mark.mqtt
async def test_batches_of_several_subscribers_waiting_together_share_one_transaction(
    api: Api, state: Components, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = await api.organization()
    device = str((await admin.device(app_type="VCZ"))["uuid"])
    bridge = bridge_of(state)
    real_store = bridge.gateway.store_many
    stores: list[list[int]] = []

    async def recorded(session: Any, batches: Any) -> list[int]:
        stores.append(counts_of(batches))
        return await real_store(session, batches)

    monkeypatch.setattr(bridge.gateway, "store_many", recorded)
    first = [payload(device, n) for n in (1, 2)]
    second = [payload(device, n) for n in (3, 4, 5)]
    await in_one_group(
        state, [bridge.handler.handle(first, no_publish), bridge.handler.handle(second, no_publish)]
    )

    assert stores == [[1, 2, 3, 4, 5]]  # read and written together
    assert await stored_counts(admin, device) == [1, 2, 3, 4, 5]
    assert outcome(bridge, "accepted") == 5 and outcome(bridge, "retried") == 0


@pytest.mark.mqtt
async def test_a_failing_batch_does_not_fail_the_batch_it_was_grouped_with(
    api: Api, state: Components, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = await api.organization()
    device = str((await admin.device(app_type="VCZ"))["uuid"])
    bridge = bridge_of(state)
    poison(bridge, monkeypatch, 3)
    failing = [payload(device, n) for n in (1, 2, 3)]
    healthy = [payload(device, n) for n in (4, 5)]
    await in_one_group(
        state,
        [bridge.handler.handle(failing, no_publish), bridge.handler.handle(healthy, no_publish)],
        commits=False,
    )

    assert await stored_counts(admin, device) == [1, 2, 4, 5]
    assert outcome(bridge, "accepted") == 4 and outcome(bridge, "failed") == 1
    # Only the failing batch was retried (its three messages, then its poisoned one
    # alone); the healthy one committed on its own at its first attempt.
    assert outcome(bridge, "retried") == 3 + mqtt_batch.MAX_ATTEMPTS - 1


@pytest.mark.mqtt
async def test_a_stop_handles_and_acknowledges_what_was_received_before_it_ends(
    api: Api, state: Components, device_client: aiomqtt.Client
) -> None:
    admin = await api.organization()
    device = str((await admin.device(app_type="VCZ"))["uuid"])
    share = f"test-{uuid.uuid4().hex[:8]}"
    # Both messages in one batch, which goes through the group commit.
    bridge = bridge_of(state, share, mqtt_subscribers=1, mqtt_batch_wait=timedelta(seconds=2))
    receiving = asyncio.create_task(bridge.run())
    await asyncio.wait_for(bridge.connected.wait(), 10)
    other = bridge_of(state, share)  # another process of the share group, started below
    taking: asyncio.Task[None] | None = None
    group = state.database.group_commit
    in_flight, group.leaders.limit = group.leaders.limit, 1
    releases = [asyncio.Event(), asyncio.Event()]
    holding = [asyncio.Event(), asyncio.Event()]

    def hold(n: int) -> Callable[[Any], Awaitable[None]]:
        async def work(_session: Any) -> None:
            holding[n].set()
            await releases[n].wait()

        return work

    async def waiting(count: int) -> None:
        async def queued() -> bool:
            return len(group._waiting) == count

        await eventually(queued)

    async def stop() -> None:  # as the process's stop does
        await bridge.drain(10)
        receiving.cancel()
        await asyncio.gather(receiving, return_exceptions=True)
        await bridge.end_session()

    try:
        first = asyncio.create_task(group.run(hold(0)))
        await holding[0].wait()

        async def publish(*counts: int) -> None:
            topic = f"vsense/{device}/payloads"
            await asyncio.gather(
                *(device_client.publish(topic, orjson.dumps(vcz(n)), qos=1) for n in counts)
            )

        await publish(1, 2)
        await waiting(1)  # their batch waits for the group commit, behind the first hold
        await publish(3, 4, 5)  # received while it waits
        taking = asyncio.create_task(other.run())
        await asyncio.wait_for(other.connected.wait(), 10)
        second = asyncio.create_task(group.run(hold(1)))
        await waiting(2)
        releases[0].set()
        await first
        await holding[1].wait()  # the batch's work is done in the group, not committed
        stopping = asyncio.create_task(stop())
        await asyncio.sleep(0.2)
        assert not stopping.done()  # the batch is in its transaction
        releases[1].set()
        await second
        await asyncio.wait_for(stopping, 10)
        await asyncio.sleep(1.5)  # what the broker might hand the other process
    finally:
        for release in releases:
            release.set()
        group.leaders.limit = in_flight
        if taking is not None:
            taking.cancel()
            await asyncio.gather(taking, return_exceptions=True)
    # Each stored once: the broker drops what an ended session held unacknowledged.
    assert await stored_counts(admin, device) == [1, 2, 3, 4, 5]
    assert other.handled() == 0


@pytest.mark.mqtt
async def test_several_subscribers_share_the_messages(
    api: Api,
    state: Components,
    running: Callable[[MqttBridge], Awaitable[None]],
    device_client: aiomqtt.Client,
) -> None:
    admin = await api.organization()
    device = str((await admin.device(app_type="VCZ"))["uuid"])
    bridge = bridge_of(state, mqtt_subscribers=3)
    await running(bridge)
    for n in range(30):
        await device_client.publish(f"vsense/{device}/payloads", orjson.dumps(vcz(n)), qos=1)

    async def all_handled() -> bool:
        # Counted once each batch is over (committed, then the devices recorded).
        return bridge.handled() == 30

    await eventually(all_handled)
    assert await stored_counts(admin, device) == list(range(30))
    handled = [subscriber.handled for subscriber in bridge.subscribers]
    assert sum(1 for count in handled if count) >= 2, handled


@pytest.mark.mqtt
async def test_a_process_that_never_heard_the_device_pushes_its_commands(
    api: Api,
    state: Components,
    running: Callable[[MqttBridge], Awaitable[None]],
    device_client: aiomqtt.Client,
) -> None:
    admin = await api.organization()
    device = str((await admin.device(app_type="VCZ"))["uuid"])
    group = f"test-{uuid.uuid4().hex[:8]}"
    hearing = bridge_of(state, group)
    await running(hearing)
    # Another server process of the same share group: its own parts over the same
    # database, its own bridge.
    other = Components.for_server(state.settings, state.engine)
    elsewhere = bridge_of(other, group)
    await running(elsewhere)
    await device_client.subscribe(f"vsense/{device}/commands", qos=1)
    await device_client.publish(f"vsense/{device}/keepalive", b"", qos=1)

    async def heard() -> bool:
        # Whichever process heard it records the device as speaking MQTT...
        return uuid.UUID(device) in hearing.handler.marked | elsewhere.handler.marked

    await eventually(heard)
    assert outcome(hearing, "accepted") + outcome(elsewhere, "accepted") == 1
    pushing = elsewhere if uuid.UUID(device) in hearing.handler.marked else hearing
    creating = other if pushing is elsewhere else state
    assert uuid.UUID(device) not in pushing.handler.marked  # ...by the other one
    async with session_scope(creating.sessionmaker) as session:
        command = await creating.commands.create(session, uuid.UUID(device), "reboot")
    received: dict[str, Any] = {}

    async def first_command() -> None:
        async for message in device_client.messages:
            received.update(orjson.loads(message.payload))  # type: ignore[arg-type]
            return

    await asyncio.wait_for(first_command(), 10)
    assert received["id"] == str(command.id)

    async def taken() -> bool:
        return not await has_pending_command(state, uuid.UUID(device))

    await eventually(taken)


@pytest.mark.mqtt
async def test_a_push_the_broker_does_not_acknowledge_leaves_the_command_pending(
    api: Api, state: Components
) -> None:
    admin = await api.organization()
    device = uuid.UUID(str((await admin.device(app_type="VCZ"))["uuid"]))
    bridge = bridge_of(state)
    async with session_scope(state.sessionmaker) as session:
        await gateway_repository.mark_speaks_mqtt(session, [device])
        await state.commands.create(session, device, "reboot")

    async def broker_away(device_uuid: uuid.UUID, commands: list[CommandJson]) -> None:
        raise aiomqtt.MqttError("no PUBACK")

    bridge.push.publisher = lambda: broker_away
    assert await bridge.push.push(device) == 0
    assert await has_pending_command(state, device)


@pytest.mark.mqtt
async def test_drops_reported_by_the_broker_show_in_metrics_and_readiness(
    state: Components,
) -> None:
    # Not connected to the broker, whose real reports would come in between: the
    # reports are given here as the broker sends them, and the bridge marked connected.
    bridge = bridge_of(state)
    bridge.connected.set()
    runtime = BackgroundRuntime(state)
    runtime.mqtt = bridge
    app = create_app(state=state)
    app.state.background = runtime
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/readyz")).status_code == 200
        # As the broker reports them on its `$SYS` branch: where it stood, then more.
        bridge.drops.report(DROPPED_TOPIC, b"40")
        assert (await client.get("/readyz")).status_code == 200
        bridge.drops.report(DROPPED_TOPIC, b"57")
        answer = await client.get("/readyz")
        assert answer.status_code == 503
        assert "dropped 17 messages" in answer.json()["message"]
        metrics = (await client.get("/metrics")).text
        assert "vsense_mqtt_broker_dropped_messages 57.0" in metrics


@pytest.mark.mqtt
@pytest.mark.slow
async def test_the_bridge_follows_the_brokers_own_drop_count(
    state: Components, running: Callable[[MqttBridge], Awaitable[None]]
) -> None:
    """Mosquitto publishes its `$SYS` counters every `sys_interval` (10 s by default)."""
    bridge = bridge_of(state)
    await running(bridge)
    async with aiomqtt.Client("127.0.0.1", 1883) as watcher:
        await watcher.subscribe(SYS_TOPICS)
        async with asyncio.timeout(30):
            async for _ in watcher.messages:
                break  # the broker reports

    async def reported() -> bool:
        return counted(bridge, "vsense_mqtt_broker_dropped_messages") >= 0

    await eventually(reported, 30)
