"""How the MQTT bridge handles what it received: in batches, one transaction each.

A subscriber hands over the messages that are ready (up to `mqtt_batch_size`); they are
handled in one transaction, and the subscriber acknowledges each only once it commits.
One commit for many messages is what lets the bridge keep up with a fleet: a commit is
a round trip and a disk flush, and it was the cost of a message when each had its own.
That transaction is the group commit's (`db.GroupCommit`): the batches of the process's
subscribers that wait at the same time (and its HTTP gateway's requests) share it, and
are read and written together, so that spreading the devices over several connections
does not cut the messages into smaller transactions (each batch costs its statements).

A batch that fails is not given up as a whole (the group commit first runs it again
alone, so that it cannot fail the batches it was grouped with):

- the database away (an outage, a restart, the pool exhausted): the same batch is
  handled again after a pause (1 s, doubling up to 10 s) until it commits, for as long
  as it takes; the broker holds back what follows meanwhile (its in-flight window);
- anything else (a fault of the code, a conflict): the batch is undone and its messages
  are handled one by one, each in its own transaction with its own retries, so that the
  message at fault is found, and the others are stored. A message that fails
  `MAX_ATTEMPTS` times for a reason other than the database's absence (its batch's
  failure counts as its first) is given up: acknowledged, logged as an error and counted
  `failed`, so that one poisoned message cannot hold up every device behind it forever.

A message the rules refuse (a bad topic, an unknown device, a body refused as HTTP would
refuse it) is counted, not retried. Commands handed to a device by its keepalive are
published, and acknowledged by the broker, before the transaction that marks them taken
commits: a command is never both lost and marked taken.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.db import Database, is_unavailable
from vsense.device_auth.identity import DeviceIdentity
from vsense.device_auth.service import DeviceAuth
from vsense.gateway import repository
from vsense.gateway.schemas import CommandResult, Health
from vsense.gateway.service import CommandJson, Gateway
from vsense.kit.errors import AppError
from vsense.kit.json_text import json_value
from vsense.kit.metrics import Metrics
from vsense.payloads.batches import Batch

logger = logging.getLogger("vsense.mqtt")
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 10.0
MAX_ATTEMPTS = 5  # failures of one message, the database being up, before it is dropped

# Publishes a device's commands and returns once the broker acknowledged them.
Publish = Callable[[uuid.UUID, list[CommandJson]], Awaitable[None]]


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


@dataclass(slots=True)
class Incoming:
    """A message received from the broker, read once."""

    topic: str
    raw: Any
    parsed: tuple[uuid.UUID, str, str | None] | None = field(init=False)

    def __post_init__(self) -> None:
        self.parsed = parse_topic(self.topic)


class Refused(Exception):
    """A message the rules refuse: counted under `outcome`, acknowledged, not retried."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


def _device_and_body(
    message: Incoming, known: dict[uuid.UUID, DeviceIdentity]
) -> tuple[DeviceIdentity, Any]:
    """The known device of a message with a parsed topic, and its JSON body (`Refused`
    for a body that is not JSON or a device that is not known)."""
    assert message.parsed is not None
    try:
        body = json_value(message.raw) if message.raw else None
    except (ValueError, TypeError):  # not JSON; not bytes at all
        raise Refused("invalid") from None
    device = known.get(message.parsed[0])
    if device is None:
        raise Refused("unknown_device")
    return device, body


