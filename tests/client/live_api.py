"""A live `vsense serve` shared by the SDK and CLI tests, and helpers that populate it.

One server per backend for the whole test process (SQLite always, PostgreSQL when
VSENSE_TEST_DATABASE_URL is set, on a database of its own beside the test database). Each
test works in an organization of its own, created straight in the server's database.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import struct
import threading
import time
import zlib
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import httpx
from argon2 import PasswordHasher

from tests.environment import fresh_postgres_database
from tests.factories import PASSWORD, unique, vcz
from tests.live_server import LiveServer, start_server
from vsense.config import Settings, load_settings
from vsense.db import create_engine, create_sessionmaker, session_scope
from vsense.kit import crypto
from vsense.users import service as users_service

# Settings of the shared server: webhooks may call the tests' receivers on loopback, and
# every test logs in from the one loopback address.
SERVER_ENVIRONMENT = {
    "VSENSE_WEBHOOK_ALLOW_PRIVATE": "1",
    "VSENSE_IMAGE_CAPTURE_TIMEOUT": "5",
    "VSENSE_LOGIN_MAX_ATTEMPTS_PER_ADDRESS": "100000",
}
T = TypeVar("T")


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even inside a running event loop."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@dataclass
class Account:
    """A user of a test organization."""

    organization: str
    email: str
    password: str = PASSWORD


@dataclass
class LiveApi:
    backend: str
    base_url: str
    server: LiveServer
    settings: Settings

    def organization(self, *, role: str = "admin") -> Account:
        """A new organization with one user of `role`."""
        account = Account(unique("org"), f"{unique('admin')}@example.com")
        with mock.patch.object(crypto, "_hasher", CHEAP_HASHER):
            run_async(_create_organization(self.settings, account, role))
        return account


# The server verifies a password with the parameters stored in its hash: users made with
# a cheap hasher log in in milliseconds instead of the production cost's ~0.3 s.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


async def _create_organization(settings: Settings, account: Account, role: str) -> None:
    engine = create_engine(settings)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            await users_service.create_organization(session, account.organization)
            await users_service.create_user_in(
                session,
                organization_name=account.organization,
                email=account.email,
                password=account.password,
                role=role,
                name="Ada",
            )
    finally:
        await engine.dispose()


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_servers: dict[str, LiveApi] = {}
_lock = threading.Lock()


def shared_live_api(backend: str, root: Path) -> LiveApi:
    """The test process's server of `backend`, started on first use, stopped at exit."""
    with _lock:
        if backend in _servers:
            return _servers[backend]
        data_dir = root / f"client-{backend}"
        data_dir.mkdir(parents=True, exist_ok=True)
        database_url = None
        if backend == "postgresql":
            database_url = run_async(fresh_postgres_database("client"))
        with _environment(SERVER_ENVIRONMENT):
            server = start_server(data_dir, database_url)
        atexit.register(server.stop)
        overrides: dict[str, Any] = {"data_dir": data_dir, "environment": "test"}
        if database_url:
            overrides["database_url"] = database_url
        overrides["secret_key"] = server.env["VSENSE_SECRET_KEY"]
        live = LiveApi(backend, server.base_url, server, load_settings(**overrides))
        _servers[backend] = live
        return live


def png_bytes(width: int = 2, height: int = 2) -> bytes:
    """A small valid PNG (grey pixels)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(pixels))
        + chunk(b"IEND", b"")
    )


class FakeDevice:
    """A sensor speaking the device API over HTTP, driven by the test."""

    def __init__(self, base_url: str, uuid: str, token: str) -> None:
        self.uuid = uuid
        self.http = httpx.Client(
            base_url=f"{base_url}/device/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
            verify=False,  # plain HTTP on loopback; skips loading a CA bundle
        )

    def keepalive(self) -> None:
        response = self.http.post("/keepalive", json={"fw_version": "1.0"})
        assert response.status_code == 200, response.text

    def send(self, count: int, timestamp: int | None = None) -> None:
        response = self.http.post("/payloads", json=vcz(count, timestamp))
        assert response.status_code == 202, response.text

    def answer_capture(self, *, fail: bool = False, delay: float = 0.3) -> threading.Thread:
        """Serve the next `capture_image` command in the background: after `delay`
        seconds (the request stays pending meanwhile), upload both images or report a
        failure."""
        image = png_bytes()

        def serve() -> None:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                commands = self.http.get("/commands", params={"wait": 5}).json()["commands"]
                for command in commands:
                    if command["type"] != "capture_image":
                        continue
                    request_id = command["request_id"]
                    time.sleep(delay)
                    if not fail:
                        for kind in ("raw", "annotated"):
                            uploaded = self.http.put(
                                f"/images/{request_id}/{kind}",
                                content=image,
                                headers={"Content-Type": "image/png"},
                            )
                            assert uploaded.status_code == 204, uploaded.text
                    result = {"ok": True} if not fail else {"ok": False, "error": "lens cap"}
                    self.http.post(f"/commands/{command['id']}/result", json=result)
                    return

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self.http.close()
