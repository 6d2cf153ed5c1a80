"""The MQTT bridge: devices' messages from a broker, mapped onto the HTTP gateway's rules.

Topics (spec/devices.md): `vsense/{uuid}/keepalive`, `vsense/{uuid}/payloads`,
`vsense/{uuid}/commands/{id}/result` from devices; `vsense/{uuid}/commands` to them.
The broker authenticates devices (user name = device UUID, password = device token) and
its ACL keeps each device to its own topics; the bridge drops, and counts, messages for
devices it does not know. Messages are received with a shared subscription, so several
server processes split them, and acknowledged (PUBACK) only once what they caused is
committed.

Whatever fails while a message is handled (the database away, a conflict with another
process, a fault of the code) leaves it unacknowledged: the bridge logs and counts the
failure, waits (1 s, doubling up to 10 s) and handles the same message again, until it
is committed; the broker holds back what follows meanwhile (its in-flight window). The
message is retried here rather than left for the broker to resend after a reconnect,
because a broker may resend an unacknowledged message only on the first resumption of
a session (Mosquitto 2.0 does), and an outage may outlast several reconnects. Only a
message that fails `MAX_ATTEMPTS` times for a reason other than the database's absence
is given up (acknowledged, logged as an error and counted `failed`), so that one
poisoned message cannot hold up every device behind it forever.

When the broker fails, the bridge waits the same way and reconnects to the same session
(MQTT 5, kept `SESSION_EXPIRY` seconds): the broker keeps what arrives meanwhile, and
resends what was not acknowledged. At a stop the session is ended, so that the broker
gives the other processes of the share group what it would have kept for this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
import orjson
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from vsense.commands.service import Commands
from vsense.config import Settings
from vsense.db import Database, is_unavailable
from vsense.device_auth.service import DeviceAuth
from vsense.gateway.schemas import CommandResult, Health
from vsense.gateway.service import Gateway
from vsense.kit.errors import AppError
from vsense.kit.metrics import Metrics

logger = logging.getLogger("vsense.mqtt")
TOPICS = ("vsense/+/keepalive", "vsense/+/payloads", "vsense/+/commands/+/result")
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 10.0
SESSION_EXPIRY = 120  # seconds the broker keeps the bridge's session while it is away
MAX_ATTEMPTS = 5  # failures of one message, the database being up, before it is dropped
END_SESSION_WITHIN = 2.0  # seconds a stop waits for the broker to end the session


def parse_topic(topic: str) -> tuple[uuid.UUID, str, str | None] | None:
    """(device, kind, command id) of a device topic, or None when it is not one."""
    parts = topic.split("/")
    try:
        device = uuid.UUID(parts[1])
    except (IndexError, ValueError):
        return None
    if parts[0] != "vsense":
        return None
    if len(parts) == 3 and parts[2] in ("keepalive", "payloads"):
        return device, parts[2], None
    if len(parts) == 5 and parts[2] == "commands" and parts[4] == "result":
        return device, "result", parts[3]
    return None


class MqttBridge:
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
        self.database = database
        self.device_auth = device_auth
        self.gateway = gateway
        self.commands = commands
        self.metrics = metrics
        self.url = urlsplit(settings.mqtt_url)
        self.connected = asyncio.Event()
        # One session for the bridge's life: a reconnect resumes it (clean_start False),
        # and the broker resends what was not acknowledged.
        self.identifier = f"vsense-{uuid.uuid4().hex[:12]}"
        self._resume = False
        self._backoff = FIRST_BACKOFF
        self._client: aiomqtt.Client | None = None
        # Devices this process has heard over MQTT: their commands are pushed when
        # created, not kept for their next keepalive (which may be minutes away).
        self._heard: set[uuid.UUID] = set()
        self._pushes: set[asyncio.Task[None]] = set()
        commands.on_created(self._command_created)

    def _new_client(self, *, clean_start: bool, expiry: int = SESSION_EXPIRY) -> aiomqtt.Client:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = expiry
        return aiomqtt.Client(
            hostname=self.url.hostname or "127.0.0.1",
            port=self.url.port or 1883,
            username=self.url.username,
            password=self.url.password,
            identifier=self.identifier,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=clean_start,
            properties=properties,
        )

    async def run(self) -> None:
        """Receive until cancelled. A failure of the broker (or anything else that ends
        the session) is logged and counted; the bridge waits and resumes its session."""
        try:
            while True:
                try:
                    await self._session()
                except Exception as exc:
                    self.connected.clear()
                    self.metrics.mqtt_bridge_connected.set(0)
                    reason = "broker" if isinstance(exc, aiomqtt.MqttError) else "error"
                    self.metrics.mqtt_bridge_failures.labels(reason).inc()
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
        finally:
            self.connected.clear()
            self.metrics.mqtt_bridge_connected.set(0)

    async def _session(self) -> None:
        async with self._new_client(clean_start=not self._resume) as client:
            self._resume = True
            # Acknowledge by hand, after the commit (aiomqtt exposes no switch for it).
            client._client.manual_ack_set(True)
            group = self.share_group
            for topic in TOPICS:
                await client.subscribe(f"$share/{group}/{topic}", qos=1)
            self._client = client
            self.connected.set()
            self.metrics.mqtt_bridge_connected.set(1)
            self._backoff = FIRST_BACKOFF
            async for message in client.messages:
                await self.handle(client, message)
                client._client.ack(message.mid, message.qos)

    async def end_session(self) -> None:
        """Tell the broker the session is over (at a stop), so that the other processes
        of the share group receive what it would have kept for this one."""
        if not self._resume:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(END_SESSION_WITHIN):
                async with self._new_client(clean_start=True, expiry=0):
                    pass

    async def handle(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        """Handle a message until what it causes is committed (or it is refused, or
        given up after `MAX_ATTEMPTS` failures that were not the database's absence)."""
        topic = str(message.topic)
        attempts = 0
        backoff = FIRST_BACKOFF
        while True:
            try:
                outcome = await self._process(client, topic, message.payload)
                break
            except aiomqtt.MqttError:
                raise  # the broker's: the session resumes, the message is resent
            except Exception as exc:
                reason = "database" if is_unavailable(exc) else "error"
                self.metrics.mqtt_bridge_failures.labels(reason).inc()
                self.metrics.mqtt_messages.labels("retried").inc()
                attempts += reason == "error"
                if attempts >= MAX_ATTEMPTS:
                    logger.error("MQTT message on %s failed %d times; dropped", topic, attempts)
                    outcome = "failed"
                    break
                logger.warning(
                    "MQTT message on %s failed (%s: %s); again in %.1f s",
                    topic,
                    reason,
                    exc,
                    backoff,
                    exc_info=reason == "error",
                )
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF, backoff * 2)
        self.metrics.mqtt_messages.labels(outcome).inc()

    async def _process(self, client: aiomqtt.Client, topic: str, raw: Any) -> str:
        parsed = parse_topic(topic)
        if parsed is None:
            return "bad_topic"
        device_uuid, kind, command_id = parsed
        try:
            body = orjson.loads(raw) if raw else None
        except (orjson.JSONDecodeError, TypeError):
            return "invalid"
        commands: list[dict[str, Any]] = []
        try:
            async with self.database.write() as session:
                device = await self.device_auth.by_uuid(session, device_uuid)
                if device is None:
                    return "unknown_device"
                self._heard.add(device_uuid)
                if kind == "keepalive":
                    # Refused as HTTP would refuse it; forwarded by keepalive webhooks.
                    health = Health.model_validate(body) if isinstance(body, dict) else None
                    commands = await self.gateway.keepalive_in(session, device, health)
                elif kind == "payloads":
                    await self.gateway.ingest(session, device, body)
                else:
                    result = CommandResult.model_validate(body)
                    await self.gateway.command_result(
                        session, device, command_id or "", result.ok, result.error
                    )
        except AppError as exc:
            if exc.status_code >= 500:
                raise  # not the message's fault: sent again
            # A partly refused batch keeps its accepted messages (committed above).
            logger.info("MQTT message on %s refused: %s", topic, exc.message)
            return "invalid"
        except ValueError as exc:  # a body the models refused
            logger.info("MQTT message on %s refused: %s", topic, exc)
            return "invalid"
        await self._publish(client, device_uuid, commands)
        return "accepted"

    @staticmethod
    async def _publish(
        client: aiomqtt.Client, device: uuid.UUID, commands: list[dict[str, Any]]
    ) -> None:
        for command in commands:
            await client.publish(f"vsense/{device}/commands", orjson.dumps(command), qos=1)

    def _command_created(self, device: uuid.UUID) -> None:
        if device in self._heard and self._client is not None and self.connected.is_set():
            task = asyncio.get_running_loop().create_task(self._push(self._client, device))
            self._pushes.add(task)
            task.add_done_callback(self._pushes.discard)

    async def _push(self, client: aiomqtt.Client, device: uuid.UUID) -> None:
        """Hand a device the commands waiting for it, now (they are marked taken first,
        so a keepalive or poll elsewhere does not hand them out twice)."""
        try:
            async with self.database.write() as session:
                commands = await self.commands.take(session, device)
                # Published before the commit: if the broker fails, they stay pending.
                await self._publish(client, device, commands)
        except Exception:
            logger.exception("pushing commands to %s failed; they wait for its keepalive", device)
