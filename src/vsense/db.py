"""Engine, sessions and dialect set-up (SQLite pragmas, PostgreSQL pool)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from vsense.kit.errors import AppError
from vsense.kit.files import private_file, private_folder


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
        )
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
        return engine
    return create_async_engine(
        url,
        pool_size=settings.database_pool_size,
        max_overflow=max(4, settings.database_pool_size // 4),
        pool_pre_ping=False,
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


def _sqlite_on_begin(connection: Any) -> None:
    # Writers BEGIN IMMEDIATE: they take the write lock up front and queue on
    # busy_timeout, instead of failing with "database is locked" when a read transaction
    # upgrades. Readers stay DEFERRED so that WAL lets them run side by side.
    mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


def create_sessionmaker(
    engine: AsyncEngine, *, read_only: bool = False
) -> async_sessionmaker[AsyncSession]:
    """Sessions for writers, or (read_only) for GET requests.

    Read sessions run in autocommit: no BEGIN/COMMIT round trips around a request
    that only reads. Each statement still sees a consistent snapshot of its own.
    """
    bind = engine.execution_options(isolation_level="AUTOCOMMIT") if read_only else engine
    return async_sessionmaker(bind, expire_on_commit=False, autoflush=False)


async def begin_write(session: AsyncSession) -> None:
    """Mark a fresh session's transaction as a writer (BEGIN IMMEDIATE on SQLite)."""
    await session.connection(execution_options=WRITE_OPTIONS)


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


@dataclass(frozen=True, slots=True)
class Database:
    """The engine of a process and its two kinds of sessions (writers, and readers for GET
    requests and the hot read paths)."""

    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    read_sessionmaker: async_sessionmaker[AsyncSession]

    @classmethod
    def for_engine(cls, engine: AsyncEngine) -> Database:
        return cls(engine, create_sessionmaker(engine), create_sessionmaker(engine, read_only=True))

    def write(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A unit of work of a job: committed on success, rolled back on error."""
        return session_scope(self.sessionmaker)


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


def _run_on_commit(session: Session) -> None:
    for callback in session.info.pop(_ON_COMMIT, {}).values():
        callback()


def _drop_on_rollback(session: Session) -> None:
    session.info.pop(_ON_COMMIT, None)


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
