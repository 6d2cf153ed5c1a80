"""What the payload tests share."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import create_async_engine


async def drop_postgres_database(url: str) -> None:
    """Drop a database made by `fresh_postgres_database` (the history tests make big ones)."""
    parsed = make_url(url)
    engine = create_async_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
    await engine.dispose()
