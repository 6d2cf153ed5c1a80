"""`vsense worker` processes on a real database: a worker killed mid-batch loses nothing,
and two workers share the queue without sending anything twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from tests.environment import POSTGRES_URL
from tests.factories import Api, sensor
from tests.webhooks.helpers import hook
from vsense.components import Components
from vsense.config import Settings
from vsense.db import session_scope
from vsense.kit.time import utcnow
from vsense.models import Webhook, WebhookDelivery
from vsense.webhooks import queue_repository
from vsense.worker import BackgroundRuntime

EVENTS = 300


class CountingReceiver:
    """Answers 200 after a short pause, counting each `webhook-id` as it arrives. With
    `hold_after`, the request arriving after that many is held (not answered) for a
    while, so that a worker can be killed with a delivery certainly in flight."""

    def __init__(self, pause: float, hold_after: int | None = None) -> None:
        self.pause = pause
        self.hold_after = hold_after
        self.holding = asyncio.Event()
        self.seen: Counter[str] = Counter()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.seen[request.headers["webhook-id"]] += 1
        held = self.hold_after is not None and sum(self.seen.values()) > self.hold_after
        if held and not self.holding.is_set():
            self.holding.set()
            await asyncio.sleep(5)
        await asyncio.sleep(self.pause)
        return web.Response(text="ok")

    async def until(self, condition: Any, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; {len(self.seen)} distinct deliveries seen")
            await asyncio.sleep(0.05)


async def _serve(receiver: CountingReceiver) -> web.AppRunner:
    app = web.Application()
    app.router.add_post("/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    receiver.url = f"http://127.0.0.1:{port}/hook"
    return runner


@pytest.fixture
async def state(database_settings: Settings, shared_engine: Any) -> AsyncIterator[Components]:
    settings = database_settings.model_copy(update={"webhook_allow_private": True})
    state = Components.for_server(settings, shared_engine)
    yield state
    async with session_scope(state.sessionmaker) as session:
        await session.execute(delete(Webhook))


def _worker(settings: Settings) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "VSENSE_DATABASE_URL": settings.resolved_database_url,
        "VSENSE_DATA_DIR": str(settings.data_dir),
        "VSENSE_ENVIRONMENT": "test",
        "VSENSE_SECRET_KEY": "worker-test-secret-key-long-enough-0123456789",
        "VSENSE_WEBHOOK_ALLOW_PRIVATE": "1",
        # Lease = 10 x timeout + 10 s: a killed worker's rows fall due again after 20 s.
        "VSENSE_WEBHOOK_TIMEOUT": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "vsense.cli", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _queue_events(api: Api, url: str) -> int:
    admin = await api.organization()
    device = await sensor(admin)
    created = await hook(admin, device.uuid, url)
    start = int(time.time()) - EVENTS - 10
    for first in range(0, EVENTS, 100):
        batch = [_message(start + n) for n in range(first, first + 100)]
        assert (await device.send(batch)).status_code == 202
    return int(created["id"])


def _message(timestamp: int) -> dict[str, Any]:
    zone = "11111111-2222-3333-4444-555555555555"
    return {
        "type": "VCZ",
        "timestamp": timestamp,
        "payload": [
            {
                "id": zone,
                "name": "Z",
                "count": 1,
                "by_class": {"person": 1},
                "period_start": timestamp - 1,
                "period_end": timestamp,
            }
        ],
    }


async def _delivery_totals(state: Components, webhook_id: int) -> tuple[dict[str, int], int]:
    async with session_scope(state.sessionmaker) as session:
        rows = await session.execute(
            select(WebhookDelivery.status, func.count())
            .where(WebhookDelivery.webhook_id == webhook_id)
            .group_by(WebhookDelivery.status)
        )
        statuses = {status: count for status, count in rows}
        reclaims = await session.scalar(
            select(func.sum(WebhookDelivery.reclaims)).where(
                WebhookDelivery.webhook_id == webhook_id
            )
        )
    return statuses, int(reclaims or 0)


@pytest.mark.live
@pytest.mark.slow
async def test_a_worker_killed_mid_batch_loses_nothing(
    api: Api, database_settings: Settings
) -> None:
    receiver = CountingReceiver(pause=0.01, hold_after=40)
    runner = await _serve(receiver)
    webhook_id = await _queue_events(api, receiver.url)
    first = _worker(database_settings)
    try:
        await receiver.until(receiver.holding.is_set, 60)  # a delivery is in flight
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        killed_at = len(receiver.seen)
        assert killed_at < EVENTS  # it died with work left
        second = _worker(database_settings)
        try:
            await receiver.until(lambda: len(receiver.seen) == EVENTS, 90)
            await _until_written(api.state, webhook_id)
        finally:
            _stop(second)
    finally:
        _stop(first)
        await runner.cleanup()

    statuses, reclaims = await _delivery_totals(api.state, webhook_id)
    duplicates = sum(receiver.seen.values()) - EVENTS
    assert statuses == {"succeeded": EVENTS}
    assert reclaims >= 1  # the killed worker's leased rows were taken over
    assert 1 <= duplicates <= reclaims  # the held one came twice; each duplicate counted


async def _until_written(state: Components, webhook_id: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        statuses, _ = await _delivery_totals(state, webhook_id)
        if statuses == {"succeeded": EVENTS}:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"outcomes not written: {statuses}")


@pytest.mark.live
@pytest.mark.slow
async def test_two_workers_share_the_queue_without_sending_twice(
    api: Api, database_settings: Settings
) -> None:
    receiver = CountingReceiver(pause=0.005)
    runner = await _serve(receiver)
    webhook_id = await _queue_events(api, receiver.url)
    workers = [_worker(database_settings), _worker(database_settings)]
    try:
        await receiver.until(lambda: len(receiver.seen) == EVENTS, 90)
        await _until_written(api.state, webhook_id)
    finally:
        for worker in workers:
            _stop(worker)
        await runner.cleanup()

    assert set(receiver.seen.values()) == {1}
    statuses, reclaims = await _delivery_totals(api.state, webhook_id)
    assert statuses == {"succeeded": EVENTS}
    assert reclaims == 0


@pytest.mark.faults
@pytest.mark.slow
async def test_a_stop_releases_sends_still_in_flight_when_its_grace_ends(
    api: Api, state: Components
) -> None:
    # The receiver holds the first request 5 s; the stop's grace is 2 s.
    state.settings = state.settings.model_copy(update={"shutdown_grace": timedelta(seconds=2)})
    receiver = CountingReceiver(pause=0, hold_after=0)
    runner = await _serve(receiver)
    runtime = BackgroundRuntime(state)
    try:
        admin = await api.organization()
        device = await sensor(admin)
        created = await hook(admin, device.uuid, receiver.url)
        runtime.start(ingest=False)
        assert (await device.send(_message(int(time.time())))).status_code == 202
        await asyncio.wait_for(receiver.holding.wait(), 30)
        await runtime.stop()
    finally:
        await runner.cleanup()
    async with session_scope(state.sessionmaker) as session:
        delivery = (
            await session.execute(
                select(WebhookDelivery).where(WebhookDelivery.webhook_id == int(created["id"]))
            )
        ).scalar_one()
    # Given back at once, no attempt spent: another dispatcher sends it now, not after
    # its lease (the old stop waited for the request, past the grace period).
    assert delivery.status == "pending"
    assert delivery.lease_until is None
    assert delivery.attempts == 0


@pytest.mark.parametrize("database_settings", ["postgresql"], indirect=True)
async def test_a_claims_transaction_does_not_wait_for_the_disk(state: Components) -> None:
    """A claim writes leases only (lost in a crash, a delivery is sent again): the
    statement that takes the claim's turn also sets its transaction so, and the next
    transaction on the connection is back to the server's setting."""
    setting = text("SELECT current_setting('synchronous_commit')")
    async with state.engine.connect() as connection:
        async with AsyncSession(bind=connection) as session, session.begin():
            await queue_repository.claim(
                session, utcnow(), timedelta(seconds=60), 10, per_webhook=8, per_device=8
            )
            assert (await session.execute(setting)).scalar_one() == "off"
        # The same connection, in a transaction of its own.
        assert (await connection.execute(setting)).scalar_one() == "on"


@pytest.mark.postgres
async def test_outcomes_are_written_with_plans_made_for_their_batch() -> None:
    """The server's generic plan of the outcome write, cached while the queue was small,
    updates a batch through a sequential scan of every delivery, and nothing replaces it
    where autovacuum is off (`bench/webhook_queue_growth.py`): the write's transaction
    asks for plans made for each call, whatever the connection prefers, and does not
    wait for the disk."""
    assert POSTGRES_URL
    engine = create_async_engine(POSTGRES_URL)
    try:
        async with session_scope(async_sessionmaker(engine)) as session:
            await session.execute(text("SET plan_cache_mode = force_generic_plan"))
            await queue_repository.outcomes_transaction(session)
            settings = await session.execute(
                text(
                    "SELECT current_setting('plan_cache_mode'),"
                    " current_setting('synchronous_commit')"
                )
            )
            assert settings.one() == ("force_custom_plan", "off")
    finally:
        await engine.dispose()
