"""HTTP routes: login, refresh, logout, me, personal access tokens."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response

from vsense.accounts import service
from vsense.accounts.deps import CallersDep, PrincipalDep
from vsense.accounts.schemas import (
    LoginRequest,
    LoginResponse,
    RefreshRequest,
    Token,
    TokenCreate,
    TokenCreated,
)
from vsense.db import session_scope
from vsense.deps import DatabaseDep, SessionDep
from vsense.kit.http import API_PREFIX, IdPath, error_responses
from vsense.kit.schemas import Page

router = APIRouter(prefix=API_PREFIX, tags=["accounts"])
# Answers that carry credentials are kept by no cache, shared or private (RFC 6749 5.1).
NO_STORE = "no-store"


@router.post(
    "/login",
    response_model=LoginResponse,
    responses=error_responses(401, 422, 429),
    summary="Log in with email and password",
)
async def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    callers: CallersDep,
    database: DatabaseDep,
) -> LoginResponse:
    client_address = request.client.host if request.client else "unknown"
    # Two units of work: the password is checked in autocommit, the session opened in
    # a write transaction that never waits on argon2.
    async with session_scope(database.read_sessionmaker, write=False) as session:
        user = await service.check_password(
            session,
            callers,
            email=body.email,
            password=body.password,
            client_address=client_address,
        )
    async with database.write() as session:
        pair = await service.open_session(session, callers, user)
    response.headers["Cache-Control"] = NO_STORE
    return LoginResponse(data=pair)


@router.post(
    "/refresh",
    response_model=LoginResponse,
    responses=error_responses(401, 422),
    summary="Spend a refresh token for a new pair",
)
async def refresh(
    body: RefreshRequest, response: Response, session: SessionDep, callers: CallersDep
) -> LoginResponse:
    response.headers["Cache-Control"] = NO_STORE
    return LoginResponse(data=await service.refresh(session, callers, body.refresh_token))


@router.post(
    "/logout",
    status_code=204,
    responses=error_responses(401, 403),
    summary="Revoke the caller's session",
)
async def logout(session: SessionDep, principal: PrincipalDep, callers: CallersDep) -> Response:
    await service.logout(session, callers, principal)
    return Response(status_code=204)


@router.get(
    "/tokens",
    response_model=Page[Token],
    responses=error_responses(400, 401),
    summary="The caller's personal access tokens",
)
async def list_tokens(
    session: SessionDep,
    principal: PrincipalDep,
    page: str | None = Query(None, description="1-based page number"),
    per_page: str | None = Query(None, description="Items per page, at most 500"),
) -> Page[Token]:
    return await service.list_personal_tokens(session, principal, page=page, per_page=per_page)


@router.post(
    "/tokens",
    status_code=201,
    response_model=TokenCreated,
    responses=error_responses(401, 403, 422),
    summary="Create a personal access token; the token is shown once",
)
async def create_token(
    body: TokenCreate, response: Response, session: SessionDep, principal: PrincipalDep
) -> TokenCreated:
    token, raw = await service.create_personal_token(session, principal, body)
    response.headers["Cache-Control"] = NO_STORE
    return TokenCreated.model_validate({**Token.model_validate(token).model_dump(), "token": raw})


@router.delete(
    "/tokens/{token_id}",
    status_code=204,
    responses=error_responses(401, 403, 404),
    summary="Revoke a personal access token",
)
async def revoke_token(
    token_id: IdPath, session: SessionDep, principal: PrincipalDep, callers: CallersDep
) -> Response:
    await service.revoke_personal_token(session, callers, principal, token_id)
    return Response(status_code=204)
