"""A small in-process cache with a time to live and generation-based invalidation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any


class TTLCache:
    """Values younger than `ttl` seconds are reused.

    `invalidate(namespace)` drops every entry of a namespace at once (a generation
    counter, so it costs nothing per entry); writers call it after they commit, so a
    process always sees its own changes. Caches of what other processes change are told
    by `vsense.changes` too, and read with a `max_age` that it bounds.

    `epoch` counts invalidations: a reader takes it before it reads the database and
    passes it to `put` (`since`), which then keeps nothing if an invalidation came in
    between (the value read may predate the change).

    Hand-written rather than over `cachetools`: on the device list's hot path a
    `cachetools.TTLCache` measured 4 to 8 times slower per read (`bench/cache.py`,
    docs/benchmarks.md), and nothing here needs its eviction order.
    """

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, int, Any]] = {}
        self._generations: dict[Hashable, int] = {}
        self._pending: dict[Hashable, asyncio.Future[Any]] = {}
        self.epoch = 0

    def get(self, namespace: Hashable, key: Hashable, max_age: float | None = None) -> Any | None:
        entry = self._entries.get((namespace, key))
        if entry is None:
            return None
        stored_at, generation, value = entry
        if generation != self._generations.get(namespace, 0) or (
            time.monotonic() - stored_at > (self.ttl if max_age is None else max_age)
        ):
            return None
        return value

    def put(self, namespace: Hashable, key: Hashable, value: Any, since: int | None = None) -> None:
        if self.ttl <= 0 or (since is not None and since != self.epoch):
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[(namespace, key)] = (
            time.monotonic(),
            self._generations.get(namespace, 0),
            value,
        )

    async def get_or_compute(
        self, namespace: Hashable, key: Hashable, compute: Callable[[], Awaitable[Any]]
    ) -> Any:
        """The cached value, or `compute()`'s; concurrent misses share one computation."""
        value = self.get(namespace, key)
        if value is not None:
            return value
        pending_key = (namespace, key, self._generations.get(namespace, 0))
        pending = self._pending.get(pending_key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[pending_key] = future
        try:
            value = await compute()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        finally:
            self._pending.pop(pending_key, None)
        future.set_result(value)
        self.put(namespace, key, value)
        return value

    def invalidate(self, namespace: Hashable) -> None:
        self.epoch += 1
        self._generations[namespace] = self._generations.get(namespace, 0) + 1

    def discard(self, namespace: Hashable, key: Hashable) -> None:
        """Drop one entry (and, as `invalidate`, keep out what a reader in flight read)."""
        self.epoch += 1
        self._entries.pop((namespace, key), None)

    def clear(self) -> None:
        self.epoch += 1
        self._entries.clear()


class CountCache(TTLCache):
    """Device counts per organization (a list's total), reused for `count_cache_ttl`."""
