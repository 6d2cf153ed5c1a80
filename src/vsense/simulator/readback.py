"""What the server stored of a fleet run, read back through the API at the end of it.

A device over MQTT is told its message was delivered when the broker acknowledges it
(PUBACK), not when the server stored it; a broker whose queue for the server filled
drops messages it acknowledged. So the simulator does not take "accepted" for
"stored": once the run is over, it waits for the server to catch up, then reads each
device's payload log since the run began (`GET /api/v1/devices/{uuid}/payloads`,
its `meta.total`) and reports published against stored, and the devices that came up
short.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from vsense.client import AsyncClient

SETTLE_POLL_S = 1.0  # between two read-backs while the server catches up
SETTLE_MAX_S = 30.0  # the longest the simulator waits for stored to stop rising


@dataclass(slots=True)
class ReadBack:
    """Published (accepted by the broker or the server) against stored, at the end."""

    published: int
    stored: int
    devices_short: int  # devices with fewer messages stored than they published

    @property
    def missing(self) -> int:
        return max(0, self.published - self.stored)

    def summary(self) -> str:
        line = f"published {self.published}, stored {self.stored}"
        if self.missing:
            line += (
                f": {self.missing} missing on {self.devices_short} devices (dropped on the way, "
                "or still queued: see the broker's log and vsense_mqtt_broker_dropped_messages)"
            )
        return line


async def _stored(
    sdk: AsyncClient, devices: Sequence[str], since: datetime, concurrency: int
) -> dict[str, int]:
    limit = asyncio.Semaphore(max(1, concurrency))
    stored: dict[str, int] = {}

    async def one(device: str) -> None:
        async with limit:
            page = await sdk.payloads.list(device, since=since, per_page=1)
        stored[device] = page.meta.total if page.meta is not None else len(page.data)

    await asyncio.gather(*(one(device) for device in devices))
    return stored


async def read_back(
    sdk: AsyncClient,
    published: dict[str, int],
    *,
    since: float,
    concurrency: int,
    log: Callable[[str], None],
    settle_max: float = SETTLE_MAX_S,
) -> ReadBack:
    """Read what the server stored of each device's `published` messages since `since`
    (epoch seconds), waiting up to `settle_max` s while the count still rises."""
    devices = [device for device, count in published.items() if count]
    # Message timestamps are whole seconds: one sent in the run's first second is stamped
    # with that second, before `since` itself.
    start = datetime.fromtimestamp(math.floor(since), UTC)
    deadline = time.monotonic() + settle_max
    previous = -1
    while True:
        stored = await _stored(sdk, devices, start, concurrency)
        total = sum(stored.values())
        if total >= sum(published.values()) or total == previous:
            break
        if time.monotonic() >= deadline:
            log(f"stored count still rising after {settle_max:.0f} s; reporting it as it is")
            break
        previous = total
        await asyncio.sleep(SETTLE_POLL_S)
    return ReadBack(
        published=sum(published.values()),
        stored=total,
        devices_short=sum(1 for device in devices if stored.get(device, 0) < published[device]),
    )
