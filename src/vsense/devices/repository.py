"""All SQL about devices. `_visible` is the one visibility rule."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Row,
    Select,
    String,
    bindparam,
    delete,
    func,
    or_,
    select,
    tuple_,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.accounts.principal import Principal
from vsense.devices.types import DeviceFilter, DeviceOrder, DeviceSortKey
from vsense.models import Device, DeviceCredential, DeviceEvent, Group, user_groups

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

# Sort key -> column (or columns: the later ones break ties). Ties break last on uuid,
# all in the same direction, so each order is served by one index. A null `refreshed`
# counts as the oldest: first ascending, last descending (the natural order of SQLite,
# and of the PostgreSQL index).
SORT_COLUMNS: dict[DeviceSortKey, Any] = {
    DeviceSortKey.NAME: Device.name,
    DeviceSortKey.REFRESHED: Device.refreshed,
    DeviceSortKey.IS_ONLINE: (Device.is_online, Device.name),
    DeviceSortKey.GEO_CITY: Device.geo_city,
    DeviceSortKey.GEO_COUNTRY: Device.geo_country,
    DeviceSortKey.CREATED: Device.created,
}

FilterShape = tuple[str, bool | None, bool]


def _shape(device_filter: DeviceFilter) -> FilterShape:
    """What the SQL of a filter depends on, as opposed to the values bound into it."""
    if device_filter.without_group:
        group_mode = "none"
    elif device_filter.group is None:
        group_mode = "any"
    else:
        group_mode = "name_or_id" if _is_key(device_filter.group) else "name"
    return group_mode, device_filter.is_online, bool(device_filter.search)


def _filter_parameters(device_filter: DeviceFilter) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    if device_filter.group is not None and not device_filter.without_group:
        parameters["group_name"] = device_filter.group
        if _is_key(device_filter.group):
            parameters["group_id"] = int(device_filter.group)
    if device_filter.search:
        parameters["pattern"] = "%" + _escape_like(device_filter.search.lower()) + "%"
    return parameters


# Read statements are built once per shape and take their values as bound parameters:
# building a statement costs more CPU than running it on either database.
ORGANIZATION_ID = bindparam("organization_id", type_=Integer)
USER_ID = bindparam("user_id", type_=Integer)


def _visible(statement: AnySelect, whole_organization: bool) -> AnySelect:
    """The one visibility rule: the caller's organization, narrowed to the caller's groups
    unless the caller sees the whole organization (admins)."""
    statement = statement.where(Device.organization_id == ORGANIZATION_ID)
    if whole_organization:
        return statement
    return statement.where(
        Device.group_id.in_(select(user_groups.c.group_id).where(user_groups.c.user_id == USER_ID))
    )


def _caller(principal: Principal) -> dict[str, Any]:
    return {"organization_id": principal.organization_id, "user_id": principal.user_id}


def _readable_devices(whole_organization: bool) -> AnySelect:
    statement = select(*DEVICE_COLUMNS).outerjoin(Group, Group.id == Device.group_id)
    return _visible(statement, whole_organization)


def _group_id(by_id: bool) -> ColumnElement[Any]:
    """The id of the organization's group with the bound name, else with the bound id."""
    by_name = (
        select(Group.id)
        .where(Group.organization_id == ORGANIZATION_ID, Group.name == bindparam("group_name"))
        .scalar_subquery()
    )
    if not by_id:
        return by_name
    by_number = (
        select(Group.id)
        .where(
            Group.organization_id == ORGANIZATION_ID,
            Group.id == bindparam("group_id", type_=Integer),
        )
        .scalar_subquery()
    )
    return func.coalesce(by_name, by_number)


def _filter_clauses(shape: FilterShape) -> list[ColumnElement[bool]]:
    group_mode, is_online, has_search = shape
    clauses: list[ColumnElement[bool]] = []
    if group_mode == "none":
        clauses.append(Device.group_id.is_(None))
    elif group_mode in ("name", "name_or_id"):
        clauses.append(Device.group_id == _group_id(group_mode == "name_or_id"))
    if is_online is not None:
        clauses.append(Device.is_online.is_(is_online))
    if has_search:
        pattern = bindparam("pattern", type_=String)
        clauses.append(
            or_(
                func.lower(Device.name).like(pattern, escape="\\"),
                func.lower(Device.client_identifier).like(pattern, escape="\\"),
            )
        )
    return clauses


