"""What one server process holds beside the request: settings, database, caches."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from vsense.config import Settings
from vsense.db import create_engine, create_sessionmaker
from vsense.kit.cache import TTLCache
from vsense.kit.throttle import FailureThrottle


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    signing_key: str
    login_throttle: FailureThrottle
    count_cache: TTLCache = field(default_factory=lambda: TTLCache(ttl=1.0))

    @classmethod
    def build(cls, settings: Settings) -> AppState:
        engine = create_engine(settings)
        return cls(
            settings=settings,
            engine=engine,
            sessionmaker=create_sessionmaker(engine),
            signing_key=settings.signing_key(),
            login_throttle=FailureThrottle(window=settings.login_failure_window),
            count_cache=TTLCache(ttl=settings.count_cache_ttl),
        )
