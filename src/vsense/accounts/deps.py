"""The caller of the integrator API, as a request dependency."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import BackgroundTasks, Depends, Request

from vsense.accounts import service
from vsense.accounts.principal import Principal
from vsense.accounts.service import Callers
from vsense.db import Database
from vsense.deps import DatabaseDep, SessionDep
from vsense.kit.errors import Unauthorized
from vsense.kit.parts import part

CallersDep = Annotated[Callers, Depends(part(Callers))]


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("A bearer token is required (Authorization: Bearer <token>).")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("The Authorization header must be `Bearer <token>`.")
    if token.startswith(service.DEVICE_PREFIX):
        raise Unauthorized("A device token opens nothing under /api/v1; use a user or API token.")
    return token


async def get_principal(
    request: Request,
    session: SessionDep,
    callers: CallersDep,
    database: DatabaseDep,
    background: BackgroundTasks,
) -> Principal:
    principal = await service.authenticate(session, callers, bearer_token(request))
    if principal.last_use_due and principal.token_id is not None:
        background.add_task(service.record_personal_token_use, database, principal.token_id)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]

_callers_of = part(Callers)
_database_of = part(Database)


async def caller_of(request: Request, background: BackgroundTasks) -> Principal:
    """The caller, for a route that opens its session itself (the device list): a caller
    verified within `auth_cache_ttl` costs no database work and no session; a miss is
    verified in a short read session of its own, closed before the route opens its own.

    A plain function rather than a dependency of its own: on the busiest route every
    dependency FastAPI solves costs tens of microseconds (`docs/benchmarks.md`).
    """
    callers = await _callers_of(request)
    bearer = bearer_token(request)
    principal = service.cached_caller(callers, bearer)
    if principal is None:
        database = await _database_of(request)
        async with database.read_sessionmaker() as session:
            principal = await service.authenticate(session, callers, bearer)
        if principal.last_use_due and principal.token_id is not None:
            background.add_task(service.record_personal_token_use, database, principal.token_id)
    return principal


def scoped_caller(scope: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency: the caller, refused (403) without `scope` before its route's other
    dependencies (a page, a query) are parsed, so that a caller without the permission
    learns nothing from its parameters. The service checks the scope again: it is the
    rule, this only puts the answer first."""

    async def caller(principal: PrincipalDep) -> Principal:
        service.require_scope(principal, scope)
        return principal

    return caller
