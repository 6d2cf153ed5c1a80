"""Console sessions: the API's login session carried in cookies, and its CSRF token.

A console login is an API login (`accounts.service.check_password` / `open_session`):
the same refresh-token family, the same access tokens, revoked by the same logout. The
browser holds the pair in two HttpOnly cookies instead of a script holding it; nothing
else is a credential, so the console opens no way in that the API lacks.

Cookies ride along with every request a page makes, so every state-changing request
also carries a CSRF token: an HMAC of the session's family id under the process's
signing key. It needs no storage, stays the same across refreshes, and dies with the
family. Before login there is no family; the login form uses a double-submit cookie.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

from fastapi import Request, Response

from vsense.accounts.schemas import TokenPair
from vsense.kit.cache import TTLCache
from vsense.kit.errors import Unauthorized

ACCESS_COOKIE = "vsense_session"
REFRESH_COOKIE = "vsense_refresh"
LOGIN_CSRF_COOKIE = "vsense_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
COOKIE_PATH = "/console"
# A portal link's token, once opened: HttpOnly, SameSite=Strict, sent to the portal only.
PORTAL_COOKIE = "vsense_portal"
PORTAL_COOKIE_PATH = "/portal"
# A refresh token spent by one request is answered again, for this long, to the requests
# that raced it with the same cookie (a page and its poll): without this, the second
# would look like a stolen token coming back and revoke the whole session.
REFRESH_GRACE_SECONDS = 30.0


class LoginRequired(Unauthorized):
    """No valid console session: the console answers with its login page."""


@dataclass(frozen=True, slots=True)
class CookiePair:
    access_token: str
    refresh_token: str


class ConsoleSessions:
    """What a process keeps for console sessions: the CSRF key and the pairs handed out
    for a refresh token within the grace period."""

    def __init__(self, signing_key: str, refresh_ttl_seconds: int) -> None:
        self._key = hashlib.sha256(b"vsense console csrf\0" + signing_key.encode()).digest()
        self.refresh_ttl_seconds = refresh_ttl_seconds
        self.recent_refreshes = TTLCache(ttl=REFRESH_GRACE_SECONDS)
        self.refresh_locks: dict[str, asyncio.Lock] = {}

    def csrf_token(self, family_id: uuid.UUID) -> str:
        return hmac.new(self._key, family_id.bytes, hashlib.sha256).hexdigest()

    def csrf_valid(self, family_id: uuid.UUID, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(self.csrf_token(family_id), given)

    def portal_csrf_token(self, token_hash: str) -> str:
        """The CSRF token of a portal session, keyed on its link's token hash (a secret
        no page shows): the same mechanism as a console session's, never equal to one."""
        return hmac.new(self._key, b"portal\0" + token_hash.encode(), hashlib.sha256).hexdigest()

    def portal_csrf_valid(self, token_hash: str, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(self.portal_csrf_token(token_hash), given)

    def lock_for(self, refresh_token: str) -> asyncio.Lock:
        """One refresh at a time per token in this process; the lock is dropped once
        nobody holds it."""
        digest = hashlib.sha256(refresh_token.encode()).hexdigest()
        lock = self.refresh_locks.get(digest)
        if lock is None:
            if len(self.refresh_locks) > 10_000:
                self.refresh_locks = {k: v for k, v in self.refresh_locks.items() if v.locked()}
            lock = self.refresh_locks[digest] = asyncio.Lock()
        return lock


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session_cookies(
    response: Response, request: Request, sessions: ConsoleSessions, pair: TokenPair | CookiePair
) -> None:
    """Both tokens, HttpOnly, SameSite=Lax, Secure over HTTPS, scoped to the console and
    kept as long as the refresh token lives (an expired access token is refreshed)."""
    for name, value in (
        (ACCESS_COOKIE, pair.access_token),
        (REFRESH_COOKIE, pair.refresh_token),
    ):
        response.set_cookie(
            name,
            value,
            max_age=sessions.refresh_ttl_seconds,
            path=COOKIE_PATH,
            httponly=True,
            samesite="lax",
            secure=is_https(request),
        )


def clear_session_cookies(response: Response, request: Request) -> None:
    for name in (ACCESS_COOKIE, REFRESH_COOKIE):
        response.delete_cookie(
            name, path=COOKIE_PATH, httponly=True, samesite="lax", secure=is_https(request)
        )


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def set_login_csrf(response: Response, request: Request, token: str) -> None:
    """The login form's token as a cookie too: the form's POST must match it."""
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


def login_csrf_valid(request: Request, given: str | None) -> bool:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    return bool(expected and given) and hmac.compare_digest(expected or "", given or "")


def set_portal_cookie(response: Response, request: Request, token: str, max_age: int) -> None:
    """The link's token, for as long as the link lives, to the portal's pages only."""
    response.set_cookie(
        PORTAL_COOKIE,
        token,
        max_age=max(1, max_age),
        path=PORTAL_COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


def clear_portal_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        PORTAL_COOKIE,
        path=PORTAL_COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )
