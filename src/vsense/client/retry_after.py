"""The `Retry-After` header (RFC 9110, 10.2.3): how long a server asks a client to wait.

The one reading of it in vsense: the SDK's retries, the simulator's devices and the
webhook sender (a receiver asking for a pause) all use it. Part of the SDK, which
imports nothing of the server, so that the server and the simulator may both use it.
"""

from __future__ import annotations

import email.utils
import time
from datetime import UTC

import httpx


def parse_retry_after(
    value: str | None, *, now: float | None = None, fractions: bool = False
) -> float | None:
    """Seconds to wait from a `Retry-After` value, or None when there is none to read.

    The value is delta-seconds (`120`) or an HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`,
    a date in the past meaning now). The standard allows whole seconds only;
    `fractions=True` also accepts `1.5`, which some servers send. `now` (UNIX seconds)
    is the time an HTTP date is measured from, the current time by default.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    if fractions:
        try:
            seconds = float(value)
        except ValueError:
            pass
        else:
            return seconds if seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" zones parse as naive; HTTP dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The `Retry-After` of an answer in seconds (fractions accepted), if it has one."""
    return parse_retry_after(response.headers.get("retry-after"), fractions=True)


__all__ = ["parse_retry_after", "retry_after_seconds"]
