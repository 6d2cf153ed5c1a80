"""Wake-ups from other processes: a LISTEN connection to PostgreSQL that sets the
dispatcher's wake-up event on each NOTIFY of queued deliveries (sent at commit by
`queue_repository.notify`). SQLite has no other process to hear from; the dispatcher
also looks at the queue every second, so a lost connection only delays deliveries."""

from __future__ import annotations

import asyncio
import logging

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine.url import make_url

from vsense.webhooks.queue_repository import NOTIFY_CHANNEL

logger = logging.getLogger("vsense.webhooks")
RECONNECT_DELAY = 5.0  # seconds between two attempts to listen again


async def listen_for_wakeups(database_url: str, wakeup: asyncio.Event) -> None:
    """Set `wakeup` on each NOTIFY of queued deliveries until cancelled (PostgreSQL; on
    another database, return at once). A lost connection is opened again."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    while True:
        try:
            await _listen_once(dsn, wakeup)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("webhook LISTEN connection lost; polling until it is back")
        await asyncio.sleep(RECONNECT_DELAY)


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
