"""Background work of a server process: batched liveness writes, the offline sweep, the
webhook dispatcher, retention, and the MQTT bridge when a broker is configured."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

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

    async def purge_once(self, now: datetime | None = None) -> int:
        """Delete deliveries, payload logs, device commands and ended alerts that outlived
        their retention, and expired sessions, a chunk per transaction; returns the rows
        removed."""
        now = now or utcnow()
        settings = self.parts.settings
        removed = 0
        for purge, keep in (
            (webhook_queue.purge, settings.delivery_retention),
            (payloads_repository.purge_messages, settings.payload_retention),
            (gateway_repository.purge_events, settings.payload_retention),
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
    async def _every(seconds: float, job: Callable[[], Awaitable[object]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception:
                logger.exception("background job %s failed; retrying next round", job)
