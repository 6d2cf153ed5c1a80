"""The fault suite: a real `vsense serve` under the faults an operator meets.

Unauthenticated large bodies (memory stays bounded), SIGTERM with long polls open (the
process ends within its grace period and the polls get their empty answer), and a
database outage while devices send over HTTP and MQTT (every message that got a 2xx or
a PUBACK is stored, and both paths recover on their own). `docs/reliability.md` sums up
what is injected and what was lost. Run it alone with `pytest -m faults`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.live_server import LiveServer, command, start_server
from vsense.config import Settings

pytestmark = pytest.mark.faults
MIB = 1024 * 1024
PASSWORD = "fault suite password"


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """A figure of /proc/PID/status, in KiB (VmRSS: resident now; VmHWM: its peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[LiveServer]:
    live = start_server(tmp_path)
    try:
        yield live
    finally:
        live.stop()


def big_json_batch(size: int) -> bytes:
    """A JSON array of small objects, about `size` bytes: parsed, it takes many times that."""
    item = b'{"type":"VCZ","n":0},'
    return b"[" + item * (size // len(item) - 1) + item[:-1] + b"]"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
async def test_unauthenticated_large_bodies_are_refused_unread(sqlite_server: LiveServer) -> None:
    pid = sqlite_server.process.pid
    base = sqlite_server.base_url
    body = big_json_batch(int(3.9 * MIB))
    image = os.urandom(64 * 1024)

    async def chunked_image() -> AsyncIterator[bytes]:
        for _ in range(10 * MIB // len(image) - 1):  # just under the 10 MiB image limit
            yield image

    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        assert (await client.get("/healthz")).status_code == 200
        before = rss_kib(pid)
        posts = [
            client.post(
                "/device/v1/payloads", content=body, headers={"content-type": "application/json"}
            )
            for _ in range(10)
        ]
        puts = [
            client.put(
                f"/device/v1/images/{uuid.uuid4()}/raw",
                content=chunked_image(),
                headers={"content-type": "image/jpeg"},
            )
            for _ in range(10)
        ]
        forged = [
            client.post(
                "/device/v1/payloads",
                content=body,
                headers={"content-type": "application/json", "authorization": "Bearer vsd_forged"},
            )
            for _ in range(5)
        ]
        answers = await asyncio.gather(*posts, *puts, *forged)
        assert [a.status_code for a in answers] == [401] * len(answers)
        assert all(a.json()["httpError"] == 401 for a in answers)
        assert (await client.get("/healthz")).status_code == 200
    grown = rss_kib(pid, "VmHWM") - before
    # Reading them would take hundreds of MiB (the bodies alone are 139 MiB, parsed JSON
    # many times that); refused unread, the process hardly grows.
    assert grown < 64 * 1024, f"the server grew by {grown // 1024} MiB at its peak"


def organization_admin(server: LiveServer) -> dict[str, str]:
    """Headers of a new organization's admin, made with the command line."""
    name = f"faults-{uuid.uuid4().hex[:8]}"
    email = f"{name}@example.com"
    command(server.env, "admin", "create-org", name)
    command(
        server.env, "admin", "create-user", "--org", name, "--email", email,
        "--role", "admin", "--password", PASSWORD,
    )  # fmt: skip
    login = httpx.post(
        f"{server.base_url}/api/v1/login",
        json={"email": email, "password": PASSWORD, "organization": name},
    )
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['data']['access_token']}"}


def onboard(server: LiveServer, admin: dict[str, str], count: int) -> list[dict[str, str]]:
    """`count` VCZ devices: their uuid and the headers of their token."""
    devices = []
    for index in range(count):
        created = httpx.post(
            f"{server.base_url}/api/v1/devices",
            json={"name": f"sensor-{index}", "app_type": "VCZ"},
            headers=admin,
        )
        assert created.status_code in (200, 201), created.text
        shown = created.json()["data"] if "data" in created.json() else created.json()
        devices.append(
            {
                "uuid": str(shown["uuid"]),
                "Authorization": f"Bearer {shown['device_token']}",
            }
        )
    return devices


def metric(server: LiveServer, name: str) -> float:
    for line in httpx.get(f"{server.base_url}/metrics").text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return 0.0


@pytest.fixture
def grace_server(
    tmp_path: Path, database_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LiveServer]:
    monkeypatch.setenv("VSENSE_SHUTDOWN_GRACE", "3")
    live = start_server(tmp_path, database_settings.database_url)
    try:
        yield live
    finally:
        if live.process.poll() is None:
            live.process.kill()
            live.process.wait()


async def test_sigterm_answers_open_long_polls_and_stops_within_the_grace(
    grace_server: LiveServer,
) -> None:
    server = grace_server
    devices = onboard(server, organization_admin(server), 4)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        polls = [
            asyncio.create_task(
                client.get(
                    "/device/v1/commands",
                    params={"wait": 25},
                    headers={"Authorization": device["Authorization"]},
                )
            )
            for device in devices
        ]
        deadline = time.monotonic() + 30
        while metric(server, "vsense_device_long_polls") < len(devices):
            assert time.monotonic() < deadline, "the long polls did not arrive"
            await asyncio.sleep(0.1)
        server.process.send_signal(signal.SIGTERM)
        try:
            # The grace is 3 s; the polls alone would hold the old server for 25 s.
            await asyncio.to_thread(server.process.wait, 3 + 5)
        except subprocess.TimeoutExpired:
            pytest.fail("the server did not stop within its grace period")
        answers = await asyncio.gather(*polls)
    assert [a.status_code for a in answers] == [200] * len(devices)
    assert [a.json() for a in answers] == [{"commands": []}] * len(devices)
