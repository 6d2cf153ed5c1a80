"""Counters every process shares: the login throttles and the keepalive-webhook slot.

One row per (scope, key): the start of the key's current window and what it counted
since. Writers change it with one conditional upsert, atomic on both databases (the row
lock on PostgreSQL, the write lock on SQLite), so N processes allow what one allows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from vsense.kit.types import UTCDateTime
from vsense.models.base import Base


class ThrottleCounter(Base):
    """A key's window (`login-failures`/`email:...`, `keepalive`/<device>, ...)."""

    __tablename__ = "throttle_counters"

    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(320), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    count: Mapped[int] = mapped_column(Integer)
