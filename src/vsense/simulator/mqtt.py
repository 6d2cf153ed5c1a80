"""The MQTT transport of the simulated fleet (spec/devices.md, "MQTT transport").

Devices publish on `vsense/{uuid}/keepalive`, `vsense/{uuid}/payloads` and
`vsense/{uuid}/commands/{id}/result` (QoS 1, the same JSON bodies as over HTTP) and
receive their commands on `vsense/{uuid}/commands`, to which they subscribe.

A real device holds one connection of its own, on which the broker authenticates it
(user name = device UUID, password = device token) and its ACL keeps it to its own
topics. Thousands of connections from one process cost more than they show, so by
default the fleet shares a small pool of connections, each publishing and subscribing
for many devices, with the credentials of the broker URL if it has any (anonymous
otherwise): that targets brokers which allow it, such as a local Mosquitto with
anonymous access, not a production broker. `per_device=True` gives each device its
own connection with its own credentials, as real devices do.

`MqttTransport` is the fleet's `Transport` over a broker; like the rest of the
simulator it imports nothing of the server.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt

from vsense.simulator.scenes import Message
from vsense.simulator.transport import Command, FleetError, FleetStats, Identity, OnCommand

QOS = 1
PUBLISH_ATTEMPTS = 5
PUBLISH_TIMEOUT_S = 10.0
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
FIRST_RECONNECT_S = 1.0
SUBSCRIBE_CHUNK = 200  # topics per SUBSCRIBE packet
CONNECT_WAIT_S = 10.0  # how long the first connections to the broker may take

_jitter = random.Random()


@dataclass(frozen=True, slots=True)
class Broker:
    """Where the broker is: `mqtt://[user:password@]host[:port]`, or `mqtts://` for TLS."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> Broker:
        """The broker of a URL; ValueError (without the password) when it is not one."""
        parts = urlsplit(url.strip())
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("expected a broker URL such as mqtt://127.0.0.1:1883 or mqtts://host")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("a broker URL has no path or query: mqtt://host[:port]")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("the broker URL's port is not a number from 0 to 65535") from None
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
        )

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


