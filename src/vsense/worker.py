"""Background work of a server process: batched liveness writes, the offline sweep, and
the MQTT bridge when a broker is configured."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

from vsense.db import session_scope
from vsense.gateway.liveness import sweep
from vsense.gateway.mqtt import MqttBridge
from vsense.kit.time import utcnow
from vsense.state import AppState

logger = logging.getLogger("vsense.worker")


class BackgroundRuntime:
    """Runs each job every so often until stopped; a failing round is logged and retried."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self._tasks: list[asyncio.Task[None]] = []
        self.mqtt: MqttBridge | None = None

    async def flush_liveness(self) -> int:
        return await self.state.liveness.flush(self.state)

    async def sweep_once(self, now: datetime | None = None) -> list[uuid.UUID]:
        async with session_scope(self.state.sessionmaker) as session:
            return await sweep(session, self.state, now or utcnow())

    def start(self) -> None:
        settings = self.state.settings
        self._tasks = [
            asyncio.create_task(self._every(settings.liveness_flush_interval, self.flush_liveness)),
            asyncio.create_task(self._every(settings.sweep_interval, self.sweep_once)),
        ]
        if settings.mqtt_url:
            self.mqtt = MqttBridge(self.state)
            self._tasks.append(asyncio.create_task(self.mqtt.run()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        try:
            await self.flush_liveness()  # what was noted before the stop
        except Exception:
            logger.exception("final liveness flush failed")

    @staticmethod
    async def _every(seconds: float, job: Callable[[], Awaitable[object]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception:
                logger.exception("background job %s failed; retrying next round", job)
