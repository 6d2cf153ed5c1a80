"""Wake-ups from other processes, so that a delivery queued by one process is sent at
once by the dispatcher of another.

PostgreSQL: a LISTEN connection sets the dispatcher's wake-up event on each NOTIFY of
queued deliveries (sent at commit by `queue_repository.notify`). SQLite has no
notifications: a plain `sqlite3` connection reads `PRAGMA data_version` every
`SQLITE_LOOK` s (SQLite's own counter of other connections' commits, read from the WAL
index: no disk read, no lock that a writer waits for), and on a change looks whether a
delivery was added (the highest delivery id, one index look-up) before waking the
dispatcher, so that commits of other tables cost no claim. The dispatcher also looks at
the queue every second, so a lost connection only delays deliveries.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine.url import make_url

from vsense.webhooks.queue_repository import NOTIFY_CHANNEL

logger = logging.getLogger("vsense.webhooks")
RECONNECT_DELAY = 5.0  # seconds between two attempts to listen again
SQLITE_LOOK = 0.02  # seconds between two looks at an SQLite database's commit counter


async def listen_for_wakeups(database_url: str, wakeup: asyncio.Event) -> None:
    """Set `wakeup` when another process queues deliveries, until cancelled (PostgreSQL
    and SQLite files; otherwise return at once). A lost connection is opened again."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
            await _keep(_watch_sqlite, url.database, wakeup)
        return
    if url.get_backend_name() != "postgresql":
        return
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    await _keep(_listen_once, dsn, wakeup)


async def _keep(watch: Any, target: str, wakeup: asyncio.Event) -> None:
    while True:
        try:
            await watch(target, wakeup)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("webhook wake-up connection lost; polling until it is back")
        await asyncio.sleep(RECONNECT_DELAY)


async def _watch_sqlite(path: str, wakeup: asyncio.Event) -> None:
    """Look at the commit counter until cancelled; wake on a new delivery."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        version = connection.execute("PRAGMA data_version").fetchone()[0]
        newest = _newest_delivery(connection)
        while True:
            await asyncio.sleep(SQLITE_LOOK)
            now = connection.execute("PRAGMA data_version").fetchone()[0]
            if now == version:
                continue
            version = now
            latest = _newest_delivery(connection)
            if latest != newest:
                newest = latest
                wakeup.set()
    finally:
        connection.close()


def _newest_delivery(connection: sqlite3.Connection) -> int:
    row = connection.execute("SELECT max(id) FROM webhook_deliveries").fetchone()
    return int(row[0] or 0)


async def _listen_once(dsn: str, wakeup: asyncio.Event) -> None:
    """Hold one LISTEN connection until it is lost."""
    lost = asyncio.Event()
    connection = await asyncpg.connect(dsn)
    try:
        connection.add_termination_listener(lambda *_: lost.set())
        await connection.add_listener(NOTIFY_CHANNEL, lambda *_: wakeup.set())
        await lost.wait()
    finally:
        await connection.close()
