"""The fault suite: a real `vsense serve` under the faults an operator meets.

Unauthenticated large bodies (memory stays bounded), SIGTERM with long polls open (the
process ends within its grace period and the polls get their empty answer), and a
database outage while devices send over HTTP and MQTT (every message that got a 2xx or
a PUBACK is stored, and both paths recover on their own). `docs/reliability.md` sums up
what is injected and what was lost. Run it alone with `pytest -m faults`.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import asyncpg  # type: ignore[import-untyped]
import httpx
import orjson
import pytest
from sqlalchemy.engine.url import make_url

from tests.environment import BROKER, POSTGRES_URL
from tests.factories import Api, vcz
from tests.faults.helpers import organization_admin
from tests.live_server import LiveServer, start_server
from vsense.app import create_app
from vsense.components import Components
from vsense.config import Settings, load_settings
from vsense.migrate import upgrade_async

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
    assert grown < 128 * 1024, f"the server grew by {grown // 1024} MiB at its peak"


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
    devices = onboard(server, await organization_admin(server), 4)
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


# -- the database goes away -----------------------------------------------------------

OUTAGE_SECONDS = 3.0


class PostgresOutage:
    """A database of the test's own (`<test database>_faults`), made unreachable and given
    back: new connections are refused and the open ones are ended, as in a failover."""

    def __init__(self, control_url: str) -> None:
        url = make_url(control_url)
        self.control = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.name = f"{url.database}_faults"
        self.url = url.set(database=self.name).render_as_string(hide_password=False)

    async def _execute(self, *statements: str) -> None:
        connection = await asyncpg.connect(self.control)
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    async def create(self) -> None:
        await self._execute(
            f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)', f'CREATE DATABASE "{self.name}"'
        )

    async def drop(self) -> None:
        await self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    async def begin(self) -> None:
        await self._execute(
            f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false',
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{self.name}' AND pid <> pg_backend_pid()",
        )

    async def end(self) -> None:
        await self._execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')


class SqliteLock:
    """The embedded database locked by another process's write transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.connection: sqlite3.Connection | None = None

    async def begin(self) -> None:
        self.connection = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self.connection.execute("BEGIN IMMEDIATE")

    async def end(self) -> None:
        assert self.connection is not None
        self.connection.execute("ROLLBACK")
        self.connection.close()


@pytest.fixture
async def postgres_outage() -> AsyncIterator[PostgresOutage]:
    assert POSTGRES_URL, "a test taking postgres_outage is marked postgres"
    outage = PostgresOutage(POSTGRES_URL)
    await outage.create()
    try:
        yield outage
    finally:
        await outage.end()
        await outage.drop()


