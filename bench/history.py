"""The partitioned payload log on PostgreSQL at scale: a device's latest page, and a
day's retention by dropping its partition against a chunked DELETE.

    .venv/bin/python bench/history.py --rows 50000000 --days 90 --devices 2000

Builds a database of its own (`bench_history_log`), migrates it, seeds the devices,
then fills one day partition at a time server-side (`INSERT ... SELECT
generate_series`, the partition made apart and then attached, so that its indexes are
built once), `--rows` rows spread over the `--days` days before today. `--reuse` keeps
a database filled by an earlier run. Then:

- the latest page (50 messages, with its `total`) of random devices through the API's
  own repository query (`payloads.repository.list_messages`, SQLAlchemy over asyncpg),
  next to the same two statements sent bare through asyncpg (the lean reference) and
  `SELECT 1` (the round-trip ceiling);
- retention of the oldest day: the worker's `drop_before` (detach and drop the
  partition), next to the chunked DELETE that retention ran before partitioning
  (5,000 rows a transaction) of the same day, on a plain copy of the `--flat-days`
  oldest days with the indexes the plain table had.

The database is dropped at the end unless `--keep`.
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine.url import make_url

from harness import (
    DEFAULT_POSTGRES_URL,
    event_loop_runner,
    percentile,
    recreate_postgres_database,
    seed,
)
from vsense.config import load_settings
from vsense.db import create_engine, create_sessionmaker, session_scope
from vsense.migrate import upgrade_async
from vsense.partitions import day_of, partition_name

DATABASE = "bench_history_log"
PAGE = 50
CHUNK = 5000
PAGE_SQL = (
    "SELECT id, type, version, timestamp, received_at, payload FROM payload_messages "
    "WHERE device_uuid = $1 ORDER BY timestamp DESC, id DESC LIMIT $2"
)
COUNT_SQL = "SELECT count(*) FROM payload_messages WHERE device_uuid = $1"


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


async def connect(url: str) -> asyncpg.Connection:
    parsed = make_url(url)
    return await asyncpg.connect(
        host=parsed.host, port=parsed.port or 5432, user=parsed.username, database=parsed.database
    )


async def fill(url: str, data_dir: Path, rows: int, days: int, devices: int) -> int:
    """A fresh, migrated database with `devices` devices and `rows` messages; returns the
    rows stored."""
    print(f"PostgreSQL {await recreate_postgres_database(url)}", flush=True)
    settings = load_settings(data_dir=data_dir, database_url=url, environment="development")
    await upgrade_async(settings)
    await seed(data_dir, url, devices)
    connection = await connect(url)
    try:
        await connection.execute(
            "CREATE TABLE bench_device AS SELECT (row_number() OVER (ORDER BY uuid)) - 1 AS n, "
            "uuid FROM devices"
        )
        await connection.execute("ALTER TABLE bench_device ADD PRIMARY KEY (n)")
        per_day = rows // days
        today = datetime.now(UTC).date()
        started = time.perf_counter()
        for index in range(days):
            day = today - timedelta(days=days - index)
            await fill_day(connection, day, index * per_day, per_day, devices)
            done = (index + 1) * per_day
            elapsed = time.perf_counter() - started
            print(
                f"  {day}: {done:,} rows in {elapsed:,.0f} s ({done / elapsed:,.0f} rows/s)",
                flush=True,
            )
        await connection.execute(
            "SELECT setval('payload_messages_id_seq', (SELECT max(id) FROM payload_messages))"
        )
        vacuum = time.perf_counter()
        await connection.execute("VACUUM ANALYZE payload_messages")
        print(f"  VACUUM ANALYZE: {time.perf_counter() - vacuum:,.0f} s", flush=True)
        return int(await connection.fetchval("SELECT count(*) FROM payload_messages"))
    finally:
        await connection.close()


async def fill_day(
    connection: asyncpg.Connection, day: date, first_id: int, count: int, devices: int
) -> None:
    """One day's messages, evenly spread over the day and the devices, into a table made
    apart and then attached (its indexes built once, after the rows)."""
    name = partition_name("payload_messages", day)
    start, end = day_start(day), day_start(day + timedelta(days=1))
    step_us = 86_400_000_000 // count
    await connection.execute(f"DROP TABLE IF EXISTS {name}")
    await connection.execute(f"CREATE TABLE {name} (LIKE payload_messages INCLUDING DEFAULTS)")
    await connection.execute(
        f"INSERT INTO {name} (id, device_uuid, type, version, timestamp, received_at, payload) "
        "SELECT $1::bigint + i + 1, d.uuid, 'VCZ', 1, t.at - interval '1 second', t.at, "
        """('{"zones": [{"id": "z1", "name": "Hall", "count": ' || i % 17 || '}]}')::json """
        "FROM generate_series(0, $2 - 1) AS i "
        "CROSS JOIN LATERAL "
        "(SELECT $3::timestamptz + (i::bigint * $4::bigint) * interval '1 microsecond' AS at) t "
        "JOIN bench_device d ON d.n = i % $5",
        first_id,
        count,
        start,
        step_us,
        devices,
    )
    await connection.execute(
        f"ALTER TABLE payload_messages ATTACH PARTITION {name} "
        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    )


async def timed(
    calls: int, call: Callable[[uuid.UUID], Awaitable[object]], targets: Sequence[uuid.UUID]
) -> list[float]:
    latencies = []
    for n in range(calls):
        began = time.perf_counter()
        await call(targets[n % len(targets)])
        latencies.append((time.perf_counter() - began) * 1000)
    return latencies


async def latest_page(url: str, data_dir: Path, calls: int) -> list[tuple[str, list[float]]]:
    """p50/p99 of one device's latest page: the repository, the bare SQL, SELECT 1."""
    from vsense.payloads import repository

    settings = load_settings(data_dir=data_dir, database_url=url, environment="development")
    engine = create_engine(settings)
    # As a GET request has it (`deps.get_session`): a read session in autocommit.
    sessionmaker = create_sessionmaker(engine, read_only=True)
    connection = await connect(url)
    try:
        devices = [row[0] for row in await connection.fetch("SELECT uuid FROM devices")]
        rng = random.Random(7)
        targets = [rng.choice(devices) for _ in range(calls)]

        async def through_repository(device: uuid.UUID) -> object:
            async with sessionmaker() as session:
                return await repository.list_messages(
                    session, device, since=None, until=None, message_type=None, offset=0, limit=PAGE
                )

        page = await connection.prepare(PAGE_SQL)
        count = await connection.prepare(COUNT_SQL)

        async def bare(device: uuid.UUID) -> object:
            return (await count.fetchval(device), await page.fetch(device, PAGE))

        async def page_only(device: uuid.UUID) -> object:
            return await page.fetch(device, PAGE)

        async def count_only(device: uuid.UUID) -> object:
            return await count.fetchval(device)

        async def ceiling(device: uuid.UUID) -> object:
            return await connection.fetchval("SELECT 1")

        results = []
        candidates: list[tuple[str, Callable[[uuid.UUID], Awaitable[object]]]] = [
            ("SELECT 1 (ceiling)", ceiling),
            ("bare SQL via asyncpg: count + page (reference)", bare),
            ("bare SQL: the page alone", page_only),
            ("bare SQL: the count alone", count_only),
            ("repository list_messages (count + page)", through_repository),
        ]
        for label, call in candidates:
            await timed(min(50, calls), call, targets[::-1])  # warm the caches and plans
            results.append((label, await timed(calls, call, targets)))
        return results
    finally:
        await connection.close()
        await engine.dispose()


