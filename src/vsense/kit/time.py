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
    # Not strftime: its `%Y` does not pad years before 1000 to four digits.
    return value.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def parse_instant(name: str, raw: str | None) -> datetime | None:
    """A query time: ISO 8601 (UTC when no zone is given) or UNIX seconds; 400 otherwise."""
    from vsense.kit.errors import BadRequest

    if raw is None or raw == "":
        return None
    try:
        if raw.lstrip("-").replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(raw), UTC)
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise BadRequest(f"`{name}` must be an ISO 8601 time or UNIX seconds.") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
