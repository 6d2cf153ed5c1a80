"""Request-scoped dependencies: the process state, the unit of work, the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import BackgroundTasks, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.accounts import service as accounts_service
from vsense.accounts.principal import Principal
from vsense.db import begin_write
from vsense.kit.errors import AppError, Unauthorized
from vsense.state import AppState

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def state_of(request: Request) -> AppState:
    state: AppState = request.app.state.vsense
    return state


async def get_state(request: Request) -> AppState:
    # Async on purpose: FastAPI runs plain-function dependencies in a thread pool,
    # and a thread hop per request costs more than the rest of a cached request.
    return state_of(request)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request: committed when the handler returns, rolled back on error.

    The edge owns the transaction; services only flush. An error that records
    something on purpose (a revoked session) asks for a commit instead.
    """
    state = state_of(request)
    reading = request.method in READ_METHODS
    async with (state.read_sessionmaker if reading else state.sessionmaker)() as session:
        if not reading:
            await begin_write(session)
        try:
            yield session
        except AppError as exc:
            if exc.commit_session:
                await session.commit()
            else:
                await session.rollback()
            raise
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


StateDep = Annotated[AppState, Depends(get_state)]
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("A bearer token is required (Authorization: Bearer <token>).")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("The Authorization header must be `Bearer <token>`.")
    if token.startswith(accounts_service.DEVICE_PREFIX):
        raise Unauthorized("A device token opens nothing under /api/v1; use a user or API token.")
    return token


async def get_principal(
    request: Request, session: SessionDep, state: StateDep, background: BackgroundTasks
) -> Principal:
    principal = await accounts_service.authenticate(session, state, bearer_token(request))
    if principal.last_use_due and principal.token_id is not None:
        background.add_task(accounts_service.record_personal_token_use, state, principal.token_id)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def scoped_caller(scope: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency: the caller, refused (403) without `scope` before its route's other
    dependencies (a page, a query) are parsed, so that a caller without the permission
    learns nothing from its parameters. The service checks the scope again: it is the
    rule, this only puts the answer first."""

    async def caller(principal: PrincipalDep) -> Principal:
        accounts_service.require_scope(principal, scope)
        return principal

    return caller
