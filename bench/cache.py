"""Micro-benchmark of the per-process cache (`vsense.kit.cache.TTLCache`) on the device
list's hot path: the cached total (`get_or_compute` hits, by organization and filter)
and the verified caller (two `get`s per request), plus `put` and a miss; next to the
same interface over `cachetools.TTLCache`, when cachetools is installed
(`pip install cachetools`), the library the hand-written cache was measured against.

    .venv/bin/python bench/cache.py

Prints nanoseconds per operation, the best of `--repeat` rounds of `--number` calls
each, the candidates taking turns in every round so that a busy machine weighs on
them alike. Nothing else runs: no server, no database.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, Protocol

from vsense.kit.cache import TTLCache

ORGANIZATIONS = 50
FILTERS = 20  # distinct (visibility, filter) keys per organization


class Cache(Protocol):
    def get(self, namespace: Hashable, key: Hashable) -> Any | None: ...
    def put(self, namespace: Hashable, key: Hashable, value: Any) -> None: ...
    async def get_or_compute(
        self, namespace: Hashable, key: Hashable, compute: Callable[[], Awaitable[Any]]
    ) -> Any: ...


def cachetools_candidate() -> type[Cache] | None:
    """`TTLCache`'s interface with its entries in a `cachetools.TTLCache`."""
    try:
        import cachetools
    except ImportError:
        return None

    class CachetoolsTTLCache(TTLCache):
        def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
            super().__init__(ttl, max_entries)
            self._tools: Any = cachetools.TTLCache(
                maxsize=max_entries, ttl=ttl, timer=time.monotonic
            )

        def get(self, namespace: Hashable, key: Hashable) -> Any | None:
            entry = self._tools.get((namespace, key))
            if entry is None or entry[0] != self._generations.get(namespace, 0):
                return None
            return entry[1]

        def put(self, namespace: Hashable, key: Hashable, value: Any) -> None:
            self._tools[(namespace, key)] = (self._generations.get(namespace, 0), value)

    return CachetoolsTTLCache


def filter_key(n: int) -> tuple[str, tuple[str | None, bool | None, str | None, str]]:
    """Shaped like the device list's key: visibility, then the filter's values."""
    return ("org", (f"site-{n:02d}", n % 2 == 0, None, "-refreshed"))


def operations(cache: Cache) -> dict[str, Callable[[int], object]]:
    keys = [filter_key(n) for n in range(FILTERS)]
    bearers = [f"vst_{n:040d}" for n in range(ORGANIZATIONS)]
    for organization in range(ORGANIZATIONS):
        for key in keys:
            cache.put(organization, key, 1234)
    for user_id, bearer in enumerate(bearers):
        cache.put("auth", bearer, user_id)
        cache.put(("user", user_id), bearer, ("principal", None))

    def count_hit(n: int) -> object:
        return cache.get(n % ORGANIZATIONS, keys[n % FILTERS])

    def caller_hit(n: int) -> object:
        bearer = bearers[n % ORGANIZATIONS]
        user_id = cache.get("auth", bearer)
        return cache.get(("user", user_id), bearer)

    def miss(n: int) -> object:
        return cache.get(n % ORGANIZATIONS, ("nobody", n))

    def put(n: int) -> None:
        cache.put(n % ORGANIZATIONS, keys[n % FILTERS], 1234)

    return {
        "get (cached total, hit)": count_hit,
        "2 x get (verified caller, hit)": caller_hit,
        "get (miss)": miss,
        "put (replace)": put,
    }


def timed_ns(operation: Callable[[int], object], number: int) -> float:
    started = time.perf_counter_ns()
    for n in range(number):
        operation(n)
    return (time.perf_counter_ns() - started) / number


async def timed_compute_ns(cache: Cache, number: int) -> float:
    async def compute() -> int:
        return 1234

    started = time.perf_counter_ns()
    for n in range(number):
        await cache.get_or_compute(n % ORGANIZATIONS, filter_key(n % FILTERS), compute)
    return (time.perf_counter_ns() - started) / number


async def run(number: int, repeat: int) -> None:
    candidates: list[tuple[str, type[Cache]]] = [("vsense.kit.cache.TTLCache", TTLCache)]
    wrapped = cachetools_candidate()
    if wrapped is not None:
        candidates.append(("over cachetools.TTLCache", wrapped))
    caches = {name: kind(3600.0) for name, kind in candidates}  # type: ignore[call-arg]
    plans = {name: operations(cache) for name, cache in caches.items()}
    best: dict[tuple[str, str], float] = {}
    for _ in range(repeat):
        for name, cache in caches.items():
            for label, operation in plans[name].items():
                ns = timed_ns(operation, number)
                best[name, label] = min(best.get((name, label), ns), ns)
            ns = await timed_compute_ns(cache, number)
            label = "get_or_compute (hit)"
            best[name, label] = min(best.get((name, label), ns), ns)
    labels = [*plans[candidates[0][0]], "get_or_compute (hit)"]
    names = [name for name, _ in candidates]
    print("ns per operation, best of", repeat, "rounds of", f"{number:,}")
    print(f"  {'operation':32}" + "".join(f"{name:>28}" for name in names))
    for label in labels:
        print(f"  {label:32}" + "".join(f"{best[name, label]:28.0f}" for name in names))
    if wrapped is None:
        print("  (cachetools is not installed: the kit's cache only)")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--number", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    options = parser.parse_args(argv)
    asyncio.run(run(options.number, options.repeat))


if __name__ == "__main__":
    main()
