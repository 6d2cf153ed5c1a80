"""What the console's browser tests share: a real `vsense serve` per backend, an API
client that populates it, Debian's Chromium, and logging in through the login form.

The server sweeps for overdue devices every second, so that a device that stops shows
Offline within its keepalive allowance (1.5 x 10 s) plus a second.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright

from tests.client.live_api import (
    SERVER_ENVIRONMENT,
    Account,
    FakeDevice,
    LiveApi,
    _environment,
    run_async,
)
from tests.environment import fresh_postgres_database, in_ci
from tests.factories import PASSWORD, unique
from tests.live_server import start_server
from tests.receiver import Receiver, running_receiver
from vsense.config import load_settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CONSOLE_ENVIRONMENT = {
    **SERVER_ENVIRONMENT,
    "VSENSE_SWEEP_INTERVAL": "1",
    "VSENSE_LIVENESS_FLUSH_INTERVAL": "1",
    "VSENSE_IMAGE_CAPTURE_TIMEOUT": "20",
}
# Long enough for a sweep, a poll and a slow shared machine; never part of an assertion.
WAIT_MS = 40_000

_servers: dict[str, LiveApi] = {}
_lock = threading.Lock()


def require_chromium() -> str:
    """Debian's Chromium; without it the browser tests skip, except in CI, where they
    fail (`.ci/run` installs it)."""
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    message = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's Chromium, never a browser Playwright would download."""
    return playwright.chromium.launch(
        executable_path=require_chromium(), args=CHROMIUM_ARGS, headless=True
    )


def console_server(backend: str, root: Path) -> LiveApi:
    """The test process's console server of `backend`, started on first use."""
    with _lock:
        if backend in _servers:
            return _servers[backend]
        data_dir = root / f"console-{backend}"
        data_dir.mkdir(parents=True, exist_ok=True)
        database_url = None
        if backend == "postgresql":
            database_url = run_async(fresh_postgres_database("console"))
        with _environment(CONSOLE_ENVIRONMENT):
            # Migrating a fresh database takes long on a busy machine.
            server = start_server(data_dir, database_url, wait=180)
        atexit.register(server.stop)
        overrides: dict[str, Any] = {"data_dir": data_dir, "environment": "test"}
        if database_url:
            overrides["database_url"] = database_url
        overrides["secret_key"] = server.env["VSENSE_SECRET_KEY"]
        live = LiveApi(backend, server.base_url, server, load_settings(**overrides))
        _servers[backend] = live
        return live


@dataclass
class ApiUser:
    """A user of a test organization, calling the API to set up what a test looks at."""

    live: LiveApi
    account: Account
    http: httpx.Client

    @classmethod
    def log_in(cls, live: LiveApi, account: Account) -> ApiUser:
        http = httpx.Client(base_url=f"{live.base_url}/api/v1", timeout=30)
        response = http.post("/login", json={"email": account.email, "password": PASSWORD})
        assert response.status_code == 200, response.text
        http.headers["Authorization"] = f"Bearer {response.json()['data']['access_token']}"
        return cls(live, account, http)

    def call(self, method: str, url: str, expect: int = 200, **kwargs: Any) -> Any:
        response = self.http.request(method, url, **kwargs)
        assert response.status_code == expect, response.text
        return response.json() if response.content else None

    def device(self, **fields: Any) -> FakeDevice:
        body = {"name": unique("Device"), **fields}
        created = self.call("POST", "/devices", 201, json=body)
        return FakeDevice(self.live.base_url, created["uuid"], created["device_token"])

    def group(self, name: str | None = None) -> dict[str, Any]:
        return self.call("POST", "/groups", 201, json={"name": name or unique("group")})  # type: ignore[no-any-return]

    def user(self, *, role: str = "standard", groups: list[Any] | None = None) -> Account:
        email = f"{unique('user')}@example.com"
        self.call(
            "POST",
            "/users",
            201,
            json={"email": email, "password": PASSWORD, "role": role, "groups": groups or []},
        )
        return Account(self.account.organization, email)

    def close(self) -> None:
        self.http.close()


@contextlib.contextmanager
def receiver_in_thread() -> Iterator[Receiver]:
    """The tests' webhook receiver (`tests/receiver.py`), on an event loop of its own,
    for sync tests."""
    loop = asyncio.new_event_loop()
    ready: concurrent.futures.Future[Receiver] = concurrent.futures.Future()
    stop = asyncio.Event()

    async def serve() -> None:
        async with running_receiver() as receiver:
            ready.set_result(receiver)
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    try:
        yield ready.result(timeout=30)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        loop.close()


def log_in(page: Page, base_url: str, account: Account) -> None:
    """Through the login form, as a person would."""
    page.goto(f"{base_url}/console/login")
    page.get_by_label("Email").fill(account.email)
    page.get_by_label("Password").fill(account.password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base_url}/console/**")
    assert "/console/login" not in page.url


def screenshot_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "docs" / "console"


def has_chromium() -> bool:
    return shutil.which(CHROMIUM) is not None
