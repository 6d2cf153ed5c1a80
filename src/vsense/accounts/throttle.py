"""Login throttles shared by every process: counters in the database.

A key (`email:...`, `addr:...`) counts events in a fixed window that starts with its
first event; at `limit` events the key waits for the window's end. The counting is one
atomic upsert (`throttle_repository.hit`), so N server processes allow what one allows.
A fixed window rather than a sliding one: one row per key and one statement per event;
at worst twice the limit passes across the boundary of two windows.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from vsense.accounts import throttle_repository


class SharedThrottle:
    """Counts events per key in windows of `window` seconds (one scope of counters)."""

    def __init__(self, scope: str, window: float) -> None:
        self.scope = scope
        self.window = timedelta(seconds=window)

    def _wait(self, count: int, start: datetime, limit: int, now: datetime) -> int:
        end = start + self.window
        if count < limit or end <= now:
            return 0
        return max(1, math.ceil((end - now).total_seconds()))

    async def retry_after(
        self, session: AsyncSession, limits: dict[str, int], now: datetime
    ) -> int:
        """Seconds until every key may go on (0: all are under their limit)."""
        found = await throttle_repository.windows(session, self.scope, list(limits))
        return max(
            (self._wait(*found[key], limit, now) for key, limit in limits.items() if key in found),
            default=0,
        )

    async def record(self, session: AsyncSession, limits: dict[str, int], now: datetime) -> int:
        """Count one event of each key; seconds to wait if one went over its limit."""
        wait = 0
        for key, limit in limits.items():
            count, start = await throttle_repository.hit(session, self.scope, key, now, self.window)
            wait = max(wait, self._wait(count, start, limit + 1, now))
        return wait

    async def reset(self, session: AsyncSession, key: str) -> None:
        await throttle_repository.reset(session, self.scope, key)
