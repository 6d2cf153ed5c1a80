"""The circuit breaker of one endpoint: after consecutive failures its deliveries are
left out of claims for a while, so a failing endpoint spends neither attempts nor the
dispatcher's room. Kept in the memory of each dispatcher process."""

from __future__ import annotations

from dataclasses import dataclass

THRESHOLD = 5  # consecutive endpoint failures that open the breaker
FIRST_OPEN = 30.0  # seconds open the first time, doubling while failures go on
MAX_OPEN = 600.0


@dataclass
class Breaker:
    """Per endpoint: open after consecutive failures, for 30 s doubling up to 10 min.
    Times are `time.monotonic()` seconds."""

    failures: int = 0
    open_until: float = 0.0
    open_for: float = 0.0

    def is_open(self, now: float) -> bool:
        """Whether the endpoint's deliveries wait at `now`."""
        return now < self.open_until

    def record(self, failed: bool, now: float) -> bool:
        """Count an attempt's result; True when this failure opens the breaker."""
        if not failed:
            self.failures, self.open_for = 0, 0.0
            return False
        self.failures += 1
        if self.failures >= THRESHOLD and not self.is_open(now):
            self.open_for = min(MAX_OPEN, self.open_for * 2 or FIRST_OPEN)
            self.open_until = now + self.open_for
            return True
        return False