class _Link:
    """One connection to the broker, subscribed to the commands topics of its devices;
    it reconnects with a growing, jittered pause whenever the broker goes away."""

    def __init__(
        self,
        broker: Broker,
        *,
        identifier: str,
        username: str | None,
        password: str | None,
        topics: list[str],
        on_message: Callable[[str, Any], None],
        log: Callable[[str], None],
    ) -> None:
        self.broker = broker
        self.identifier = identifier
        self.username = username
        self.password = password
        self.topics = topics
        self.on_message = on_message
        self.log = log
        self.client: aiomqtt.Client | None = None  # set while connected and subscribed
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Stay connected until cancelled."""
        backoff = FIRST_RECONNECT_S
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                was_up = self.ready.is_set()
                self.ready.clear()
                self.client = None
                if was_up:
                    backoff = FIRST_RECONNECT_S
                self.log(f"MQTT {self.identifier}: {exc or type(exc).__name__}; reconnecting")
                await asyncio.sleep(backoff * _jitter.uniform(1.0, 1.25))
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _session(self) -> None:
        client = aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            username=self.username,
            password=self.password,
            identifier=self.identifier,
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_context=ssl.create_default_context() if self.broker.tls else None,
            timeout=PUBLISH_TIMEOUT_S,
        )
        # A pooled connection publishes for many devices at once, by design: the fleet's
        # `concurrency` bounds that, so aiomqtt's warning about many pending calls is noise.
        client.pending_calls_threshold = 1 << 30
        async with client:
            for start in range(0, len(self.topics), SUBSCRIBE_CHUNK):
                chunk = self.topics[start : start + SUBSCRIBE_CHUNK]
                await client.subscribe([(topic, QOS) for topic in chunk])
            self.client = client
            self.ready.set()
            async for message in client.messages:
                self.on_message(str(message.topic), message.payload)
        raise aiomqtt.MqttError("the connection ended")  # `messages` only ends by raising


class MqttTransport:
    """Publishes for the devices of a fleet and passes each their commands.

    `devices` are (UUID, token) pairs. `publish` retries with backoff, counting retries
    and, when it gives up, an error in `stats`. `on_command(uuid, command)` receives
    each command object that arrives on a device's commands topic (`connect` sets it
    for a fleet run).
    """

    def __init__(
        self,
        broker: Broker,
        devices: Sequence[tuple[str, str]],
        *,
        stats: FleetStats,
        log: Callable[[str], None],
        on_command: OnCommand | None = None,
        pool_size: int = 1,
        per_device: bool = False,
    ) -> None:
        self.broker = broker
        self.stats = stats
        self.log = log
        self.on_command = on_command
        self._links: list[_Link] = []
        self._link_of: dict[str, _Link] = {}
        if per_device:
            for device_uuid, token in devices:
                self._add_link(device_uuid, device_uuid, token, [device_uuid])
        else:
            run = uuid.uuid4().hex[:8]
            size = max(1, min(pool_size, len(devices)))
            for index in range(size):
                members = [device_uuid for device_uuid, _ in devices[index::size]]
                identifier = f"vsense-sim-{run}-{index}"
                self._add_link(identifier, broker.username, broker.password, members)

    def _add_link(
        self, identifier: str, username: str | None, password: str | None, members: list[str]
    ) -> None:
        link = _Link(
            self.broker,
            identifier=identifier,
            username=username,
            password=password,
            topics=[f"vsense/{member}/commands" for member in members],
            on_message=self._received,
            log=self.log,
        )
        self._links.append(link)
        self._link_of.update((member, link) for member in members)

    @asynccontextmanager
    async def connect(self, on_command: OnCommand) -> AsyncIterator[None]:
        """Keep every connection up while the run lasts, once they are up; FleetError
        when none comes up within CONNECT_WAIT_S."""
        self.on_command = on_command
        links = asyncio.create_task(self.run())
        try:
            if self._links:
                up = await self.wait_connected(CONNECT_WAIT_S)
                if not up:
                    raise FleetError(
                        f"cannot connect to the MQTT broker {self.broker} "
                        f"within {CONNECT_WAIT_S:.0f} s"
                    )
                if up < self.connections:
                    self.log(f"{up} of {self.connections} MQTT connections up; retrying")
            yield
        finally:
            links.cancel()
            await asyncio.gather(links, return_exceptions=True)

    async def keepalive(self, device: Identity, health: dict[str, Any]) -> list[Command] | None:
        """Publish a keepalive; pending commands come back on the commands topic."""
        return [] if await self.publish(device.uuid, "keepalive", health) else None

    async def send_payloads(self, device: Identity, batch: list[Message]) -> int | None:
        """Publish a batch: accepted once the broker acknowledged it (what the server
        refuses is not answered over MQTT)."""
        return len(batch) if await self.publish(device.uuid, "payloads", batch) else None

    async def report_result(self, device: Identity, command_id: str, result: Command) -> bool:
        """Publish a command's result on its own topic."""
        if not command_id or any(char in command_id for char in "/+#"):
            self.stats.errors += 1
            self.log(f"{device.identifier}: command id {command_id!r} cannot be a topic")
            return False
        return await self.publish(device.uuid, f"commands/{command_id}/result", result)

    async def run(self) -> None:
        """Keep every connection up until cancelled."""
        async with asyncio.TaskGroup() as group:
            for link in self._links:
                group.create_task(link.run())

    async def wait_connected(self, seconds: float) -> int:
        """Wait up to `seconds` for every connection; the number that are up."""
        try:
            async with asyncio.timeout(seconds):
                await asyncio.gather(*(link.ready.wait() for link in self._links))
        except TimeoutError:
            pass
        return sum(link.ready.is_set() for link in self._links)

    @property
    def connections(self) -> int:
        return len(self._links)

    async def publish(self, device_uuid: str, subtopic: str, body: Any) -> bool:
        """Publish `body` as JSON on `vsense/{device_uuid}/{subtopic}` with QoS 1: True
        once the broker acknowledged it, False (counted and logged) after giving up."""
        link = self._link_of[device_uuid]
        topic = f"vsense/{device_uuid}/{subtopic}"
        payload = json.dumps(body, separators=(",", ":")).encode()
        backoff = FIRST_BACKOFF_S
        problem = ""
        for attempt in range(1, PUBLISH_ATTEMPTS + 1):
            client = link.client
            if client is None:
                problem = "not connected to the broker"
            else:
                try:
                    await client.publish(topic, payload, qos=QOS, timeout=PUBLISH_TIMEOUT_S)
                except aiomqtt.MqttError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                else:
                    return True
            if attempt == PUBLISH_ATTEMPTS:
                break
            self.stats.retries += 1
            await asyncio.sleep(backoff * _jitter.uniform(1.0, 1.25))
            backoff = min(backoff * 2, MAX_BACKOFF_S)
        self.stats.errors += 1
        self.log(f"publish on {topic}: gave up after {PUBLISH_ATTEMPTS} attempts ({problem})")
        return False

    def _received(self, topic: str, payload: Any) -> None:
        parts = topic.split("/")
        if len(parts) != 3 or parts[0] != "vsense" or parts[2] != "commands":
            return  # not ours: subscriptions name exact topics, so this does not happen
        try:
            command = json.loads(payload)
        except (TypeError, ValueError):
            command = None
        if not isinstance(command, dict) or not isinstance(command.get("id"), str | int):
            self.log(f"{topic}: ignored a message that is not a command")
            return
        if self.on_command is not None:
            self.on_command(parts[1], command)


__all__ = ["Broker", "MqttTransport"]
