"""The history (payload log, metrics, status events) over time: the migration that
partitions it on PostgreSQL and moves its rows (and back), the day partitions the
background jobs make ahead and drop whole, and the chunked retention that SQLite and the
default partitions keep."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.environment import POSTGRES_URL, TEST_SECRET, fresh_postgres_database
from tests.payloads.helpers import drop_postgres_database
from vsense.components import Components
from vsense.config import Settings, load_settings
from vsense.db import create_engine, create_sessionmaker, session_scope
from vsense.kit.time import utcnow
from vsense.kit.types import UTCDateTime
from vsense.migrate import alembic_config, upgrade_async
from vsense.models import Device, Organization
from vsense.partitions import DAYS_AHEAD, HISTORY, SPAN, partition_name, week_of, weeks_between
from vsense.worker import BackgroundRuntime

# The tables as every revision has them (the models describe only the newest).
MESSAGES = sa.table(
    "payload_messages",
    sa.column("id", sa.BigInteger),
    sa.column("device_uuid", sa.Uuid),
    sa.column("type", sa.String),
    sa.column("version", sa.Integer),
    sa.column("timestamp", UTCDateTime),
    sa.column("received_at", UTCDateTime),
    sa.column("payload", sa.JSON),
)
METRICS = sa.table(
    "device_metrics",
    sa.column("id", sa.BigInteger),
    sa.column("device_uuid", sa.Uuid),
    sa.column("message_id", sa.BigInteger),
    sa.column("received_at", UTCDateTime),
    sa.column("epoch", sa.BigInteger),
    sa.column("name", sa.String),
    sa.column("value", sa.Float),
)
EVENTS = sa.table(
    "device_events",
    sa.column("id", sa.BigInteger),
    sa.column("device_uuid", sa.Uuid),
    sa.column("created", UTCDateTime),
    sa.column("status", sa.String),
    sa.column("reason", sa.String),
)


@pytest.fixture
async def fresh(database_settings: Settings, tmp_path: Path) -> AsyncIterator[Settings]:
    """An empty database of the session's backend, for a test that migrates it itself."""
    if database_settings.is_embedded_database:
        yield database_settings.model_copy(update={"data_dir": tmp_path, "database_url": None})
        return
    url = await fresh_postgres_database("history")
    try:
        yield database_settings.model_copy(update={"database_url": url})
    finally:
        await drop_postgres_database(url)


async def _device(engine: AsyncEngine) -> uuid.UUID:
    async with session_scope(create_sessionmaker(engine)) as session:
        organization = Organization(name=f"history-{uuid.uuid4().hex[:8]}")
        session.add(organization)
        await session.flush()
        # Only the columns a device has at revision 0008: later migrations add others.
        device = uuid.uuid4()
        now = utcnow()
        values = {
            "uuid": device,
            "organization_id": organization.id,
            "name": "Hall",
            "client_identifier": "",
            "geo_city": "",
            "geo_country": "",
            "is_online": False,
            "refreshed": now,
            "created": now,
            "updated": now,
        }
        columns = Device.__table__.c
        table = sa.table("devices", *(sa.column(name, columns[name].type) for name in values))
        await session.execute(sa.insert(table).values(values))
        return device


async def _add_history(
    engine: AsyncEngine, device: uuid.UUID, received: datetime, *, with_metric_time: bool
) -> tuple[int, int, int]:
    """A message received at `received`, its metric and a status event then; their ids."""
    async with session_scope(create_sessionmaker(engine)) as session:
        message = await session.scalar(
            sa.insert(MESSAGES)
            .values(
                device_uuid=device,
                type="VCZ",
                version=1,
                timestamp=received - timedelta(seconds=1),
                received_at=received,
                payload={"zones": []},
            )
            .returning(MESSAGES.c.id)
        )
        assert message is not None
        metric_row: dict[str, Any] = {
            "device_uuid": device,
            "message_id": message,
            "epoch": int(received.timestamp()),
            "name": "count",
            "value": 3.0,
        }
        if with_metric_time:
            metric_row["received_at"] = received
        metric = await session.scalar(sa.insert(METRICS).values(metric_row).returning(METRICS.c.id))
        event = await session.scalar(
            sa.insert(EVENTS)
            .values(device_uuid=device, created=received, status="online", reason="payload")
            .returning(EVENTS.c.id)
        )
        assert metric is not None and event is not None
        return message, metric, event


