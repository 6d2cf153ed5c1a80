"""All SQL about devices. `readable_devices` is the one visibility rule."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.accounts.principal import Principal
from vsense.models import Device, DeviceCredential, Group, user_groups

AnySelect = Select[*tuple[Any, ...]]

DEVICE_COLUMNS = (
    Device.uuid,
    Device.name,
    Device.client_identifier,
    Device.refreshed,
    Device.is_online,
    Device.geo_city,
    Device.geo_country,
    Group.name.label("group"),
    Device.group_id,
    Device.app_type,
    Device.keepalive_interval,
    Device.created,
    Device.last_seen,
    Device.status_reason,
)

# Sort key -> column. Ties break on uuid, in the same direction, so each order is
# served by one index. A null `refreshed` counts as the oldest: first ascending,
# last descending (the natural order of SQLite, and of the PostgreSQL index).
SORT_COLUMNS: dict[str, Any] = {
    "name": Device.name,
    "refreshed": Device.refreshed,
    "geo_city": Device.geo_city,
    "geo_country": Device.geo_country,
    "created": Device.created,
}


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    """A parsed device-list query. `group` is a group's name or id; `without_group`
    selects devices that have none."""

    group: str | None = None
    without_group: bool = False
    is_online: bool | None = None
    search: str | None = None


def readable_devices(principal: Principal) -> AnySelect:
    """Devices the caller may see: its organization's, narrowed to its groups unless admin."""
    statement = (
        select(*DEVICE_COLUMNS)
        .outerjoin(Group, Group.id == Device.group_id)
        .where(Device.organization_id == principal.organization_id)
    )
    return _narrow_to_groups(statement, principal)


def _narrow_to_groups(statement: AnySelect, principal: Principal) -> AnySelect:
    if principal.sees_whole_organization:
        return statement
    return statement.where(
        Device.group_id.in_(
            select(user_groups.c.group_id).where(user_groups.c.user_id == principal.user_id)
        )
    )


def _group_id(organization_id: int, reference: str) -> ColumnElement[Any]:
    """The id of the organization's group named `reference`, else numbered `reference`."""
    by_name = (
        select(Group.id)
        .where(Group.organization_id == organization_id, Group.name == reference)
        .scalar_subquery()
    )
    if not _is_key(reference):
        return by_name
    by_id = (
        select(Group.id)
        .where(Group.organization_id == organization_id, Group.id == int(reference))
        .scalar_subquery()
    )
    return func.coalesce(by_name, by_id)


def _filter_clauses(organization_id: int, device_filter: DeviceFilter) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if device_filter.without_group:
        clauses.append(Device.group_id.is_(None))
    elif device_filter.group is not None:
        clauses.append(Device.group_id == _group_id(organization_id, device_filter.group))
    if device_filter.is_online is not None:
        clauses.append(Device.is_online.is_(device_filter.is_online))
    if device_filter.search:
        pattern = "%" + _escape_like(device_filter.search.lower()) + "%"
        clauses.append(
            or_(
                func.lower(Device.name).like(pattern, escape="\\"),
                func.lower(Device.client_identifier).like(pattern, escape="\\"),
            )
        )
    return clauses


async def _rows(session: AsyncSession, statement: AnySelect) -> Sequence[Row[Any]]:
    # Plain rows through the session's connection: the read paths need no ORM identity
    # map, and skipping it is a good part of a list request's CPU time.
    connection = await session.connection()
    return (await connection.execute(statement)).all()


def _is_key(reference: str) -> bool:
    return reference.isascii() and reference.isdigit() and 0 < int(reference) < 2**31


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_devices(
    session: AsyncSession,
    principal: Principal,
    device_filter: DeviceFilter,
    *,
    sort_key: str,
    descending: bool,
    offset: int,
    limit: int,
) -> Sequence[Row[Any]]:
    column = SORT_COLUMNS[sort_key]
    if descending:
        order = [column.desc(), Device.uuid.desc()]
        if sort_key == "refreshed":
            order[0] = column.desc().nulls_last()
    else:
        order = [column.asc(), Device.uuid.asc()]
        if sort_key == "refreshed":
            order[0] = column.asc().nulls_first()
    statement = (
        readable_devices(principal)
        .where(*_filter_clauses(principal.organization_id, device_filter))
        .order_by(*order)
        .offset(offset)
        .limit(limit)
    )
    return await _rows(session, statement)


async def count_devices(
    session: AsyncSession, principal: Principal, device_filter: DeviceFilter
) -> int:
    statement: AnySelect = select(func.count())
    statement = _narrow_to_groups(
        statement.select_from(Device).where(Device.organization_id == principal.organization_id),
        principal,
    ).where(*_filter_clauses(principal.organization_id, device_filter))
    connection = await session.connection()
    return int((await connection.execute(statement)).scalar() or 0)


async def get_device_row(
    session: AsyncSession, principal: Principal, device_uuid: uuid.UUID
) -> Row[Any] | None:
    rows = await _rows(session, readable_devices(principal).where(Device.uuid == device_uuid))
    return rows[0] if rows else None


async def get_device(
    session: AsyncSession, principal: Principal, device_uuid: uuid.UUID
) -> Device | None:
    """The ORM row of a visible device, for changes."""
    statement = _narrow_to_groups(
        select(Device).where(
            Device.uuid == device_uuid, Device.organization_id == principal.organization_id
        ),
        principal,
    )
    device: Device | None = await session.scalar(statement)
    return device


async def find_group_id(session: AsyncSession, organization_id: int, reference: str) -> int | None:
    """A group of the organization by name, else by id; None if there is none."""
    by_name = await session.scalar(
        select(Group.id).where(Group.organization_id == organization_id, Group.name == reference)
    )
    if by_name is not None or not _is_key(reference):
        return by_name
    return await session.scalar(
        select(Group.id).where(Group.organization_id == organization_id, Group.id == int(reference))
    )


async def device_for_token_hash(session: AsyncSession, token_hash: str) -> uuid.UUID | None:
    return await session.scalar(
        select(DeviceCredential.device_uuid).where(DeviceCredential.token_hash == token_hash)
    )


async def add_device(session: AsyncSession, device: Device, token_hash: str) -> None:
    session.add(device)
    await session.flush()
    session.add(DeviceCredential(device_uuid=device.uuid, token_hash=token_hash))
    await session.flush()


async def replace_credential(
    session: AsyncSession, device_uuid: uuid.UUID, token_hash: str
) -> None:
    await session.execute(
        delete(DeviceCredential).where(DeviceCredential.device_uuid == device_uuid)
    )
    session.add(DeviceCredential(device_uuid=device_uuid, token_hash=token_hash))
    await session.flush()


async def delete_device(session: AsyncSession, device: Device) -> None:
    await session.delete(device)
    await session.flush()
