"""The embedded database stays writable when a task is cancelled in the middle of a
statement of its write transaction (a stopping dispatcher, a job cut short); JSON
columns read back exactly what was written; a read session runs its statements alone."""

from __future__ import annotations

import asyncio
import contextlib
import math
import sqlite3
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Column, Integer, MetaData, Table, event, insert, select, text

from tests.environment import TEST_SECRET
from vsense.config import load_settings
from vsense.db import create_engine, create_sessionmaker, session_scope, write_turn

# A statement that runs for a few seconds in the connection's thread.
SLOW = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000000) "
    "SELECT count(*) FROM c"
)


async def test_a_write_cancelled_mid_statement_does_not_keep_the_write_lock(
    tmp_path: Path,
) -> None:
    settings = load_settings(data_dir=tmp_path, environment="test", secret_key=TEST_SECRET)
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    started, finished = threading.Event(), threading.Event()

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def running(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement == SLOW:
            started.set()

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def ran(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement == SLOW:
            finished.set()

    try:
        async with session_scope(sessionmaker) as session:
            await session.execute(text("CREATE TABLE t (x INTEGER)"))
            await session.execute(text("INSERT INTO t VALUES (1)"))

        async def write() -> None:
            async with session_scope(sessionmaker) as session:
                await session.execute(text("UPDATE t SET x = x + 1"))
                await session.execute(text(SLOW))

        task = asyncio.create_task(write())
        assert await asyncio.to_thread(started.wait, 30)
        task.cancel()
        cancelled_mid_statement = not finished.is_set()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert cancelled_mid_statement, "the statement ended before the cancellation"

        # The cancelled task (still referenced here, as a failing test's traceback would
        # keep it) holds no lock: another connection writes once the statement has ended.
        def write_elsewhere() -> int:
            other = sqlite3.connect(settings.resolved_database_url.split("///", 1)[1], timeout=120)
            try:
                other.execute("UPDATE t SET x = x + 10")
                other.commit()
                return int(other.execute("SELECT x FROM t").fetchone()[0])
            finally:
                other.close()

        assert await asyncio.to_thread(write_elsewhere) == 11  # the cancelled +1 rolled back
        async with session_scope(sessionmaker) as session:
            await session.execute(text("UPDATE t SET x = x + 100"))
        assert task.cancelled()
    finally:
        await engine.dispose()


async def test_writers_take_turns_and_a_turn_ends_with_its_transaction(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, environment="test", secret_key=TEST_SECRET)
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    turn = write_turn(engine.sync_engine.pool)
    try:
        async with session_scope(sessionmaker) as session:
            await session.execute(text("CREATE TABLE t (x INTEGER)"))
        assert not turn.locked()

        async def insert(value: int, inside: asyncio.Event, hold: asyncio.Event) -> None:
            async with session_scope(sessionmaker) as session:
                await session.execute(text("INSERT INTO t VALUES (:x)"), {"x": value})
                inside.set()
                await hold.wait()
                if value < 0:
                    raise RuntimeError("the unit of work fails: rolled back")

        for first_value, ending in ((1, "commit"), (-1, "error"), (2, "cancel")):
            inside, hold, go_on = asyncio.Event(), asyncio.Event(), asyncio.Event()
            go_on.set()
            first = asyncio.create_task(insert(first_value, inside, hold))
            await inside.wait()
            assert turn.locked()
            second = asyncio.create_task(insert(10 + first_value, asyncio.Event(), go_on))
            for _ in range(10):
                await asyncio.sleep(0)
            assert not second.done(), "the second writer waits for its turn"
            if ending == "cancel":
                first.cancel()
            else:
                hold.set()
            with contextlib.suppress(RuntimeError, asyncio.CancelledError):
                await first
            await second
            assert not turn.locked(), f"the turn outlived a transaction ended by {ending}"
        async with sessionmaker() as session:
            values = sorted((await session.execute(text("SELECT x FROM t"))).scalars())
        assert values == [1, 9, 11, 12]  # the failed and the cancelled inserts rolled back
    finally:
        await engine.dispose()


async def test_json_columns_read_back_what_was_written_big_integers_exactly(
    tmp_path: Path,
) -> None:
    settings = load_settings(data_dir=tmp_path, environment="test", secret_key=TEST_SECRET)
    engine = create_engine(settings)
    table = Table("j", MetaData(), Column("id", Integer, primary_key=True), Column("v", JSON))
    written = [
        {"serial": 2**70, "small": -(2**63), "label": "Entrée 🚪", "ratio": 0.1},
        [1, [2, {"x": None}], True, "19 digits in text: 1234567890123456789"],
        "plain",
    ]
    try:
        async with engine.begin() as connection:
            await connection.run_sync(table.metadata.create_all)
            await connection.execute(
                insert(table), [{"id": n, "v": v} for n, v in enumerate(written)]
            )
            # Text the standard library wrote before orjson did, which orjson refuses.
            await connection.execute(text("""INSERT INTO j (id, v) VALUES (9, '{"a": NaN}')"""))
        async with engine.connect() as connection:
            rows = {n: v for n, v in await connection.execute(select(table.c.id, table.c.v))}
        assert [rows[n] for n in range(len(written))] == written
        assert type(rows[0]["serial"]) is int
        assert math.isnan(rows[9]["a"])
    finally:
        await engine.dispose()


async def test_a_read_session_on_the_embedded_database_runs_its_statements_alone(
    tmp_path: Path,
) -> None:
    """Each statement its own transaction, as PostgreSQL's autocommit reads: no BEGIN,
    ROLLBACK or isolation level switched around it (each a trip to the connection's
    thread), and no read transaction left open to hold back the WAL."""
    settings = load_settings(data_dir=tmp_path, environment="test", secret_key=TEST_SECRET)
    engine = create_engine(settings)
    ran: list[str] = []

    @event.listens_for(engine.sync_engine, "connect")
    def trace(dbapi_connection: Any, _record: Any) -> None:
        driver = dbapi_connection.driver_connection._conn  # aiosqlite's sqlite3 connection
        driver.set_trace_callback(ran.append)

    reads = create_sessionmaker(engine, read_only=True)
    try:
        for _ in range(2):  # a fresh connection, then one back from the pool
            ran.clear()
            async with reads() as session:
                assert (await session.execute(text("SELECT 41 + 1"))).scalar_one() == 42
                connection = await session.connection()
                driver = (await connection.get_raw_connection()).driver_connection
                assert not driver.in_transaction  # type: ignore[union-attr]
            assert ran == ["SELECT 41 + 1"]
    finally:
        await engine.dispose()
