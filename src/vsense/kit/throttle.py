"""Counting events per key over a sliding window (the login throttle and attempt limit)."""

from __future__ import annotations

import time
from collections import deque


class FailureThrottle:
    """Remembers failure times per key; `retry_after` says how long a key must wait.

    It counts any event alike: the login attempt limit is one of these fed with every
    attempt (`record`), the failure throttle one fed with failures.

    Kept in process memory: each server process throttles on its own, so N processes
    allow at most N times the configured failures. Good enough to stop password
    guessing; a shared store can replace it without changing callers.
    """

    def __init__(self, window: float, max_keys: int = 100_000) -> None:
        self.window = window
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and now - times[0] > self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, key: str, limit: int) -> int:
        """Seconds until `key` may try again, or 0 when it is under `limit` failures."""
        now = time.monotonic()
        times = self._recent(key, now)
        if len(times) < limit:
            return 0
        return int(self.window - (now - times[-limit])) + 1

    def failures(self, key: str) -> int:
        return len(self._recent(key, time.monotonic()))

    def record_failure(self, key: str) -> None:
        self.record(key)

    def record(self, key: str) -> None:
        """Count one event of `key` now."""
        if len(self._failures) >= self.max_keys:
            self._failures.clear()
        self._failures.setdefault(key, deque()).append(time.monotonic())

    def reset(self, key: str) -> None:
        self._failures.pop(key, None)