# Sorts whose columns are never null and compare the same in Python and SQL: a page of
# these can start from a row already seen (`Anchor`) instead of counting rows from the top.
KEYSET_SORTS = frozenset(
    {DeviceSortKey.NAME, DeviceSortKey.IS_ONLINE, DeviceSortKey.GEO_CITY, DeviceSortKey.GEO_COUNTRY}
)
# Where each sort column is in a row of DEVICE_COLUMNS.
_ROW_POSITION = {"name": 1, "is_online": 4, "geo_city": 5, "geo_country": 6}


@dataclass(frozen=True, slots=True)
class Anchor:
    """A row of the list already seen at some position: its sort key (the sort columns,
    then the uuid). A page `skip` rows after it is found from there on the index."""

    key: tuple[Any, ...]
    skip: int


def _sort_columns(order: DeviceOrder) -> list[Any]:
    columns = SORT_COLUMNS[order.key]
    return [*(columns if isinstance(columns, tuple) else (columns,)), Device.uuid]


def anchor_key(order: DeviceOrder, row: Sequence[Any]) -> tuple[Any, ...] | None:
    """The sort key of a row of `list_devices`, if its sort can start from it."""
    if order.key not in KEYSET_SORTS:
        return None
    values = [row[_ROW_POSITION[column.key]] for column in _sort_columns(order)[:-1]]
    return (*(bool(v) if isinstance(v, int) else v for v in values), uuid.UUID(str(row[0])))


@lru_cache(maxsize=1024)
def _list_statement(
    whole_organization: bool, shape: FilterShape, order: DeviceOrder, anchored: bool = False
) -> AnySelect:
    columns = SORT_COLUMNS[order.key]
    column, *ties = columns if isinstance(columns, tuple) else (columns,)
    nullable = order.key is DeviceSortKey.REFRESHED
    if order.descending:
        first = column.desc().nulls_last() if nullable else column.desc()
        ordering = [first, *(tie.desc() for tie in ties), Device.uuid.desc()]
    else:
        first = column.asc().nulls_first() if nullable else column.asc()
        ordering = [first, *(tie.asc() for tie in ties), Device.uuid.asc()]
    # The page's uuids are found first, on the index alone, then joined to the rest:
    # a deep page walks index entries instead of whole rows and their groups.
    clauses = _filter_clauses(shape)
    if anchored:
        # The rows from the anchor on, the anchor included: a row comparison the sort's
        # index serves (its columns end with the same sort columns and uuid).
        sort = _sort_columns(order)
        key = tuple_(*(bindparam(f"key_{n}", type_=c.type) for n, c in enumerate(sort)))
        clauses.append(tuple_(*sort) <= key if order.descending else tuple_(*sort) >= key)
    page = (
        _visible(select(Device.uuid), whole_organization)
        .where(*clauses)
        .order_by(*ordering)
        .offset(bindparam("offset", type_=Integer))
        .limit(bindparam("limit", type_=Integer))
        .subquery("page")
    )
    return (
        select(*DEVICE_COLUMNS)
        .join(page, page.c.uuid == Device.uuid)
        .outerjoin(Group, Group.id == Device.group_id)
        .order_by(*ordering)
    )


@lru_cache(maxsize=256)
def _count_statement(whole_organization: bool, shape: FilterShape) -> AnySelect:
    statement: AnySelect = select(func.count()).select_from(Device)
    return _visible(statement, whole_organization).where(*_filter_clauses(shape))


def _driver_value(value: Any, postgres: bool) -> Any:
    # What SQLAlchemy's Uuid type binds on SQLite: the 32 hex digits it stores.
    return value.hex if not postgres and isinstance(value, uuid.UUID) else value


async def _rows(
    session: AsyncSession, statement: AnySelect, parameters: dict[str, Any]
) -> Sequence[Row[Any]]:
    # Plain rows through the session's connection: the read paths need no ORM identity
    # map, and skipping it is a good part of a list request's CPU time.
    connection = await session.connection()
    return (await connection.execute(statement, parameters)).all()


@lru_cache(maxsize=1024)
def _driver_sql(dialect: Dialect, statement: AnySelect) -> tuple[str, tuple[str, ...]]:
    """A statement's SQL for the driver itself, and its parameters' names in order."""
    compiled = statement.compile(dialect=dialect)
    return compiled.string, tuple(compiled.positiontup or ())


