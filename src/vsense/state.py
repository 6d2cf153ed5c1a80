"""What one server process holds beside the request: settings, database, caches."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from vsense.config import Settings
from vsense.db import create_engine, create_sessionmaker
from vsense.gateway.liveness import LivenessRecorder
from vsense.gateway.waiters import CommandWaiters
from vsense.kit.cache import TTLCache
from vsense.kit.crypto import configure_hashing
from vsense.kit.metrics import Metrics
from vsense.kit.throttle import FailureThrottle


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    signing_key: str
    login_throttle: FailureThrottle
    # every login, failed or not (argon2 costs the same either way)
    login_attempts: FailureThrottle
    read_sessionmaker: async_sessionmaker[AsyncSession]
    count_cache: TTLCache
    auth_cache: TTLCache
    liveness: LivenessRecorder
    command_waiters: CommandWaiters
    metrics: Metrics
    # device -> timestamp of its last stored VPM message (the 30 s rule of spec/devices.md)
    last_vpm: dict[uuid.UUID, int]
    # device -> its active webhooks (the outbox's look-up), reused like callers
    webhook_targets: TTLCache
    # device -> monotonic time of its last keepalive event (one per min interval)
    keepalive_forwarded: dict[uuid.UUID, float]
    # set after a commit that queued deliveries: this process's dispatcher wakes at once
    webhook_wakeup: asyncio.Event
    # the process's webhook HTTP client, started on first use (vsense.webhooks.sender)
    webhook_sender: Any = field(default=None)

    @classmethod
    def build(cls, settings: Settings) -> AppState:
        return cls.for_engine(settings, create_engine(settings))

    @classmethod
    def for_engine(cls, settings: Settings, engine: AsyncEngine) -> AppState:
        """State over an existing engine, with fresh caches (tests share one engine)."""
        configure_hashing(settings.password_hashing_threads)
        return cls(
            settings=settings,
            engine=engine,
            sessionmaker=create_sessionmaker(engine),
            read_sessionmaker=create_sessionmaker(engine, read_only=True),
            signing_key=settings.signing_key(),
            login_throttle=FailureThrottle(window=settings.login_failure_window.total_seconds()),
            login_attempts=FailureThrottle(window=settings.login_attempt_window.total_seconds()),
            count_cache=TTLCache(ttl=settings.count_cache_ttl.total_seconds()),
            auth_cache=TTLCache(ttl=settings.auth_cache_ttl.total_seconds()),
            liveness=LivenessRecorder(),
            command_waiters=CommandWaiters(),
            metrics=Metrics(),
            last_vpm={},
            webhook_targets=TTLCache(
                ttl=settings.auth_cache_ttl.total_seconds(), max_entries=200_000
            ),
            keepalive_forwarded={},
            webhook_wakeup=asyncio.Event(),
        )
