"""The long poll's in-process wake-ups: whether a wait ended for a command."""

from __future__ import annotations

import asyncio
import uuid

from vsense.commands.waiters import CommandWaiters


async def test_a_wait_says_whether_a_command_woke_it() -> None:
    waiters, device = CommandWaiters(), uuid.uuid4()
    waiting = asyncio.create_task(waiters.wait(device, 5))
    await asyncio.sleep(0)  # the poll waits
    waiters.wake(device)
    assert await waiting is True
    assert await waiters.wait(device, 0.01) is False  # nothing came: it timed out


async def test_a_stop_ends_every_wait_without_a_command() -> None:
    waiters, device = CommandWaiters(), uuid.uuid4()
    waiting = asyncio.create_task(waiters.wait(device, 5))
    await asyncio.sleep(0)
    waiters.stop()
    assert await waiting is False
    assert await waiters.wait(device, 5) is False  # at once, once stopping
