"""All SQL about groups and membership."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.accounts.principal import Principal
from vsense.models import Device, Group, user_groups


def readable_groups(principal: Principal) -> Select[Group]:
    """The one visibility rule for groups: the organization's, or the caller's own."""
    statement = select(Group).where(Group.organization_id == principal.organization_id)
    if not principal.sees_whole_organization:
        statement = statement.where(
            Group.id.in_(
                select(user_groups.c.group_id).where(user_groups.c.user_id == principal.user_id)
            )
        )
    return statement


async def list_groups(
    session: AsyncSession, principal: Principal, *, offset: int, limit: int
) -> tuple[Sequence[Group], int]:
    statement = readable_groups(principal)
    total = await session.scalar(select(func.count()).select_from(statement.subquery()))
    rows = await session.scalars(
        statement.order_by(Group.name, Group.id).offset(offset).limit(limit)
    )
    return rows.all(), int(total or 0)


async def group_names(
    session: AsyncSession, principal: Principal, *, limit: int
) -> list[tuple[int, str]]:
    """The ids and names of the groups the caller sees, by name: one query, no count,
    no entities (a pick list on every console page)."""
    statement = readable_groups(principal).with_only_columns(Group.id, Group.name)
    rows = await session.execute(statement.order_by(Group.name, Group.id).limit(limit))
    return [(group_id, name) for group_id, name in rows]


async def get_group(session: AsyncSession, principal: Principal, group_id: int) -> Group | None:
    group: Group | None = await session.scalar(
        readable_groups(principal).where(Group.id == group_id)
    )
    return group


async def find_groups(
    session: AsyncSession, organization_id: int, references: Sequence[str | int]
) -> dict[str | int, Group]:
    """Groups of an organization by id or name; the result maps each found reference."""
    ids = {
        int(r) for r in map(str, references) if r.isascii() and r.isdigit() and 0 < int(r) < 2**31
    }
    names = {str(r) for r in references}
    rows = await session.scalars(
        select(Group).where(
            Group.organization_id == organization_id,
            Group.id.in_(ids) | Group.name.in_(names),
        )
    )
    found: dict[str | int, Group] = {}
    groups = rows.all()
    for reference in references:
        for group in groups:
            # A name wins over an id, so a group named "12" is found by its name.
            if group.name == str(reference):
                found[reference] = group
                break
        else:
            for group in groups:
                if str(group.id) == str(reference):
                    found[reference] = group
                    break
    return found


async def name_taken(
    session: AsyncSession, organization_id: int, name: str, *, except_id: int | None = None
) -> bool:
    statement = select(Group.id).where(Group.organization_id == organization_id, Group.name == name)
    if except_id is not None:
        statement = statement.where(Group.id != except_id)
    return await session.scalar(statement) is not None


async def device_counts(session: AsyncSession, group_ids: Sequence[int]) -> dict[int, int]:
    if not group_ids:
        return {}
    rows = await session.execute(
        select(Device.group_id, func.count())
        .where(Device.group_id.in_(group_ids))
        .group_by(Device.group_id)
    )
    return {int(group_id or 0): int(count) for group_id, count in rows.all()}


async def group_ids_of_user(session: AsyncSession, user_id: int) -> list[int]:
    rows = await session.scalars(
        select(user_groups.c.group_id).where(user_groups.c.user_id == user_id)
    )
    return list(rows.all())


async def groups_of_users(session: AsyncSession, user_ids: Sequence[int]) -> dict[int, list[Group]]:
    if not user_ids:
        return {}
    rows = await session.execute(
        select(user_groups.c.user_id, Group)
        .join(Group, Group.id == user_groups.c.group_id)
        .where(user_groups.c.user_id.in_(user_ids))
        .order_by(Group.name)
    )
    result: dict[int, list[Group]] = {user_id: [] for user_id in user_ids}
    for user_id, group in rows.all():
        result[user_id].append(group)
    return result


async def set_user_groups(session: AsyncSession, user_id: int, group_ids: Sequence[int]) -> None:
    await session.execute(delete(user_groups).where(user_groups.c.user_id == user_id))
    if group_ids:
        await session.execute(
            insert(user_groups), [{"user_id": user_id, "group_id": g} for g in set(group_ids)]
        )


async def add_group(session: AsyncSession, group: Group) -> None:
    session.add(group)
    await session.flush()


async def delete_group(session: AsyncSession, group: Group) -> None:
    await session.delete(group)
    await session.flush()
