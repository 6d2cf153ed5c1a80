"""Engine, sessions and dialect set-up (SQLite pragmas, PostgreSQL pool)."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session
from sqlalchemy.pool import ConnectionPoolEntry

from vsense.config import Settings
from vsense.kit.batching import Leaders
from vsense.kit.errors import AppError
from vsense.kit.files import private_file, private_folder
from vsense.kit.json_text import json_text, stored_json_value

logger = logging.getLogger("vsense.db")


def create_engine(settings: Settings) -> AsyncEngine:
    """An async engine for the configured database, with SQLite made production-worthy."""
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            # SQLite gives its -wal and -shm files the database file's own mode.
            private_folder(settings.data_dir)
            private_file(Path(url.database))
        engine = create_async_engine(
            url,
            connect_args={"timeout": 30},
            # Each aiosqlite connection is a thread; WAL lets a few read side by side.
            pool_size=min(settings.database_pool_size, 8),
            max_overflow=0,
            json_serializer=json_text,
            json_deserializer=stored_json_value,
        )
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
        event.listen(engine.sync_engine, "close", _sqlite_on_close)
        return engine
    return create_async_engine(
        url,
        pool_size=settings.database_pool_size,
        max_overflow=max(4, settings.database_pool_size // 4),
        pool_pre_ping=False,
        json_serializer=json_text,
        json_deserializer=stored_json_value,
    )


def _sqlite_on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # pysqlite's own transaction handling is switched off so that BEGIN is ours to emit.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


WRITE_OPTIONS = {"sqlite_begin": "IMMEDIATE"}
AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}


# Read sessions on SQLite begin nothing: each statement is its own transaction, as
# PostgreSQL's AUTOCOMMIT reads are. (The driver is in autocommit already, BEGIN being
# ours to emit; switching its isolation level per session would cost each read two
# more trips to the connection's thread, to set it and to put it back.)
READ_OPTIONS = {"sqlite_begin": None}


def _sqlite_on_begin(connection: Any) -> None:
    # Writers BEGIN IMMEDIATE: they take the write lock up front and queue on
    # busy_timeout, instead of failing with "database is locked" when a read transaction
    # upgrades. Other transactions are DEFERRED so that WAL lets them run side by side.
    mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
    if mode is None:
        return
    connection.exec_driver_sql(f"BEGIN {mode}")


def _sqlite_on_close(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # A task cancelled in the middle of a statement gets its connection closed (SQLAlchemy
    # invalidates it) while the statement is still referenced, by the cancelled task's
    # frames. Python's sqlite3 closes with sqlite3_close_v2, which then leaves a "zombie"
    # connection that keeps its transaction, and with it the database's write lock, until
    # that statement is garbage-collected: every other writer gets "database is locked".
    # Rolling back first ends the transaction whatever still refers to the connection
    # (queued behind the statement running in the connection's thread).
    try:
        dbapi_connection.rollback()
    except Exception:  # a connection already gone, or closed outside the event loop
        logger.debug("no rollback before closing an SQLite connection", exc_info=True)


def create_sessionmaker(
    engine: AsyncEngine, *, read_only: bool = False
) -> async_sessionmaker[AsyncSession]:
    """Sessions for writers, or (read_only) for GET requests.

    Read sessions run in autocommit: no BEGIN/COMMIT round trips around a request
    that only reads. Each statement still sees a consistent snapshot of its own.
    """
    bind = engine
    if read_only:
        sqlite = engine.dialect.name == "sqlite"
        bind = engine.execution_options(**(READ_OPTIONS if sqlite else AUTOCOMMIT))
    return async_sessionmaker(bind, expire_on_commit=False, autoflush=False)


# SQLite's writers of one process take turns on an asyncio lock before BEGIN IMMEDIATE.
# Left to SQLite, a writer that finds the lock taken sleeps in its busy handler (1 ms,
# then longer, up to 100 ms a time) and misses the moment the lock is free: under a
# burst of writes the lock then sits idle between writers. The asyncio lock hands it
# over at once, first come first served. SQLite serves one process, so that is every
# writer but a command-line tool's, which the busy handler still queues.
_WRITE_TURNS = "vsense.write_turn"  # session.info: the lock this session's writer holds
WRITE_TURN_TIMEOUT = 30.0  # as busy_timeout: then the busy handler queues it instead
# Per connection pool (an engine and its copies with other options share it), with the
# event loop its lock belongs to (a lock serves one loop).
_turns: weakref.WeakKeyDictionary[Any, tuple[asyncio.AbstractEventLoop, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def write_turn(pool: Any) -> asyncio.Lock:
    """The lock the SQLite writers of this process over `pool` take turns on."""
    loop = asyncio.get_running_loop()
    found = _turns.get(pool)
    if found is None or found[0] is not loop:
        found = _turns[pool] = (loop, asyncio.Lock())
    return found[1]


async def begin_write(session: AsyncSession) -> None:
    """Mark a fresh session's transaction as a writer (BEGIN IMMEDIATE on SQLite, on
    this process's turn)."""
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        turn = write_turn(bind.pool)  # type: ignore[union-attr]
        try:
            async with asyncio.timeout(WRITE_TURN_TIMEOUT):
                await turn.acquire()
        except TimeoutError:
            logger.warning(
                "no write turn within %s s; SQLite queues the writer", WRITE_TURN_TIMEOUT
            )
        else:
            session.sync_session.info[_WRITE_TURNS] = turn
    try:
        await session.connection(execution_options=WRITE_OPTIONS)
    except BaseException:
        _end_turn(session.sync_session)
        raise