def _spoils_transaction(error: AppError) -> bool:
    """Whether a refusal came from a failed statement (a conflict), after which the
    transaction cannot go on: a batch is then handled again one by one."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa_exc.SQLAlchemyError):
            return True
        current = current.__cause__ or current.__context__
    return False


class BatchHandler:
    """Handles the bridge's messages in batches, over the gateway's rules."""

    def __init__(
        self,
        *,
        database: Database,
        device_auth: DeviceAuth,
        gateway: Gateway,
        metrics: Metrics,
    ) -> None:
        self.database = database
        self.device_auth = device_auth
        self.gateway = gateway
        self.metrics = metrics
        # Devices recorded as speaking MQTT (so that any process pushes their commands);
        # written once per device and process.
        self.marked: set[uuid.UUID] = set()
        self._heard: set[uuid.UUID] = set()  # heard in committed batches, to be marked

    async def handle(self, messages: Sequence[Incoming], publish: Publish) -> None:
        """Handle messages until each is committed, refused, or given up."""
        self.metrics.mqtt_batch_size.observe(len(messages))
        try:
            await self._handle(messages, publish)
        finally:
            await self._mark()

    async def _handle(self, messages: Sequence[Incoming], publish: Publish) -> None:
        if len(messages) == 1:
            await self._one_until_done(messages[0], publish)
            return
        backoff = FIRST_BACKOFF
        while True:
            try:
                outcomes = await self._batch(messages, publish)
            except aiomqtt.MqttError:
                raise  # the broker's: the session resumes, the messages are resent
            except Exception as exc:
                self.metrics.mqtt_messages.labels("retried").inc(len(messages))
                if is_unavailable(exc):
                    self.metrics.mqtt_bridge_failures.labels("database").inc()
                    logger.warning(
                        "MQTT batch of %d failed (database: %s); again in %.1f s",
                        len(messages),
                        exc,
                        backoff,
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(MAX_BACKOFF, backoff * 2)
                    continue
                self.metrics.mqtt_bridge_failures.labels("error").inc()
                logger.warning(
                    "MQTT batch of %d failed (error: %s); handling its messages one by one",
                    len(messages),
                    exc,
                    exc_info=True,
                )
                for message in messages:
                    await self._one_until_done(message, publish, attempts=1)
                return
            for outcome in outcomes:
                self.metrics.mqtt_messages.labels(outcome).inc()
            return

    async def _batch(self, messages: Sequence[Incoming], publish: Publish) -> list[str]:
        """The batch in a write transaction shared with the other subscribers' batches and
        the gateway's requests (the group commit); the outcome of each message once that
        transaction commits."""
        outcomes: list[str] = await self.database.grouped_many(
            self._batches, (messages, publish), weight=len(messages)
        )
        self._heard.update(
            message.parsed[0]
            for message, outcome in zip(messages, outcomes, strict=True)
            if outcome == "accepted" and message.parsed is not None
        )
        return outcomes

    async def _batches(
        self, session: AsyncSession, batches: list[tuple[Sequence[Incoming], Publish]]
    ) -> list[list[str]]:
        """Subscribers' batches, as one, in the caller's transaction: the outcomes of each
        batch's messages."""
        messages = [message for batch, _ in batches for message in batch]
        publishers = [publish for batch, publish in batches for _ in batch]
        outcomes: list[str] = []
        to_publish: list[tuple[Publish, uuid.UUID, list[CommandJson]]] = []
        known = await self._devices(session, messages)
        # Which devices keeping alive have commands waiting or a webhook that takes
        # their keepalives, in one read of each for all.
        keeping_alive = {
            message.parsed[0]
            for message in messages
            if message.parsed is not None
            and message.parsed[1] == "keepalive"
            and message.parsed[0] in known
        }
        flags = await self.gateway.keepalive_flags(session, keeping_alive) if keeping_alive else {}
        # The payloads' checked batches, stored together once the loop is done.
        payloads: list[tuple[int, Incoming, DeviceIdentity, Batch]] = []
        for message in messages:
            try:
                checked = self._checked_payloads(message, known)
                if checked is not None:
                    payloads.append((len(outcomes), message, *checked))
                    outcomes.append("accepted")
                    continue
                commands = await self._apply(session, message, known, flags)
            except Refused as refused:
                outcomes.append(refused.outcome)
                continue
            except AppError as exc:
                if exc.status_code >= 500 or _spoils_transaction(exc):
                    raise
                logger.info("MQTT message on %s refused: %s", message.topic, exc.message)
                outcomes.append("invalid")
                continue
            except ValueError as exc:  # a body the models refused
                logger.info("MQTT message on %s refused: %s", message.topic, exc)
                outcomes.append("invalid")
                continue
            if commands:
                assert message.parsed is not None
                to_publish.append((publishers[len(outcomes)], message.parsed[0], commands))
            outcomes.append("accepted")
        if payloads:
            kept = await self.gateway.store_many(
                session, [(device, batch) for _, _, device, batch in payloads]
            )
            for (index, message, _, batch), count in zip(payloads, kept, strict=True):
                try:
                    batch.raise_refusals(count)
                except AppError as exc:  # the accepted part is kept
                    logger.info("MQTT message on %s refused: %s", message.topic, exc.message)
                    outcomes[index] = "invalid"
        # Handed to the broker before they are marked taken (the commit).
        await asyncio.gather(*(publish(device, sent) for publish, device, sent in to_publish))
        split, at = [], 0
        for part, _ in batches:
            split.append(outcomes[at : at + len(part)])
            at += len(part)
        return split

    async def _one_until_done(
        self, message: Incoming, publish: Publish, *, attempts: int = 0
    ) -> None:
        """One message in its own transaction, retried after a pause until it commits.
        `attempts`: failures already counted against it (its batch's)."""
        backoff = FIRST_BACKOFF
        while True:
            try:
                outcome = await self._alone(message, publish)
                break
            except aiomqtt.MqttError:
                raise
            except Exception as exc:
                reason = "database" if is_unavailable(exc) else "error"
                self.metrics.mqtt_bridge_failures.labels(reason).inc()
                self.metrics.mqtt_messages.labels("retried").inc()
                attempts += reason == "error"
                if attempts >= MAX_ATTEMPTS:
                    logger.error(
                        "MQTT message on %s failed %d times; dropped", message.topic, attempts
                    )
                    outcome = "failed"
                    break
                logger.warning(
                    "MQTT message on %s failed (%s: %s); again in %.1f s",
                    message.topic,
                    reason,
                    exc,
                    backoff,
                    exc_info=reason == "error",
                )
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF, backoff * 2)
        self.metrics.mqtt_messages.labels(outcome).inc()

    async def _alone(self, message: Incoming, publish: Publish) -> str:
        known: dict[uuid.UUID, DeviceIdentity] = {}
        try:
            async with self.database.write() as session:
                known = await self._devices(session, [message])
                commands = await self._apply(session, message, known)
                if commands:
                    assert message.parsed is not None
                    await publish(message.parsed[0], commands)
        except Refused as refused:
            return refused.outcome
        except AppError as exc:
            if exc.status_code >= 500:
                raise  # not the message's fault: sent again
            # A partly refused batch keeps its accepted messages (committed above).
            logger.info("MQTT message on %s refused: %s", message.topic, exc.message)
            return "invalid"
        except ValueError as exc:  # a body the models refused
            logger.info("MQTT message on %s refused: %s", message.topic, exc)
            return "invalid"
        self._heard.update(known)
        return "accepted"

    async def _devices(
        self, session: AsyncSession, messages: Sequence[Incoming]
    ) -> dict[uuid.UUID, DeviceIdentity]:
        """The known devices of the messages, in one read."""
        wanted = {message.parsed[0] for message in messages if message.parsed is not None}
        if not wanted:
            return {}
        return await self.device_auth.by_uuids(session, wanted)

    async def _mark(self) -> None:
        """Record the devices heard for the first time by this process as speaking MQTT.

        After the batch's commit, in a short transaction of its own: in the batch's,
        the devices' rows would stay locked until it commits, and the other subscribers'
        batches marking the same devices would wait for it. If the process stops in
        between, the device's next message marks it.
        """
        new = sorted(self._heard - self.marked)
        self._heard.clear()
        if not new:
            return
        try:
            async with self.database.write() as session:
                await repository.mark_speaks_mqtt(session, new)
        except Exception:
            logger.warning("recording %d devices as speaking MQTT failed", len(new), exc_info=True)
            return
        self.marked.update(new)

    def _checked_payloads(
        self, message: Incoming, known: dict[uuid.UUID, DeviceIdentity]
    ) -> tuple[DeviceIdentity, Batch] | None:
        """A payloads message's device and checked batch, or None for another kind of
        message (`Refused`, or the batch's 422, for one that cannot be stored at all)."""
        if message.parsed is None or message.parsed[1] != "payloads":
            return None
        device, body = _device_and_body(message, known)
        batch = self.gateway.check(body)
        if not batch.valid:
            batch.raise_refusals(0)
        return device, batch

    async def _apply(
        self,
        session: AsyncSession,
        message: Incoming,
        known: dict[uuid.UUID, DeviceIdentity],
        flags: dict[uuid.UUID, tuple[bool, bool]] | None = None,
    ) -> list[CommandJson]:
        """What one message does, in the caller's transaction; the commands to publish.
        `flags`: the devices' `Gateway.keepalive_flags`, when the caller read them."""
        if message.parsed is None:
            raise Refused("bad_topic")
        device_uuid, kind, command_id = message.parsed
        device, body = _device_and_body(message, known)
        if kind == "keepalive":
            # Refused as HTTP would refuse it; forwarded by keepalive webhooks.
            health = Health.model_validate(body) if isinstance(body, dict) else None
            if flags is None:
                return await self.gateway.keepalive_in(session, device, health)
            return await self.gateway.keepalive_known(
                session, device, health, flags=flags[device_uuid]
            )
        if kind == "payloads":
            await self.gateway.ingest(session, device, body)
            return []
        result = CommandResult.model_validate(body)
        await self.gateway.command_result(
            session, device, command_id or "", result.ok, result.error
        )
        return []
