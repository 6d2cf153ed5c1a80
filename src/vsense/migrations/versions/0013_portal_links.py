"""portal_links: time-limited links to one group's webhook portal

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29 23:30:00.000000

An admin hands a link to a customer; the link opens a page where the customer manages
the webhooks of one group's devices and reads their delivery logs. Only the SHA-256 of a
link's token is stored.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import vsense.kit.types

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "portal_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=120), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("expires_at", vsense.kit.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", vsense.kit.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created", vsense.kit.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_portal_links_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_portal_links_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_portal_links_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_portal_links_token_hash")),
    )
    op.create_index(op.f("ix_portal_links_organization_id"), "portal_links", ["organization_id"])
    op.create_index(op.f("ix_portal_links_group_id"), "portal_links", ["group_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_portal_links_group_id"), table_name="portal_links")
    op.drop_index(op.f("ix_portal_links_organization_id"), table_name="portal_links")
    op.drop_table("portal_links")
