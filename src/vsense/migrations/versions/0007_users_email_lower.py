"""users: one account per email whatever its case

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 17:40:00.000000

Emails were unique as typed, and case-insensitively only in code, so concurrent sign-ups
could create `Race@`, `race@` and `RACE@`. Before the unique index on lower(email) can
exist, such duplicates are resolved: the oldest account of each email (the lowest id)
is kept as it is; each later one is kept too (nothing it owns is deleted) but disabled:
its email becomes `duplicate {id} of user {kept id}: {email}` (spaces make it no valid
email, so it can never collide with a real one), its password can no longer match, its
sessions are revoked and its personal tokens expire now. An admin sees it in the user
list and may delete it, or give it a new email and password to use it again.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import vsense.kit.types

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Not an argon2 hash: verification fails on it, so nobody logs in with a password.
DISABLED_PASSWORD_HASH = "!disabled: its email duplicated another account's"

users = sa.table(
    "users",
    sa.column("id", sa.Integer()),
    sa.column("email", sa.String()),
    sa.column("password_hash", sa.String()),
)
families = sa.table(
    "refresh_token_families",
    sa.column("user_id", sa.Integer()),
    sa.column("revoked_at", vsense.kit.types.UTCDateTime(timezone=True)),
    sa.column("revoked_reason", sa.String()),
)
personal_tokens = sa.table(
    "personal_access_tokens",
    sa.column("user_id", sa.Integer()),
    sa.column("expires_at", vsense.kit.types.UTCDateTime(timezone=True)),
)


def _disable_later_duplicates(connection: sa.Connection) -> None:
    earlier = users.alias("earlier")
    kept = (
        sa.select(sa.func.min(earlier.c.id))
        .where(sa.func.lower(earlier.c.email) == sa.func.lower(users.c.email))
        .scalar_subquery()
    )
    duplicates = connection.execute(
        sa.select(users.c.id, users.c.email, kept)
        .where(
            sa.exists().where(
                sa.func.lower(earlier.c.email) == sa.func.lower(users.c.email),
                earlier.c.id < users.c.id,
            )
        )
        .order_by(users.c.id)
    ).all()
    now = datetime.now(UTC)
    for user_id, email, kept_id in duplicates:
        marked = f"duplicate {user_id} of user {kept_id}: {email}"[:254]
        connection.execute(
            sa.update(users)
            .where(users.c.id == user_id)
            .values(email=marked, password_hash=DISABLED_PASSWORD_HASH)
        )
        connection.execute(
            sa.update(families)
            .where(families.c.user_id == user_id, families.c.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason="duplicate-email")
        )
        connection.execute(
            sa.update(personal_tokens)
            .where(
                personal_tokens.c.user_id == user_id,
                sa.or_(personal_tokens.c.expires_at.is_(None), personal_tokens.c.expires_at > now),
            )
            .values(expires_at=now)
        )


def upgrade() -> None:
    _disable_later_duplicates(op.get_bind())
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(
            "uq_users_email_lower", [sa.literal_column("lower(email)")], unique=True
        )


def downgrade() -> None:
    # The disabled duplicates stay disabled: which of them was meant cannot be told.
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index("uq_users_email_lower")
