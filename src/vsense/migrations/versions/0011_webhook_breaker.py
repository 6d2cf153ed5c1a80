"""webhook breaker shared in the database

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 20:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import vsense.kit.types

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhooks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("breaker_failures", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "breaker_open_until", vsense.kit.types.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column("breaker_open_seconds", sa.Float(), server_default="0", nullable=False)
        )
        batch_op.create_index(
            "ix_webhooks_breaker_open",
            ["breaker_open_until"],
            unique=False,
            sqlite_where=sa.text("breaker_open_until IS NOT NULL"),
            postgresql_where=sa.text("breaker_open_until IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("webhooks", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_webhooks_breaker_open",
            sqlite_where=sa.text("breaker_open_until IS NOT NULL"),
            postgresql_where=sa.text("breaker_open_until IS NOT NULL"),
        )
        batch_op.drop_column("breaker_open_seconds")
        batch_op.drop_column("breaker_open_until")
        batch_op.drop_column("breaker_failures")
