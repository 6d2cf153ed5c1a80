"""The SDK's and the client commands' shared fixtures: the live server of each backend."""

from __future__ import annotations

import pytest

from tests.client.live_api import Account, LiveApi, shared_live_api
from tests.environment import BACKENDS


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