def _end_turn(session: Session) -> None:
    turn: asyncio.Lock | None = session.info.pop(_WRITE_TURNS, None)
    if turn is not None:
        turn.release()


@event.listens_for(Session, "after_transaction_end")
def _transaction_ended(session: Session, transaction: Any) -> None:
    if transaction.parent is None:  # the writer's transaction, not a savepoint
        _end_turn(session)


@asynccontextmanager
async def session_scope(
    sessionmaker: async_sessionmaker[AsyncSession], *, write: bool = True
) -> AsyncIterator[AsyncSession]:
    """One unit of work for a job or a command: committed on success, rolled back on error."""
    async with sessionmaker() as session:
        if write:
            await begin_write(session)
        try:
            yield session
        except AppError as exc:
            # An error that recorded something on purpose (a revocation, the accepted
            # part of a batch) keeps it; any other error undoes the unit of work.
            await (session.commit() if exc.commit_session else session.rollback())
            raise
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


T = TypeVar("T")
Work = Callable[[AsyncSession], Awaitable[T]]
# The work of many units at once, in the order given: one result per item.
Many = Callable[[AsyncSession, list[Any]], Awaitable[list[Any]]]

# Units of work in one group transaction at most, and group transactions in flight at
# once. SQLite has one writer, so one. PostgreSQL may run a second group while one
# executes or commits, but only once the units waiting carry `HEAVY` work (messages,
# for device payloads): groups side by side split the same requests into smaller
# groups, and light units (a message each) cost the process more CPU in their
# transactions than the database's wait that a second group would overlap; heavy ones
# (batches of messages) keep the database busy long enough that overlapping pays.
# Measured in docs/benchmarks.md (2026-12-01).
MAX_GROUP = 64
GROUPS_IN_FLIGHT = {"sqlite": 1, "postgresql": 2}
HEAVY = 256


Refusals = tuple[type[Exception], ...]


@dataclass(frozen=True, slots=True)
class _Refused:
    """A unit's refusal, handed back through its group as a result."""

    error: Exception


@dataclass(slots=True)
class _Unit(Generic[T]):
    work: Work[T]
    answer: asyncio.Future[T]
    many: Many | None = None  # how a run of units with the same `many` is done at once
    item: Any = None  # this unit's part of it
    weight: int = 1  # its work, against `HEAVY` (messages, for device payloads)


