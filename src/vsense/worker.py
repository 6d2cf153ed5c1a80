"""Background work of a server process: batched liveness writes, the offline sweep, the
webhook dispatcher, retention, the history's week partitions (PostgreSQL), and the MQTT
bridge when a broker is configured."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from vsense import partitions
from vsense.accounts import repository as accounts_repository
from vsense.accounts import throttle_repository
from vsense.alerts import repository as alerts_repository
from vsense.commands import repository as commands_repository
from vsense.components import Components
from vsense.gateway import repository as gateway_repository
from vsense.gateway.mqtt import MqttBridge
from vsense.images import tasks as image_tasks
from vsense.kit.time import utcnow
from vsense.payloads import repository as payloads_repository
from vsense.webhooks import queue_repository as webhook_queue
from vsense.webhooks.dispatcher import Dispatcher

logger = logging.getLogger("vsense.worker")
# A chunked delete of a retention pass: (session, older than) -> rows removed.
Purge = Callable[[AsyncSession, datetime], Awaitable[int]]
RETENTION_INTERVAL = 3600.0  # seconds between two retention passes
IMAGE_RETENTION_EVERY_S = 300.0
THROTTLE_KEEP = timedelta(days=1)  # shared counters older than this count nothing


class BackgroundRuntime:
    """Runs each job every so often until stopped; a failing round is logged and retried."""

    def __init__(self, parts: Components) -> None:
        self.parts = parts
        self._tasks: list[asyncio.Task[None]] = []
        self.mqtt: MqttBridge | None = None
        self.dispatcher: Dispatcher | None = None
        self.stop_asked: float | None = None  # monotonic time of the stop signal

    def stopping(self) -> None:
        """The process was asked to stop: open long polls answer now (empty)."""
        if self.stop_asked is None:
            self.stop_asked = time.monotonic()
        self.parts.commands.waiters.stop()

    async def flush_liveness(self) -> int:
        return await self.parts.liveness.flush()

    async def sweep_once(self, now: datetime | None = None) -> list[uuid.UUID]:
        async with self.parts.database.write() as session:
            return await self.parts.liveness.sweep(session, now or utcnow())

    async def alert_sweep(self, now: datetime | None = None) -> int:
        """Evaluate the alert rules that time changes; returns the transitions."""
        async with self.parts.database.write() as session:
            return await self.parts.alerts.sweep(session, now or utcnow())

    async def fail_overdue_images(self, now: datetime | None = None) -> int:
        """Fail snapshot requests whose device did not upload in time."""
        async with self.parts.database.write() as session:
            return await image_tasks.fail_overdue(session, now or utcnow())

    async def image_retention(self, now: datetime | None = None) -> int:
        """Delete images (and their requests) older than `image_retention`."""
        async with self.parts.database.write() as session:
            return await image_tasks.apply_retention(session, self.parts.snapshots, now or utcnow())

    async def maintain_partitions(self, now: datetime | None = None) -> list[str]:
        """Make the history's week partitions of today and the coming days (PostgreSQL;
        SQLite has none); returns the partitions made."""
        if self.parts.settings.is_embedded_database:
            return []
        async with self.parts.database.write() as session:
            made = await partitions.create_ahead(session, (now or utcnow()).date())
        if made:
            logger.info("made history partitions %s", ", ".join(made))
        return made

    async def drop_old_partitions(self, now: datetime | None = None) -> list[str]:
        """Retention of the history on PostgreSQL: detach and drop each week partition
        whose whole week is older than `payload_retention`; returns the partitions dropped."""
        before = (now or utcnow()) - self.parts.settings.payload_retention
        dropped: list[str] = []
        for history in partitions.HISTORY:
            async with self.parts.database.write() as session:
                dropped += await partitions.drop_before(session, before, history)
        if dropped:
            logger.info("dropped history partitions %s", ", ".join(dropped))
        return dropped

    async def purge_once(self, now: datetime | None = None) -> int:
        """Delete deliveries, payload logs, device commands and ended alerts that outlived
        their retention, and expired sessions, a chunk per transaction; returns the rows
        removed. On PostgreSQL the payload log, its metrics and the status events go by
        whole weeks instead (`drop_old_partitions`), and only their default partitions
        are deleted from in chunks."""
        now = now or utcnow()
        settings = self.parts.settings
        history: list[tuple[Purge, timedelta]]
        if settings.is_embedded_database:
            history = [
                (payloads_repository.purge_messages, settings.payload_retention),
                (gateway_repository.purge_events, settings.payload_retention),
            ]
        else:
            await self.drop_old_partitions(now)
            history = [
                (functools.partial(_purge_default, table), settings.payload_retention)
                for table in partitions.HISTORY
            ]
        removed = 0
        for purge, keep in (
            (webhook_queue.purge, settings.delivery_retention),
            *history,
            (commands_repository.purge_commands, settings.payload_retention),
            (alerts_repository.purge_alerts, settings.payload_retention),
            (accounts_repository.purge_expired_sessions, timedelta(0)),
            # Shared counters outlive their longest window (15 min by default) by far.
            (throttle_repository.purge, max(THROTTLE_KEEP, settings.login_failure_window)),
        ):
            while True:
                async with self.parts.database.write() as session:
                    count = await purge(session, now - keep)
                removed += count
                if count == 0:
                    break
        return removed

    def start(self, *, ingest: bool = True) -> None:
        """Start the jobs; `ingest=False` (a `vsense worker`) leaves out the liveness
        writes of a process that receives no device messages, and always dispatches."""
        settings = self.parts.settings
        self._tasks = [
            asyncio.create_task(
                self._every(settings.sweep_interval.total_seconds(), self.sweep_once)
            ),
            asyncio.create_task(self._every(RETENTION_INTERVAL, self.purge_once)),
            # At once, then with retention: a process started after a long stop makes
            # this week's partition before its first write would fall into the default one.
            asyncio.create_task(
                self._every(RETENTION_INTERVAL, self.maintain_partitions, first=0.0)
            ),
            asyncio.create_task(
                self._every(settings.sweep_interval.total_seconds(), self.fail_overdue_images)
            ),
            asyncio.create_task(
                self._every(settings.sweep_interval.total_seconds(), self.alert_sweep)
            ),
            asyncio.create_task(self._every(IMAGE_RETENTION_EVERY_S, self.image_retention)),
        ]
        if ingest:
            self._tasks.append(
                asyncio.create_task(
                    self._every(
                        settings.liveness_flush_interval.total_seconds(), self.flush_liveness
                    )
                )
            )
        if settings.webhook_dispatcher or not ingest:
            self.dispatcher = self.parts.dispatcher()
            self._tasks.append(asyncio.create_task(self.dispatcher.run()))
        if ingest and settings.mqtt_url:
            self.mqtt = self.parts.mqtt_bridge()
            self._tasks.append(asyncio.create_task(self.mqtt.run()))

    async def stop(self) -> None:
        """Stop the jobs within what is left of the grace period (`shutdown_grace` from
        the stop signal): webhook sends in flight may end meanwhile, the rest are
        released; then the signs of life noted in memory are written."""
        self.stopping()
        assert self.stop_asked is not None
        grace = self.parts.settings.shutdown_grace.total_seconds()
        left = grace - (time.monotonic() - self.stop_asked)
        if self.dispatcher is not None:
            self.dispatcher.finish_within = max(0.0, left - 1.0)
        if self.mqtt is not None:  # what the bridge received is handled and acknowledged
            await self.mqtt.drain(max(0.0, left - 1.0))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        try:
            await self.flush_liveness()  # what was noted before the stop
        except Exception:
            logger.exception("final liveness flush failed")
        if self.mqtt is not None:
            await self.mqtt.end_session()
        await self.parts.sender.close()

    @staticmethod
    async def _every(
        seconds: float, job: Callable[[], Awaitable[object]], *, first: float | None = None
    ) -> None:
        wait = seconds if first is None else first
        while True:
            await asyncio.sleep(wait)
            wait = seconds
            try:
                await job()
            except Exception:
                logger.exception("background job %s failed; retrying next round", job)


async def _purge_default(
    history: partitions.History, session: AsyncSession, before: datetime
) -> int:
    return await partitions.purge_default(session, history, before)
