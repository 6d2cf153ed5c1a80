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
from vsense.deps import SessionDep
from vsense.kit.http import API_PREFIX, IdPath, error_responses
from vsense.kit.schemas import Page

router = APIRouter(prefix=API_PREFIX, tags=["accounts"])


@router.post(
    "/login",
    response_model=LoginResponse,
    responses=error_responses(401, 422, 429),
    summary="Log in with email and password",
)
async def login(
    body: LoginRequest, request: Request, session: SessionDep, callers: CallersDep
) -> LoginResponse:
    client_address = request.client.host if request.client else "unknown"
    pair = await service.login(
        session, callers, email=body.email, password=body.password, client_address=client_address
    )
    return LoginResponse(data=pair)


@router.post(
    "/refresh",
    response_model=LoginResponse,
    responses=error_responses(401, 422),
    summary="Spend a refresh token for a new pair",
)
async def refresh(body: RefreshRequest, session: SessionDep, callers: CallersDep) -> LoginResponse:
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
    body: TokenCreate, session: SessionDep, principal: PrincipalDep
) -> TokenCreated:
    token, raw = await service.create_personal_token(session, principal, body)
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