async def retention(url: str, data_dir: Path, flat_days: int) -> list[tuple[str, float, int]]:
    """Seconds to remove the oldest day: drop its partition; chunked DELETE on a copy."""
    from vsense import partitions

    connection = await connect(url)
    settings = load_settings(data_dir=data_dir, database_url=url, environment="development")
    engine = create_engine(settings)
    try:
        names = await connection.fetch(
            "SELECT inhrelid::regclass::text FROM pg_inherits "
            "WHERE inhparent = 'payload_messages'::regclass"
        )
        day = min(d for (name,) in names if (d := day_of(name)) is not None)
        day_end = day_start(day + timedelta(days=1))
        day_rows = int(
            await connection.fetchval(
                f"SELECT count(*) FROM {partition_name('payload_messages', day)}"
            )
        )
        print(f"  a plain copy of {flat_days} days ...", flush=True)
        await connection.execute("DROP TABLE IF EXISTS payload_messages_flat")
        await connection.execute(
            "CREATE TABLE payload_messages_flat (LIKE payload_messages INCLUDING DEFAULTS)"
        )
        await connection.execute(
            "INSERT INTO payload_messages_flat SELECT * FROM payload_messages "
            "WHERE received_at < $1 ORDER BY id",
            day_start(day + timedelta(days=flat_days)),
        )
        await connection.execute("ALTER TABLE payload_messages_flat ADD PRIMARY KEY (id)")
        await connection.execute(
            "CREATE INDEX ON payload_messages_flat (device_uuid, timestamp, id)"
        )
        await connection.execute("VACUUM ANALYZE payload_messages_flat")
        flat_rows = int(await connection.fetchval("SELECT count(*) FROM payload_messages_flat"))

        began = time.perf_counter()
        deleted = 0
        while True:
            # Retention's statement before partitioning, a transaction per chunk.
            status = await connection.execute(
                "DELETE FROM payload_messages_flat WHERE id IN (SELECT id FROM "
                "payload_messages_flat WHERE received_at < $1 LIMIT $2)",
                day_end,
                CHUNK,
            )
            count = int(status.split()[-1])
            deleted += count
            if count == 0:
                break
        chunked = time.perf_counter() - began

        began = time.perf_counter()
        async with session_scope(create_sessionmaker(engine)) as session:
            dropped = await partitions.drop_before(session, day_end, partitions.HISTORY[0])
        dropped_seconds = time.perf_counter() - began
        assert dropped == [partition_name("payload_messages", day)], dropped
        await connection.execute("DROP TABLE payload_messages_flat")
        return [
            (f"detach + drop the day's partition ({day_rows:,} rows)", dropped_seconds, day_rows),
            (
                f"chunked DELETE of the same day ({deleted:,} rows) from a plain table of "
                f"{flat_rows:,} rows",
                chunked,
                deleted,
            ),
        ]
    finally:
        await connection.close()
        await engine.dispose()