async def _driver_rows(
    session: AsyncSession, statement: AnySelect, parameters: dict[str, Any]
) -> Sequence[Sequence[Any]]:
    """The rows of a read-only statement, run by the driver on the session's connection.

    The device list's statements are built once per shape; running their SQL through
    asyncpg's prepared statements (or aiosqlite) directly skips SQLAlchemy's execution
    and result layers, about a third of a list request's CPU time. The rows are the
    driver's own: on SQLite a UUID is its 32 hex digits and a time is text
    (`types.DeviceView.from_row` reads both). The session's connection keeps its
    transaction: on PostgreSQL this path is taken only in autocommit (read requests),
    where there is none to start. Any driver error runs the statement again through
    SQLAlchemy, which raises it translated (and drops a dead connection from the pool).
    """
    connection = await session.connection()
    proxied = connection.sync_connection.connection  # type: ignore[union-attr]
    sql, names = _driver_sql(connection.dialect, statement)
    postgres = connection.dialect.name == "postgresql"
    arguments = [_driver_value(parameters[name], postgres) for name in names]
    driver = proxied.driver_connection
    try:
        if postgres:
            if not proxied.dbapi_connection.autocommit:  # type: ignore[union-attr]
                return await _rows(session, statement, parameters)
            return await driver.fetch(sql, *arguments)  # type: ignore[union-attr, no-any-return]
        return await driver.execute_fetchall(sql, arguments)  # type: ignore[union-attr, no-any-return]
    except Exception:  # translated by the second run, through SQLAlchemy
        return await _rows(session, statement, parameters)


def _is_key(reference: str) -> bool:
    return reference.isascii() and reference.isdigit() and 0 < int(reference) < 2**31


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_devices(
    session: AsyncSession,
    principal: Principal,
    device_filter: DeviceFilter,
    order: DeviceOrder,
    *,
    offset: int,
    limit: int,
    anchor: Anchor | None = None,
) -> Sequence[Sequence[Any]]:
    """A page of visible devices, as rows of `DEVICE_COLUMNS` (the driver's, see
    `_driver_rows`): `limit` rows from `offset`, or, with an anchor, from `anchor.skip`
    rows after the anchor's row (the same rows, found without walking the ones before)."""
    statement = _list_statement(
        principal.sees_whole_organization, _shape(device_filter), order, anchor is not None
    )
    parameters = {
        **_caller(principal),
        **_filter_parameters(device_filter),
        "offset": offset if anchor is None else anchor.skip,
        "limit": limit,
    }
    if anchor is not None:
        parameters.update({f"key_{n}": value for n, value in enumerate(anchor.key)})
    return await _driver_rows(session, statement, parameters)


async def count_devices(
    session: AsyncSession, principal: Principal, device_filter: DeviceFilter
) -> int:
    statement = _count_statement(principal.sees_whole_organization, _shape(device_filter))
    parameters = {**_caller(principal), **_filter_parameters(device_filter)}
    rows = await _driver_rows(session, statement, parameters)
    return int(rows[0][0])


async def get_device_row(
    session: AsyncSession, principal: Principal, device_uuid: uuid.UUID
) -> Row[Any] | None:
    statement = _readable_devices(principal.sees_whole_organization).where(
        Device.uuid == device_uuid
    )
    rows = await _rows(session, statement, _caller(principal))
    return rows[0] if rows else None


async def get_device(
    session: AsyncSession, principal: Principal, device_uuid: uuid.UUID
) -> Device | None:
    """The ORM row of a visible device, for changes."""
    statement = _visible(select(Device), principal.sees_whole_organization).where(
        Device.uuid == device_uuid
    )
    device: Device | None = await session.scalar(statement, _caller(principal))
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


async def list_events(
    session: AsyncSession, device_uuid: uuid.UUID, *, offset: int, limit: int
) -> tuple[Sequence[DeviceEvent], int]:
    total = await session.scalar(
        select(func.count()).select_from(DeviceEvent).where(DeviceEvent.device_uuid == device_uuid)
    )
    rows = await session.scalars(
        select(DeviceEvent)
        .where(DeviceEvent.device_uuid == device_uuid)
        .order_by(DeviceEvent.id.desc())  # the order the transitions were written
        .offset(offset)
        .limit(limit)
    )
    return rows.all(), int(total or 0)
