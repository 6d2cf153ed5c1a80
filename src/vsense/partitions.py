"""Week partitions of the history tables on PostgreSQL: made ahead, dropped whole.

The payload log, its derived metrics and the device status events grow with every
message for as long as the fleet runs. On PostgreSQL each is a table partitioned by
RANGE on its time of arrival, one partition per ISO week (UTC, from Monday; named after
its Monday: `payload_messages_p20261123`), so retention detaches and drops a whole week
in one short statement instead of deleting it row by row (no dead rows to vacuum, no
index churn), and the newest week's indexes are the only ones inserts touch. A
`_default` partition takes any row no week partition covers (a clock far off, a week not
made yet), so a write never fails for want of a partition; retention deletes its old
rows in chunks.

Why weeks and not days: a device's latest page is ordered by the message's own time, not
by arrival, so it reads every partition (a merge of one index scan per partition), and
its cost grows with their number: with 90 days kept, 97 day partitions made the page
some 10 times dearer than 15 week partitions (`docs/benchmarks.md`).

SQLite has no partitions: there the same tables are plain and retention deletes in
chunks (`payloads/repository.py`, `gateway/repository.py`).

The SQL is built here as text, because the migration that converts the tables and the
background job that keeps them up run it alike (one on Alembic's connection, the other
on a session).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class History:
    """A partitioned history table and the column it is partitioned by."""

    table: str
    key: str


HISTORY = (
    History("payload_messages", "received_at"),
    History("device_metrics", "received_at"),
    History("device_events", "created"),
)
SPAN = timedelta(days=7)  # what one partition covers: an ISO week
# Partitions made ahead of today, so that a week's first write never waits for one.
DAYS_AHEAD = 7
# A partition DDL waits at most this long for its lock, then gives up until the next
# round, rather than queue every reader of the table behind it.
LOCK_TIMEOUT = "2s"
# Two processes keeping the partitions take turns (one pg_advisory_xact_lock key).
MAINTENANCE_LOCK = 0x76_73_68_69_73_74  # "vshist"

PARTITION_NAME = re.compile(
    r"^(?P<table>" + "|".join(h.table for h in HISTORY) + r")_(?P<day>p\d{8}|default)$"
)


def week_of(day: date) -> date:
    """The Monday of a day's ISO week: the start of the partition that holds it."""
    return day - timedelta(days=day.weekday())


def partition_name(table: str, day: date) -> str:
    """The name of the partition that holds `day` (named after its week's Monday)."""
    return f"{table}_p{week_of(day):%Y%m%d}"


def default_partition(table: str) -> str:
    return f"{table}_default"


def is_partition(name: str | None) -> bool:
    """Whether a table name is one of the partitions made here (schema comparison
    leaves them out: the models describe the partitioned tables, not their weeks)."""
    return bool(name and PARTITION_NAME.match(name))


def _bound(day: date) -> str:
    return f"'{datetime.combine(day, time(), UTC).isoformat()}'"


def create_partition_sql(history: History, day: date) -> list[str]:
    """Statements that add the partition of the week of `day`.

    The table is made apart and then attached: ATTACH takes a lock that lets reads and
    writes of the other partitions go on (CREATE ... PARTITION OF would lock the whole
    table). Rows of that week that went to the default partition meanwhile move in first,
    since the default partition must not keep rows a new partition covers.
    """
    name = partition_name(history.table, day)
    default = default_partition(history.table)
    start, end = _bound(week_of(day)), _bound(week_of(day) + SPAN)
    return [
        f"CREATE TABLE {name} (LIKE {history.table} INCLUDING DEFAULTS)",
        f"WITH moved AS (DELETE FROM {default} WHERE {history.key} >= {start} "
        f"AND {history.key} < {end} RETURNING *) INSERT INTO {name} SELECT * FROM moved",
        f"ALTER TABLE {history.table} ATTACH PARTITION {name} FOR VALUES FROM ({start}) TO ({end})",
    ]


def drop_partition_sql(history: History, day: date) -> list[str]:
    name = partition_name(history.table, day)
    return [f"ALTER TABLE {history.table} DETACH PARTITION {name}", f"DROP TABLE {name}"]


def weeks_between(first: date, last: date) -> Iterable[date]:
    """The Mondays of the weeks from the one of `first` to the one of `last`."""
    week = week_of(first)
    while week <= last:
        yield week
        week += SPAN


def day_of(partition: str) -> date | None:
    """The first day a partition made here covers (None for the default partition)."""
    match = PARTITION_NAME.match(partition)
    if match is None or match["day"] == "default":
        return None
    return datetime.strptime(match["day"][1:], "%Y%m%d").replace(tzinfo=UTC).date()


# --- The background job's side: on a session -------------------------------------------


async def _partitions(session: AsyncSession, table: str) -> dict[date, str]:
    rows = await session.execute(
        text(
            "SELECT child.relname FROM pg_inherits "
            "JOIN pg_class parent ON parent.oid = pg_inherits.inhparent "
            "JOIN pg_class child ON child.oid = pg_inherits.inhrelid "
            "JOIN pg_namespace ns ON ns.oid = parent.relnamespace "
            "WHERE parent.relname = :table AND ns.nspname = current_schema()"
        ),
        {"table": table},
    )
    found: dict[date, str] = {}
    for (name,) in rows:
        day = day_of(name)
        if day is not None:
            found[day] = name
    return found


async def _take_turn(session: AsyncSession) -> bool:
    """One process at a time changes the partitions; the others skip this round."""
    await session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    return bool(
        await session.scalar(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": MAINTENANCE_LOCK}
        )
    )


async def create_ahead(
    session: AsyncSession, today: date, days_ahead: int = DAYS_AHEAD
) -> list[str]:
    """Add the missing partitions from `today` to `days_ahead` days after it; their names."""
    if not await _take_turn(session):
        return []
    created: list[str] = []
    for history in HISTORY:
        existing = await _partitions(session, history.table)
        for week in weeks_between(today, today + timedelta(days=days_ahead)):
            if week not in existing:
                for statement in create_partition_sql(history, week):
                    await session.execute(text(statement))
                created.append(partition_name(history.table, week))
    return created


async def drop_before(session: AsyncSession, before: datetime, history: History) -> list[str]:
    """Detach and drop the partitions of `history` whose whole week is before `before`
    (a week goes once its last moment is past retention); their names."""
    if not await _take_turn(session):
        return []
    dropped: list[str] = []
    for day, name in sorted((await _partitions(session, history.table)).items()):
        if datetime.combine(day + SPAN, time(), UTC) > before:
            break
        for statement in drop_partition_sql(history, day):
            await session.execute(text(statement))
        dropped.append(name)
    return dropped


async def purge_default(
    session: AsyncSession, history: History, before: datetime, limit: int = 5000
) -> int:
    """Delete up to `limit` rows older than `before` from the default partition; rows
    removed. It only holds what no day partition covered, so it stays small."""
    default = default_partition(history.table)
    result = await session.execute(
        text(
            f"DELETE FROM {default} WHERE ctid IN "
            f"(SELECT ctid FROM {default} WHERE {history.key} < :before LIMIT :limit)"
        ),
        {"before": before, "limit": limit},
    )
    return int(getattr(result, "rowcount", 0) or 0)
