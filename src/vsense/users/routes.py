"""HTTP routes of users (admins of the organization)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from vsense.accounts.deps import CallersDep, PrincipalDep, scoped_caller
from vsense.accounts.principal import Principal
from vsense.accounts.schemas import Me
from vsense.deps import SessionDep
from vsense.kit.http import API_PREFIX, IdPath, error_responses
from vsense.kit.pagination import PageParams
from vsense.kit.schemas import Page
from vsense.users import service
from vsense.users.schemas import User, UserCreate, UserUpdate

router = APIRouter(prefix=f"{API_PREFIX}/users", tags=["users"])
me_router = APIRouter(prefix=API_PREFIX, tags=["accounts"])


@me_router.get("/me", response_model=Me, responses=error_responses(401), summary="The caller")
async def me(session: SessionDep, principal: PrincipalDep) -> Me:
    return await service.describe_caller(session, principal)


@router.get("", response_model=Page[User], responses=error_responses(400, 401, 403))
async def list_users(
    session: SessionDep,
    caller: Annotated[Principal, Depends(scoped_caller("users:read"))],
    paging: PageParams,
) -> Page[User]:
    """Users of the caller's organization."""
    return await service.list_users(session, caller, paging)


@router.post(
    "", status_code=201, response_model=User, responses=error_responses(401, 403, 409, 422)
)
async def create_user(body: UserCreate, session: SessionDep, principal: PrincipalDep) -> User:
    """Add a user (admin or standard) to the caller's organization."""
    return await service.create_user(session, principal, body)


@router.get("/{user_id}", response_model=User, responses=error_responses(401, 403, 404))
async def get_user(user_id: IdPath, session: SessionDep, principal: PrincipalDep) -> User:
    """One user of the caller's organization."""
    return await service.get_user(session, principal, user_id)


@router.put("/{user_id}", response_model=User, responses=error_responses(401, 403, 404, 409, 422))
async def update_user(
    user_id: IdPath,
    body: UserUpdate,
    session: SessionDep,
    principal: PrincipalDep,
    callers: CallersDep,
) -> User:
    """Change the fields that were sent; `groups` replaces the memberships."""
    return await service.update_user(session, callers, principal, user_id, body)


@router.delete("/{user_id}", status_code=204, responses=error_responses(401, 403, 404, 409))
async def delete_user(
    user_id: IdPath, session: SessionDep, principal: PrincipalDep, callers: CallersDep
) -> Response:
    """Remove a user; their sessions and tokens go with them."""
    await service.delete_user(session, callers, principal, user_id)
    return Response(status_code=204)
