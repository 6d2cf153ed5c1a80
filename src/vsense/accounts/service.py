"""Login, refresh-token rotation, logout, bearer authentication, personal tokens."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.accounts import repository
from vsense.accounts.principal import Principal
from vsense.accounts.schemas import LoginUser, Token, TokenCreate, TokenPair
from vsense.accounts.scopes import effective_scopes
from vsense.accounts.throttle import SharedThrottle
from vsense.changes import EVERYTHING, ChangeFeed
from vsense.config import Settings
from vsense.db import Database
from vsense.kit.cache import TTLCache
from vsense.kit.crypto import new_token, token_digest, verify_password
from vsense.kit.errors import (
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
    field_error,
)
from vsense.kit.pagination import page_meta, page_request
from vsense.kit.schemas import Page
from vsense.kit.time import utcnow
from vsense.models import PersonalAccessToken, User

ACCESS_PREFIX = "vsa_"  # marks our JWTs apart from opaque tokens at a glance
PERSONAL_PREFIX = "vst_"
REFRESH_PREFIX = "vsr_"
DEVICE_PREFIX = "vsd_"
WRONG_CREDENTIALS = "The email or password is wrong."
PERSONAL_TOKEN_TOUCH_INTERVAL = timedelta(seconds=60)
AUTH_NAMESPACE = "bearer"
CALLERS_TOPIC = "callers"  # changes of a user, its tokens or its sessions (`vsense.changes`)


class Callers:
    """What a process keeps to know its callers: the signing key of access tokens, the
    login throttles (rows of the database, shared by every process), and verified
    bearers reused for `auth_cache_ttl` seconds while `changes` hears every process's
    changes to users and tokens (else for at most a second)."""

    def __init__(
        self, settings: Settings, signing_key: str, database: Database, changes: ChangeFeed
    ) -> None:
        self.settings = settings
        self.signing_key = signing_key
        self.database = database
        self.changes = changes
        self.throttle = SharedThrottle(
            "login-failures", window=settings.login_failure_window.total_seconds()
        )
        self.attempts = SharedThrottle(
            "login-attempts", window=settings.login_attempt_window.total_seconds()
        )
        self.cache = TTLCache(ttl=settings.auth_cache_ttl.total_seconds())
        changes.subscribe(CALLERS_TOPIC, self._changed)

    def _changed(self, key: str) -> None:
        if key == EVERYTHING:
            self.cache.clear()
        else:
            self.cache.invalidate(("user", int(key)))

    def forget_user(self, user_id: int, session: AsyncSession | None = None) -> None:
        """Drop every cached caller of a user: its role, tokens or sessions changed.

        With the session of the change, the callers are dropped again once it commits
        (a request of the same user verified between now and the commit read the old
        rows), and every other process drops them when it commits (`vsense.changes`).
        """
        self.cache.invalidate(("user", user_id))
        if session is not None:
            self.changes.announce(session, CALLERS_TOPIC, user_id)


class RefreshTokenReused(Unauthorized):
    """A spent refresh token came back: the family is revoked, and that must be kept."""

    commit_session = True


async def check_password(
    session: AsyncSession, callers: Callers, *, email: str, password: str, client_address: str
) -> User:
    """The user whose email and password these are. Throttled per email and per client
    address: failures over `login_failure_window`, and every attempt over
    `login_attempt_window`.

    Run before the session's write transaction opens (`open_session`): argon2 takes tens
    of milliseconds, and on SQLite a writer holds the database's only write lock.
    """
    settings = callers.settings
    email_key, address_key = f"email:{email.lower()}", f"addr:{client_address}"
    now = utcnow()
    # The counters are rows every process shares, written in transactions of their own
    # (a refused login still counts).
    async with callers.database.write() as counters:
        wait = await callers.throttle.retry_after(
            counters,
            {
                email_key: settings.login_max_failures_per_email,
                address_key: settings.login_max_failures_per_address,
            },
            now,
        )
        if wait:
            raise TooManyRequests(
                "Too many failed logins; wait before trying again.", retry_after=wait
            )
        # Every attempt counts, successful or not, before any work: argon2 costs the same
        # either way, and concurrent attempts count as soon as they arrive.
        wait = await callers.attempts.record(
            counters,
            {
                email_key: settings.login_max_attempts_per_email,
                address_key: settings.login_max_attempts_per_address,
            },
            now,
        )
    if wait:
        raise TooManyRequests("Too many logins; wait before trying again.", retry_after=wait)
    user = await repository.get_user_by_email(session, email)
    if not await verify_password(user.password_hash if user else None, password) or user is None:
        async with callers.database.write() as counters:
            await callers.throttle.record(counters, {email_key: 0, address_key: 0}, utcnow())
        raise Unauthorized(WRONG_CREDENTIALS)
    async with callers.database.write() as counters:
        await callers.throttle.reset(counters, email_key)
    return user


async def open_session(session: AsyncSession, callers: Callers, verified: User) -> TokenPair:
    """A new session for a user `check_password` verified, unless the user or its
    password changed in between. The user's row is locked, as a password change locks it
    before it ends the sessions: one of the two waits for the other, so a new session is
    either refused or ended, never missed."""
    user = await repository.lock_user(session, verified.id)
    if user is None or user.password_hash != verified.password_hash:
        raise Unauthorized(WRONG_CREDENTIALS)
    family = await repository.create_family(session, user.id)
    return await _issue(session, callers, user, family.id)


async def refresh(session: AsyncSession, callers: Callers, refresh_token: str) -> TokenPair:
    """Spend a refresh token for a new pair. A reused token revokes its whole family."""
    now = utcnow()
    found = await repository.get_refresh_token(session, token_digest(refresh_token))
    if found is None:
        raise Unauthorized("The refresh token is invalid.")
    token, family = found
    if family.revoked_at is not None:
        raise Unauthorized("The refresh token has been revoked; log in again.")
    if token.used_at is not None or not await repository.mark_refresh_token_used(
        session, token.id, now
    ):
        await repository.revoke_family(session, family.id, "reuse", now)
        callers.forget_user(family.user_id, session)
        raise RefreshTokenReused(
            "The refresh token was already used; the session is revoked, log in again."
        )
    if token.expires_at <= now:
        raise Unauthorized("The refresh token has expired; log in again.")
    user = await repository.get_user_by_id(session, family.user_id)
    if user is None:
        raise Unauthorized("The refresh token is invalid.")
    return await _issue(session, callers, user, family.id)


async def logout(session: AsyncSession, callers: Callers, principal: Principal) -> None:
    """End the caller's session: its refresh-token family and the access tokens of it."""
    if principal.family_id is None:
        raise Forbidden("Logout ends a login session; a personal access token is revoked instead.")
    await repository.revoke_family(session, principal.family_id, "logout", utcnow())
    callers.forget_user(principal.user_id, session)


