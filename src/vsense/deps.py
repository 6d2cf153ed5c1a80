"""Request-scoped dependencies shared by every domain: the process's parts, the unit of
work. The caller (`vsense.accounts.deps`) and the device (`vsense.device_auth.deps`)
are declared beside what they depend on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.config import Settings
from vsense.db import Database, begin_write
from vsense.kit.cache import CountCache
from vsense.kit.errors import AppError
from vsense.kit.parts import part

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

DatabaseDep = Annotated[Database, Depends(part(Database))]
SettingsDep = Annotated[Settings, Depends(part(Settings))]


async def get_session(request: Request, database: DatabaseDep) -> AsyncIterator[AsyncSession]:
    """One session per request: committed when the handler returns, rolled back on error.

    The edge owns the transaction; services only flush. An error that records
    something on purpose (a revoked session) asks for a commit instead.
    """
    reading = request.method in READ_METHODS
    maker = database.read_sessionmaker if reading else database.sessionmaker
    async with maker() as session:
        if not reading:
            await begin_write(session)
        try:
            yield session
        except AppError as exc:
            if exc.commit_session:
                await session.commit()
            else:
                await session.rollback()
            raise
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
CountsDep = Annotated[CountCache, Depends(part(CountCache))]
