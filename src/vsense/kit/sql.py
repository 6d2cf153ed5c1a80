"""What a statement needs to know of the database it runs on (PostgreSQL, else SQLite)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ARRAY, any_, bindparam
from sqlalchemy.ext.asyncio import AsyncSession


def is_postgres(session: AsyncSession) -> bool:
    """Whether the session's database is PostgreSQL (else SQLite)."""
    return session.get_bind().dialect.name == "postgresql"


def one_of(column: Any, name: str, postgres: bool) -> Any:
    """`column` is one of the list bound as `name`. On PostgreSQL an array, so that one
    statement text (prepared once by the driver) serves lists of every length; on
    SQLite an expanding `IN`."""
    if postgres:
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))
