"""How an enrolled device talks to the server: the `Transport` protocol of the fleet.

A transport carries a device's keepalives, payload batches and command results, and
brings it its commands: `http.py` over the device API (commands come in keepalive
answers), `mqtt.py` over a broker (commands arrive on the device's commands topic).
The scheduler in `fleet.py` drives devices through whichever it is given. Image
uploads always go over HTTP, whatever the transport (spec/devices.md).

What both transports and the fleet share lives here too: the run's counters and the
errors that stop a device or the whole run.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from vsense.simulator.scenes import Message

Command = dict[str, Any]
# Called with a device's UUID and a command that arrived for it outside an answer.
OnCommand = Callable[[str, Command], None]


class FleetError(Exception):
    """The fleet cannot start: the server refused the token or onboarding failed."""


class TokenRefused(Exception):
    """The server refused a device's token (401 or 403): the device stops."""


@dataclass
class FleetStats:
    """Counters of a fleet run; `run_fleet` updates them while it runs."""

    devices_onboarded: int = 0
    devices_reused: int = 0
    keepalives_sent: int = 0
    messages_accepted: int = 0
    messages_dropped: int = 0
    commands_handled: int = 0
    captures_uploaded: int = 0
    retries: int = 0
    errors: int = 0
    # Read back through the API at the end of a run that ran its course: messages the
    # server stored since the run began, and devices with fewer stored than accepted.
    messages_stored: int | None = None
    devices_short: int = 0

    def summary(self) -> str:
        """The counters on one line."""
        stored = ""
        if self.messages_stored is not None:
            stored = f", stored {self.messages_stored} of {self.messages_accepted} published"
            if self.devices_short:
                stored += f" ({self.devices_short} devices short)"
        return (
            f"devices {self.devices_onboarded} new + {self.devices_reused} reused, "
            f"keepalives {self.keepalives_sent}, messages {self.messages_accepted} accepted "
            f"({self.messages_dropped} dropped){stored}, commands {self.commands_handled}, "
            f"snapshots {self.captures_uploaded}, "
            f"retries {self.retries}, errors {self.errors}"
        )


class Identity(Protocol):
    """Who a device is to the server."""

    @property
    def identifier(self) -> str:
        """Its client identifier (`sim/00042`), for the log."""
        ...

    @property
    def uuid(self) -> str:
        """The UUID the server gave it."""
        ...

    @property
    def token(self) -> str:
        """Its device token."""
        ...


class Transport(Protocol):
    """Carries what devices send and brings them their commands.

    Every method counts and logs its own failures (retries included) in the run's
    `FleetStats`; the scheduler counts what succeeded.
    """

    def connect(self, on_command: OnCommand) -> AbstractAsyncContextManager[None]:
        """Hold the transport's connections for the run; commands that arrive on their
        own (not in an answer) go to `on_command`. Raises `FleetError` when it cannot
        connect at all."""
        ...

    async def keepalive(self, device: Identity, health: dict[str, Any]) -> list[Command] | None:
        """Send a keepalive: the commands its answer carried (none over MQTT), or None
        when it was not delivered. Raises `TokenRefused`."""
        ...

    async def send_payloads(self, device: Identity, batch: list[Message]) -> int | None:
        """Send a batch: how many messages were accepted (0 when the server refused
        them, which sending again cannot help), or None when it was not delivered and is
        worth keeping for later. Raises `TokenRefused`."""
        ...

    async def report_result(self, device: Identity, command_id: str, result: Command) -> bool:
        """Report a command's result: whether it was delivered."""
        ...


__all__ = [
    "Command",
    "FleetError",
    "FleetStats",
    "Identity",
    "Message",
    "OnCommand",
    "TokenRefused",
    "Transport",
]
