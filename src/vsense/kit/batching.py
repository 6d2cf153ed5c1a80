"""Concurrent look-ups of one process sharing one read (the read side of the group commit)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Leaders:
    """The leader tasks of a queue that callers hand work to: at most `limit` at once.

    Each leader counts itself out as it ends, in the same turn of the event loop as it
    found the queue empty, so that work handed over just after is never left without
    one (a task's done-callback would come one turn too late). Used by the group commit
    (`db.GroupCommit`) and the batched reads (`Batcher`).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0
        self._tasks: set[asyncio.Task[None]] = set()  # held, so none is collected

    def wake(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Start `lead` in a task of its own, unless `limit` leaders are running."""
        if self.running < self.limit:
            self.running += 1
            task = asyncio.create_task(self._run(lead))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, lead: Callable[[], Awaitable[None]]) -> None:
        try:
            await lead()
        finally:
            self.running -= 1


class Batcher(Generic[K, V]):
    """Look-ups by key that arrive while others are being read are read together.

    `get(key)` hands its key over; a leader task reads every key waiting with one call of
    `fetch` (one session, one statement per part, for many devices), then answers each
    waiter. At most `in_flight` reads run at once; keys arriving meanwhile gather for the
    next one. Alone, a look-up is read at once, on its own (a batch of one); under load,
    a busy process pays one read per batch instead of one per request, which is what
    lets a fleet of devices the process has not seen for minutes (every keepalive a
    cache miss) cost a fraction of a round trip each.

    One read in flight by default: a read costs the process far more than it waits for
    the database (a session, a statement, its rows), so a busy process does best with
    the fewest, largest batches. Over a fleet of 100,000 devices, one read in flight
    instead of two took each cold keepalive's server CPU from 488 and 542 µs to 421 and
    467, and the keepalives per second from 1,871 and 1,707 to 2,166 and 1,944, at the
    same p99 (`bench/ingest.py`, scenario d, in alternated runs).

    `fetch` gets distinct keys and returns what it found; a key it did not find is
    answered None. When it raises, every waiter of that batch gets the error.

    Written here rather than taken from a DataLoader library (`aiodataloader`): those
    gather the keys of one turn of the event loop, while requests of a server arrive in
    turns of their own; what batches them is a read in flight that the next keys wait
    for, with a bound on how many are in flight.
    """

    def __init__(
        self,
        fetch: Callable[[list[K]], Awaitable[Mapping[K, V]]],
        *,
        in_flight: int = 1,
        max_batch: int = 500,
    ) -> None:
        self._fetch = fetch
        self.max_batch = max_batch
        self._waiting: dict[K, list[asyncio.Future[V | None]]] = {}
        self._leaders = Leaders(in_flight)
        self.reads = 0  # calls of `fetch` (for tests and benchmarks)

    async def get(self, key: K) -> V | None:
        answer: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(answer)
        self._leaders.wake(self._lead)
        return await answer

    async def _lead(self) -> None:
        try:
            while self._waiting:
                batch = self._take()
                try:
                    self.reads += 1
                    found = await self._fetch(list(batch))
                except BaseException as exc:
                    for futures in batch.values():
                        for future in futures:
                            if not future.done():
                                future.set_exception(exc)
                    if not isinstance(exc, Exception):  # cancelled: the process is stopping
                        raise
                    continue
                for key, futures in batch.items():
                    value = found.get(key)
                    for future in futures:
                        if not future.done():
                            future.set_result(value)
        finally:
            if self._leaders.running == 1:  # the last leader: none left for keys waiting
                for futures in self._waiting.values():
                    for future in futures:
                        future.cancel()
                self._waiting.clear()

    def _take(self) -> dict[K, list[asyncio.Future[V | None]]]:
        if len(self._waiting) <= self.max_batch:
            batch, self._waiting = self._waiting, {}
            return batch
        keys = list(self._waiting)[: self.max_batch]
        return {key: self._waiting.pop(key) for key in keys}
