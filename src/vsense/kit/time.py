"""One clock for the whole server, so tests can move it."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def isoformat(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z` suffix and whole seconds, as the API shows timestamps."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
