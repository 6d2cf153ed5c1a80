"""What the tests run against: the databases, the MQTT broker, and whether this is CI.

The suite runs on SQLite, and also on PostgreSQL when VSENSE_TEST_DATABASE_URL names one;
the MQTT tests use the machine's Mosquitto on 127.0.0.1:1883. In CI (`CI` set to a true
value, as `.ci/run` does) both must be there: a missing one fails the run instead of
skipping what needs it.
"""

from __future__ import annotations

import os
import socket

from sqlalchemy import text
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import create_async_engine

POSTGRES_URL = os.environ.get("VSENSE_TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"
BROKER_HOST, BROKER_PORT = "127.0.0.1", 1883
BROKER = f"mqtt://{BROKER_HOST}:{BROKER_PORT}"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def broker_is_up() -> bool:
    try:
        with socket.create_connection((BROKER_HOST, BROKER_PORT), timeout=1):
            return True
    except OSError:
        return False


async def fresh_postgres_database(suffix: str) -> str:
    """A new, empty PostgreSQL database beside the test database, named after it
    (`<test database>_<suffix>`), for a server of its own; returns its URL."""
    assert POSTGRES_URL
    url = make_url(POSTGRES_URL)
    name = f"{url.database}_{suffix}"
    engine = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False)
