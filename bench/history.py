"""The partitioned payload log on PostgreSQL at scale: a device's latest page, and
retention by dropping a week's partition against a chunked DELETE.

    .venv/bin/python bench/history.py --rows 50000000 --days 90 --devices 2000

Builds a database of its own (`bench_history_log`), migrates it, seeds the devices,
then fills one week partition at a time server-side (`INSERT ... SELECT
generate_series`, the partition made apart and then attached, so that its indexes are
built once), `--rows` rows spread over the `--days` days before today. `--reuse` keeps
a database filled by an earlier run. Then:

- the latest page (50 messages, with its `total`) of random devices through the API's
  own repository query (`payloads.repository.list_messages`, SQLAlchemy over asyncpg),
  next to the same two statements sent bare through asyncpg (the lean reference) and
  `SELECT 1` (the round-trip ceiling);
- retention of the oldest week: the worker's `drop_before` (detach and drop the
  partition), next to the chunked DELETE that retention ran before partitioning
  (5,000 rows a transaction) of the same rows, on a plain copy of that week and
  `--flat-days` days more, with the indexes the plain table had.

The database is dropped at the end unless `--keep`.
"""

from __future__ import annotations

import argparse
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
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
from vsense.partitions import SPAN, day_of, partition_name, weeks_between

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
        first = today - timedelta(days=days)
        started = time.perf_counter()
        done = 0
        for week in weeks_between(first, today - timedelta(days=1)):
            week_days = [
                day for day in (week + timedelta(days=n) for n in range(7)) if first <= day < today
            ]
            await fill_week(connection, week, week_days, done, per_day, devices)
            done += per_day * len(week_days)
            elapsed = time.perf_counter() - started
            print(
                f"  week of {week}: {done:,} rows in {elapsed:,.0f} s "
                f"({done / elapsed:,.0f} rows/s)",
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


async def fill_week(
    connection: asyncpg.Connection,
    week: date,
    days: Sequence[date],
    first_id: int,
    per_day: int,
    devices: int,
) -> None:
    """A week's messages, `per_day` on each of `days`, evenly spread over each day and the
    devices. A week without a partition yet gets a table made apart and then attached
    (its indexes built once, after the rows); the current week's partition, which the
    migration made, is filled in place."""
    name = partition_name("payload_messages", week)
    exists = await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", name)
    if not exists:
        await connection.execute(f"CREATE TABLE {name} (LIKE payload_messages INCLUDING DEFAULTS)")
    step_us = 86_400_000_000 // per_day
    for n, day in enumerate(days):
        await connection.execute(
            f"INSERT INTO {name} (id, device_uuid, type, version, timestamp, received_at, "
            "payload) SELECT $1::bigint + i + 1, d.uuid, 'VCZ', 1, t.at - interval '1 second', "
            """t.at, ('{"zones": [{"id": "z1", "name": "Hall", "count": ' || i % 17 || '}]}')"""
            "::json FROM generate_series(0, $2 - 1) AS i "
            "CROSS JOIN LATERAL (SELECT $3::timestamptz "
            "+ (i::bigint * $4::bigint) * interval '1 microsecond' AS at) t "
            "JOIN bench_device d ON d.n = i % $5",
            first_id + n * per_day,
            per_day,
            day_start(day),
            step_us,
            devices,
        )
    if not exists:
        start, end = day_start(week), day_start(week + SPAN)
        await connection.execute(
            f"ALTER TABLE payload_messages ATTACH PARTITION {name} "
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )


def backends_cpu_ms(pids: Sequence[int]) -> float:
    """CPU time (user + system) the database's server processes have used, in ms: on a
    machine shared with other work the wall time of a query grows with the load, its CPU
    time much less."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks * 1000 / os.sysconf("SC_CLK_TCK")


@dataclass
class Timing:
    latencies_ms: list[float]
    client_cpu_ms: float  # per call, this process
    server_cpu_ms: float  # per call, PostgreSQL's backends of the bench database


async def timed(
    connection: asyncpg.Connection,
    calls: int,
    call: Callable[[uuid.UUID], Awaitable[object]],
    targets: Sequence[uuid.UUID],
) -> Timing:
    pids = [
        row[0]
        for row in await connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        )
    ]
    latencies = []
    server, client = backends_cpu_ms(pids), time.process_time()
    for n in range(calls):
        began = time.perf_counter()
        await call(targets[n % len(targets)])
        latencies.append((time.perf_counter() - began) * 1000)
    return Timing(
        latencies,
        (time.process_time() - client) * 1000 / calls,
        (backends_cpu_ms(pids) - server) / calls,
    )


async def latest_page(url: str, data_dir: Path, calls: int) -> list[tuple[str, Timing]]:
    """p50/p99 of one device's latest page: the repository, the bare SQL, SELECT 1."""
    from vsense.payloads import repository

    # One connection, used call after call, so that its server process is measured.
    settings = load_settings(
        data_dir=data_dir, database_url=url, environment="development", database_pool_size=1
    )
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
            # Warm the caches and plans (and open the engine's connection).
            await timed(connection, min(50, calls), call, targets[::-1])
            results.append((label, await timed(connection, calls, call, targets)))
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
        day_end = day_start(day + SPAN)
        day_rows = int(
            await connection.fetchval(
                f"SELECT count(*) FROM {partition_name('payload_messages', day)}"
            )
        )
        print(f"  a plain copy of the oldest week and {flat_days} days more ...", flush=True)
        await connection.execute("DROP TABLE IF EXISTS payload_messages_flat")
        await connection.execute(
            "CREATE TABLE payload_messages_flat (LIKE payload_messages INCLUDING DEFAULTS)"
        )
        await connection.execute(
            "INSERT INTO payload_messages_flat SELECT * FROM payload_messages "
            "WHERE received_at < $1 ORDER BY id",
            day_end + timedelta(days=flat_days),
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
            (
                f"detach + drop the oldest week's partition ({day_rows:,} rows)",
                dropped_seconds,
                day_rows,
            ),
            (
                f"chunked DELETE of the same rows ({deleted:,}) from a plain table of "
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
            f"| latest page ({args.calls} calls, random devices) | p50 ms | p99 ms | "
            "p99 / ref. | server CPU ms/call | client CPU ms/call |"
        )
        print("|---|---|---|---|---|---|")
        results = await latest_page(url, data_dir, args.calls)
        reference = percentile(results[1][1].latencies_ms, 0.99)
        for label, timing in results:
            p50 = percentile(timing.latencies_ms, 0.5)
            p99 = percentile(timing.latencies_ms, 0.99)
            print(
                f"| {label} | {p50:.2f} | {p99:.2f} | {p99 / reference:.2f} | "
                f"{timing.server_cpu_ms:.2f} | {timing.client_cpu_ms:.2f} |",
                flush=True,
            )
        print("\n| retention of the oldest partition | seconds | rows/s |")
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
    parser.add_argument(
        "--flat-days", type=int, default=3, help="days beyond the oldest week in the plain copy"
    )
    parser.add_argument("--data-dir", default=".bench-history", help="the bench's data folder")
    parser.add_argument("--reuse", action="store_true", help="measure an already filled database")
    parser.add_argument("--keep", action="store_true", help="leave the database in place")
    args: Any = parser.parse_args(argv)
    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    event_loop_runner(run(args))


if __name__ == "__main__":
    main()
