"""First start of an empty embedded database: an organization and an admin."""

from __future__ import annotations

from dataclasses import dataclass

from vsense.config import Settings
from vsense.db import create_engine, create_sessionmaker, session_scope
from vsense.kit.passwords import generate_password
from vsense.users import repository as users_repository
from vsense.users import service as users_service

DEFAULT_ORGANIZATION = "Default organization"
DEFAULT_ADMIN_EMAIL = "admin@vsense.local"


@dataclass(frozen=True)
class Credentials:
    organization: str
    email: str
    password: str


async def ensure_first_admin(settings: Settings) -> Credentials | None:
    """On an embedded database with no user, create one admin; its password is returned
    to be shown once. Does nothing otherwise (a production database is set up with
    `vsense admin ...`)."""
    if not settings.is_embedded_database:
        return None
    engine = create_engine(settings)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            if await users_repository.count_users(session) > 0:
                return None
            password = generate_password(12)
            await users_service.create_organization(session, DEFAULT_ORGANIZATION)
            await users_service.create_user_in(
                session,
                organization_name=DEFAULT_ORGANIZATION,
                email=DEFAULT_ADMIN_EMAIL,
                password=password,
                role="admin",
                name="Administrator",
            )
            return Credentials(DEFAULT_ORGANIZATION, DEFAULT_ADMIN_EMAIL, password)
    finally:
        await engine.dispose()