async def _issue(
    session: AsyncSession, callers: Callers, user: User, family_id: uuid.UUID
) -> TokenPair:
    settings = callers.settings
    now = utcnow()
    refresh_token = new_token(REFRESH_PREFIX)
    await repository.add_refresh_token(
        session,
        family_id,
        token_digest(refresh_token),
        now + settings.refresh_token_ttl,
    )
    claims = {
        "sub": str(user.id),
        "fam": str(family_id),
        "iat": int(now.timestamp()),
        "exp": int((now + settings.access_token_ttl).timestamp()),
    }
    access_token = ACCESS_PREFIX + jwt.encode(claims, callers.signing_key, algorithm="HS256")
    return TokenPair(
        user=LoginUser(name=user.name, email=user.email, role=[user.role]),
        expires_in=int(settings.access_token_ttl.total_seconds()),
        access_token=access_token,
        refresh_token=refresh_token,
    )


def cached_caller(callers: Callers, bearer: str) -> Principal | None:
    """The caller `authenticate` verified for this bearer, if still valid and younger
    than the cache trusts (`auth_cache_ttl` while the change feed is heard, less when
    it is not); None means it must be verified (which needs the database)."""
    cache = callers.cache
    max_age = callers.changes.horizon(cache.ttl)
    user_id = cache.get(AUTH_NAMESPACE, bearer, max_age)
    cached = None if user_id is None else cache.get(("user", user_id), bearer, max_age)
    if cached is None:
        return None
    principal, expires_at = cached
    if expires_at is not None and expires_at <= utcnow():
        return None
    return replace(principal, last_use_due=False)  # type: ignore[no-any-return]


async def authenticate(session: AsyncSession, callers: Callers, bearer: str) -> Principal:
    """The caller behind a bearer token, with scopes from the owner's current role.

    A verified caller is kept for `auth_cache_ttl` seconds under its user's namespace;
    every change to a user, its tokens or its sessions drops that namespace
    (`forget_user`), so this process never serves a stale role or a revoked token.
    """
    cached = cached_caller(callers, bearer)
    if cached is not None:
        return cached
    cache = callers.cache
    epoch = cache.epoch  # a change heard while the rows are read keeps them out of the cache
    if bearer.startswith(ACCESS_PREFIX):
        principal, expires_at = await _authenticate_access(
            session, callers, bearer[len(ACCESS_PREFIX) :]
        )
    elif bearer.startswith(PERSONAL_PREFIX):
        principal, expires_at = await _authenticate_personal(session, bearer)
    else:
        raise Unauthorized("The bearer token is malformed.")
    cache.put(AUTH_NAMESPACE, bearer, principal.user_id, since=epoch)
    cache.put(("user", principal.user_id), bearer, (principal, expires_at), since=epoch)
    return principal


async def end_sessions(
    session: AsyncSession,
    callers: Callers | None,
    user_id: int,
    *,
    reason: str,
    keep_family: uuid.UUID | None = None,
) -> None:
    """End every login session of a user (but `keep_family`): its refresh-token
    families, and with them the access tokens, which name their family and are refused
    once it is revoked. Personal access tokens are separate credentials and stay."""
    await repository.revoke_user_families(session, user_id, reason, utcnow(), keep=keep_family)
    if callers is not None:
        callers.forget_user(user_id, session)


async def _authenticate_access(
    session: AsyncSession, callers: Callers, raw: str
) -> tuple[Principal, datetime | None]:
    try:
        claims: dict[str, Any] = jwt.decode(
            raw,
            callers.signing_key,
            algorithms=["HS256"],
            options={"require": ["exp", "sub", "fam"]},
        )
        user_id, family_id = int(claims["sub"]), uuid.UUID(claims["fam"])
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("The access token has expired; refresh it or log in again.") from exc
    except (jwt.InvalidTokenError, ValueError, TypeError) as exc:
        raise Unauthorized("The access token is invalid.") from exc
    owner = await repository.access_token_owner(session, user_id, family_id)
    if owner is None or owner[3] is not None:
        raise Unauthorized("The access token has been revoked; log in again.")
    _, organization_id, role, _ = owner
    principal = Principal(
        user_id=user_id,
        organization_id=organization_id,
        role=role,
        scopes=effective_scopes(role),
        token_kind="access",
        family_id=family_id,
    )
    return principal, datetime.fromtimestamp(int(claims["exp"]), UTC)


async def _authenticate_personal(
    session: AsyncSession, raw: str
) -> tuple[Principal, datetime | None]:
    owner = await repository.personal_token_owner(session, token_digest(raw))
    if owner is None:
        raise Unauthorized("The token is invalid or has been revoked.")
    token_id, scopes, expires_at, last_used_at, user_id, organization_id, role = owner
    now = utcnow()
    if expires_at is not None and expires_at <= now:
        raise Unauthorized("The token has expired.")
    principal = Principal(
        user_id=user_id,
        organization_id=organization_id,
        role=role,
        scopes=effective_scopes(role, frozenset(scopes)),
        token_kind="personal",
        token_id=token_id,
        last_use_due=last_used_at is None or now - last_used_at > PERSONAL_TOKEN_TOUCH_INTERVAL,
    )
    return principal, expires_at


async def record_personal_token_use(database: Database, token_id: int) -> None:
    """Note when a personal token was last used, in a transaction of its own.

    Called after the response (at most once a minute per token), so that read
    requests stay read-only and no request waits on this write.
    """
    async with database.write() as session:
        await repository.touch_personal_token(session, token_id, utcnow())


def require_scope(principal: Principal, scope: str) -> None:
    """403 unless the caller's effective scopes include `scope`."""
    if scope not in principal.scopes:
        raise Forbidden(f"This needs the `{scope}` permission, which your token or role lacks.")


async def create_personal_token(
    session: AsyncSession, principal: Principal, body: TokenCreate
) -> tuple[PersonalAccessToken, str]:
    """A new long-lived token for the caller, never wider than the caller's own rights."""
    require_scope(principal, "tokens:write")
    wider = sorted(set(body.scopes) - principal.scopes)
    if wider:
        raise Unprocessable(
            "A token cannot carry permissions you do not have.",
            errors=[field_error("scopes", f"not yours to grant: {', '.join(wider)}")],
        )
    if body.expires_at is not None:
        expires_at = body.expires_at
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        if expires_at <= utcnow():
            raise Unprocessable(
                "The expiry must be in the future.",
                errors=[field_error("expires_at", "must be in the future")],
            )
        body = body.model_copy(update={"expires_at": expires_at})
    raw = new_token(PERSONAL_PREFIX)
    token = PersonalAccessToken(
        user_id=principal.user_id,
        name=body.name,
        token_hash=token_digest(raw),
        prefix=raw[:8],
        scopes=sorted(set(body.scopes)),
        expires_at=body.expires_at,
    )
    await repository.add_personal_token(session, token)
    return token, raw


async def list_personal_tokens(
    session: AsyncSession, principal: Principal, *, page: str | None, per_page: str | None
) -> Page[Token]:
    """The caller's own tokens; any authenticated caller may list them."""
    request = page_request(page, per_page)
    tokens, total = await repository.list_personal_tokens(
        session, principal.user_id, offset=request.offset, limit=request.per_page
    )
    return Page[Token].model_validate(
        {
            "data": [Token.model_validate(t) for t in tokens],
            "meta": page_meta(request, total, len(tokens)),
        }
    )


async def revoke_personal_token(
    session: AsyncSession, callers: Callers, principal: Principal, token_id: int
) -> None:
    require_scope(principal, "tokens:write")
    if not await repository.delete_personal_token(session, principal.user_id, token_id):
        raise NotFound("No such token.")
    callers.forget_user(principal.user_id, session)
