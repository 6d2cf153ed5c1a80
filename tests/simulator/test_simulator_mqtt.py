"""The simulated fleet over MQTT, end to end: a real `vsense serve` with its MQTT bridge
on, the machine's Mosquitto (127.0.0.1:1883, anonymous access) in between."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import httpx
import pytest
import typer
from typer.testing import CliRunner

from tests.environment import BROKER
from tests.live_server import LiveServer, integrator_token, start_server
from vsense.simulator import mqtt as simulator_mqtt
from vsense.simulator.command import simulate_command
from vsense.simulator.fleet import FleetStats, run_fleet
from vsense.simulator.mqtt import Broker, MqttTransport


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    # start_server copies os.environ; a share group of its own keeps other servers on
    # this broker from taking the messages.
    monkeypatch.setenv("VSENSE_MQTT_URL", BROKER)
    monkeypatch.setenv("VSENSE_MQTT_SHARE_GROUP", f"test-{uuid.uuid4().hex[:8]}")
    live = start_server(tmp_path)
    try:
        yield live
    finally:
        live.stop()


async def command_round_trip(
    base_url: str, token: str, fleet: asyncio.Task[FleetStats]
) -> dict[str, dict[str, object]]:
    """Once the fleet is up, send a reboot and a capture_image on the devices' commands
    topics (as the bridge does after a keepalive) and collect the results they publish."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers) as api:
        while True:
            assert not fleet.done(), fleet
            listed = (await api.get("/api/v1/devices", params={"search": "sim/"})).json()
            if listed["meta"]["total"] == 6:
                break
            await asyncio.sleep(0.2)
    by_identifier = {device["client_identifier"]: device["uuid"] for device in listed["data"]}
    sent = {
        str(uuid.uuid4()): (by_identifier["sim/00000"], "reboot"),
        str(uuid.uuid4()): (by_identifier["sim/00001"], "capture_image"),
    }
    results: dict[str, dict[str, object]] = {}
    async with aiomqtt.Client("127.0.0.1", 1883, protocol=aiomqtt.ProtocolVersion.V5) as client:
        for device_uuid, _ in sent.values():
            await client.subscribe(f"vsense/{device_uuid}/commands/+/result", qos=1)
        await asyncio.sleep(1.5)  # the fleet subscribes once onboarding is over
        for command_id, (device_uuid, kind) in sent.items():
            command = {"id": command_id, "type": kind, "created": int(time.time())}
            if kind == "capture_image":
                command["request_id"] = str(uuid.uuid4())
            await client.publish(f"vsense/{device_uuid}/commands", json.dumps(command), qos=1)
        async with asyncio.timeout(5):
            async for message in client.messages:
                command_id = str(message.topic).split("/")[3]
                results[sent[command_id][1]] = json.loads(bytes(message.payload))
                if len(results) == len(sent):
                    break
    return results


@pytest.mark.slow
@pytest.mark.mqtt
@pytest.mark.parametrize("per_device", [False, True], ids=["pooled", "per-device"])
def test_a_fleet_sends_keepalives_and_payloads_over_mqtt(
    server: LiveServer, per_device: bool
) -> None:
    token = integrator_token(server)
    events: list[str] = []
    stats = FleetStats()

    async def scenario() -> dict[str, dict[str, object]]:
        fleet = asyncio.create_task(
            run_fleet(
                api_addr=server.base_url,
                token=token,
                devices=6,
                types=["VCZ", "VCB", "VPM"],
                rate=60,
                keepalive_interval=10,
                duration=8,
                mqtt=BROKER,
                per_device_connections=per_device,
                on_event=events.append,
                stats=stats,
                capture_delay=0,
            )
        )
        try:
            results = await command_round_trip(server.base_url, token, fleet)
        finally:
            await fleet
        return results

    results = asyncio.run(scenario())

    # The capture's request id is made up: the server refuses its upload (HTTP, 404) and
    # the device reports the failure (tests/images/test_images.py covers real snapshots).
    assert results["reboot"] == {"ok": True}
    assert results["capture_image"]["ok"] is False
    assert "HTTP 404" in str(results["capture_image"]["error"])
    assert stats.errors == 0, events
    assert stats.devices_onboarded == 6
    assert stats.commands_handled == 2
    assert stats.keepalives_sent > 0
    assert stats.messages_accepted > 0
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.base_url, headers=headers) as client:
        listed = client.get("/api/v1/devices", params={"search": "sim/", "per_page": 100})
        assert listed.status_code == 200, listed.text
        devices = listed.json()["data"]
        assert len(devices) == 6
        for device in devices:
            # Onboarded over HTTP (which leaves a device unseen), heard from over MQTT only.
            assert device["is_online"] == 1, device
            assert device["last_seen"] is not None, device
            if device["app_type"] in ("VCZ", "VCB"):
                path = f"/api/v1/devices/{device['uuid']}/payloads"
                payloads = client.get(path)
                assert payloads.status_code == 200, payloads.text
                assert payloads.json()["meta"]["total"] > 0, device


