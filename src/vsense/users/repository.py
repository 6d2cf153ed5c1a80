"""All SQL about users and organizations."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.models import Organization, User


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(func.lower(User.email) == email.lower()))


async def get_user_by_id(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def lock_user(session: AsyncSession, user_id: int) -> User | None:
    """A user, its row locked until the transaction ends (PostgreSQL; SQLite's write
    transaction runs alone anyway)."""
    return await session.scalar(select(User).where(User.id == user_id).with_for_update())


async def get_user(session: AsyncSession, organization_id: int, user_id: int) -> User | None:
    return await session.scalar(
        select(User).where(User.id == user_id, User.organization_id == organization_id)
    )


async def list_users(
    session: AsyncSession, organization_id: int, *, offset: int, limit: int
) -> tuple[Sequence[User], int]:
    total = await session.scalar(
        select(func.count()).select_from(User).where(User.organization_id == organization_id)
    )
    rows = await session.scalars(
        select(User)
        .where(User.organization_id == organization_id)
        .order_by(User.email, User.id)
        .offset(offset)
        .limit(limit)
    )
    return rows.all(), int(total or 0)


async def email_taken(session: AsyncSession, email: str, *, except_id: int | None = None) -> bool:
    statement = select(User.id).where(func.lower(User.email) == email.lower())
    if except_id is not None:
        statement = statement.where(User.id != except_id)
    return await session.scalar(statement) is not None


async def lock_admins(session: AsyncSession, organization_id: int) -> int:
    """How many admins (the owner included) an organization has, their rows locked until
    the transaction ends, so that two changes checking "at least one admin stays" run one
    after the other. On PostgreSQL a waiting change then counts again without the rows
    the first demoted or deleted; on SQLite the write transaction already serialises
    writers (and FOR UPDATE is not rendered)."""
    statement = (
        select(User.id)
        .where(User.organization_id == organization_id, User.role.in_(("admin", "owner")))
        .order_by(User.id)
        .with_for_update()
    )
    return len((await session.scalars(statement)).all())


async def add(session: AsyncSession, instance: User | Organization) -> None:
    session.add(instance)
    await session.flush()


async def delete_user(session: AsyncSession, user: User) -> None:
    await session.delete(user)
    await session.flush()


async def get_organization_by_name(session: AsyncSession, name: str) -> Organization | None:
    return await session.scalar(select(Organization).where(Organization.name == name))


async def get_organization(session: AsyncSession, organization_id: int) -> Organization | None:
    return await session.get(Organization, organization_id)


async def count_users(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(User)) or 0)
