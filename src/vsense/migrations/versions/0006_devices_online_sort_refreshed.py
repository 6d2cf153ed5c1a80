"""devices: an index for sorting by online status; `refreshed` filled where null

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 17:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.create_index(
            "ix_devices_org_online_name",
            ["organization_id", "is_online", "name", "uuid"],
            unique=False,
        )
    # `refreshed` is never null: a device that never reported was last checked when it
    # was onboarded (or when it was last seen, for rows that have that without it).
    op.execute(
        sa.text(
            "UPDATE devices SET refreshed = COALESCE(last_seen, created) WHERE refreshed IS NULL"
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_index("ix_devices_org_online_name")
