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
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.live_server import LiveServer, start_server

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
