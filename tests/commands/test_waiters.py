"""The long poll's in-process wake-ups: whether a wait ended for a command."""

from __future__ import annotations

import asyncio
import uuid

from vsense.commands.waiters import CommandWaiters


async def test_a_wait_says_whether_a_command_woke_it() -> None:
    waiters, device = CommandWaiters(), uuid.uuid4()
    with waiters.watch(device) as watch:
        waiting = asyncio.create_task(watch.wait(5))
        await asyncio.sleep(0)  # the poll waits
        waiters.wake(device)
        assert await waiting is True
        assert await watch.wait(0.01) is False  # nothing came since: it timed out


async def test_a_wake_while_the_poll_is_not_waiting_ends_its_next_wait_at_once() -> None:
    waiters, device = CommandWaiters(), uuid.uuid4()
    with waiters.watch(device) as watch:
        waiters.wake(device)  # the command commits while the poll reads the database
        assert await asyncio.wait_for(watch.wait(60), 1) is True
        assert await watch.wait(0.01) is False


async def test_a_wake_reaches_every_poll_of_the_device_and_no_other() -> None:
    waiters, device, other = CommandWaiters(), uuid.uuid4(), uuid.uuid4()
    with (
        waiters.watch(device) as first,
        waiters.watch(device) as second,
        waiters.watch(other) as elsewhere,
    ):
        waiters.wake(device)
        assert await first.wait(0.01) is True
        assert await second.wait(0.01) is True
        assert await elsewhere.wait(0.01) is False
    waiters.wake(device)  # nobody watches any more: nothing is kept for a later poll
    with waiters.watch(device) as later:
        assert await later.wait(0.01) is False


async def test_a_stop_ends_every_wait_without_a_command() -> None:
    waiters, device = CommandWaiters(), uuid.uuid4()
    with waiters.watch(device) as watch:
        waiting = asyncio.create_task(watch.wait(5))
        await asyncio.sleep(0)
        waiters.stop()
        assert await waiting is False
        assert await asyncio.wait_for(watch.wait(5), 1) is False  # at once, once stopping
