"""Password hashing (argon2id), opaque tokens and their lookup hashes."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified against when an email is unknown, so both paths take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when the password matches; runs a full verification even for unknown users."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def new_token(prefix: str) -> str:
    """A random opaque token such as `vst_...`, 256 bits of entropy."""
    return f"{prefix}{secrets.token_urlsafe(32)}"


def token_digest(token: str) -> str:
    """The stored form of an opaque token: a SHA-256 hex digest.

    The tokens are random with 256 bits of entropy, so a fast hash is enough and lets
    the lookup be a single indexed equality.
    """
    return hashlib.sha256(token.encode()).hexdigest()
