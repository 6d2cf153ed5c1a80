"""The rules about groups: everyone reads the groups they see; admins change them."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from vsense.accounts.principal import Principal
from vsense.accounts.schemas import GroupRef
from vsense.accounts.service import require_scope
from vsense.groups import repository
from vsense.groups.schemas import Group, GroupCreate, GroupUpdate
from vsense.kit.cache import TTLCache
from vsense.kit.errors import Conflict, NotFound
from vsense.kit.pagination import PageRequest, page_meta
from vsense.kit.schemas import Page
from vsense.models import Group as GroupRow

GROUP_WRITE_SCOPE = "devices:write"


async def _views(session: AsyncSession, groups: Sequence[GroupRow]) -> list[Group]:
    counts = await repository.device_counts(session, [g.id for g in groups])
    return [
        Group(
            id=g.id,
            name=g.name,
            keepalive_interval=g.keepalive_interval,
            device_count=counts.get(g.id, 0),
            created=g.created,
        )
        for g in groups
    ]


async def list_groups(
    session: AsyncSession, principal: Principal, request: PageRequest
) -> Page[Group]:
    require_scope(principal, "devices:read")
    groups, total = await repository.list_groups(
        session, principal, offset=request.offset, limit=request.per_page
    )
    return Page[Group].model_validate(
        {"data": await _views(session, groups), "meta": page_meta(request, total, len(groups))}
    )


async def group_choices(session: AsyncSession, principal: Principal) -> list[GroupRef]:
    """The groups the caller sees (the first 500 by name), without their device counts:
    what a pick list needs, without counting the devices of every group."""
    require_scope(principal, "devices:read")
    names = await repository.group_names(session, principal, limit=500)
    return [GroupRef(id=group_id, name=name) for group_id, name in names]


async def _visible(session: AsyncSession, principal: Principal, group_id: int) -> GroupRow:
    group = await repository.get_group(session, principal, group_id)
    if group is None:
        raise NotFound("No such group.")
    return group


async def get_group(session: AsyncSession, principal: Principal, group_id: int) -> Group:
    require_scope(principal, "devices:read")
    return (await _views(session, [await _visible(session, principal, group_id)]))[0]


async def create_group(session: AsyncSession, principal: Principal, body: GroupCreate) -> Group:
    require_scope(principal, GROUP_WRITE_SCOPE)
    if await repository.name_taken(session, principal.organization_id, body.name):
        raise Conflict(f"A group named {body.name!r} already exists.")
    group = GroupRow(
        organization_id=principal.organization_id,
        name=body.name,
        keepalive_interval=body.keepalive_interval,
    )
    await repository.add_group(session, group)
    return (await _views(session, [group]))[0]


async def update_group(
    session: AsyncSession, principal: Principal, group_id: int, body: GroupUpdate
) -> Group:
    group = await _visible(session, principal, group_id)
    require_scope(principal, GROUP_WRITE_SCOPE)
    if body.name is not None and body.name != group.name:
        if await repository.name_taken(
            session, principal.organization_id, body.name, except_id=group.id
        ):
            raise Conflict(f"A group named {body.name!r} already exists.")
        group.name = body.name
    if "keepalive_interval" in body.model_fields_set:
        group.keepalive_interval = body.keepalive_interval
    await session.flush()
    return (await _views(session, [group]))[0]


async def delete_group(
    session: AsyncSession, principal: Principal, count_cache: TTLCache, group_id: int
) -> None:
    """Remove a group; its devices stay, without a group, and its members lose it."""
    group = await _visible(session, principal, group_id)
    require_scope(principal, GROUP_WRITE_SCOPE)
    await repository.delete_group(session, group)
    count_cache.invalidate(principal.organization_id)
