"""Schema migrations, driven from code: `vsense db upgrade`, start-up, tests, CI checks."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

from vsense.config import Settings
from vsense.kit.files import private_folder

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["settings"] = settings
    return config


def upgrade(settings: Settings) -> None:
    """Bring the database to the newest schema (creates it when empty)."""
    private_folder(settings.data_dir)
    command.upgrade(alembic_config(settings), "head")


def check(settings: Settings) -> None:
    """Fail if the models and the migrated schema differ (`alembic check`)."""
    command.check(alembic_config(settings))


async def upgrade_async(settings: Settings) -> None:
    """`upgrade` from inside a running event loop (the migration runs its own loop)."""
    await asyncio.to_thread(upgrade, settings)
