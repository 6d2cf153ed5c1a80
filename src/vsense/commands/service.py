"""Device commands: create, hand out, complete, and wait for them."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from vsense.changes import EVERYTHING, ChangeFeed
from vsense.commands import repository
from vsense.commands.waiters import CommandWaiters, Watch
from vsense.config import Settings
from vsense.db import on_commit
from vsense.kit.cache import TTLCache
from vsense.kit.errors import NotFound
from vsense.kit.time import utcnow


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """A device's result of one of its commands."""

    command_id: uuid.UUID
    device: uuid.UUID
    type: str
    ok: bool
    error: str | None


IDLE = "device-commands"  # namespace (and change topic) of the devices known to have none

# What a domain does with the results of its commands, in the result's transaction.
ResultHandler = Callable[[AsyncSession, CommandOutcome], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Command:
    """A command as it was queued."""

    id: uuid.UUID
    device: uuid.UUID
    type: str
    arguments: dict[str, Any]
    created: datetime
    expires_at: datetime


def command_json(
    command_id: uuid.UUID, command_type: str, created: datetime, arguments: dict[str, Any]
) -> dict[str, Any]:
    """A command as a device receives it: `{"id", "type", "created", ...arguments}`."""
    return {
        **arguments,
        "id": str(command_id),
        "type": command_type,
        "created": int(created.timestamp()),
    }


class Commands:
    """The commands of a process's devices, and the wake-ups of those waiting for them.

    A command created here wakes its device's long poll (and the MQTT push) once it is
    committed; one created by another process wakes the polls here when its commit is
    heard (`ChangeFeed.on_committed`, PostgreSQL), else the polls' own reads find it.

    Most keepalives find no command: a device found without one is remembered as idle
    (`idle`, for `auth_cache_ttl` while `changes` hears every process, else at most a
    second), and a new command drops that in this process at once and in the others when
    it commits, so that the keepalive's common case reads nothing.
    """

    def __init__(self, settings: Settings, changes: ChangeFeed) -> None:
        self.ttl = settings.command_ttl
        self.waiters = CommandWaiters()
        self._on_result: dict[str, list[ResultHandler]] = {}
        self._changes = changes
        self._idle = TTLCache(ttl=settings.auth_cache_ttl.total_seconds(), max_entries=200_000)
        changes.subscribe(IDLE, self._heard)
        changes.on_committed(IDLE, self._committed_elsewhere)

    def _heard(self, key: str) -> None:
        if key == EVERYTHING:
            self._idle.invalidate(IDLE)
        else:
            self._idle.discard(IDLE, uuid.UUID(key))

    def _committed_elsewhere(self, key: str) -> None:
        # A command committed by another process wakes this one's polls of the device.
        # (This process's own, heard back after its commit, finds its poll gone or
        # costs it one more look.)
        if key != EVERYTHING:
            self.waiters.wake_polls(uuid.UUID(key))

    def idle(self, device: uuid.UUID) -> bool:
        """Whether the device is known to have no pending command, without the database."""
        return self._idle.get(IDLE, device, self._changes.horizon(self._idle.ttl)) is not None

    def on_result(self, command_type: str, handler: ResultHandler) -> None:
        """Have `handler` told of every result of commands of this type."""
        self._on_result.setdefault(command_type, []).append(handler)

    def on_created(self, listener: Callable[[uuid.UUID], None]) -> None:
        """Have `listener` told of each device that has a new committed command."""
        self.waiters.listeners.append(listener)

    async def create(
        self,
        session: AsyncSession,
        device: uuid.UUID,
        command_type: str,
        arguments: dict[str, Any] | None = None,
    ) -> Command:
        """Queue a command for a device (it takes it on its next keepalive or long poll)."""
        now = utcnow()
        command = Command(uuid.uuid4(), device, command_type, arguments or {}, now, now + self.ttl)
        await repository.add_command(
            session,
            command.id,
            device,
            command.type,
            command.arguments,
            command.created,
            command.expires_at,
        )
        self._changes.announce(session, IDLE, device)
        # Woken once the command is committed: a poll woken before would not see it yet.
        on_commit(session, ("commands", device), lambda: self.waiters.wake(device))
        return command

    async def pending(self, session: AsyncSession, device: uuid.UUID) -> bool:
        """Whether the device has commands to take (a read, unless it is known idle)."""
        return device in await self.pending_among(session, [device])

    async def pending_among(
        self, session: AsyncSession, devices: Collection[uuid.UUID]
    ) -> set[uuid.UUID]:
        """Those of `devices` that have commands to take (one read for those not known
        idle)."""
        unknown = [device for device in devices if not self.idle(device)]
        if not unknown:
            return set()
        epoch = self._idle.epoch  # a command heard of during the read keeps it out
        found = await repository.devices_with_pending_commands(session, unknown, utcnow())
        for device in unknown:
            if device not in found:
                self._idle.put(IDLE, device, True, since=epoch)
        return found

    async def take(self, session: AsyncSession, device: uuid.UUID) -> list[dict[str, Any]]:
        """A device's pending commands, marked taken, as the device receives them."""
        taken = await repository.take_pending_commands(session, device, utcnow())
        return [command_json(c.id, c.type, c.created, c.arguments) for c in taken]

    def watch(self, device: uuid.UUID) -> AbstractContextManager[Watch]:
        """A long poll's wake-up: its `wait` returns True once a command for the device
        was committed in this process since the last `wait` (one committed while the poll
        read the database included)."""
        return self.waiters.watch(device)

    async def complete(
        self,
        session: AsyncSession,
        device: uuid.UUID,
        command_id: str,
        ok: bool,
        error: str | None,
    ) -> None:
        """Record a command's result (404 when the device has no such command) and tell
        the domain that asked for it."""
        try:
            parsed = uuid.UUID(command_id)
        except ValueError:
            raise NotFound("No such command.") from None
        kind = await repository.complete_command(session, device, parsed, utcnow(), ok, error)
        if kind is None:
            raise NotFound("No such command for this device.")
        outcome = CommandOutcome(parsed, device, kind, ok, error)
        for handler in self._on_result.get(kind, []):
            await handler(session, outcome)
