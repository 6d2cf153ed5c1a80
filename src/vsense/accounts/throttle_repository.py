"""All SQL of the shared counters (`throttle_counters`): one conditional upsert each,
atomic on both databases, so that every process counts in the same row."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, case, delete, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.kit.sql import is_postgres
from vsense.kit.types import UTCDateTime
from vsense.models import ThrottleCounter

Counters: Table = ThrottleCounter.__table__  # type: ignore[assignment]


def _upsert(session: AsyncSession, values: dict[str, Any]) -> Any:
    module: Any = postgresql if is_postgres(session) else sqlite
    return module.insert(Counters).values(**values)


async def hit(
    session: AsyncSession, scope: str, key: str, now: datetime, window: timedelta
) -> tuple[int, datetime]:
    """Count one event of `key`, in a new window if its last one is over; the count
    of the window so far and when it started."""
    at = literal(now, UTCDateTime())
    over = Counters.c.window_start <= literal(now - window, UTCDateTime())
    statement = (
        _upsert(session, {"scope": scope, "key": key, "window_start": now, "count": 1})
        .on_conflict_do_update(
            index_elements=[Counters.c.scope, Counters.c.key],
            set_={
                "count": case((over, 1), else_=Counters.c.count + 1),
                "window_start": case((over, at), else_=Counters.c.window_start),
            },
        )
        .returning(Counters.c.count, Counters.c.window_start)
    )
    count, start = (await session.execute(statement)).one()
    return int(count), start


async def claim(
    session: AsyncSession, scope: str, key: str, now: datetime, interval: timedelta
) -> bool:
    """Take `key`'s slot if nobody took it within `interval` (the row stays locked on
    PostgreSQL until the transaction ends: a concurrent claim waits, then finds it
    taken)."""
    statement = (
        _upsert(session, {"scope": scope, "key": key, "window_start": now, "count": 1})
        .on_conflict_do_update(
            index_elements=[Counters.c.scope, Counters.c.key],
            set_={"window_start": literal(now, UTCDateTime()), "count": 1},
            where=Counters.c.window_start <= literal(now - interval, UTCDateTime()),
        )
        .returning(Counters.c.count)
    )
    return (await session.execute(statement)).first() is not None


async def windows(
    session: AsyncSession, scope: str, keys: list[str]
) -> dict[str, tuple[int, datetime]]:
    """The current count and window start of each of `keys` that has a row."""
    rows = await session.execute(
        select(Counters.c.key, Counters.c.count, Counters.c.window_start).where(
            Counters.c.scope == scope, Counters.c.key.in_(keys)
        )
    )
    return {key: (int(count), start) for key, count, start in rows}


async def reset(session: AsyncSession, scope: str, key: str) -> None:
    await session.execute(delete(Counters).where(Counters.c.scope == scope, Counters.c.key == key))


async def purge(session: AsyncSession, before: datetime) -> int:
    """Delete the counters whose window started before `before` (one row per key, so a
    small table); rows removed."""
    result: Any = await session.execute(delete(Counters).where(Counters.c.window_start < before))
    return int(result.rowcount or 0)
