"""Roles, scopes and what each role may do. The only place these rules are written."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    STANDARD = "standard"
    OWNER = "owner"  # platform operator; created from the command line only


ALL_SCOPES: tuple[str, ...] = (
    "devices:read",
    "devices:write",
    "images:request",
    "webhooks:read",
    "webhooks:write",
    "alerts:read",
    "alerts:write",
    "users:read",
    "users:write",
    "tokens:write",
)

ROLE_SCOPES: dict[str, frozenset[str]] = {
    Role.OWNER: frozenset(ALL_SCOPES),
    Role.ADMIN: frozenset(ALL_SCOPES),
    # Standard users read the devices of their groups and may ask them for images.
    # Webhooks are not readable: their headers often hold the integrator's credentials.
    Role.STANDARD: frozenset({"devices:read", "images:request", "alerts:read", "tokens:write"}),
}

# Roles that see every device of their organization rather than their groups' only.
ORGANIZATION_WIDE_ROLES = frozenset({Role.ADMIN, Role.OWNER})


def effective_scopes(role: str, token_scopes: frozenset[str] | None = None) -> frozenset[str]:
    """What a caller may do: its role's scopes, narrowed by its token's scopes if any.

    Computed on every request from the owner's *current* role, so a token never
    outlives a demotion.
    """
    role_scopes = ROLE_SCOPES.get(role, frozenset())
    return role_scopes if token_scopes is None else role_scopes & token_scopes
