"""throttle_counters: the login throttles and the keepalive-webhook slot, shared

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 20:10:00.000000

Kept in each process's memory before, so N server processes allowed N times the
configured logins and keepalive webhooks. Nothing to move: the old counters were never
stored, and start empty.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import vsense.kit.types

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "throttle_counters",
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=320), nullable=False),
        sa.Column("window_start", vsense.kit.types.UTCDateTime(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_throttle_counters")),
    )
    op.create_index(
        op.f("ix_throttle_counters_window_start"), "throttle_counters", ["window_start"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_throttle_counters_window_start"), table_name="throttle_counters")
    op.drop_table("throttle_counters")
