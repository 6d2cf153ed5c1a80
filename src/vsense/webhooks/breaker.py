"""The circuit breaker of one endpoint: while it is open, claims leave the endpoint's
deliveries in the database, so a failing endpoint spends neither attempts nor any
dispatcher's room.

The state lives in the webhook's row (`breaker_*` columns), shared by every dispatcher
process: what one process learns about an endpoint, the claims of all the others obey
from the commit of its outcome batch on (`queue_repository.update_breakers`). Each
dispatcher also keeps a copy per endpoint for the requests it already holds, so that
they stop at the first timeout without waiting for that commit.

A timeout opens the breaker at once: a hanging endpoint would otherwise hold a request
slot for a whole timeout per attempt. Other endpoint failures (connection refused,
5xx, 408, 429) open it after `THRESHOLD` in a row, since they answer fast and may be
one bad instance behind a balancer. Pure: the caller passes the time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

THRESHOLD = 5  # consecutive endpoint failures that open the breaker (a timeout: one)
FIRST_OPEN = 30.0  # seconds open the first time, doubling while failures go on
MAX_OPEN = 600.0


@dataclass(slots=True)
class Breaker:
    """Per endpoint: open after a timeout or `THRESHOLD` failures in a row, for 30 s
    doubling up to 10 min; a success closes it and forgets the doubling."""

    failures: int = 0
    open_until: datetime | None = None
    open_seconds: float = 0.0

    def is_open(self, now: datetime) -> bool:
        """Whether the endpoint's deliveries wait at `now`."""
        return self.open_until is not None and now < self.open_until

    def record(self, failed: bool, timed_out: bool, now: datetime) -> bool:
        """Count an attempt's result; True when this failure opens the breaker."""
        if not failed:
            self.failures, self.open_until, self.open_seconds = 0, None, 0.0
            return False
        self.failures += 1
        if (timed_out or self.failures >= THRESHOLD) and not self.is_open(now):
            self.open_seconds = min(MAX_OPEN, self.open_seconds * 2 or FIRST_OPEN)
            self.open_until = now + timedelta(seconds=self.open_seconds)
            return True
        return False


@dataclass(frozen=True, slots=True)
class Result:
    """One attempt's result as the breaker counts it."""

    webhook_id: int
    failed: bool  # an endpoint failure (`policy.is_endpoint_failure`)
    timed_out: bool
    at: datetime
