"""The migrations build exactly the models' schema, on every backend."""

from __future__ import annotations

import asyncio

from vsense.config import Settings
from vsense.migrate import check, upgrade_async


async def test_migrations_match_the_models(database_settings: Settings) -> None:
    # `alembic check`: autogenerate against the migrated database finds nothing to do.
    await asyncio.to_thread(check, database_settings)


async def test_upgrade_is_idempotent(database_settings: Settings) -> None:
    await upgrade_async(database_settings)
    await asyncio.to_thread(check, database_settings)