class GroupCommit:
    """Concurrent units of work of one process share one write transaction (group
    commit): each is answered only once that transaction has committed, never before.

    A request hands its unit of work (`run`); a leader task takes the units waiting,
    runs them one after the other in one session, commits once, then answers each. While
    it does, the next units gather for the next group, so a busy process pays one BEGIN,
    one COMMIT and one connection per group instead of per request.

    A unit that fails must not fail its group-mates, nor leave half of its work in their
    commit: when any unit of a group raises, the group is rolled back and each unit runs
    again alone, in its own transaction, as it would have without grouping (so a unit's
    work must be safe to run again after a rollback). A failed COMMIT is not retried: it
    answers every unit of the group with its error (a database that is away: 503), as it
    would have answered the one request.

    Units handed over with `run_many` are done together: consecutive units of a group
    with the same `many` make one call of it with all their items (a batch of requests'
    messages in one insert), alone a call with one item.

    One group runs at a time while the next gathers. Up to `in_flight` run at once, but
    a further one starts only when the units waiting weigh `heavy` or more: light units
    gather into one large group, heavy ones keep the database working while the process
    prepares the next group.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        in_flight: int,
        max_group: int = MAX_GROUP,
        heavy: int = HEAVY,
        on_group: Callable[[int], None] | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.max_group = max_group
        self.heavy = heavy
        self.on_group = on_group  # told each group's size as it starts (a metric)
        self._waiting: list[_Unit[Any]] = []
        self.leaders = Leaders(in_flight)  # group transactions in flight at most
        self.groups = 0  # group transactions committed (for tests and benchmarks)

    async def run(self, work: Work[T], *, refusals: Refusals = ()) -> T:
        """Run `work` in a write transaction shared with concurrent units; its result once
        committed, or its error (or the COMMIT's).

        An error of one of the `refusals` types is this unit's answer alone: its
        group-mates' work goes on in the group's transaction, rather than each again on
        its own. `work` must raise those before it writes anything.
        """
        if not refusals:
            return await self._hand_over(_Unit(work, self._future()))

        async def refusing(session: AsyncSession) -> T | _Refused:
            try:
                return await work(session)
            except refusals as refusal:
                return _Refused(refusal)

        result: T | _Refused = await self._hand_over(_Unit(refusing, self._future()))
        if isinstance(result, _Refused):
            raise result.error
        return result

    async def run_many(self, many: Many, item: Any, *, weight: int = 1) -> Any:
        """Run `many` for `item`, together with the items of the group's other units
        that `many` takes (one call for them all); this item's result once committed.
        `weight`: how much work the item is (its messages), against `heavy`."""

        async def alone(session: AsyncSession) -> Any:
            [result] = await many(session, [item])
            return result

        return await self._hand_over(_Unit(alone, self._future(), many, item, weight))

    @staticmethod
    def _future() -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    async def _hand_over(self, unit: _Unit[T]) -> T:
        self._waiting.append(unit)
        leaders = self.leaders
        if leaders.running == 0 or (
            leaders.running < leaders.limit
            and sum(waiting.weight for waiting in self._waiting) >= self.heavy
        ):
            leaders.wake(self._take_turns)
        return await unit.answer

    async def _take_turns(self) -> None:
        while self._waiting:
            group = self._waiting[: self.max_group]
            del self._waiting[: self.max_group]
            # A request that went away before its turn (the client hung up) is not run.
            group = [unit for unit in group if not unit.answer.done()]
            if group and self.on_group is not None:
                self.on_group(len(group))
            try:
                if len(group) == 1:
                    await self._alone(group[0])
                elif group:
                    await self._together(group)
            except BaseException as exc:  # the process is stopping: nobody waits forever
                for unit in [*group, *self._waiting]:
                    _answer(unit, error=exc)
                self._waiting.clear()
                raise

    async def _together(self, group: list[_Unit[Any]]) -> None:
        results: list[Any] = []
        async with self.sessionmaker() as session:
            try:
                await begin_write(session)
                for run in _runs(group):
                    many = run[0].many
                    if many is None:
                        for unit in run:
                            results.append(await unit.work(session))
                        continue
                    found = await many(session, [unit.item for unit in run])
                    if len(found) != len(run):
                        raise RuntimeError(f"{many!r} gave {len(found)} results for {len(run)}")
                    results.extend(found)
            except Exception:
                await session.rollback()
                results = []
            if results:
                try:
                    await session.commit()
                except BaseException as exc:
                    for unit in group:
                        _answer(unit, error=exc)
                    if not isinstance(exc, Exception):
                        raise
                    return
        if not results:  # a unit failed: each again on its own
            for unit in group:
                await self._alone(unit)
            return
        self.groups += 1
        for unit, result in zip(group, results, strict=True):
            _answer(unit, result=result)

    async def _alone(self, unit: _Unit[Any]) -> None:
        try:
            async with session_scope(self.sessionmaker) as session:
                result = await unit.work(session)
        except Exception as exc:
            _answer(unit, error=exc)
            return
        except BaseException as exc:
            _answer(unit, error=exc)
            raise
        _answer(unit, result=result)


def _runs(group: list[_Unit[Any]]) -> list[list[_Unit[Any]]]:
    """The group cut into runs of consecutive units done the same way (the same `many`,
    compared with `==`: a bound method is a new object at each access)."""
    runs: list[list[_Unit[Any]]] = []
    for unit in group:
        if runs and runs[-1][0].many == unit.many:
            runs[-1].append(unit)
        else:
            runs.append([unit])
    return runs


def _answer(unit: _Unit[Any], *, result: Any = None, error: BaseException | None = None) -> None:
    if unit.answer.done():  # the request was cancelled meanwhile
        return
    if error is None:
        unit.answer.set_result(result)
    else:
        unit.answer.set_exception(error)


@dataclass(frozen=True, slots=True)
class Database:
    """The engine of a process and its two kinds of sessions (writers, and readers for GET
    requests and the hot read paths), and the group commit of its device writes."""

    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    read_sessionmaker: async_sessionmaker[AsyncSession]
    group_commit: GroupCommit = field(compare=False)

    @classmethod
    def for_engine(
        cls, engine: AsyncEngine, *, on_group: Callable[[int], None] | None = None
    ) -> Database:
        """`on_group` is told the size of each group transaction of the group commit."""
        writers = create_sessionmaker(engine)
        in_flight = GROUPS_IN_FLIGHT.get(engine.dialect.name, 1)
        return cls(
            engine,
            writers,
            create_sessionmaker(engine, read_only=True),
            GroupCommit(writers, in_flight=in_flight, on_group=on_group),
        )

    def write(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A unit of work of a job: committed on success, rolled back on error."""
        return session_scope(self.sessionmaker)

    async def grouped(self, work: Work[T], *, refusals: Refusals = ()) -> T:
        """`work` in a write transaction shared with concurrent requests (`GroupCommit`):
        its result once committed. Errors of the `refusals` types, raised before `work`
        writes anything, answer it alone (`GroupCommit.run`)."""
        return await self.group_commit.run(work, refusals=refusals)

    async def write_unit(self, work: Work[T], *, refusals: Refusals = ()) -> T:
        """`work`, a request's unit of several statements, in the write transaction that
        costs least where it runs: on SQLite, whose writers take turns anyway, the group
        commit's (`grouped`: one write turn and one COMMIT for a burst); on PostgreSQL one
        of its own, whose round trips overlap those of other requests' transactions
        instead of queueing in a group's one connection (measured in docs/benchmarks.md,
        2026-12-02). Its result once committed; `refusals` as for `grouped`."""
        if self.engine.dialect.name == "sqlite":
            return await self.grouped(work, refusals=refusals)
        async with self.write() as session:
            return await work(session)

    async def grouped_many(self, many: Many, item: Any, *, weight: int = 1) -> Any:
        """`many` for `item` in a write transaction shared with concurrent requests, one
        call for all the items of a group (`GroupCommit.run_many`, `weight` its work):
        its result once committed."""
        return await self.group_commit.run_many(many, item, weight=weight)


# After-commit callbacks: the one way for a unit of work to act once it is committed (wake
# a dispatcher, wake a long poll). Kept in the session's `info`, keyed so that a callback
# asked for twice in one transaction runs once; a rollback drops them.
_ON_COMMIT = "vsense.on_commit"


def on_commit(session: AsyncSession, key: Hashable, callback: Callable[[], None]) -> bool:
    """Run `callback` after the session's transaction commits; False when `key` was
    already asked for in this transaction (the first callback stands)."""
    callbacks: dict[Hashable, Callable[[], None]] = session.sync_session.info.setdefault(
        _ON_COMMIT, {}
    )
    if key in callbacks:
        return False
    callbacks[key] = callback
    return True


# What a unit of work keeps for the rest of its transaction (values it wrote and will
# remember once committed); dropped when the transaction ends either way.
_TRANSACTION_STATE = "vsense.transaction"


def transaction_state(session: AsyncSession) -> dict[Hashable, Any]:
    """Scratch space of the session's current transaction, dropped at its commit or
    rollback: what units of work sharing a transaction (`GroupCommit`) must see of each
    other before it commits, and nothing after it rolled back."""
    state: dict[Hashable, Any] = session.sync_session.info.setdefault(_TRANSACTION_STATE, {})
    return state


def _run_on_commit(session: Session) -> None:
    for callback in session.info.pop(_ON_COMMIT, {}).values():
        callback()
    session.info.pop(_TRANSACTION_STATE, None)


def _drop_on_rollback(session: Session) -> None:
    session.info.pop(_ON_COMMIT, None)
    session.info.pop(_TRANSACTION_STATE, None)


event.listen(Session, "after_commit", _run_on_commit)
event.listen(Session, "after_rollback", _drop_on_rollback)


# SQLSTATE classes of a database that is away or overloaded rather than of a bad
# request: connection exception, insufficient resources (too many connections),
# object not in prerequisite state ("not currently accepting connections", lock not
# available), operator intervention (shutdown, terminated backend, starting up).
_UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "53", "55", "57"})
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock


def is_unavailable(error: BaseException) -> bool:
    """Whether `error` means the database cannot do the work now (outage, restart,
    terminated connection, exhausted pool, locked file) so that the same request may
    succeed when retried, as opposed to a fault of the request or of the code.

    Errors surface differently per driver and moment: wrapped by SQLAlchemy
    (`OperationalError`, `InterfaceError`, or a bare `DBAPIError` around asyncpg's
    `AdminShutdownError`), raw from the driver at connect (`CannotConnectNowError`,
    `ConnectionRefusedError`), or from the pool (`sqlalchemy.exc.TimeoutError`). The
    chain of causes is walked, and PostgreSQL's SQLSTATE decides where there is one.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(
            current,
            sa_exc.OperationalError
            | sa_exc.InterfaceError
            | sa_exc.TimeoutError
            | sa_exc.DisconnectionError
            | OSError,
        ):
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        sqlstate = getattr(current, "sqlstate", None)
        if isinstance(sqlstate, str) and (
            sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES or sqlstate in _RETRY_SQLSTATES
        ):
            return True
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return False
