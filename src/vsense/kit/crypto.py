"""Password hashing (argon2id), opaque tokens and their lookup hashes."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

DEFAULT_HASHING_THREADS = 2

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified against when an email is unknown, so both paths take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

# Argon2 is slow and memory-hard on purpose (tens of milliseconds, 64 MiB each): run on
# the event loop it stalls every other request of the process. It runs in a pool of its
# own instead (the library releases the GIL), bounded so that a burst of logins costs
# at most this many hashes' worth of memory and cores; the rest wait their turn.
_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_threads = DEFAULT_HASHING_THREADS


def configure_hashing(threads: int) -> None:
    """Size the hashing pool (`VSENSE_PASSWORD_HASHING_THREADS`); idempotent."""
    global _pool, _pool_threads
    with _pool_lock:
        if threads == _pool_threads:
            return
        previous, _pool, _pool_threads = _pool, None, threads
    if previous is not None:
        previous.shutdown(wait=False)  # what it runs finishes; new work goes to the new pool


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=_pool_threads, thread_name_prefix="vsense-password"
            )
        return _pool


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


async def hash_password(password: str) -> str:
    """The argon2id hash of a password, computed in the hashing pool."""
    return await asyncio.get_running_loop().run_in_executor(_executor(), _hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """True when the password matches; runs a full verification even for unknown users
    (in the hashing pool)."""
    return await asyncio.get_running_loop().run_in_executor(
        _executor(), _verify, password_hash, password
    )


def new_token(prefix: str) -> str:
    """A random opaque token such as `vst_...`, 256 bits of entropy."""
    return f"{prefix}{secrets.token_urlsafe(32)}"


def token_digest(token: str) -> str:
    """The stored form of an opaque token: a SHA-256 hex digest.

    The tokens are random with 256 bits of entropy, so a fast hash is enough and lets
    the lookup be a single indexed equality.
    """
    return hashlib.sha256(token.encode()).hexdigest()
