"""The rules of the device protocol: what a keepalive, a batch of messages, a long poll
and a command result do, whichever transport (HTTP, MQTT) brought them.

The gateway knows the device and keeps it alive; what a message carries goes on to its
own home: the payload log (`vsense.payloads`), the commands (`vsense.commands`), and
from there the outbox.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from vsense.commands.service import Commands
from vsense.db import Database
from vsense.device_auth.identity import DeviceIdentity
from vsense.device_auth.service import DeviceAuth
from vsense.gateway.liveness import Liveness
from vsense.gateway.schemas import Health
from vsense.kit.batching import Batcher
from vsense.kit.errors import BadRequest
from vsense.kit.time import utcnow
from vsense.payloads.batches import Batch, check_batch
from vsense.payloads.ingest import PayloadLog
from vsense.webhooks.events import KEEPALIVE, keepalive_body
from vsense.webhooks.outbox import Outbox

MAX_WAIT = 55
# A long poll also looks at the database this often, for commands created by another
# server process while its commit was not heard (this process's own, and those heard
# from the others, wake it at once).
POLL_INTERVAL = 1.0

# A command as a device receives it: `{"id", "type", "created", ...arguments}`.
CommandJson = dict[str, Any]


class Gateway:
    """The device protocol over the parts it passes messages on to."""

    def __init__(
        self,
        *,
        database: Database,
        device_auth: DeviceAuth,
        liveness: Liveness,
        commands: Commands,
        payloads: PayloadLog,
        outbox: Outbox,
        webhook_source: str,
    ) -> None:
        self.database = database
        self.device_auth = device_auth
        self.liveness = liveness
        self.commands = commands
        self.payloads = payloads
        self.outbox = outbox
        self.webhook_source = webhook_source
        self._keepalive_reads: Batcher[uuid.UUID, tuple[bool, bool]] = Batcher(
            self._read_keepalives
        )

    async def keepalive(self, device: DeviceIdentity, health: Health | None) -> list[CommandJson]:
        """A keepalive of a verified device; answered with its pending commands.

        The common case (an online device, no command waiting, no keepalive webhook due)
        writes nothing: its sign of life joins the next batch. What it must know is read
        outside any transaction: from this process's hints when they know it (see
        `Commands.idle` and `Outbox.known_unwanted` for how long each is trusted), else
        in one read shared with the concurrent keepalives that missed them too (a large
        fleet, where each device comes every few minutes). A write transaction is opened
        only to bring a device back online, to queue its keepalive webhook or to hand
        out commands. Health is not stored; the keepalive webhook forwards it.
        """
        online = self.liveness.known_online(device)
        if (
            online
            and self.commands.idle(device.uuid)
            and self.outbox.known_unwanted(device.uuid, KEEPALIVE)
        ):
            self.liveness.seen_online(device)
            return []
        waiting, wanted = await self._keepalive_reads.get(device.uuid) or (True, True)
        forward = wanted and self.outbox.keepalive_due(device.uuid)
        if online and not waiting and not forward:
            self.liveness.seen_online(device)
            return []
        async with self.database.write() as session:
            return await self.keepalive_in(session, device, health, forward=forward)

    async def _read_keepalives(
        self, devices: list[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[bool, bool]]:
        """`keepalive_flags` in one read session for many keepalives."""
        async with self.database.read_sessionmaker() as session:
            return await self.keepalive_flags(session, devices)

    async def keepalive_flags(
        self, session: AsyncSession, devices: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[bool, bool]]:
        """For each device, whether it has commands waiting and a webhook that takes its
        keepalives (hints; one read of each for the devices they do not know)."""
        waiting = await self.commands.pending_among(session, devices)
        wanted = await self.outbox.wanting(session, devices, KEEPALIVE)
        return {device: (device in waiting, device in wanted) for device in devices}

    async def keepalive_in(
        self,
        session: AsyncSession,
        device: DeviceIdentity,
        health: Health | None = None,
        *,
        forward: bool | None = None,
    ) -> list[CommandJson]:
        """A keepalive in the caller's transaction: sign of life, its webhook (at most one
        per device per `webhook_keepalive_min_interval`; `forward` when the caller
        decided), then the pending commands."""
        events = await self.liveness.sign_of_life(session, device, "keepalive")
        if forward is None:
            forward = await self.outbox.wants(
                session, device.uuid, KEEPALIVE
            ) and self.outbox.keepalive_due(device.uuid)
        if forward:
            body = keepalive_body(
                self.webhook_source,
                device.uuid,
                int(utcnow().timestamp()),
                health.model_dump(exclude_none=True) if health else None,
            )
            events.append((device.uuid, KEEPALIVE, body))
        await self.outbox.emit_many(session, events)
        return await self.commands.take(session, device.uuid)

    async def keepalive_known(
        self,
        session: AsyncSession,
        device: DeviceIdentity,
        health: Health | None,
        *,
        flags: tuple[bool, bool],
    ) -> list[CommandJson]:
        """A keepalive in the caller's transaction, when the caller has read its device's
        `keepalive_flags` (the MQTT bridge reads them for a whole batch at once): as
        `keepalive`, the common case writes nothing, its sign of life joining the next
        batch."""
        waiting, wanted = flags
        forward = wanted and self.outbox.keepalive_due(device.uuid)
        if self.liveness.known_online(device) and not waiting and not forward:
            self.liveness.seen_online(device)
            return []
        return await self.keepalive_in(session, device, health, forward=forward)

    async def ingest(self, session: AsyncSession, device: DeviceIdentity, body: Any) -> int:
        """Validate and store a message or a batch, in the caller's transaction. Every
        accepted message is kept even when others of its batch are refused (422 naming
        each refused message by index)."""
        batch = self.check(body)
        kept = await self.store(session, device, batch) if batch.valid else 0
        batch.raise_refusals(kept)
        return kept

    def check(self, body: Any) -> Batch:
        """A message or a batch validated, before any database work: what may be kept
        and what is refused (422 at once when the batch is empty or too long)."""
        return check_batch(body, accept_unknown_types=self.payloads.accept_unknown_types)

    async def store(self, session: AsyncSession, device: DeviceIdentity, batch: Batch) -> int:
        """Keep a checked batch's valid messages in the caller's transaction (the device's
        sign of life with them); how many were kept. Safe to run again after a rollback
        (the group commit's fallback)."""
        [kept] = await self.store_many(session, [(device, batch)])
        return kept

    async def store_many(
        self, session: AsyncSession, batches: list[tuple[DeviceIdentity, Batch]]
    ) -> list[int]:
        """`store` for the checked batches of many requests at once (the group commit's
        `run_many`): their messages, metrics and events written together."""
        units = []
        for device, batch in batches:
            came_back = await self.liveness.sign_of_life(session, device, "payload")
            units.append((device.uuid, batch, came_back))
        return await self.payloads.record_many(session, units)

    async def wait_for_commands(self, device: DeviceIdentity, wait: float) -> list[CommandJson]:
        """The long poll: pending commands as soon as there are some, or [] after `wait`
        (or at once when the process is stopping).

        Opens its own sessions: each look at the database is a short read of its own, so
        a waiting device holds no connection, and many waiting devices do not queue for
        the write lock (SQLite); a write transaction is opened only to bring the device
        back online, and commands that are there are taken in the group commit's.
        """
        if not 0 <= wait <= MAX_WAIT:
            raise BadRequest(f"`wait` must be between 0 and {MAX_WAIT} seconds.")
        deadline = time.monotonic() + wait
        if self.liveness.known_online(device):
            self.liveness.seen_online(device)
        else:
            async with self.database.write() as session:
                came_back = await self.liveness.sign_of_life(session, device, "command_poll")
                await self.outbox.emit_many(session, came_back)
        with self.commands.watch(device.uuid) as watch:
            woken = False  # by a command committed in this process: no need to look first
            while True:
                waiting = woken
                if not waiting:
                    async with self.database.read_sessionmaker() as session:
                        waiting = await self.commands.pending(session, device.uuid)
                if waiting:
                    # In a transaction shared with the process's concurrent device
                    # writes: many polls woken at once take their commands together.
                    commands = await self.database.grouped(
                        lambda session: self.commands.take(session, device.uuid)
                    )
                    if commands:
                        return commands
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.commands.waiters.stopping:
                    return []
                woken = await watch.wait(min(remaining, POLL_INTERVAL))

    async def command_result(
        self,
        session: AsyncSession,
        device: DeviceIdentity,
        command_id: str,
        ok: bool,
        error: str | None,
    ) -> None:
        """The outcome of a command the device took, in the caller's transaction."""
        await self.commands.complete(session, device.uuid, command_id, ok, error)
