"""The MQTT bridge: devices' messages from a broker, mapped onto the HTTP gateway's rules.

Topics (spec/devices.md): `vsense/{uuid}/keepalive`, `vsense/{uuid}/payloads`,
`vsense/{uuid}/commands/{id}/result` from devices; `vsense/{uuid}/commands` to them.
The broker authenticates devices (user name = device UUID, password = device token) and
its ACL keeps each device to its own topics; the bridge drops, and counts, messages for
devices it does not know.

Each server process opens `mqtt_subscribers` connections to the broker, each a member of
the shared subscription: the broker spreads the devices' messages over all of them, in
every process of the share group. A subscriber takes what it has received (up to
`mqtt_batch_size`, waiting at most `mqtt_batch_wait` for more), has it handled in one
transaction, shared with the other subscribers' batches waiting at the same time
(`mqtt_batch.py`: the group commit, retries, the database away, a poisoned message), and
acknowledges each message (PUBACK) only once that transaction committed. The broker
keeps up to `mqtt_receive_maximum` messages in flight to each subscriber (MQTT 5
receive maximum; without it Mosquitto allows 20), so that the next batch fills while
one commits. Messages are retried here rather than left for the broker to resend after a
reconnect, because a broker may resend an unacknowledged message only on the first
resumption of a session (Mosquitto 2.0 does), and an outage may outlast several.

When the broker fails, a subscriber waits (1 s, doubling up to 10 s) and reconnects to
the same session (MQTT 5, kept `SESSION_EXPIRY` seconds): the broker keeps what arrives
meanwhile, and resends what was not acknowledged. At a stop the bridge leaves the share
group (the broker gives what comes next to the other processes), handles and
acknowledges what it had received (`drain`), then ends its sessions: a broker drops what
an ended session held unacknowledged (Mosquitto 2.0 does, shared subscriptions
included), it does not hand it to the other members.
A process that dies without stopping leaves its sessions, and what they received but did
not acknowledge, at the broker: with `mqtt_client_id` set, the process that takes its
place (the same slot, restarted) resumes them and handles those messages.
The first subscriber also follows the broker's count of dropped messages (`$SYS`,
`mqtt_push.BrokerDrops`), and any connected subscriber publishes commands
(`mqtt_push.CommandPush`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from urllib.parse import urlsplit

import aiomqtt
import orjson
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from vsense.commands.service import Commands
from vsense.config import Settings
from vsense.db import Database
from vsense.device_auth.service import DeviceAuth
from vsense.gateway.mqtt_batch import (
    FIRST_BACKOFF,
    MAX_ATTEMPTS,
    MAX_BACKOFF,
    BatchHandler,
    Incoming,
    Publish,
    parse_topic,
)
from vsense.gateway.mqtt_push import SYS_TOPICS, BrokerDrops, CommandPush
from vsense.gateway.service import CommandJson, Gateway
from vsense.kit.metrics import Metrics

__all__ = ["MAX_ATTEMPTS", "TOPICS", "MqttBridge", "parse_topic"]

logger = logging.getLogger("vsense.mqtt")
TOPICS = ("vsense/+/keepalive", "vsense/+/payloads", "vsense/+/commands/+/result")
SESSION_EXPIRY = 120  # seconds the broker keeps a subscriber's session while it is away
END_SESSION_WITHIN = 2.0  # seconds a stop waits for the broker to end the sessions
DRAIN_QUIET = 0.25  # seconds without a message after which a stop's drain is over


class _Subscriber:
    """One connection of the bridge, one member of the share group."""

    def __init__(
        self, bridge: MqttBridge, identifier: str, *, watch_drops: bool, resume: bool
    ) -> None:
        self.bridge = bridge
        self.identifier = identifier
        self.watch_drops = watch_drops
        self.client: aiomqtt.Client | None = None  # set while connected and subscribed
        # A stable identifier resumes the session a previous process left, if any.
        self._resume = resume
        self._backoff = FIRST_BACKOFF
        self.handled = 0  # messages handed to the batch handler
        self.busy = False  # a batch is being gathered, handled and acknowledged

    def _new_client(self, *, clean_start: bool, expiry: int = SESSION_EXPIRY) -> aiomqtt.Client:
        bridge = self.bridge
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = expiry
        properties.ReceiveMaximum = bridge.receive_maximum
        client = aiomqtt.Client(
            hostname=bridge.url.hostname or "127.0.0.1",
            port=bridge.url.port or 1883,
            username=bridge.url.username,
            password=bridge.url.password,
            identifier=self.identifier,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=clean_start,
            properties=properties,
        )
        client.pending_calls_threshold = 1 << 30  # pushes and keepalive answers at once
        return client

    async def run(self) -> None:
        """Receive until cancelled; a failure of the broker (or anything else that ends
        the session) is logged and counted, and the session resumed after a pause."""
        bridge = self.bridge
        while True:
            try:
                await self._session()
            except Exception as exc:
                self.client = None
                bridge.subscriber_down()
                reason = "broker" if isinstance(exc, aiomqtt.MqttError) else "error"
                bridge.metrics.mqtt_bridge_failures.labels(reason).inc()
                log = logger.error if reason == "error" else logger.warning
                log(
                    "MQTT bridge interrupted (%s: %s); reconnecting in %.0f s",
                    reason,
                    exc,
                    self._backoff,
                    exc_info=reason == "error",
                )
                await asyncio.sleep(self._backoff)
                self._backoff = min(MAX_BACKOFF, self._backoff * 2)

    async def _session(self) -> None:
        bridge = self.bridge
        async with self._new_client(clean_start=not self._resume) as client:
            self._resume = True
            # Acknowledge by hand, after the commit (aiomqtt exposes no switch for it).
            client._client.manual_ack_set(True)
            for topic in TOPICS:
                await client.subscribe(f"$share/{bridge.share_group}/{topic}", qos=1)
            if self.watch_drops:
                await client.subscribe(SYS_TOPICS, qos=0)
            self.client = client
            self._backoff = FIRST_BACKOFF
            bridge.subscriber_up()
            async for first in client.messages:
                self.busy = True
                try:
                    await self._handle(client, await self._collect(client, first))
                finally:
                    self.busy = False

    async def _handle(self, client: aiomqtt.Client, received: list[aiomqtt.Message]) -> None:
        """Handle a batch received, then acknowledge each of its messages."""
        bridge = self.bridge
        batch: list[Incoming] = []
        for message in received:
            topic = str(message.topic)
            if topic.startswith("$SYS/"):
                bridge.drops.report(topic, message.payload)
            else:
                batch.append(Incoming(topic, message.payload))
        if batch:
            await bridge.handler.handle(batch, self.publisher(client))
            self.handled += len(batch)
        for message in received:  # `$SYS` reports (QoS 0) need none
            client._client.ack(message.mid, message.qos)

    async def _collect(
        self, client: aiomqtt.Client, first: aiomqtt.Message
    ) -> list[aiomqtt.Message]:
        """`first` and the messages ready after it, up to a batch, waiting at most the
        batch wait for more."""
        bridge = self.bridge
        received = [first]
        queue = client._queue
        loop = asyncio.get_running_loop()
        deadline = loop.time() + bridge.batch_wait
        while len(received) < bridge.batch_size:
            try:
                received.append(queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                async with asyncio.timeout(left):
                    received.append(await queue.get())
            except TimeoutError:
                break
        return received

    def idle(self) -> bool:
        """Whether nothing it received waits to be handled or acknowledged."""
        return not self.busy and (self.client is None or self.client._queue.empty())

    async def unsubscribe(self) -> None:
        """Leave the share group (at a stop): the broker gives the other members what
        comes next. A failure (the broker away) is logged: the stop goes on."""
        client = self.client
        if client is None:
            return
        try:
            for topic in TOPICS:
                await client.unsubscribe(f"$share/{self.bridge.share_group}/{topic}")
        except aiomqtt.MqttError as exc:
            logger.warning("MQTT bridge could not unsubscribe at its stop: %s", exc)

    @staticmethod
    def publisher(client: aiomqtt.Client) -> Publish:
        async def publish(device: uuid.UUID, commands: list[CommandJson]) -> None:
            topic = f"vsense/{device}/commands"
            await asyncio.gather(
                *(client.publish(topic, orjson.dumps(command), qos=1) for command in commands)
            )

        return publish

    async def end_session(self) -> None:
        if not self._resume:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(END_SESSION_WITHIN):
                async with self._new_client(clean_start=True, expiry=0):
                    pass


class MqttBridge:
    """The bridge of a server process: its subscribers, the batch handler they share,
    the command push and the broker's drop counter."""

    def __init__(
        self,
        settings: Settings,
        *,
        database: Database,
        device_auth: DeviceAuth,
        gateway: Gateway,
        commands: Commands,
        metrics: Metrics,
    ) -> None:
        if not settings.mqtt_url:
            raise ValueError("the MQTT bridge needs VSENSE_MQTT_URL")
        self.share_group = settings.mqtt_share_group
        self.batch_size = settings.mqtt_batch_size
        self.batch_wait = settings.mqtt_batch_wait.total_seconds()
        self.receive_maximum = max(settings.mqtt_receive_maximum, 1)
        self.metrics = metrics
        self.gateway = gateway
        self.url = urlsplit(settings.mqtt_url)
        self.connected = asyncio.Event()  # every subscriber is connected and subscribed
        self.handler = BatchHandler(
            database=database, device_auth=device_auth, gateway=gateway, metrics=metrics
        )
        self.drops = BrokerDrops(metrics)
        self.push = CommandPush(database=database, commands=commands, publisher=self.publish)
        # One session per subscriber for the bridge's life: a reconnect resumes it; with
        # `mqtt_client_id`, so does the next process of the same slot.
        process = settings.mqtt_client_id or f"vsense-{uuid.uuid4().hex[:12]}"
        self.subscribers = [
            _Subscriber(
                self,
                f"{process}-{index}",
                watch_drops=index == 0,
                resume=settings.mqtt_client_id is not None,
            )
            for index in range(settings.mqtt_subscribers)
        ]

    def subscriber_up(self) -> None:
        if all(subscriber.client is not None for subscriber in self.subscribers):
            self.connected.set()
            self.metrics.mqtt_bridge_connected.set(1)

    def subscriber_down(self) -> None:
        self.connected.clear()
        self.metrics.mqtt_bridge_connected.set(0)

    def publish(self) -> Publish | None:
        """Publishes through a connected subscriber; None while none is."""
        for subscriber in self.subscribers:
            if subscriber.client is not None:
                return _Subscriber.publisher(subscriber.client)
        return None

    async def run(self) -> None:
        """Receive until cancelled."""
        try:
            async with asyncio.TaskGroup() as group:
                for subscriber in self.subscribers:
                    group.create_task(subscriber.run())
        finally:
            self.subscriber_down()

    def handled(self) -> int:
        """Messages the subscribers have handed to the batch handler so far."""
        return sum(subscriber.handled for subscriber in self.subscribers)

    async def drain(self, within: float) -> None:
        """At a stop, before the subscribers are cancelled and the sessions ended: leave
        the share group, so that the broker gives what comes next to the other processes,
        then handle and acknowledge what was received, until nothing more has come for
        `DRAIN_QUIET` s (at most `within` s, then an error is logged). A broker drops the
        messages a session held unacknowledged when it ends (Mosquitto 2.0 does, shared
        subscriptions included): without the drain, those would be lost."""
        try:
            async with asyncio.timeout(within):
                await asyncio.gather(*(subscriber.unsubscribe() for subscriber in self.subscribers))
                while True:
                    seen = self.handled()
                    await asyncio.sleep(DRAIN_QUIET)
                    if seen == self.handled() and all(s.idle() for s in self.subscribers):
                        return
        except TimeoutError:
            logger.error(
                "MQTT bridge stopped before handling all it had received (%.0f s): the broker "
                "drops what was not acknowledged",
                within,
            )

    async def end_session(self) -> None:
        """Tell the broker the sessions are over (at a stop, after `drain`), so that it
        keeps nothing more for them."""
        await asyncio.gather(*(subscriber.end_session() for subscriber in self.subscribers))