def command_app() -> typer.Typer:
    app = typer.Typer()
    app.command()(simulate_command)
    return app


def test_broker_urls_are_checked() -> None:
    assert Broker.parse("mqtt://127.0.0.1") == Broker("127.0.0.1", 1883)
    assert Broker.parse("mqtts://u%40x:p%3Aw@broker.example:8884") == Broker(
        "broker.example", 8884, tls=True, username="u@x", password="p:w"
    )
    for url in ("http://host", "mqtt://", "mqtt://host/path", "mqtt://host:99999"):
        with pytest.raises(ValueError):
            Broker.parse(url)
    result = CliRunner().invoke(
        command_app(),
        ["--api-addr", "http://127.0.0.1:9", "--token", "t", "--devices", "1", "--mqtt", "tcp://x"],
    )
    assert result.exit_code == 2
    assert "--mqtt" in result.output


class CuttableProxy:
    """A TCP relay in front of the broker whose connections the test can cut."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 1883)
        self.writers += [writer, up_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        self.writers = []

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()


@pytest.mark.slow
@pytest.mark.mqtt
def test_the_transport_reconnects_and_counts_what_it_gives_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(simulator_mqtt, "FIRST_RECONNECT_S", 0.05)
    monkeypatch.setattr(simulator_mqtt, "FIRST_BACKOFF_S", 0.05)
    device = str(uuid.uuid4())

    async def scenario() -> tuple[FleetStats, list[dict[str, object]], list[bool]]:
        proxy = CuttableProxy()
        port = await proxy.start()
        stats = FleetStats()
        commands: list[dict[str, object]] = []
        arrived = asyncio.Event()

        def on_command(_: str, command: dict[str, object]) -> None:
            commands.append(command)
            arrived.set()

        transport = MqttTransport(
            Broker("127.0.0.1", port),
            [(device, "token")],
            stats=stats,
            log=lambda text: None,
            on_command=on_command,
        )
        links = asyncio.create_task(transport.run())
        outcomes = []
        try:
            assert await transport.wait_connected(5) == 1
            outcomes.append(await transport.publish(device, "keepalive", {}))
            proxy.cut()  # the broker goes away; the link notices and comes back
            outcomes.append(await transport.publish(device, "keepalive", {}))
            async with aiomqtt.Client("127.0.0.1", 1883) as platform:
                # Subscribed again after the reconnection: commands still arrive.
                await platform.publish(f"vsense/{device}/commands", b'{"id": "c1"}', qos=1)
                await asyncio.wait_for(arrived.wait(), 5)
            await proxy.close()  # now for good: publishing gives up, counted
            await asyncio.sleep(0.2)
            outcomes.append(await transport.publish(device, "payloads", []))
        finally:
            links.cancel()
            await asyncio.gather(links, return_exceptions=True)
            await proxy.close()
        return stats, commands, outcomes

    stats, commands, outcomes = asyncio.run(scenario())
    assert outcomes == [True, True, False]
    assert commands == [{"id": "c1"}]
    assert stats.errors == 1
    assert stats.retries >= simulator_mqtt.PUBLISH_ATTEMPTS - 1
