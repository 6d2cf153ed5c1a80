"""All SQL about sessions (refresh-token families) and personal access tokens."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.models import PersonalAccessToken, RefreshToken, RefreshTokenFamily, User


async def create_family(session: AsyncSession, user_id: int) -> RefreshTokenFamily:
    family = RefreshTokenFamily(id=uuid.uuid4(), user_id=user_id)
    session.add(family)
    await session.flush()
    return family


async def add_refresh_token(
    session: AsyncSession, family_id: uuid.UUID, token_hash: str, expires_at: datetime
) -> None:
    session.add(RefreshToken(family_id=family_id, token_hash=token_hash, expires_at=expires_at))
    await session.flush()


async def get_refresh_token(
    session: AsyncSession, token_hash: str
) -> tuple[RefreshToken, RefreshTokenFamily] | None:
    row = (
        await session.execute(
            select(RefreshToken, RefreshTokenFamily)
            .join(RefreshTokenFamily, RefreshTokenFamily.id == RefreshToken.family_id)
            .where(RefreshToken.token_hash == token_hash)
        )
    ).first()
    return (row[0], row[1]) if row else None


async def mark_refresh_token_used(session: AsyncSession, token_id: int, now: datetime) -> bool:
    """Spend a refresh token. False when it was already spent (a concurrent reuse)."""
    result: Any = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == token_id, RefreshToken.used_at.is_(None))
        .values(used_at=now)
    )
    return bool(result.rowcount == 1)


async def revoke_family(
    session: AsyncSession, family_id: uuid.UUID, reason: str, now: datetime
) -> None:
    await session.execute(
        update(RefreshTokenFamily)
        .where(RefreshTokenFamily.id == family_id, RefreshTokenFamily.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )


async def revoke_user_families(
    session: AsyncSession,
    user_id: int,
    reason: str,
    now: datetime,
    *,
    keep: uuid.UUID | None = None,
) -> None:
    """Revoke every open session of a user (but `keep`, when given)."""
    statement = update(RefreshTokenFamily).where(
        RefreshTokenFamily.user_id == user_id, RefreshTokenFamily.revoked_at.is_(None)
    )
    if keep is not None:
        statement = statement.where(RefreshTokenFamily.id != keep)
    await session.execute(statement.values(revoked_at=now, revoked_reason=reason))


async def access_token_owner(
    session: AsyncSession, user_id: int, family_id: uuid.UUID
) -> tuple[int, int, str, datetime | None] | None:
    """(user id, organization id, current role, family revoked at) for an access token."""
    row = (
        await session.execute(
            select(User.id, User.organization_id, User.role, RefreshTokenFamily.revoked_at)
            .join(RefreshTokenFamily, RefreshTokenFamily.user_id == User.id)
            .where(User.id == user_id, RefreshTokenFamily.id == family_id)
        )
    ).first()
    return (row[0], row[1], row[2], row[3]) if row else None


async def personal_token_owner(
    session: AsyncSession, token_hash: str
) -> tuple[int, list[str], datetime | None, datetime | None, int, int, str] | None:
    """(token id, scopes, expires at, last used at, user id, organization id, role)."""
    row = (
        await session.execute(
            select(
                PersonalAccessToken.id,
                PersonalAccessToken.scopes,
                PersonalAccessToken.expires_at,
                PersonalAccessToken.last_used_at,
                User.id,
                User.organization_id,
                User.role,
            )
            .join(User, User.id == PersonalAccessToken.user_id)
            .where(PersonalAccessToken.token_hash == token_hash)
        )
    ).first()
    return tuple(row) if row else None  # type: ignore[return-value]


async def touch_personal_token(session: AsyncSession, token_id: int, now: datetime) -> None:
    await session.execute(
        update(PersonalAccessToken)
        .where(PersonalAccessToken.id == token_id)
        .values(last_used_at=now)
    )


async def list_personal_tokens(
    session: AsyncSession, user_id: int, *, offset: int, limit: int
) -> tuple[Sequence[PersonalAccessToken], int]:
    rows = (
        await session.scalars(
            select(PersonalAccessToken)
            .where(PersonalAccessToken.user_id == user_id)
            .order_by(PersonalAccessToken.id)
        )
    ).all()
    return rows[offset : offset + limit], len(rows)


async def add_personal_token(session: AsyncSession, token: PersonalAccessToken) -> None:
    session.add(token)
    await session.flush()


async def delete_personal_token(session: AsyncSession, user_id: int, token_id: int) -> bool:
    result: Any = await session.execute(
        delete(PersonalAccessToken).where(
            PersonalAccessToken.id == token_id, PersonalAccessToken.user_id == user_id
        )
    )
    return bool(result.rowcount == 1)


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    """The user who logs in with this email (any case)."""
    return await session.scalar(select(User).where(func.lower(User.email) == email.lower()))


async def get_user_by_id(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def lock_user(session: AsyncSession, user_id: int) -> User | None:
    """A user, its row locked until the transaction ends (PostgreSQL; SQLite's write
    transaction runs alone anyway)."""
    return await session.scalar(select(User).where(User.id == user_id).with_for_update())


async def purge_expired_sessions(session: AsyncSession, before: datetime, limit: int = 5000) -> int:
    """Delete up to `limit` sessions (families) whose every refresh token expired before
    `before`, their tokens with them, then up to `limit` expired refresh tokens of the
    sessions that go on (the spent ones rotation left behind); rows removed.

    The access tokens of a deleted family are refused like a revoked one's.
    """
    alive = exists().where(
        RefreshToken.family_id == RefreshTokenFamily.id, RefreshToken.expires_at >= before
    )
    dead = select(RefreshTokenFamily.id).where(~alive).limit(limit)
    dead_ids = list((await session.scalars(dead)).all())
    removed = 0
    if dead_ids:
        # Tokens first: SQLite's cascade would do it too, but only with foreign keys on.
        tokens: Any = await session.execute(
            delete(RefreshToken).where(RefreshToken.family_id.in_(dead_ids))
        )
        families: Any = await session.execute(
            delete(RefreshTokenFamily).where(RefreshTokenFamily.id.in_(dead_ids))
        )
        removed += int(tokens.rowcount or 0) + int(families.rowcount or 0)
    spent = select(RefreshToken.id).where(RefreshToken.expires_at < before).limit(limit)
    expired: Any = await session.execute(delete(RefreshToken).where(RefreshToken.id.in_(spent)))
    return removed + int(expired.rowcount or 0)
