"""Commands pushed to devices over MQTT from whichever process created them, and the
broker's own drop counter.

A device heard over MQTT by any server process is recorded as such in the database
(`devices.speaks_mqtt`, set by the bridge); so the process where a command is created,
whichever it is, publishes it to `vsense/{uuid}/commands` through its own connection to
the broker at once, instead of leaving it for the device's next keepalive. The command
is marked taken in a transaction that commits only after the broker acknowledged the
publication (PUBACK): if the broker fails, the command stays pending, and the next
keepalive hands it out; it is never both lost and marked taken.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from vsense.commands.service import Commands
from vsense.db import Database
from vsense.gateway import repository
from vsense.gateway.service import CommandJson
from vsense.kit.metrics import Metrics

logger = logging.getLogger("vsense.mqtt")

# Publishes a device's commands through a connected client, returning once the broker
# acknowledged them; None while no connection to the broker is up.
Publisher = Callable[[], Callable[[uuid.UUID, list[CommandJson]], Awaitable[None]] | None]

# The broker's count of messages it dropped (a client's queue full, or a client it could
# not send to), published by Mosquitto every `sys_interval` seconds (10 by default), as
# a retained message, once it is above zero; the other counters of the same branch come
# at every interval and tell that the broker does report.
SYS_TOPICS = "$SYS/broker/publish/messages/+"
DROPPED_TOPIC = "$SYS/broker/publish/messages/dropped"
DROPS_RECENT_S = 120.0  # drops newer than this make the bridge not ready
RETAINED_WITHIN_S = 5.0  # a first report this soon after subscribing is the retained one


class CommandPush:
    """Publishes a device's new commands as soon as they are committed, when the device
    speaks MQTT (as any process's bridge recorded it)."""

    def __init__(self, *, database: Database, commands: Commands, publisher: Publisher) -> None:
        self.database = database
        self.commands = commands
        self.publisher = publisher
        self._tasks: set[asyncio.Task[int]] = set()
        commands.on_created(self.created)

    def created(self, device: uuid.UUID) -> None:
        """A command for `device` was committed in this process."""
        if self.publisher() is None:
            return  # not connected: the device's keepalive hands it out
        task = asyncio.get_running_loop().create_task(self.push(device))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def push(self, device: uuid.UUID) -> int:
        """Hand a device the commands waiting for it, now; how many were published."""
        try:
            async with self.database.read_sessionmaker() as session:
                if not await repository.speaks_mqtt(session, device):
                    return 0
            async with self.database.write() as session:
                commands = await self.commands.take(session, device)
                if not commands:
                    return 0
                publish = self.publisher()
                if publish is None:
                    raise ConnectionError("not connected to the MQTT broker")
                # Acknowledged by the broker before they are marked taken (the commit).
                await publish(device, commands)
            return len(commands)
        except Exception:
            logger.exception("pushing commands to %s failed; they wait for its keepalive", device)
            return 0


class BrokerDrops:
    """What the broker says it dropped (`$SYS/broker/publish/messages/dropped`), shown in
    `/metrics` and in `/readyz`: a broker that drops messages loses what devices were
    told was delivered, so it must not go unseen."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.total: int | None = None  # as the broker last reported it
        self.last_increase: float | None = None  # monotonic time drops last went up
        self.recent = 0  # messages dropped between the last two reports that differed
        self._zero_since: float | None = None  # reporting, and no drop reported yet

    def report(self, topic: str, raw: bytes | bytearray | str) -> None:
        """A `$SYS` report of the branch the bridge follows."""
        if topic == DROPPED_TOPIC:
            self._dropped(raw)
        elif self.total is None and self._zero_since is None:
            # The broker reports, and said nothing of drops: none since it started.
            self._zero_since = time.monotonic()
            self.metrics.mqtt_broker_dropped.set(0)

    def _dropped(self, raw: bytes | bytearray | str) -> None:
        try:
            value = int(raw if isinstance(raw, str) else bytes(raw).decode())
        except ValueError:
            return
        previous = self.total
        # The first drops after a time of none are a rise (a report right after
        # subscribing is the retained count: where the broker stood).
        if (
            previous is None
            and self._zero_since is not None
            and time.monotonic() - self._zero_since > RETAINED_WITHIN_S
        ):
            previous = 0
        if previous is not None and value > previous:
            self.recent = value - previous
            self.last_increase = time.monotonic()
            logger.error(
                "the MQTT broker dropped %d messages (%d since it started): raise its "
                "queue limits or add bridge subscribers",
                self.recent,
                value,
            )
        self.total = value
        self.metrics.mqtt_broker_dropped.set(value)

    def dropping(self) -> bool:
        """Whether the broker reported new drops within `DROPS_RECENT_S`."""
        return (
            self.last_increase is not None
            and time.monotonic() - self.last_increase < DROPS_RECENT_S
        )
