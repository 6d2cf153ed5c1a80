"""Changes every process must hear of: what makes a cache of another process stale.

A process caches what it reads on every request (verified callers, device tokens, the
webhooks of a device). A write that changes such a row `announce`s it in its own
transaction: this process drops the entries at once and again after the commit, and on
PostgreSQL a NOTIFY sent just before the commit (so never for a rollback) reaches every
other process's LISTEN connection (`ChangeFeed.run`), which drops them too, within
milliseconds of the commit.

A cache trusts its entries for their full time to live only while that connection is
up (`ChangeFeed.horizon`); without it (not started yet, lost, or a test that never runs
the background jobs) an entry is trusted for at most `UNHEARD_HORIZON`, so a change
reaches every process within a second in any case. When the connection comes (back),
every cache is emptied: what was announced meanwhile is unknown. SQLite serves one
process, so the local drop is all there is to do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import event, func, select
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from vsense.db import on_commit

logger = logging.getLogger("vsense.changes")
CHANNEL = "vsense_changes"
UNHEARD_HORIZON = 1.0  # seconds a cached entry is trusted while other processes are unheard
RECONNECT_DELAY = 1.0  # seconds between two attempts to listen again
EVERYTHING = "*"  # the key that drops every entry of a topic
_PENDING = "vsense.changes"  # session.info: the NOTIFY payloads to send before the commit

Listener = Callable[[str], None]  # called with the changed key, or EVERYTHING


class ChangeFeed:
    """Announces this process's changes to the others, and hears theirs."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        # Other processes may share the database (PostgreSQL), or none can (SQLite).
        self.shared = url.get_backend_name() == "postgresql"
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._listeners: dict[str, list[Listener]] = {}
        self._committed: dict[str, list[Listener]] = {}
        self.listening = asyncio.Event()  # set while the LISTEN connection is up
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, topic: str, listener: Listener) -> None:
        self._listeners.setdefault(topic, []).append(listener)

    def on_committed(self, topic: str, listener: Listener) -> None:
        """Have `listener` told of a change of `topic` heard from the database, so known
        committed: another process's (and this process's own, heard back a moment after
        its commit). Nothing is heard this way on SQLite, where no other process is."""
        self._committed.setdefault(topic, []).append(listener)

    def horizon(self, ttl: float) -> float:
        """How long a cache entry may be trusted now: its `ttl` while every change is
        heard at once, at most `UNHEARD_HORIZON` while other processes' are not."""
        if not self.shared or self.listening.is_set():
            return ttl
        return min(ttl, UNHEARD_HORIZON)

    def announce(self, session: AsyncSession, topic: str, key: object = EVERYTHING) -> None:
        """A change of `topic` (`key`, or all of it) in `session`'s transaction: dropped
        here now and after the commit, in other processes when it commits."""
        payload = f"{topic}:{key}"
        self.deliver(payload)
        first = on_commit(session, ("changes", id(self), payload), lambda: self.deliver(payload))
        if first and self.shared:
            session.sync_session.info.setdefault(_PENDING, set()).add(payload)

    def deliver(self, payload: str) -> None:
        """Drop what a change makes stale in this process (`topic:key`)."""
        topic, _, key = payload.partition(":")
        for listener in self._listeners.get(topic, ()):
            listener(key)

    def _heard(self, payload: str) -> None:
        """A change heard on the LISTEN connection: committed."""
        self.deliver(payload)
        topic, _, key = payload.partition(":")
        for listener in self._committed.get(topic, ()):
            listener(key)

    def forget_everything(self) -> None:
        for listeners in self._listeners.values():
            for listener in listeners:
                listener(EVERYTHING)
        logger.debug("caches emptied (%s topics)", len(self._listeners))

    def start(self) -> None:
        """Listen in the background (PostgreSQL; nothing to hear on SQLite)."""
        if self.shared and self._task is None:
            self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.listening.clear()

    async def run(self) -> None:
        """Hold a LISTEN connection until cancelled; a lost one is opened again."""
        while True:
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("LISTEN connection for changes lost; caches trusted for 1 s")
            finally:
                self.listening.clear()
            await asyncio.sleep(RECONNECT_DELAY)

    async def _listen_once(self) -> None:
        lost = asyncio.Event()
        connection = await asyncpg.connect(self._dsn)
        try:
            connection.add_termination_listener(lambda *_: lost.set())
            await connection.add_listener(CHANNEL, lambda *args: self._heard(args[3]))
            # What was announced before this connection listened is unknown: start afresh.
            self.forget_everything()
            self.listening.set()
            await lost.wait()
        finally:
            self.listening.clear()
            await connection.close()


def _send_pending(session: Session) -> None:
    """Just before a commit: NOTIFY the changes announced in the transaction (PostgreSQL
    delivers them when it commits)."""
    payloads: set[str] | None = session.info.pop(_PENDING, None)
    for payload in sorted(payloads or ()):
        session.execute(select(func.pg_notify(CHANNEL, payload)))


def _drop_pending(session: Session, *_: Any) -> None:
    session.info.pop(_PENDING, None)


event.listen(Session, "before_commit", _send_pending)
event.listen(Session, "after_rollback", _drop_pending)