async def _history(engine: AsyncEngine) -> dict[str, set[tuple[Any, ...]]]:
    async with engine.connect() as connection:
        messages = await connection.execute(sa.select(MESSAGES.c.id, MESSAGES.c.received_at))
        metrics = await connection.execute(sa.select(METRICS.c.id, METRICS.c.message_id))
        events = await connection.execute(sa.select(EVENTS.c.id, EVENTS.c.created))
        return {
            "messages": {tuple(row) for row in messages},
            "metrics": {tuple(row) for row in metrics},
            "events": {tuple(row) for row in events},
        }


async def _partition_of_each_row(engine: AsyncEngine, table: str) -> dict[int, str]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            sa.text(f"SELECT id, tableoid::regclass::text FROM {table}")
        )
        return {row[0]: row[1] for row in rows}


async def test_the_migration_moves_the_history_into_day_partitions_and_back(
    fresh: Settings,
) -> None:
    config = alembic_config(fresh)
    await asyncio.to_thread(command.upgrade, config, "0008")
    engine = create_engine(fresh)
    postgres = not fresh.is_embedded_database
    try:
        device = await _device(engine)
        now = utcnow().replace(microsecond=0)
        days = [now, now - timedelta(days=3), now - timedelta(days=40)]
        for received in days:
            await _add_history(engine, device, received, with_metric_time=False)
        before = await _history(engine)
        assert len(before["messages"]) == 3

        await upgrade_async(fresh)
        assert await _history(engine) == before
        async with engine.connect() as connection:
            metric_times = set(
                await connection.execute(
                    sa.select(METRICS.c.message_id, METRICS.c.received_at).order_by(
                        METRICS.c.message_id
                    )
                )
            )
        assert metric_times == {(i, at) for i, at in before["messages"]}
        if postgres:
            for table in ("payload_messages", "device_metrics"):
                found = await _partition_of_each_row(engine, table)
                assert sorted(found.values()) == sorted(
                    partition_name(table, at.date()) for at in days
                )
            events = await _partition_of_each_row(engine, "device_events")
            assert sorted(events.values()) == sorted(
                partition_name("device_events", at.date()) for at in days
            )
        # The sequence went along: a new row takes the next id.
        newest, _, _ = await _add_history(engine, device, now, with_metric_time=True)
        assert newest > max(i for i, _ in before["messages"])

        await asyncio.to_thread(command.downgrade, config, "0008")
        after = await _history(engine)
        assert before["messages"] <= after["messages"]
        assert before["metrics"] <= after["metrics"]
        assert before["events"] <= after["events"]
        # The metric's key to its message is back.
        with pytest.raises(IntegrityError):
            async with session_scope(create_sessionmaker(engine)) as session:
                await session.execute(
                    sa.insert(METRICS).values(
                        device_uuid=device, message_id=newest + 1000, epoch=0, name="x", value=0.0
                    )
                )
        if postgres:
            async with engine.connect() as connection:
                kinds = set(
                    await connection.scalars(
                        sa.text(
                            "SELECT relkind::text FROM pg_class WHERE relname IN "
                            "('payload_messages', 'device_metrics', 'device_events')"
                        )
                    )
                )
            assert kinds == {"r"}
    finally:
        await engine.dispose()


async def test_retention_deletes_the_history_past_it_and_keeps_the_rest(
    state: Components, shared_engine: AsyncEngine
) -> None:
    device = await _device(shared_engine)
    now = utcnow()
    old = now - state.settings.payload_retention - timedelta(days=2)
    old_ids = await _add_history(shared_engine, device, old, with_metric_time=True)
    new_ids = await _add_history(shared_engine, device, now, with_metric_time=True)

    await BackgroundRuntime(state).purge_once(now)

    left = await _history(shared_engine)
    assert {i for i, _ in left["messages"]} & {old_ids[0], new_ids[0]} == {new_ids[0]}
    assert {i for i, _ in left["metrics"]} & {old_ids[1], new_ids[1]} == {new_ids[1]}
    assert {i for i, _ in left["events"]} & {old_ids[2], new_ids[2]} == {new_ids[2]}


