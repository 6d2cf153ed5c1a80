"""Isolation of endpoints: a hanging endpoint's breaker opens on its first timeout and is
obeyed by every dispatcher (it lives in the database), and healthy deliveries are
claimed and sent while a hanging one is still out."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select, text, update

from tests.factories import Api, sensor, vcz
from tests.receiver import Receiver, running_receiver
from tests.webhooks.helpers import hook
from vsense.components import Components
from vsense.config import Settings
from vsense.db import session_scope
from vsense.kit.time import utcnow
from vsense.models import Webhook, WebhookDelivery
from vsense.webhooks import queue_repository
from vsense.webhooks.dispatcher import Dispatcher, close_sender

TIMEOUT = timedelta(seconds=1)
HANG = 30.0  # longer than any test waits: the request only ends by the timeout


@pytest.fixture
async def state(database_settings: Settings, shared_engine: Any) -> AsyncIterator[Components]:
    """State whose webhooks may target the loopback receiver, with a short timeout."""
    settings = database_settings.model_copy(
        update={"webhook_allow_private": True, "webhook_timeout": TIMEOUT}
    )
    state = Components.for_server(settings, shared_engine)
    yield state
    await close_sender(state)


@pytest.fixture
async def other_process(state: Components) -> AsyncIterator[Components]:
    """A second dispatcher's process: its own components, engine and connections; what it
    shares with the first is the database."""
    other = Components.for_server(state.settings)
    yield other
    await close_sender(other)
    await other.engine.dispose()


@pytest.fixture(autouse=True)
async def no_leftover_webhooks(state: Components) -> AsyncIterator[None]:
    yield
    async with session_scope(state.sessionmaker) as session:
        await session.execute(delete(Webhook))


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as running:
        yield running


async def _breaker(state: Components, webhook_id: int) -> tuple[int, Any]:
    async with session_scope(state.sessionmaker) as session:
        row = (
            await session.execute(
                select(Webhook.breaker_failures, Webhook.breaker_open_until).where(
                    Webhook.id == webhook_id
                )
            )
        ).one()
    return row[0], row[1]


async def _attempts(state: Components, webhook_id: int) -> int:
    async with session_scope(state.sessionmaker) as session:
        total = await session.scalar(
            select(func.sum(WebhookDelivery.attempts)).where(
                WebhookDelivery.webhook_id == webhook_id
            )
        )
    return int(total or 0)


async def _make_due(state: Components, webhook_id: int) -> None:
    async with session_scope(state.sessionmaker) as session:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == webhook_id, WebhookDelivery.status == "pending")
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


async def test_the_first_timeout_opens_the_breaker_for_every_dispatcher(
    api: Api, receiver: Receiver, other_process: Components
) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    created = await hook(admin, device.uuid, receiver.on("/hang", ("hang", HANG)))
    await device.send([vcz(n) for n in range(5)])

    outcomes = await Dispatcher(api.state).run_once()

    # One request went out and timed out; the rest of the device's queue was not sent.
    assert len(receiver.to("/hang")) == 1
    assert sum(o.attempted for o in outcomes) == 1
    failures, open_until = await _breaker(api.state, created["id"])
    assert failures == 1 and open_until is not None and open_until > utcnow()

    # Another process, due or not, claims nothing of the endpoint while its breaker is open.
    await _make_due(api.state, created["id"])
    assert await Dispatcher(other_process).run_once() == []
    assert len(receiver.to("/hang")) == 1
    assert await _attempts(api.state, created["id"]) == 1


async def test_a_success_after_the_breaker_closes_resets_it(
    api: Api, receiver: Receiver, other_process: Components
) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    created = await hook(admin, device.uuid, receiver.on("/mend", ("hang", HANG), 200))
    await device.send(vcz(1))
    await Dispatcher(api.state).run_once()
    assert (await _breaker(api.state, created["id"]))[0] == 1

    # Its open time has passed (moved back rather than waited for): the probe succeeds.
    async with session_scope(api.state.sessionmaker) as session:
        await session.execute(
            update(Webhook)
            .where(Webhook.id == created["id"])
            .values(breaker_open_until=utcnow() - timedelta(seconds=1))
        )
    await _make_due(api.state, created["id"])
    (outcome,) = await Dispatcher(other_process).run_once()

    assert (outcome.status, outcome.status_code) == ("succeeded", 200)
    assert await _breaker(api.state, created["id"]) == (0, None)


async def test_once_open_time_has_passed_one_delivery_probes_the_endpoint(
    api: Api, receiver: Receiver
) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    created = await hook(admin, device.uuid, receiver.on("/probe", ("hang", HANG)))
    await device.send([vcz(n) for n in range(6)])
    await Dispatcher(api.state).run_once()
    async with session_scope(api.state.sessionmaker) as session:
        await session.execute(
            update(Webhook)
            .where(Webhook.id == created["id"])
            .values(breaker_open_until=utcnow() - timedelta(seconds=1))
        )
    await _make_due(api.state, created["id"])

    dispatcher = Dispatcher(api.state)
    assert await dispatcher.claim_round() == 1  # not the device's next eight
    assert await dispatcher.claim_round() == 0  # nor another while the probe is out
    (outcome,) = await dispatcher.drain()
    assert outcome.error is not None and outcome.error.startswith("timeout")
    failures, open_until = await _breaker(api.state, created["id"])
    assert failures == 2 and open_until is not None and open_until > utcnow()


async def test_more_failures_in_a_row_than_the_threshold_open_it_without_a_timeout(
    api: Api, receiver: Receiver, other_process: Components
) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    created = await hook(admin, device.uuid, receiver.on("/sick", 503))
    await device.send(vcz(1))
    # Two dispatchers take turns: the count of failures is shared, not per process.
    for attempt in range(1, 6):
        dispatcher = Dispatcher(api.state if attempt % 2 else other_process)
        (outcome,) = await dispatcher.run_once()
        assert (outcome.status, outcome.status_code) == ("pending", 503)
        await _make_due(api.state, created["id"])
    failures, open_until = await _breaker(api.state, created["id"])
    assert failures == 5 and open_until is not None

    assert await Dispatcher(api.state).run_once() == []
    assert len(receiver.to("/sick")) == 5


async def test_healthy_deliveries_go_out_while_a_hanging_one_is_outstanding(
    api: Api, receiver: Receiver
) -> None:
    # The hanging request stays out for the longest timeout there is; the stop at the
    # end gives up on it at once.
    api.state.settings = api.state.settings.model_copy(
        update={"webhook_timeout": timedelta(seconds=30), "shutdown_grace": timedelta(0)}
    )
    admin = await api.organization()
    stuck, healthy = await sensor(admin), await sensor(admin)
    hanging = await hook(admin, stuck.uuid, receiver.on("/hang", ("hang", HANG)))
    await hook(admin, healthy.uuid, receiver.on("/fine"))
    dispatcher = Dispatcher(api.state)
    running = asyncio.create_task(dispatcher.run())
    try:
        await stuck.send([vcz(n) for n in range(3)])
        await receiver.wait_for(1)  # the hanging request is out
        for n in range(10):  # one after the other: a claim each, not one batch
            await healthy.send(vcz(n))
        await receiver.wait_for(11, seconds=25)  # the hanging one and the 10 healthy
        # Every healthy delivery was claimed and sent while the hanging one was out.
        hanging_attempts = await _attempts(api.state, hanging["id"])
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    assert hanging_attempts == 0
    assert len(receiver.to("/hang")) == 1  # the rest of its device's queue waits behind it
    assert len({r.headers["webhook-id"] for r in receiver.to("/fine")}) == 10


async def test_a_claim_leaves_out_the_endpoints_it_is_told_to_skip(
    api: Api, receiver: Receiver
) -> None:
    admin = await api.organization()
    full, other = await sensor(admin), await sensor(admin)
    skipped = await hook(admin, full.uuid, receiver.on("/full"))
    taken = await hook(admin, other.uuid, receiver.on("/other"))
    await full.send(vcz(1))
    await other.send(vcz(1))
    async with session_scope(api.state.sessionmaker) as session:
        claimed = await queue_repository.claim(
            session,
            utcnow(),
            timedelta(seconds=60),
            10,
            per_webhook=16,
            per_device=8,
            skip_webhooks=[skipped["id"]],
        )
    assert [c.webhook_id for c in claimed] == [taken["id"]]


# Row locks: on SQLite the dispatcher's transaction holds the one write turn, by design.
@pytest.mark.parametrize("database_settings", ["postgresql"], indirect=True)
async def test_counting_an_endpoints_breaker_does_not_hold_up_its_devices_messages(
    api: Api, receiver: Receiver
) -> None:
    """A dispatcher counting an endpoint's outcomes locks its breaker until its outcome
    batch commits; a message of the endpoint's device, which queues a delivery to it
    meanwhile, is answered without waiting for that commit."""
    admin = await api.organization()
    device = await sensor(admin)
    created = await hook(admin, device.uuid, receiver.on("/counted"))
    async with session_scope(api.state.sessionmaker) as session:
        breakers = await queue_repository.breakers_for_update(session, [created["id"]])
        assert list(breakers) == [created["id"]]
        async with asyncio.timeout(10):
            answer = await device.send(vcz(1))
        assert answer.status_code == 202, answer.text
    async with session_scope(api.state.sessionmaker) as session:
        queued = await session.scalar(
            select(func.count()).where(WebhookDelivery.webhook_id == created["id"])
        )
    assert queued == 1


@pytest.mark.parametrize("database_settings", ["postgresql"], indirect=True)
async def test_a_transaction_that_queues_events_plans_its_statements_for_each_call(
    api: Api, receiver: Receiver
) -> None:
    """Each delivery's foreign key to its event is checked by a query the server plans
    once per connection and keeps: planned while the events were few (an emptied queue,
    analyzed so), it scans every event, for as long as nothing gathers their statistics
    again (`bench/webhook_queue_growth.py`). The transaction that queues events asks for
    plans made for each call, whatever the connection prefers."""
    admin = await api.organization()
    device = await sensor(admin)
    await hook(admin, device.uuid, receiver.on("/planned"))
    async with session_scope(api.state.sessionmaker) as session:
        await session.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
        queued = await api.state.outbox.emit(
            session, device_uuid=uuid.UUID(device.uuid), event="payload", body={"n": 1}
        )
        mode = await session.scalar(text("SELECT current_setting('plan_cache_mode')"))
    assert queued == 1
    assert mode == "force_custom_plan"