async def drop_database(url: str) -> None:
    parsed = make_url(url)
    connection = await asyncpg.connect(
        host=parsed.host, port=parsed.port or 5432, user=parsed.username, database="postgres"
    )
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
    finally:
        await connection.close()


async def run(args: argparse.Namespace) -> None:
    url = f"{args.postgres.rstrip('/')}/{DATABASE}"
    data_dir = Path(args.data_dir)
    try:
        if args.reuse:
            connection = await connect(url)
            stored = int(await connection.fetchval("SELECT count(*) FROM payload_messages"))
            await connection.close()
        else:
            began = time.perf_counter()
            stored = await fill(url, data_dir, args.rows, args.days, args.devices)
            print(f"filled {stored:,} rows in {time.perf_counter() - began:,.0f} s", flush=True)
        connection = await connect(url)
        size = await connection.fetchval(
            "SELECT pg_size_pretty(sum(pg_total_relation_size(inhrelid))) FROM pg_inherits "
            "WHERE inhparent = 'payload_messages'::regclass"
        )
        partitions_count = await connection.fetchval(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'payload_messages'::regclass"
        )
        await connection.close()
        print(
            f"\npayload log: {stored:,} rows, {partitions_count} partitions, {size} "
            f"with indexes; {args.devices:,} devices (~{stored // args.devices:,} each)\n"
        )
        print(
            f"| latest page ({args.calls} calls, random devices) | p50 ms | p99 ms | p99 / ref. |"
        )
        print("|---|---|---|---|")
        results = await latest_page(url, data_dir, args.calls)
        reference = percentile(results[1][1], 0.99)
        for label, latencies in results:
            p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
            print(f"| {label} | {p50:.2f} | {p99:.2f} | {p99 / reference:.2f} |", flush=True)
        print("\n| a day's retention | seconds | rows/s |")
        print("|---|---|---|")
        for label, seconds, rows in await retention(url, data_dir, args.flat_days):
            print(f"| {label} | {seconds:.3f} | {rows / seconds:,.0f} |", flush=True)
    finally:
        if not args.keep:
            await drop_database(url)
            print(f"\ndropped {DATABASE}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES_URL, help="server URL, no database")
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=1000, help="latest-page calls per candidate")
    parser.add_argument("--flat-days", type=int, default=3, help="days in the plain copy")
    parser.add_argument("--data-dir", default=".bench-history", help="the bench's data folder")
    parser.add_argument("--reuse", action="store_true", help="measure an already filled database")
    parser.add_argument("--keep", action="store_true", help="leave the database in place")
    args: Any = parser.parse_args(argv)
    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    event_loop_runner(run(args))


if __name__ == "__main__":
    main()
