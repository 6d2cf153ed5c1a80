"""HTTP routes of device groups."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from vsense.accounts.deps import PrincipalDep, scoped_caller
from vsense.accounts.principal import Principal
from vsense.deps import CountsDep, SessionDep
from vsense.groups import service
from vsense.groups.schemas import Group, GroupCreate, GroupUpdate
from vsense.kit.http import API_PREFIX, IdPath, error_responses
from vsense.kit.pagination import PageParams
from vsense.kit.schemas import Page

router = APIRouter(prefix=f"{API_PREFIX}/groups", tags=["groups"])


@router.get("", response_model=Page[Group], responses=error_responses(400, 401, 403))
async def list_groups(
    session: SessionDep,
    caller: Annotated[Principal, Depends(scoped_caller("devices:read"))],
    paging: PageParams,
) -> Page[Group]:
    """Groups the caller sees: all of the organization for admins, their own otherwise."""
    return await service.list_groups(session, caller, paging)


@router.post(
    "", status_code=201, response_model=Group, responses=error_responses(401, 403, 409, 422)
)
async def create_group(body: GroupCreate, session: SessionDep, principal: PrincipalDep) -> Group:
    """Create a device group (admins)."""
    return await service.create_group(session, principal, body)


@router.get("/{group_id}", response_model=Group, responses=error_responses(401, 403, 404))
async def get_group(group_id: IdPath, session: SessionDep, principal: PrincipalDep) -> Group:
    """One group the caller sees."""
    return await service.get_group(session, principal, group_id)


@router.put("/{group_id}", response_model=Group, responses=error_responses(401, 403, 404, 409, 422))
async def update_group(
    group_id: IdPath, body: GroupUpdate, session: SessionDep, principal: PrincipalDep
) -> Group:
    """Rename a group or change its devices' keepalive interval (admins)."""
    return await service.update_group(session, principal, group_id, body)


@router.delete("/{group_id}", status_code=204, responses=error_responses(401, 403, 404))
async def delete_group(
    group_id: IdPath, session: SessionDep, principal: PrincipalDep, counts: CountsDep
) -> Response:
    """Delete a group (admins); its devices are kept, without a group."""
    await service.delete_group(session, principal, counts, group_id)
    return Response(status_code=204)
