"""Wake-ups for devices waiting on a long poll (in this process)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterator


class Watch:
    """One long poll's wake-up, registered for the whole poll: a command committed while
    the poll is reading the database (not waiting yet) is not lost, the next `wait`
    returns at once."""

    def __init__(self, waiters: CommandWaiters) -> None:
        self._waiters = waiters
        self._woken = asyncio.Event()

    def wake(self) -> None:
        self._woken.set()

    async def wait(self, seconds: float) -> bool:
        """Until a command for the device was committed in this process since the last
        `wait` (True), or `seconds` have passed or the process is stopping (False)."""
        if not self._woken.is_set() and not self._waiters.stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), seconds)
        woken = self._woken.is_set() and not self._waiters.stopping
        self._woken.clear()
        return woken


class CommandWaiters:
    """Wake-ups for the long polls of this process: a command committed here or heard of
    from another process (`wake_polls`) ends its device's wait at once."""

    def __init__(self) -> None:
        self._watches: dict[uuid.UUID, set[Watch]] = {}
        # Set when the process is asked to stop: every poll answers at once.
        self.stopping = False
        # Told of every committed command too: the MQTT bridge pushes to its devices.
        self.listeners: list[Callable[[uuid.UUID], None]] = []

    def wake(self, device: uuid.UUID) -> None:
        """A command for `device` was committed in this process."""
        self.wake_polls(device)
        for listener in self.listeners:
            listener(device)

    def wake_polls(self, device: uuid.UUID) -> None:
        """Only the long polls of `device` (a command committed by another process)."""
        for watch in self._watches.get(device, ()):
            watch.wake()

    def stop(self) -> None:
        """The process is stopping: wake every poll, and let none wait again."""
        self.stopping = True
        for watches in self._watches.values():
            for watch in watches:
                watch.wake()

    @contextlib.contextmanager
    def watch(self, device: uuid.UUID) -> Iterator[Watch]:
        """A long poll's wake-up for `device`, from before its first look at the
        database until it answers."""
        watch = Watch(self)
        self._watches.setdefault(device, set()).add(watch)
        try:
            yield watch
        finally:
            watches = self._watches[device]
            watches.discard(watch)
            if not watches:
                del self._watches[device]
