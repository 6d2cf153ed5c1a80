"""Fixtures: a real database per backend (built by the real migrations), the app, clients.

Every test that takes `client` or `state` runs on SQLite, and also on PostgreSQL when
VSENSE_TEST_DATABASE_URL is set. Tests isolate themselves by working in an
organization of their own (organizations are the platform's isolation unit).

Markers (pyproject.toml): `postgres` is set here on every test parametrized with the
postgresql backend, and `live` on every test that uses a fixture starting a real
`vsense serve`; `mqtt`, `slow` and `faults` are written on the tests. A test marked
`mqtt` (or `postgres`) without its service is skipped, except in CI, where it fails.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tests.environment import (
    BACKENDS,
    BROKER,
    POSTGRES_URL,
    TEST_SECRET,
    broker_is_up,
    in_ci,
)
from tests.factories import Api
from vsense.app import create_app
from vsense.components import Components
from vsense.config import Settings, load_settings
from vsense.db import create_engine
from vsense.migrate import upgrade_async

# Fixtures that start a real `vsense serve`: a test using one, directly or through another
# fixture, is marked `live`.
LIVE_SERVER_FIXTURES = frozenset({"live", "sqlite_live", "server", "sqlite_server", "grace_server"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "postgresql" in callspec.params.values():
            item.add_marker(pytest.mark.postgres)
        if LIVE_SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.live)


def pytest_runtest_setup(item: pytest.Item) -> None:
    missing = []
    if item.get_closest_marker("mqtt") and not broker_is_up():
        missing.append(f"no MQTT broker at {BROKER}")
    if item.get_closest_marker("postgres") and not POSTGRES_URL:
        missing.append("VSENSE_TEST_DATABASE_URL names no PostgreSQL")
    if missing and in_ci():
        pytest.fail(f"{'; '.join(missing)} (CI provides both)", pytrace=False)
    if missing:
        pytest.skip("; ".join(missing))


async def _reset_postgres(url: str) -> None:
    engine = create_async_engine(make_url(url))
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
async def database_settings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Settings]:
    """Settings of a freshly migrated database of one backend, shared by the session."""
    data_dir: Path = tmp_path_factory.mktemp(f"data-{request.param}")
    overrides: dict[str, object] = {
        "data_dir": data_dir,
        "environment": "test",
        "secret_key": TEST_SECRET,
    }
    if request.param == "postgresql":
        assert POSTGRES_URL
        await _reset_postgres(POSTGRES_URL)
        overrides["database_url"] = POSTGRES_URL
    settings = load_settings(**overrides)
    await upgrade_async(settings)
    yield settings


@pytest.fixture(scope="session")
async def shared_engine(database_settings: Settings):  # type: ignore[no-untyped-def]
    engine = create_engine(database_settings)
    yield engine
    await engine.dispose()


@pytest.fixture
def backend(database_settings: Settings) -> str:
    return "sqlite" if database_settings.is_embedded_database else "postgresql"


@pytest.fixture
async def state(database_settings: Settings, shared_engine) -> Components:  # type: ignore[no-untyped-def]
    """Fresh per-process state (throttle, caches) over the session's database."""
    return Components.for_server(database_settings, shared_engine)


@pytest.fixture
def app(state: Components) -> FastAPI:
    return create_app(state=state)


@pytest.fixture
def client_address() -> tuple[str, int]:
    """The test's own client address: the login throttles are shared by the whole
    database, as organizations are, so each test logs in from an address of its own."""
    return (f"10.{'.'.join(str(random.randint(1, 254)) for _ in range(3))}", 40000)


@pytest.fixture
async def client(app: FastAPI, client_address: tuple[str, int]) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=client_address)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
def api(client: httpx.AsyncClient, state: Components) -> Api:
    return Api(client, state)


@pytest.fixture
async def peer(state: Components) -> AsyncIterator[Components]:
    """Another server process over the same database, as `vsense serve` runs it: parts
    and an engine of its own, listening for the changes of the others. On SQLite, which
    serves one process by design, that process is `state` itself."""
    if not state.changes.shared:
        yield state
        return
    parts = Components.for_server(state.settings)
    parts.changes.start()
    try:
        async with asyncio.timeout(30):
            await parts.changes.listening.wait()
        yield parts
    finally:
        await parts.changes.stop()
        await parts.engine.dispose()


@pytest.fixture
async def peer_client(
    peer: Components, client_address: tuple[str, int]
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `peer`'s application, from the same address as `client`."""
    transport = httpx.ASGITransport(
        app=create_app(state=peer), raise_app_exceptions=False, client=client_address
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
