"""The SDK's and the client commands' shared fixtures: the live server of each backend."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.client.helpers import SDK
from tests.client.live_api import Account, LiveApi, shared_live_api
from tests.environment import BACKENDS
from vsense.client import AsyncClient, Client


@pytest.fixture(scope="module", params=BACKENDS)
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> LiveApi:
    return shared_live_api(request.param, tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def sqlite_live(tmp_path_factory: pytest.TempPathFactory) -> LiveApi:
    """The SQLite server, for behaviours that do not depend on the database."""
    return shared_live_api("sqlite", tmp_path_factory.getbasetemp())


@pytest.fixture
def account(live: LiveApi) -> Account:
    return live.organization()


@pytest.fixture(params=["sync", "async"])
async def sdk(
    request: pytest.FixtureRequest, live: LiveApi, account: Account
) -> AsyncIterator[SDK]:
    """An admin's client of either kind, logged in by email and password on first use."""
    if request.param == "sync":
        with Client(base_url=live.base_url, email=account.email, password=account.password) as c:
            yield c
    else:
        async with AsyncClient(
            base_url=live.base_url, email=account.email, password=account.password
        ) as client:
            yield client


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        process.terminate()
        process.wait(timeout=10)
