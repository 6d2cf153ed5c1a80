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
    if value.tzinfo is not UTC:  # the database's times are UTC already: no conversion
        value = value.astimezone(UTC)
    return value.replace(microsecond=0, tzinfo=None).isoformat() + "Z"


# The times a query may name: from UNIX time 0 to the end of year 9998, so that a bound
# plus or minus a window (a day of metrics, say) is still a time every database and
# datetime can hold; anything outside is refused rather than overflowing into a 500.
EARLIEST_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_INSTANT = datetime(9999, 1, 1, tzinfo=UTC)


def within_range(value: datetime) -> datetime:
    """`value` in UTC (naive means UTC) when it lies between EARLIEST_INSTANT and
    LATEST_INSTANT; ValueError otherwise, also when it cannot be expressed in UTC at
    all (`0001-01-01T00:00:00+14:00`)."""
    out_of_range = ValueError(
        f"must be between {isoformat(EARLIEST_INSTANT)} and {isoformat(LATEST_INSTANT)} (exclusive)"
    )
    try:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise out_of_range from None
    if not EARLIEST_INSTANT <= value < LATEST_INSTANT:
        raise out_of_range
    return value


def parse_instant(name: str, raw: str | None) -> datetime | None:
    """A query time: ISO 8601 (UTC when no zone is given) or UNIX seconds, between
    EARLIEST_INSTANT and LATEST_INSTANT; 400 otherwise."""
    from vsense.kit.errors import BadRequest

    if raw is None or raw == "":
        return None
    try:
        if raw.lstrip("-").replace(".", "", 1).isdigit():
            value = datetime.fromtimestamp(float(raw), UTC)
        else:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise BadRequest(f"`{name}` must be an ISO 8601 time or UNIX seconds.") from None
    try:
        return within_range(value)
    except ValueError as exc:
        raise BadRequest(f"`{name}` {exc}.") from None