@pytest.mark.postgres
async def test_a_device_message_during_an_outage_is_answered_503_with_retry_after(
    postgres_outage: PostgresOutage, tmp_path: Path
) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        environment="test",
        secret_key="fault-suite-secret-key-long-enough-0123456789",
        database_url=postgres_outage.url,
    )
    await upgrade_async(settings)
    state = Components.for_server(settings)
    transport = httpx.ASGITransport(app=create_app(state=state), raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            admin = await Api(client, state).organization()
            device = await admin.device(app_type="VCZ")
            headers = {"Authorization": f"Bearer {device['device_token']}"}
            assert (
                await client.post("/device/v1/payloads", json=vcz(1), headers=headers)
            ).status_code == 202
            await postgres_outage.begin()
            for path, body in (("/device/v1/payloads", vcz(2)), ("/device/v1/keepalive", None)):
                answer = await client.post(path, json=body, headers=headers)
                assert answer.status_code == 503, answer.text
                assert answer.headers["retry-after"] == "2"
                assert answer.json()["httpError"] == 503 and answer.json()["code"] == 5003
            assert (await client.get("/readyz")).status_code == 503
            await postgres_outage.end()
            statuses = []
            for _ in range(20):  # the first requests may meet connections ended by the outage
                answer = await client.post("/device/v1/payloads", json=vcz(3), headers=headers)
                statuses.append(answer.status_code)
                if answer.status_code == 202:
                    break
                await asyncio.sleep(0.2)
            assert statuses[-1] == 202 and set(statuses) <= {202, 503}
    finally:
        await state.engine.dispose()


@dataclass
class Traffic:
    """What the devices were told: the counts acknowledged, and every other answer."""

    acknowledged: dict[str, set[int]] = field(default_factory=dict)
    refusals: list[tuple[int, str | None, str]] = field(default_factory=list)
    sequence: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


async def send_over_http(
    base_url: str, device: dict[str, str], traffic: Traffic, stop: asyncio.Event
) -> None:
    headers = {"Authorization": device["Authorization"]}
    acknowledged = traffic.acknowledged.setdefault(device["uuid"], set())
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        while not stop.is_set():
            count = next(traffic.sequence)
            answer = await client.post("/device/v1/payloads", json=vcz(count), headers=headers)
            if answer.status_code == 202:
                acknowledged.add(count)
            else:
                traffic.refusals.append(
                    (answer.status_code, answer.headers.get("retry-after"), answer.text)
                )
            await asyncio.sleep(0.05)


async def send_over_mqtt(device: dict[str, str], traffic: Traffic, stop: asyncio.Event) -> None:
    acknowledged = traffic.acknowledged.setdefault(device["uuid"], set())
    async with aiomqtt.Client("127.0.0.1", 1883, protocol=aiomqtt.ProtocolVersion.V5) as client:
        while not stop.is_set():
            count = next(traffic.sequence)
            # Returns once the broker's PUBACK is in.
            await client.publish(
                f"vsense/{device['uuid']}/payloads", orjson.dumps(vcz(count)), qos=1
            )
            acknowledged.add(count)
            await asyncio.sleep(0.05)


async def stored_counts(client: httpx.AsyncClient, admin: dict[str, str], device: str) -> set[int]:
    counts: set[int] = set()
    page = 1
    while True:
        answer = await client.get(
            f"/api/v1/devices/{device}/payloads",
            params={"per_page": 500, "page": page},
            headers=admin,
        )
        if answer.status_code != 200:
            return counts
        entries = answer.json()["data"]
        counts |= {entry["payload"][0]["count"] for entry in entries}
        if len(entries) < 500:
            return counts
        page += 1


async def eventually_true(check: Callable[[], Awaitable[bool]], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.5)
    return True


@pytest.mark.slow
@pytest.mark.live
@pytest.mark.mqtt
@pytest.mark.postgres
async def test_nothing_acknowledged_is_lost_when_postgresql_goes_away(
    postgres_outage: PostgresOutage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await devices_send_through(postgres_outage, postgres_outage.url, tmp_path, monkeypatch)


@pytest.mark.slow
@pytest.mark.live
@pytest.mark.mqtt
async def test_nothing_acknowledged_is_lost_when_the_embedded_database_is_locked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite has no server to lose; its fault is another process holding the write lock.
    # Writers queue on the lock (busy_timeout) and go on when it is released.
    await devices_send_through(SqliteLock(tmp_path / "vsense.db"), None, tmp_path, monkeypatch)


async def devices_send_through(
    fault: PostgresOutage | SqliteLock,
    url: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two devices send over HTTP and two over MQTT, before, during and after `fault`."""
    monkeypatch.setenv("VSENSE_MQTT_URL", BROKER)
    monkeypatch.setenv("VSENSE_MQTT_SHARE_GROUP", f"faults-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("VSENSE_SHUTDOWN_GRACE", "3")
    server = start_server(tmp_path, url)
    try:
        admin = await organization_admin(server)
        devices = onboard(server, admin, 4)
        deadline = time.monotonic() + 30
        while (await asyncio.to_thread(httpx.get, f"{server.base_url}/readyz")).status_code != 200:
            assert time.monotonic() < deadline, "the MQTT bridge did not connect"
            await asyncio.sleep(0.2)
        traffic = Traffic()
        stop = asyncio.Event()
        senders = [
            asyncio.create_task(send_over_http(server.base_url, devices[0], traffic, stop)),
            asyncio.create_task(send_over_http(server.base_url, devices[1], traffic, stop)),
            asyncio.create_task(send_over_mqtt(devices[2], traffic, stop)),
            asyncio.create_task(send_over_mqtt(devices[3], traffic, stop)),
        ]
        await asyncio.sleep(1)
        await fault.begin()
        await asyncio.sleep(OUTAGE_SECONDS)
        await fault.end()
        restored = {d["uuid"]: max(traffic.acknowledged[d["uuid"]], default=0) for d in devices}
        await asyncio.sleep(3)
        stop.set()
        await asyncio.gather(*senders)

        # Every refusal asked the device to come back; none was a failure of ours.
        print(  # the figures of docs/reliability.md (pytest -s)
            f"{type(fault).__name__}: {sum(map(len, traffic.acknowledged.values()))} messages "
            f"acknowledged, {len(traffic.refusals)} answered 503"
        )
        assert all(status == 503 and retry for status, retry, _ in traffic.refusals), (
            traffic.refusals
        )
        if isinstance(fault, PostgresOutage):
            assert traffic.refusals, "the outage did not reach the HTTP devices"
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:

            async def all_stored() -> bool:
                for device in devices:
                    stored = await stored_counts(client, admin, device["uuid"])
                    if not traffic.acknowledged[device["uuid"]] <= stored:
                        return False
                return True

            if not await eventually_true(all_stored, 60):
                lost = {
                    d["uuid"]: sorted(
                        traffic.acknowledged[d["uuid"]]
                        - await stored_counts(client, admin, d["uuid"])
                    )
                    for d in devices
                }
                pytest.fail(f"acknowledged but not stored: {lost}")
        # Both paths came back on their own: each device had messages acknowledged (and,
        # by the check above, stored) after the database was given back.
        for device in devices:
            assert max(traffic.acknowledged[device["uuid"]]) > restored[device["uuid"]]
        ready = await asyncio.to_thread(httpx.get, f"{server.base_url}/readyz")
        assert ready.status_code == 200  # the bridge is connected again
    finally:
        server.stop()
