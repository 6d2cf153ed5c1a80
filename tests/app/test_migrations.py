"""The migrations build exactly the models' schema, on every backend."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import select, text
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from tests.factories import PASSWORD
from vsense.config import Settings
from vsense.db import create_engine, create_sessionmaker, session_scope
from vsense.kit.crypto import hash_password, verify_password
from vsense.migrate import alembic_config, check, upgrade_async
from vsense.models import Organization, PersonalAccessToken, RefreshTokenFamily, User


async def test_migrations_match_the_models(database_settings: Settings) -> None:
    # `alembic check`: autogenerate against the migrated database finds nothing to do.
    await asyncio.to_thread(check, database_settings)


async def test_upgrade_is_idempotent(database_settings: Settings) -> None:
    await upgrade_async(database_settings)
    await asyncio.to_thread(check, database_settings)


async def _fresh_database(settings: Settings, tmp_path: Path) -> Settings:
    """Settings of an empty database of the same backend, for a test of its own."""
    if settings.is_embedded_database:
        return settings.model_copy(update={"data_dir": tmp_path, "database_url": None})
    url = make_url(settings.resolved_database_url)
    name = f"{url.database}_email_duplicates"
    engine = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()
    rendered = url.set(database=name).render_as_string(hide_password=False)
    return settings.model_copy(update={"database_url": rendered})


async def test_upgrade_disables_the_later_accounts_of_an_email_that_differ_in_case(
    database_settings: Settings, tmp_path: Path
) -> None:
    settings = await _fresh_database(database_settings, tmp_path)
    await asyncio.to_thread(command.upgrade, alembic_config(settings), "0006")
    engine = create_engine(settings)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            organization = Organization(name="Acme")
            session.add(organization)
            await session.flush()
            emails = ["Race@example.com", "race@example.com", "RACE@example.com", "a@example.com"]
            users = [
                User(
                    organization_id=organization.id,
                    email=email,
                    password_hash=await hash_password(PASSWORD),
                    role="admin",
                )
                for email in emails
            ]
            session.add_all(users)
            await session.flush()
            first, second, third, other = (user.id for user in users)
            session.add_all(
                [
                    RefreshTokenFamily(id=uuid.uuid4(), user_id=third),
                    RefreshTokenFamily(id=uuid.uuid4(), user_id=first),
                    PersonalAccessToken(
                        user_id=second, name="ci", token_hash="a" * 64, prefix="vst_", scopes=[]
                    ),
                ]
            )
        await upgrade_async(settings)
        async with session_scope(create_sessionmaker(engine)) as session:
            found = {u.id: u for u in await session.scalars(select(User))}
            revoked = {
                f.user_id: f.revoked_at is not None
                for f in await session.scalars(select(RefreshTokenFamily))
            }
            token = await session.scalar(select(PersonalAccessToken))
        assert found[first].email == "Race@example.com"
        assert found[other].email == "a@example.com"
        assert found[second].email == f"duplicate {second} of user {first}: race@example.com"
        assert found[third].email == f"duplicate {third} of user {first}: RACE@example.com"
        for kept in (first, other):
            assert await verify_password(found[kept].password_hash, PASSWORD)
        for disabled in (second, third):
            assert not await verify_password(found[disabled].password_hash, PASSWORD)
        assert revoked == {first: False, third: True}
        assert token is not None and token.expires_at is not None
        assert token.expires_at <= datetime.now(UTC)
        with pytest.raises(IntegrityError):
            async with session_scope(create_sessionmaker(engine)) as session:
                session.add(
                    User(
                        organization_id=organization.id,
                        email="rAcE@example.com",
                        password_hash="x",
                        role="standard",
                    )
                )
    finally:
        await engine.dispose()
