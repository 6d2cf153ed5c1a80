"""A topology that is tested: two `vsense serve` processes (each with its MQTT bridge) and
two `vsense worker` processes on one PostgreSQL and one Mosquitto.

Devices send over HTTP to both servers and over MQTT; meanwhile webhooks are created
and deleted through either server, a token is revoked, and one server and one worker
are killed (SIGKILL), and the killed server's slot is started again (it resumes the
MQTT sessions the killed one left). Then: every acknowledged message is stored once; every delivery
of a live webhook arrives (duplicates only where a lease was reclaimed, and counted); a
webhook created gets every message sent after it was, a deleted one none sent after it
was; the revoked token is refused everywhere within a second; and no request was
refused because of what another process knew.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tests.environment import BROKER, fresh_postgres_database
from tests.faults.helpers import (
    Traffic,
    eventually_true,
    onboard,
    organization_admin,
    send_over_http,
    send_over_mqtt,
    stored_counts,
    until_not_busy,
)
from tests.live_server import LiveServer, start_server
from tests.receiver import Receiver, running_receiver
from vsense.config import load_settings
from vsense.migrate import upgrade_async
from vsense.models import WebhookDelivery

SECRET = "live-server-secret-key-long-enough-0123456789"  # tests.live_server's
pytestmark = [pytest.mark.slow, pytest.mark.live, pytest.mark.mqtt, pytest.mark.postgres]


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "vsense.cli", "worker"], env=env)


async def ready(server: LiveServer) -> None:
    """Until the server answers /readyz (its MQTT bridge is connected)."""
    deadline = time.monotonic() + 60
    while (await asyncio.to_thread(httpx.get, f"{server.base_url}/readyz")).status_code != 200:
        assert time.monotonic() < deadline, "the MQTT bridge did not connect"
        await asyncio.sleep(0.3)


def received_counts(receiver: Receiver, path: str) -> list[int]:
    return [orjson.loads(r.body)["payload"][0]["count"] for r in receiver.to(path)]


class Prober:
    """Asks both servers with a token, again and again: when each answer was asked for,
    and what it was."""

    def __init__(self, token: str) -> None:
        self.headers = {"Authorization": f"Bearer {token}"}
        self.answers: list[tuple[float, str, int]] = []

    async def run(self, base_urls: list[str], stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            while not stop.is_set():
                for base_url in base_urls:
                    asked = time.monotonic()
                    try:
                        answer = await client.get(
                            f"{base_url}/api/v1/devices", headers=self.headers
                        )
                    except httpx.TransportError:
                        continue  # a killed server
                    self.answers.append((asked, base_url, answer.status_code))
                await asyncio.sleep(0.05)


async def test_two_servers_and_two_workers_lose_nothing_and_disagree_on_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = await fresh_postgres_database(f"topology_{uuid.uuid4().hex[:6]}")
    try:
        await _run(url, tmp_path, monkeypatch)
    finally:
        await drop_database(url)


async def _run(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSENSE_MQTT_URL", BROKER)
    monkeypatch.setenv("VSENSE_MQTT_SHARE_GROUP", f"test-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("VSENSE_WEBHOOK_DISPATCHER", "false")  # the workers deliver
    monkeypatch.setenv("VSENSE_WEBHOOK_ALLOW_PRIVATE", "true")  # the receiver is local
    monkeypatch.setenv("VSENSE_WEBHOOK_TIMEOUT", "2")  # a dead worker's lease: 30 s
    monkeypatch.setenv("VSENSE_SHUTDOWN_GRACE", "2")
    monkeypatch.setenv("VSENSE_DATABASE_POOL_SIZE", "4")  # four processes on one database
    await upgrade_async(
        load_settings(database_url=url, data_dir=tmp_path, environment="test", secret_key=SECRET)
    )
    # Each server is a slot with MQTT sessions of its own name, as in production: the
    # one restarted after the kill resumes the sessions the killed one left.
    run = uuid.uuid4().hex[:8]
    slot_a = {"VSENSE_MQTT_CLIENT_ID": f"topology-{run}-a"}
    slot_b = {"VSENSE_MQTT_CLIENT_ID": f"topology-{run}-b"}
    first, second = await asyncio.gather(
        asyncio.to_thread(start_server, tmp_path / "a", url, extra_env=slot_a),
        asyncio.to_thread(start_server, tmp_path / "b", url, extra_env=slot_b),
    )
    restarted: LiveServer | None = None
    workers = [start_worker(first.env), start_worker(first.env)]
    servers = [first.base_url, second.base_url]
    try:
        async with running_receiver() as receiver:
            admin = await organization_admin(first)
            at_first = httpx.AsyncClient(base_url=first.base_url, timeout=30)
            at_second = httpx.AsyncClient(base_url=second.base_url, timeout=30)
            devices = await onboard(at_first, admin, 4)

            async def hook(client: httpx.AsyncClient, device: str, path: str) -> int:
                created = await until_not_busy(
                    lambda: client.post(
                        "/api/v1/webhooks",
                        params={"device_uuid": device},
                        json={"url": receiver.at(path), "webhook_type": "payload"},
                        headers=admin,
                    )
                )
                assert created.status_code == 201, created.text
                return int(created.json()["data"]["id"])

            initial = {
                d["uuid"]: await hook(at_first, d["uuid"], f"/i/{d['uuid']}") for d in devices
            }
            token = await until_not_busy(
                lambda: at_first.post(
                    "/api/v1/tokens",
                    json={"name": "probe", "scopes": ["devices:read"]},
                    headers=admin,
                )
            )
            assert token.status_code == 201, token.text
            prober = Prober(token.json()["token"])
            await ready(first)
            await ready(second)

            traffic = Traffic()
            stop = asyncio.Event()
            tasks = [
                asyncio.create_task(send_over_http(servers, devices[0], traffic, stop)),
                asyncio.create_task(send_over_http(servers[::-1], devices[1], traffic, stop)),
                asyncio.create_task(send_over_mqtt(devices[2], traffic, stop)),
                asyncio.create_task(send_over_mqtt(devices[3], traffic, stop)),
                asyncio.create_task(prober.run(servers, stop)),
            ]
            await asyncio.sleep(2)
            # New webhooks, through either server: each gets what is sent from now on.
            added: dict[str, tuple[int, int]] = {}
            for index, device in enumerate(devices):
                client = (at_first, at_second)[index % 2]
                webhook = await hook(client, device["uuid"], f"/n/{device['uuid']}")
                added[device["uuid"]] = (webhook, traffic.mark())
            await asyncio.sleep(2)
            # Deleted webhooks, through the other server: nothing sent later reaches them.
            deleted: dict[str, int] = {}
            for index, device in enumerate(devices[::2]):
                client = (at_second, at_first)[index % 2]
                webhook_url = f"/api/v1/webhooks/{initial[device['uuid']]}"
                gone = await until_not_busy(
                    lambda c=client, u=webhook_url: c.delete(u, headers=admin)
                )
                assert gone.status_code == 204, gone.text
                deleted[device["uuid"]] = traffic.mark()
            await asyncio.sleep(1)
            token_url = f"/api/v1/tokens/{token.json()['id']}"
            revoked = await until_not_busy(lambda: at_second.delete(token_url, headers=admin))
            assert revoked.status_code == 204
            revoked_at = time.monotonic()
            await asyncio.sleep(1.5)
            killed_at = traffic.mark()
            second.process.send_signal(signal.SIGKILL)
            workers[0].send_signal(signal.SIGKILL)
            await asyncio.sleep(5)
            # The killed server's slot comes back (as a service manager would restart
            # it) and handles what its MQTT sessions had received but not acknowledged.
            restarted = await asyncio.to_thread(start_server, tmp_path / "b", url, extra_env=slot_b)
            await ready(restarted)
            await asyncio.sleep(2)
            stop.set()
            await asyncio.gather(*tasks)
            await at_second.aclose()

            # No request was refused: not because of another process, not at all.
            assert traffic.refusals == []
            assert traffic.failovers == 1  # the device of the killed server went on
            # The revoked token: refused by every server within a second.
            late = [
                (round(asked - revoked_at, 2), server, status)
                for asked, server, status in prober.answers
                if asked > revoked_at + 1.0 and status not in (401, 503)  # 503: not answered
            ]
            assert late == []
            assert any(asked > revoked_at + 1.0 for asked, _, _ in prober.answers)

            # Every acknowledged message is stored, once.
            async def all_stored() -> bool:
                for device in devices:
                    stored = await stored_counts(at_first, admin, device["uuid"])
                    if not traffic.acknowledged[device["uuid"]] <= set(stored):
                        return False
                return True

            if not await eventually_true(all_stored, 120):
                lost = {
                    f"{index} {('http', 'http', 'mqtt', 'mqtt')[index]}": sorted(
                        traffic.acknowledged[d["uuid"]]
                        - set(await stored_counts(at_first, admin, d["uuid"]))
                    )
                    for index, d in enumerate(devices)
                }
                pytest.fail(f"acknowledged but not stored: {lost}; killed at {killed_at}")
            for device in devices:
                stored = await stored_counts(at_first, admin, device["uuid"])
                assert len(stored) == len(set(stored)), f"stored twice: {device['uuid']}"

            # Every delivery of a live webhook arrives: the initial ones that stay get
            # every message, the new ones every message sent after they were created.
            expected: dict[str, set[int]] = {}
            for device in devices:
                sent = traffic.acknowledged[device["uuid"]]
                webhook, mark = added[device["uuid"]]
                expected[f"/n/{device['uuid']}"] = {c for c in sent if c > mark}
                if device["uuid"] not in deleted:
                    expected[f"/i/{device['uuid']}"] = set(sent)

            async def all_delivered() -> bool:
                return all(
                    set(received_counts(receiver, p)) >= want for p, want in expected.items()
                )

            if not await eventually_true(all_delivered, 90):
                missing = {
                    path: sorted(want - set(received_counts(receiver, path)))[:10]
                    for path, want in expected.items()
                }
                pytest.fail(f"not delivered: {missing}; queue: {await _queue(url)}")
            # Nothing sent after a deletion reached the deleted webhook.
            for device, mark in deleted.items():
                assert all(c < mark for c in received_counts(receiver, f"/i/{device}"))
            # Duplicates only where a lease of the killed worker was reclaimed.
            duplicates = sum(
                n - 1
                for path in expected
                for n in Counter(received_counts(receiver, path)).values()
                if n > 1
            )
            engine = create_async_engine(url)
            async with engine.connect() as connection:
                reclaims = await connection.scalar(
                    select(func.coalesce(func.sum(WebhookDelivery.reclaims), 0))
                )
            await engine.dispose()
            print(
                f"topology: {sum(map(len, traffic.acknowledged.values()))} messages acknowledged, "
                f"{len(receiver.received)} webhook requests, {duplicates} duplicates, "
                f"{reclaims} leases reclaimed, {len(prober.answers)} token probes"
            )
            assert duplicates <= int(reclaims or 0)
            await at_first.aclose()
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
                worker.wait(timeout=30)
        if second.process.poll() is None:
            second.process.kill()
        second.process.wait(timeout=10)
        if restarted is not None:
            restarted.stop()
        first.stop()


async def _queue(url: str) -> list[tuple[object, ...]]:
    """The delivery queue at a glance: how many per status, attempts, error and breaker."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT d.status, d.attempts, d.reclaims, d.last_error, d.last_status_code,"
                    " w.breaker_open_until IS NOT NULL, count(*) FROM webhook_deliveries d"
                    " JOIN webhooks w ON w.id = d.webhook_id GROUP BY 1, 2, 3, 4, 5, 6"
                )
            )
            return [tuple(row) for row in rows]
    finally:
        await engine.dispose()


async def drop_database(url: str) -> None:
    target = make_url(url)
    engine = create_async_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
    await engine.dispose()
