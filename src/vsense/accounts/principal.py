"""The authenticated caller of a request."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from vsense.accounts.scopes import ORGANIZATION_WIDE_ROLES


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    organization_id: int
    role: str
    scopes: frozenset[str]
    token_kind: Literal["access", "personal"]
    token_id: int | None = None
    family_id: uuid.UUID | None = None
    # True when a personal token's `last_used_at` is older than the recording interval.
    last_use_due: bool = False

    @property
    def sees_whole_organization(self) -> bool:
        """Admins (and owners) see every device of the organization; others their groups'."""
        return self.role in ORGANIZATION_WIDE_ROLES