@pytest.fixture
async def postgres_runtime(tmp_path: Path) -> AsyncIterator[tuple[BackgroundRuntime, AsyncEngine]]:
    """The background jobs over a PostgreSQL database of their own (they drop days)."""
    assert POSTGRES_URL, "a test taking postgres_runtime is marked postgres"
    url = await fresh_postgres_database("partitions")
    settings = load_settings(
        data_dir=tmp_path, environment="test", secret_key=TEST_SECRET, database_url=url
    )
    await upgrade_async(settings)
    engine = create_engine(settings)
    try:
        yield BackgroundRuntime(Components.for_server(settings, engine)), engine
    finally:
        await engine.dispose()
        await drop_postgres_database(url)


async def _partition_days(engine: AsyncEngine, table: str) -> set[str]:
    async with engine.connect() as connection:
        rows = await connection.scalars(
            sa.text(
                "SELECT inhrelid::regclass::text FROM pg_inherits "
                "WHERE inhparent = CAST(:table AS regclass)"
            ),
            {"table": table},
        )
        return set(rows)


@pytest.mark.postgres
async def test_the_job_makes_the_coming_days_and_moves_in_what_the_default_caught(
    postgres_runtime: tuple[BackgroundRuntime, AsyncEngine],
) -> None:
    runtime, engine = postgres_runtime
    later = datetime.combine(utcnow().date() + timedelta(days=30), datetime.min.time(), UTC)
    device = await _device(engine)
    early = await _add_history(
        engine, device, later + timedelta(days=2, hours=5), with_metric_time=True
    )
    assert (await _partition_of_each_row(engine, "payload_messages"))[early[0]] == (
        "payload_messages_default"
    )

    made = await runtime.maintain_partitions(later)

    weeks = list(weeks_between(later.date(), later.date() + timedelta(days=DAYS_AHEAD)))
    assert len(weeks) == 2  # this week, and the next one, which the coming days reach
    assert sorted(made) == sorted(partition_name(h.table, week) for h in HISTORY for week in weeks)
    for history in HISTORY:
        assert {partition_name(history.table, week) for week in weeks} <= await _partition_days(
            engine, history.table
        )
    moved = (later + timedelta(days=2)).date()
    assert (await _partition_of_each_row(engine, "payload_messages"))[early[0]] == partition_name(
        "payload_messages", moved
    )
    assert (await _partition_of_each_row(engine, "device_metrics"))[early[1]] == partition_name(
        "device_metrics", moved
    )
    assert await runtime.maintain_partitions(later) == []


@pytest.mark.postgres
async def test_retention_drops_whole_days_past_it_on_postgresql(
    postgres_runtime: tuple[BackgroundRuntime, AsyncEngine],
) -> None:
    runtime, engine = postgres_runtime
    retention = runtime.parts.settings.payload_retention
    this_week = datetime.combine(week_of(utcnow().date()), datetime.min.time(), UTC)
    device = await _device(engine)
    gone = await _add_history(engine, device, this_week + timedelta(hours=1), with_metric_time=True)
    kept = await _add_history(
        engine, device, this_week + SPAN + timedelta(hours=1), with_metric_time=True
    )

    # This week is past retention from the start of the next on; the next one is not.
    dropped = await runtime.drop_old_partitions(this_week + SPAN + retention)

    assert sorted(dropped) == sorted(partition_name(h.table, this_week.date()) for h in HISTORY)
    left = await _history(engine)
    assert {i for i, _ in left["messages"]} == {kept[0]}
    assert {i for i, _ in left["metrics"]} == {kept[1]}
    assert {i for i, _ in left["events"]} == {kept[2]}
    for history in HISTORY:
        assert partition_name(history.table, this_week.date()) not in await _partition_days(
            engine, history.table
        )
    assert gone[0] not in await _partition_of_each_row(engine, "payload_messages")
