"""Wake-ups for devices waiting on a long poll (in this process)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable


class CommandWaiters:
    """In-process wake-ups for long polls: a command created here wakes its device's poll
    at once; commands created by other processes are found by the poll's own checks."""

    def __init__(self) -> None:
        self._events: dict[uuid.UUID, asyncio.Event] = {}
        # Set when the process is asked to stop: every poll answers at once.
        self.stopping = False
        # Told of every committed command too: the MQTT bridge pushes to its devices.
        self.listeners: list[Callable[[uuid.UUID], None]] = []

    def wake(self, device: uuid.UUID) -> None:
        event = self._events.get(device)
        if event is not None:
            event.set()
        for listener in self.listeners:
            listener(device)

    def stop(self) -> None:
        """The process is stopping: wake every poll, and let none wait again."""
        self.stopping = True
        for event in self._events.values():
            event.set()

    async def wait(self, device: uuid.UUID, seconds: float) -> bool:
        """Until a command for the device is committed in this process (True), or
        `seconds` have passed or the process is stopping (False)."""
        if self.stopping:
            return False
        event = self._events.setdefault(device, asyncio.Event())
        woken = False
        try:
            await asyncio.wait_for(event.wait(), seconds)
            woken = not self.stopping
        except TimeoutError:
            pass
        finally:
            event.clear()
            if self._events.get(device) is event and not event.is_set():
                self._events.pop(device, None)
        return woken
