"""Alembic environment: runs on the async engine of the configured database."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from vsense.config import load_settings
from vsense.db import create_engine
from vsense.models import Base
from vsense.partitions import is_partition

target_metadata = Base.metadata

# Indexes whose PostgreSQL form carries column options (NULLS FIRST) that autogenerate
# reads back as expressions; they are created by the migrations and not compared.
UNCOMPARED_INDEXES = frozenset({"ix_devices_org_refreshed"})


def _include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    return not (type_ == "index" and name in UNCOMPARED_INDEXES)


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    # The week partitions of the history tables (PostgreSQL) are rows of data, made and
    # dropped by the background jobs; the models describe the partitioned tables.
    return not (type_ == "table" and is_partition(name))


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=_include_object,
        include_name=_include_name,
    )


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch mode rebuilds a table on SQLite (copy, drop, rename): with foreign keys
        # on, dropping `devices` would cascade into every device's history. SQLite's
        # own procedure for such changes: keys off outside the transaction, checked
        # before the commit.
        _sqlite_pragma(connection, "PRAGMA foreign_keys=OFF")
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")
    if sqlite:
        _sqlite_pragma(connection, "PRAGMA foreign_keys=ON")


def _sqlite_pragma(connection: Connection, pragma: str) -> None:
    # On the driver's connection, so that SQLAlchemy does not open a transaction
    # first (inside one, SQLite ignores `foreign_keys`).
    cursor = connection.connection.cursor()
    try:
        cursor.execute(pragma)
    finally:
        cursor.close()


async def _run_async() -> None:
    # The caller's settings (data folder included); a bare `alembic` run reads the env.
    settings = context.config.attributes.get("settings") or load_settings()
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    asyncio.run(_run_async())


if context.is_offline_mode():
    raise SystemExit("vsense migrations run online only (vsense db upgrade).")
run_migrations_online()
