"""The console's fixtures: the server of each backend, Chromium, a page, an admin."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.client.live_api import Account, LiveApi
from tests.console.helpers import ApiUser, console_server, launch_chromium, require_chromium
from tests.environment import BACKENDS


@pytest.fixture(scope="module", params=BACKENDS)
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> LiveApi:
    return console_server(request.param, tmp_path_factory.getbasetemp())


# Per module, not per session: while Playwright's sync API is started it holds an event
# loop in this thread, and the async tests of another module could not run theirs.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    require_chromium()
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = launch_chromium(playwright)
    yield chromium
    chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def account(live: LiveApi) -> Account:
    return live.organization()


@pytest.fixture
def admin(live: LiveApi, account: Account) -> Iterator[ApiUser]:
    user = ApiUser.log_in(live, account)
    yield user
    user.close()
