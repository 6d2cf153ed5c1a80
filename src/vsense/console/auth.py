"""Console login and logout: the API's login session, held in cookies."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request, Response

from vsense.accounts import service as accounts
from vsense.accounts.deps import CallersDep
from vsense.console.deps import ConsoleSessionsDep, ConsoleUserDep
from vsense.console.render import CONSOLE, ConsoleRoute, redirect, render
from vsense.console.sessions import (
    clear_session_cookies,
    login_csrf_valid,
    new_login_csrf,
    set_login_csrf,
    set_session_cookies,
)
from vsense.db import session_scope
from vsense.deps import DatabaseDep
from vsense.kit.errors import TooManyRequests, Unauthorized

router = APIRouter(prefix=CONSOLE, route_class=ConsoleRoute, include_in_schema=False)


def safe_next(raw: str | None) -> str:
    """Where to go after login: a console path only (no open redirect)."""
    if raw and raw.startswith(CONSOLE + "/") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return CONSOLE + "/"


def _login_page(
    request: Request, next_url: str, *, email: str = "", error: str | None = None, status: int = 200
) -> Response:
    token = new_login_csrf()
    response = render(
        request,
        "login.html",
        status_code=status,
        next=next_url,
        email=email,
        error=error,
        csrf_token=token,
    )
    set_login_csrf(response, request, token)
    return response


@router.get("/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    return _login_page(request, safe_next(next))


@router.post("/login")
async def login(
    request: Request,
    callers: CallersDep,
    database: DatabaseDep,
    sessions: ConsoleSessionsDep,
    email: str = Form(""),
    password: str = Form(""),
    csrf_token: str = Form(""),
    next: str = Form(""),
) -> Response:
    target = safe_next(next)
    if not login_csrf_valid(request, csrf_token):
        return _login_page(
            request, target, email=email, status=403, error="The form expired; try again."
        )
    client_address = request.client.host if request.client else "unknown"
    try:
        # The same two units of work as the API's login: the password is checked in
        # autocommit, the session opened in a write transaction that never waits on argon2.
        async with session_scope(database.read_sessionmaker, write=False) as session:
            user = await accounts.check_password(
                session,
                callers,
                email=email.strip(),
                password=password,
                client_address=client_address,
            )
        async with database.write() as session:
            pair = await accounts.open_session(session, callers, user)
    except (Unauthorized, TooManyRequests) as exc:
        return _login_page(request, target, email=email, status=exc.status_code, error=exc.message)
    response = redirect(target, request)
    set_session_cookies(response, request, sessions, pair)
    return response


@router.post("/logout")
async def logout(
    request: Request, user: ConsoleUserDep, callers: CallersDep, database: DatabaseDep
) -> Response:
    """Revokes the session's refresh-token family, as the API's logout does."""
    async with database.write() as session:
        await accounts.logout(session, callers, user.principal)
    request.state.console_cookies = None  # a pair refreshed on the way in is revoked too
    response = redirect(f"{CONSOLE}/login", request)
    clear_session_cookies(response, request)
    return response
