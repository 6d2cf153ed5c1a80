"""The console's caller: the API's principal, found from the session cookies.

Declared first in every console route, before the unit of work (`SessionDep`): a
refresh writes in a transaction of its own, and the CSRF check refuses a forged request
before any write transaction opens.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from vsense.accounts import service as accounts
from vsense.accounts.deps import CallersDep
from vsense.accounts.principal import Principal
from vsense.console.sessions import (
    ACCESS_COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    REFRESH_COOKIE,
    ConsoleSessions,
    CookiePair,
    LoginRequired,
)
from vsense.db import session_scope
from vsense.deps import READ_METHODS, DatabaseDep
from vsense.kit.errors import AppError, Forbidden, Unauthorized
from vsense.kit.parts import part

ConsoleSessionsDep = Annotated[ConsoleSessions, Depends(part(ConsoleSessions))]
CSRF_REFUSED = (
    "This form did not come from your console session (its CSRF token is missing or "
    "wrong). Reload the page and try again."
)


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    principal: Principal
    family_id: uuid.UUID
    csrf_token: str

    @property
    def is_admin(self) -> bool:
        return self.principal.sees_whole_organization

    def can(self, scope: str) -> bool:
        return scope in self.principal.scopes


async def console_user(
    request: Request,
    callers: CallersDep,
    database: DatabaseDep,
    sessions: ConsoleSessionsDep,
) -> ConsoleUser:
    """The caller of a console request, refreshing its session when the access token
    has expired; on a state-changing request, only with the session's CSRF token."""
    principal = await _authenticate(database, callers, request.cookies.get(ACCESS_COOKIE))
    if principal is None:
        pair = await _refresh(database, callers, sessions, request.cookies.get(REFRESH_COOKIE))
        # Set on whatever the route answers, errors included (`render.ConsoleRoute`): the
        # old refresh token is spent, and sent again later it would revoke the session.
        request.state.console_cookies = (sessions, pair)
        principal = await _authenticate(database, callers, pair.access_token)
    if principal is None or principal.family_id is None:
        raise LoginRequired("Log in to use the console.")
    if request.method not in READ_METHODS and not sessions.csrf_valid(
        principal.family_id, await given_csrf(request)
    ):
        raise Forbidden(CSRF_REFUSED)
    return ConsoleUser(principal, principal.family_id, sessions.csrf_token(principal.family_id))


async def given_csrf(request: Request) -> str | None:
    """The CSRF token a request carries: in its header (htmx), else in its form."""
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        field = (await request.form()).get(CSRF_FIELD)
        given = field if isinstance(field, str) else None
    return given


async def _authenticate(
    database: DatabaseDep, callers: CallersDep, access_token: str | None
) -> Principal | None:
    # Only a login session's access token: a personal token is no console session.
    if not access_token or not access_token.startswith(accounts.ACCESS_PREFIX):
        return None
    try:
        async with session_scope(database.read_sessionmaker, write=False) as session:
            return await accounts.authenticate(session, callers, access_token)
    except Unauthorized:
        return None


async def _refresh(
    database: DatabaseDep,
    callers: CallersDep,
    sessions: ConsoleSessions,
    refresh_token: str | None,
) -> CookiePair:
    if not refresh_token or not refresh_token.startswith(accounts.REFRESH_PREFIX):
        raise LoginRequired("Log in to use the console.")
    async with sessions.lock_for(refresh_token):
        recent = sessions.recent_refreshes.get("refresh", refresh_token)
        if recent is not None:
            return recent  # type: ignore[no-any-return]
        try:
            async with database.write() as session:
                pair = await accounts.refresh(session, callers, refresh_token)
        except AppError as exc:
            raise LoginRequired(exc.message) from None
        cookies = CookiePair(pair.access_token, pair.refresh_token)
        sessions.recent_refreshes.put("refresh", refresh_token, cookies)
        return cookies


ConsoleUserDep = Annotated[ConsoleUser, Depends(console_user)]
