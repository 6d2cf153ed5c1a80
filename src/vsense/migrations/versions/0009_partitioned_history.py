"""partitioned history: the payload log, its metrics and status events by week

On PostgreSQL `payload_messages`, `device_metrics` and `device_events` become tables
partitioned by RANGE on their time of arrival (`received_at`, `created`), one partition
per ISO week (UTC) and a default one (see `vsense.partitions`). Each table is renamed,
the partitioned one created in its place with the same columns, sequence, indexes and
foreign keys, the partitions of every week that holds rows made (and those of the coming
days), the rows copied, and the old table dropped. The copy runs in the migration's
transaction: on a large log, run `vsense db upgrade` in a maintenance window.

A primary key of a partitioned table must hold the partition key, so on PostgreSQL it
becomes `(id, received_at)` / `(id, created)`; ids still come from one sequence and
stay unique. A foreign key to such a table would have to name both columns, and
dropping a week would then have to prove that nothing still points into it (a scan of
the referencing table). So `device_metrics.message_id` no longer references
`payload_messages` on either database: a metric row now carries its message's
`received_at`, lands in the same week, and goes with it. SQLite keeps plain tables; its
retention deletes a message's metrics with it (`payloads/repository.py`).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 20:05:00
"""

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from alembic import op

import vsense.kit.types
from vsense.partitions import (
    DAYS_AHEAD,
    HISTORY,
    SPAN,
    History,
    partition_name,
    week_of,
    weeks_between,
)

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "{}_unpartitioned"
METRIC_MESSAGE_FK = "fk_device_metrics_message_id_payload_messages"
INDEXES = {
    "payload_messages": [("ix_payload_messages_device_time", "device_uuid, timestamp, id")],
    "device_metrics": [
        ("ix_device_metrics_device_epoch", "device_uuid, epoch"),
        ("ix_device_metrics_message_id", "message_id"),
    ],
    "device_events": [("ix_device_events_device_created", "device_uuid, created, id")],
}


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _partition_on_postgresql()
        return
    with op.batch_alter_table("device_metrics", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("received_at", vsense.kit.types.UTCDateTime(timezone=True), nullable=True)
        )
    op.execute(
        "UPDATE device_metrics SET received_at = (SELECT received_at FROM payload_messages "
        "WHERE payload_messages.id = device_metrics.message_id)"
    )
    with op.batch_alter_table("device_metrics", schema=None) as batch_op:
        batch_op.alter_column("received_at", nullable=False)
        batch_op.drop_constraint(METRIC_MESSAGE_FK, type_="foreignkey")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _unpartition_on_postgresql()
        return
    # Metrics whose message went meanwhile (there is no cascade now) would break the key.
    op.execute(
        "DELETE FROM device_metrics WHERE NOT EXISTS "
        "(SELECT 1 FROM payload_messages WHERE payload_messages.id = device_metrics.message_id)"
    )
    with op.batch_alter_table("device_metrics", schema=None) as batch_op:
        batch_op.drop_column("received_at")
        batch_op.create_foreign_key(
            METRIC_MESSAGE_FK, "payload_messages", ["message_id"], ["id"], ondelete="CASCADE"
        )


# --- PostgreSQL ----------------------------------------------------------------------


def _set_aside(table: str) -> str:
    """Rename a table and the indexes whose names the new one takes; its sequence is
    handed over to whatever owns it next."""
    old = OLD.format(table)
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    op.execute(f"ALTER INDEX pk_{table} RENAME TO pk_{old}")
    for index, _ in INDEXES[table]:
        op.execute(f"ALTER INDEX {index} RENAME TO {index}_old")
    op.execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY NONE")
    return old


def _finish(table: str, primary_key: str, foreign_keys: list[str]) -> None:
    op.execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY {table}.id")
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY ({primary_key})")
    op.execute(
        f"ALTER TABLE {table} ADD CONSTRAINT fk_{table}_device_uuid_devices "
        "FOREIGN KEY (device_uuid) REFERENCES devices (uuid) ON DELETE CASCADE"
    )
    for constraint in foreign_keys:
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {constraint}")
    for index, columns in INDEXES[table]:
        op.execute(f"CREATE INDEX {index} ON {table} ({columns})")


def _days_of(table: str, key: str) -> list[date]:
    rows = op.get_bind().execute(
        sa.text(f"SELECT DISTINCT (date_trunc('day', {key} AT TIME ZONE 'UTC'))::date FROM {table}")
    )
    return [row[0] for row in rows]


def _make_partitions(history: History, weeks: set[date]) -> None:
    op.execute(f"CREATE TABLE {history.table}_default PARTITION OF {history.table} DEFAULT")
    for day in sorted(weeks):
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        end = start + SPAN
        op.execute(
            f"CREATE TABLE {partition_name(history.table, day)} PARTITION OF {history.table} "
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )


def _partition_on_postgresql() -> None:
    today = datetime.now(UTC).date()
    ahead = set(weeks_between(today, today + timedelta(days=DAYS_AHEAD)))
    messages, metrics, events = HISTORY
    message_days = {week_of(day) for day in _days_of("payload_messages", "received_at")} | ahead
    event_days = {week_of(day) for day in _days_of("device_events", "created")} | ahead

    old_messages = _set_aside("payload_messages")
    op.execute(
        f"CREATE TABLE payload_messages (LIKE {old_messages} INCLUDING DEFAULTS) "
        "PARTITION BY RANGE (received_at)"
    )
    _make_partitions(messages, message_days)
    op.execute(f"INSERT INTO payload_messages SELECT * FROM {old_messages}")
    _finish("payload_messages", "id, received_at", [])

    old_metrics = _set_aside("device_metrics")
    op.execute(f"ALTER TABLE {old_metrics} DROP CONSTRAINT {METRIC_MESSAGE_FK}")
    op.execute(
        f"CREATE TABLE device_metrics (LIKE {old_metrics} INCLUDING DEFAULTS, "
        "received_at TIMESTAMP WITH TIME ZONE NOT NULL) PARTITION BY RANGE (received_at)"
    )
    _make_partitions(metrics, message_days)
    op.execute(
        f"INSERT INTO device_metrics SELECT metric.*, message.received_at FROM {old_metrics} "
        f"metric JOIN {old_messages} message ON message.id = metric.message_id"
    )
    _finish("device_metrics", "id, received_at", [])

    old_events = _set_aside("device_events")
    op.execute(
        f"CREATE TABLE device_events (LIKE {old_events} INCLUDING DEFAULTS) "
        "PARTITION BY RANGE (created)"
    )
    _make_partitions(events, event_days)
    op.execute(f"INSERT INTO device_events SELECT * FROM {old_events}")
    _finish("device_events", "id, created", [])

    for old in (old_metrics, old_messages, old_events):
        op.execute(f"DROP TABLE {old}")


def _unpartition_on_postgresql() -> None:
    partitioned = "{}_partitioned"
    for history in HISTORY:
        table = history.table
        op.execute(f"ALTER TABLE {table} RENAME TO {partitioned.format(table)}")
        op.execute(f"ALTER INDEX pk_{table} RENAME TO pk_{partitioned.format(table)}")
        for index, _ in INDEXES[table]:
            op.execute(f"ALTER INDEX {index} RENAME TO {index}_old")
        op.execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY NONE")
        op.execute(f"CREATE TABLE {table} (LIKE {partitioned.format(table)} INCLUDING DEFAULTS)")
    op.execute("ALTER TABLE device_metrics DROP COLUMN received_at")
    op.execute("INSERT INTO payload_messages SELECT * FROM payload_messages_partitioned")
    op.execute("INSERT INTO device_events SELECT * FROM device_events_partitioned")
    _finish("payload_messages", "id", [])
    _finish("device_events", "id", [])
    # Metrics whose message went meanwhile (there is no cascade now) would break the key.
    columns = "id, device_uuid, message_id, epoch, name, value, marker_id, marker_name"
    op.execute(
        f"INSERT INTO device_metrics ({columns}) SELECT {columns} FROM device_metrics_partitioned "
        "metric WHERE EXISTS (SELECT 1 FROM payload_messages WHERE id = metric.message_id)"
    )
    _finish(
        "device_metrics",
        "id",
        [
            f"{METRIC_MESSAGE_FK} FOREIGN KEY (message_id) REFERENCES payload_messages (id) "
            "ON DELETE CASCADE"
        ],
    )
    for history in HISTORY:
        op.execute(f"DROP TABLE {partitioned.format(history.table)}")
