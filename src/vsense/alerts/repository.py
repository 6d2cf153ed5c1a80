"""All SQL of alerts: rules, their states (compare and set), and the alert history."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    delete,
    false,
    func,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.accounts.principal import Principal
from vsense.alerts.engine import NO_DATA, OFFLINE, THRESHOLD_KINDS, Standing
from vsense.kit.sql import is_postgres, one_of
from vsense.models import (
    Alert,
    AlertRule,
    AlertState,
    Device,
    DeviceEvent,
    Group,
    PayloadMessage,
    User,
    user_groups,
)

PURGE_CHUNK = 5000


def in_scope() -> ColumnElement[bool]:
    """The one scope rule: a rule covers the devices of its organization that are its
    device, or in its group, or (neither given) of its app type; an app type given with a
    device or a group narrows it further. Evaluated against the devices as they are now,
    so a device joining or leaving a group is covered, or not, from then on."""
    return and_(
        AlertRule.organization_id == Device.organization_id,
        or_(
            AlertRule.device_uuid == Device.uuid,
            AlertRule.group_id == Device.group_id,
            and_(AlertRule.device_uuid.is_(None), AlertRule.group_id.is_(None)),
        ),
        or_(AlertRule.app_type.is_(None), AlertRule.app_type == Device.app_type),
    )


def _visible_rules(principal: Principal) -> ColumnElement[bool]:
    """Rules the caller may read: every rule of the organization for admins; for others,
    rules of a device or a group of theirs."""
    mine = AlertRule.organization_id == principal.organization_id
    if principal.sees_whole_organization:
        return mine
    groups = select(user_groups.c.group_id).where(user_groups.c.user_id == principal.user_id)
    seen = and_(Device.organization_id == principal.organization_id, Device.group_id.in_(groups))
    return and_(
        mine,
        or_(
            AlertRule.group_id.in_(groups),
            AlertRule.device_uuid.in_(select(Device.uuid).where(seen)),
            # A rule over the organization's devices of a type covers theirs of that type.
            and_(
                AlertRule.device_uuid.is_(None),
                AlertRule.group_id.is_(None),
                AlertRule.app_type.in_(select(Device.app_type).where(seen)),
            ),
        ),
    )


def _visible_alerts(principal: Principal) -> ColumnElement[bool]:
    mine = Alert.organization_id == principal.organization_id
    if principal.sees_whole_organization:
        return mine
    groups = select(user_groups.c.group_id).where(user_groups.c.user_id == principal.user_id)
    devices = select(Device.uuid).where(
        Device.organization_id == principal.organization_id, Device.group_id.in_(groups)
    )
    return and_(mine, Alert.device_uuid.in_(devices))


# Rules --------------------------------------------------------------------------------


async def add_rule(session: AsyncSession, rule: AlertRule) -> AlertRule:
    session.add(rule)
    await session.flush()
    return rule


async def get_rule(session: AsyncSession, principal: Principal, rule_id: int) -> AlertRule | None:
    return await session.scalar(
        select(AlertRule).where(AlertRule.id == rule_id, _visible_rules(principal))
    )


async def list_rules(
    session: AsyncSession,
    principal: Principal,
    *,
    device: uuid.UUID | None,
    offset: int,
    limit: int,
) -> tuple[list[AlertRule], int]:
    clauses = [_visible_rules(principal)]
    if device is not None:
        clauses.append(
            AlertRule.id.in_(
                select(AlertRule.id).join(Device, Device.uuid == device).where(in_scope())
            )
        )
    rows = await session.scalars(
        select(AlertRule).where(*clauses).order_by(AlertRule.id).offset(offset).limit(limit)
    )
    total = await session.scalar(select(func.count()).select_from(AlertRule).where(*clauses))
    return list(rows.all()), int(total or 0)


async def delete_rule(session: AsyncSession, rule: AlertRule) -> None:
    await session.delete(rule)
    await session.flush()


async def group_names(session: AsyncSession, ids: Sequence[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await session.execute(select(Group.id, Group.name).where(Group.id.in_(ids)))
    return {row[0]: row[1] for row in rows}


async def find_group(session: AsyncSession, organization_id: int, key: str) -> int | None:
    """A group of the organization by name, else by id."""
    found = await session.scalar(
        select(Group.id).where(Group.organization_id == organization_id, Group.name == key)
    )
    if found is None and key.isdigit():
        found = await session.scalar(
            select(Group.id).where(Group.organization_id == organization_id, Group.id == int(key))
        )
    return found


async def device_of(
    session: AsyncSession, principal: Principal, device: uuid.UUID
) -> tuple[uuid.UUID, str | None] | None:
    """A device the caller sees (its uuid and app type)."""
    clauses: list[ColumnElement[bool]] = [
        Device.uuid == device,
        Device.organization_id == principal.organization_id,
    ]
    if not principal.sees_whole_organization:
        clauses.append(
            Device.group_id.in_(
                select(user_groups.c.group_id).where(user_groups.c.user_id == principal.user_id)
            )
        )
    row = (await session.execute(select(Device.uuid, Device.app_type).where(*clauses))).first()
    return None if row is None else (row[0], row[1])


# States -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleView:
    """What evaluation needs of a rule, read as plain columns (no ORM object per rule)."""

    id: int
    organization_id: int
    name: str
    metric: str | None
    reference_marker: str | None
    kind: str
    trigger_value: float | None
    clearing_value: float | None
    for_s: int | None
    clear_for_s: int | None
    severity: str
    updated: datetime


_RULE_COLUMNS = (
    AlertRule.id,
    AlertRule.organization_id,
    AlertRule.name,
    AlertRule.metric,
    AlertRule.reference_marker,
    AlertRule.kind,
    AlertRule.trigger_value,
    AlertRule.clearing_value,
    AlertRule.for_s,
    AlertRule.clear_for_s,
    AlertRule.severity,
    AlertRule.updated,
)


def rule_view(rule: AlertRule) -> RuleView:
    return RuleView(
        rule.id,
        rule.organization_id,
        rule.name,
        rule.metric,
        rule.reference_marker,
        rule.kind,
        rule.trigger_value,
        rule.clearing_value,
        rule.for_s,
        rule.clear_for_s,
        rule.severity,
        rule.updated,
    )


@dataclass(frozen=True, slots=True)
class StateRow:
    """A stored state, with what a compare and set needs (`id`, `version`)."""

    id: int | None
    version: int
    standing: Standing
    alert_uuid: uuid.UUID | None
    marker_name: str | None = None


_NEW = StateRow(id=None, version=0, standing=Standing(), alert_uuid=None)


def _state_row(state: AlertState) -> StateRow:
    return StateRow(
        id=state.id,
        version=state.version,
        standing=Standing(
            firing=state.firing,
            pending_since=state.pending_since,
            last_value=state.last_value,
            value_since=state.value_since,
        ),
        alert_uuid=state.alert_uuid,
        marker_name=state.marker_name,
    )


_STATE_COLUMNS = (
    AlertState.id,
    AlertState.marker_key,
    AlertState.marker_name,
    AlertState.firing,
    AlertState.pending_since,
    AlertState.last_value,
    AlertState.value_since,
    AlertState.alert_uuid,
    AlertState.version,
)


# One statement text per database: on PostgreSQL the devices and kinds are arrays, so
# the driver prepares it once for groups of every size (an expanding `IN` renders and
# prepares a new text for each number of devices).
@functools.cache
def _rules_of_devices_statement(postgres: bool) -> Any:
    return (
        select(Device.uuid, *_RULE_COLUMNS, Device.app_type, *_STATE_COLUMNS)
        .select_from(AlertRule)
        .join(Device, one_of(Device.uuid, "devices", postgres))
        .outerjoin(
            AlertState,
            and_(AlertState.rule_id == AlertRule.id, AlertState.device_uuid == Device.uuid),
        )
        .where(
            AlertRule.enabled.is_(True),
            one_of(AlertRule.kind, "kinds", postgres),
            in_scope(),
        )
        .order_by(Device.uuid, AlertRule.id)
    )


@dataclass(frozen=True, slots=True)
class DeviceRules:
    """The enabled rules that cover a device, its app type, and their states for it."""

    rules: list[RuleView]
    app_type: str | None
    states: dict[tuple[int, str], StateRow]


NO_RULES = DeviceRules([], None, {})


async def rules_of_devices(
    session: AsyncSession, devices: Sequence[uuid.UUID], kinds: Sequence[str]
) -> dict[uuid.UUID, DeviceRules]:
    """The enabled rules of these kinds that cover each of `devices` now, with the
    device's app type and their states for it: one statement of plain rows for all of
    them (ingest runs it once per group of batches). Devices no rule covers are left
    out."""
    if not devices:
        return {}
    connection = await session.connection()
    result = await connection.execute(
        _rules_of_devices_statement(is_postgres(session)),
        {"devices": list(devices), "kinds": list(kinds)},
    )
    rows: list[Any] = list(result.all())
    found: dict[uuid.UUID, DeviceRules] = {}
    width = len(_RULE_COLUMNS)
    for row in rows:
        device, rule_columns = row[0], row[1 : width + 1]
        entry = found.get(device)
        if entry is None:
            entry = found[device] = DeviceRules([], row[width + 1], {})
        if not entry.rules or entry.rules[-1].id != rule_columns[0]:
            entry.rules.append(RuleView(*rule_columns))
        state = row[width + 2 :]
        if state[0] is not None:
            entry.states[(rule_columns[0], state[1])] = StateRow(
                id=state[0],
                version=state[8],
                standing=Standing(
                    firing=bool(state[3]),
                    pending_since=state[4],
                    last_value=state[5],
                    value_since=state[6],
                ),
                alert_uuid=state[7],
                marker_name=state[2],
            )
    return found


async def rules_of_device(
    session: AsyncSession, device: uuid.UUID, kinds: Sequence[str]
) -> DeviceRules:
    """`rules_of_devices` for one device (`NO_RULES` when none covers it)."""
    return (await rules_of_devices(session, [device], kinds)).get(device, NO_RULES)


async def state_of(
    session: AsyncSession, rule_id: int, device: uuid.UUID, marker_key: str
) -> StateRow:
    """A state read afresh (after a lost compare and set), or a new one."""
    found = await session.scalar(
        select(AlertState)
        .where(
            AlertState.rule_id == rule_id,
            AlertState.device_uuid == device,
            AlertState.marker_key == marker_key,
        )
        .execution_options(populate_existing=True)
    )
    return _NEW if found is None else _state_row(found)


def new_state() -> StateRow:
    return _NEW


async def compare_and_set(
    session: AsyncSession,
    *,
    rule_id: int,
    device: uuid.UUID,
    marker_key: str,
    marker_name: str | None,
    read: StateRow,
    standing: Standing,
    alert_uuid: uuid.UUID | None,
    now: datetime,
) -> bool:
    """Write a state if it is still the one read; False when another evaluation changed
    it first (the caller reads it again). A new state is inserted unless one appeared."""
    values = {
        "firing": standing.firing,
        "pending_since": standing.pending_since,
        "last_value": standing.last_value,
        "value_since": standing.value_since,
        "alert_uuid": alert_uuid,
        "marker_name": marker_name,
        "updated": now,
    }
    if read.id is not None:
        result: Any = await session.execute(
            update(AlertState)
            .where(AlertState.id == read.id, AlertState.version == read.version)
            .values(version=read.version + 1, **values)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    statement = (
        module.insert(AlertState)
        .values(rule_id=rule_id, device_uuid=device, marker_key=marker_key, version=1, **values)
        .on_conflict_do_nothing(index_elements=["rule_id", "device_uuid", "marker_key"])
        .returning(AlertState.id)
    )
    try:
        # In a savepoint: a rule deleted meanwhile by another process fails this insert
        # alone, not the transaction storing the device's messages.
        async with session.begin_nested():
            return (await session.execute(statement)).first() is not None
    except IntegrityError:
        return False


async def reset_states(session: AsyncSession, rule_id: int) -> None:
    """Forget a rule's states (its episodes were ended): it starts afresh."""
    await session.execute(delete(AlertState).where(AlertState.rule_id == rule_id))


@dataclass(frozen=True, slots=True)
class Watched:
    """One (rule, device, marker) the sweep looks at, with what it needs of the device."""

    rule: RuleView
    device: uuid.UUID
    app_type: str | None
    is_online: bool
    offline_since: datetime | None
    marker_key: str
    state: StateRow


def _watched(row: Any, marker_key: str | None = None) -> Watched:
    rule, device, app_type, is_online, refreshed, created, state = row
    offline_since = None if is_online else (refreshed or created)
    key = state.marker_key if state is not None else (marker_key or "")
    return Watched(
        rule=rule_view(rule),
        device=device,
        app_type=app_type,
        is_online=bool(is_online),
        offline_since=offline_since,
        marker_key=key,
        state=_NEW if state is None else _state_row(state),
    )


_DEVICE_COLUMNS = (Device.uuid, Device.app_type, Device.is_online, Device.refreshed, Device.created)


async def device_time_rules(session: AsyncSession) -> list[Watched]:
    """Every (NO_DATA or OFFLINE rule, device it covers), with its state if any."""
    rows = (
        await session.execute(
            select(AlertRule, *_DEVICE_COLUMNS, AlertState)
            .join(Device, in_scope())
            .outerjoin(
                AlertState,
                and_(
                    AlertState.rule_id == AlertRule.id,
                    AlertState.device_uuid == Device.uuid,
                    AlertState.marker_key == "",
                ),
            )
            .where(AlertRule.enabled.is_(True), AlertRule.kind.in_((NO_DATA, OFFLINE)))
        )
    ).all()
    return [_watched(row) for row in rows]


async def pending_states(session: AsyncSession, kinds: Sequence[str]) -> list[Watched]:
    """States of enabled rules that the passing of time may change: thresholds with a
    pending condition, FROZEN values not firing yet."""
    rows = (
        await session.execute(
            select(AlertRule, *_DEVICE_COLUMNS, AlertState)
            .join(AlertState, AlertState.rule_id == AlertRule.id)
            .join(Device, and_(Device.uuid == AlertState.device_uuid, in_scope()))
            .where(
                AlertRule.enabled.is_(True),
                AlertRule.kind.in_(kinds),
                or_(
                    and_(
                        AlertRule.kind.in_(THRESHOLD_KINDS),
                        AlertState.pending_since.is_not(None),
                    ),
                    and_(
                        AlertRule.kind.not_in(THRESHOLD_KINDS),
                        AlertState.firing.is_(False),
                        AlertState.value_since.is_not(None),
                    ),
                ),
            )
        )
    ).all()
    return [_watched(row) for row in rows]


async def firing_out_of_scope(session: AsyncSession, rule_id: int | None = None) -> list[Watched]:
    """Firing states whose device the rule no longer covers (it left the group, or the
    rule's scope changed)."""
    statement = (
        select(AlertRule, *_DEVICE_COLUMNS, AlertState)
        .join(AlertState, AlertState.rule_id == AlertRule.id)
        .join(Device, Device.uuid == AlertState.device_uuid)
        .where(AlertState.firing.is_(True), not_(func.coalesce(in_scope(), false())))
    )
    if rule_id is not None:
        statement = statement.where(AlertRule.id == rule_id)
    return [_watched(row) for row in (await session.execute(statement)).all()]


async def firing_of_rule(session: AsyncSession, rule_id: int) -> list[Watched]:
    rows = (
        await session.execute(
            select(AlertRule, *_DEVICE_COLUMNS, AlertState)
            .join(AlertState, AlertState.rule_id == AlertRule.id)
            .join(Device, Device.uuid == AlertState.device_uuid)
            .where(AlertRule.id == rule_id, AlertState.firing.is_(True))
        )
    ).all()
    return [_watched(row) for row in rows]


async def last_payloads(
    session: AsyncSession, devices: Sequence[uuid.UUID]
) -> dict[uuid.UUID, datetime]:
    """Each device's latest payload time (the payload log's index serves it)."""
    if not devices:
        return {}
    rows = await session.execute(
        select(PayloadMessage.device_uuid, func.max(PayloadMessage.timestamp))
        .where(PayloadMessage.device_uuid.in_(devices))
        .group_by(PayloadMessage.device_uuid)
    )
    return {row[0]: row[1] for row in rows if row[1] is not None}


async def last_online(
    session: AsyncSession, devices: Sequence[uuid.UUID]
) -> dict[uuid.UUID, datetime]:
    """When each device last came online."""
    if not devices:
        return {}
    rows = await session.execute(
        select(DeviceEvent.device_uuid, func.max(DeviceEvent.created))
        .where(DeviceEvent.device_uuid.in_(devices), DeviceEvent.status == "online")
        .group_by(DeviceEvent.device_uuid)
    )
    return {row[0]: row[1] for row in rows if row[1] is not None}


async def user_email(session: AsyncSession, user_id: int) -> str | None:
    return await session.scalar(select(User.email).where(User.id == user_id))


# History ------------------------------------------------------------------------------


async def add_alert(session: AsyncSession, alert: Alert) -> None:
    session.add(alert)
    await session.flush()


async def close_alert(
    session: AsyncSession,
    alert_uuid: uuid.UUID,
    *,
    clearing_uuid: uuid.UUID,
    at: datetime,
    state: str,
    value: float | None,
) -> None:
    await session.execute(
        update(Alert)
        .where(Alert.uuid == alert_uuid, Alert.cleared_at.is_(None))
        .values(
            clearing_uuid=clearing_uuid, cleared_at=at, cleared_state=state, cleared_value=value
        )
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True, slots=True)
class AlertFilter:
    state: str | None = None  # "firing" or "cleared"
    device: uuid.UUID | None = None
    rule_id: int | None = None
    severity: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _alert_clauses(principal: Principal, where: AlertFilter) -> list[ColumnElement[bool]]:
    clauses = [_visible_alerts(principal)]
    if where.state == "firing":
        clauses.append(Alert.cleared_at.is_(None))
    elif where.state == "cleared":
        clauses.append(Alert.cleared_at.is_not(None))
    if where.device is not None:
        clauses.append(Alert.device_uuid == where.device)
    if where.rule_id is not None:
        clauses.append(Alert.rule_id == where.rule_id)
    if where.severity is not None:
        clauses.append(Alert.severity == where.severity)
    if where.since is not None:
        clauses.append(Alert.fired_at >= where.since)
    if where.until is not None:
        clauses.append(Alert.fired_at < where.until)
    return clauses


async def list_alerts(
    session: AsyncSession, principal: Principal, where: AlertFilter, *, offset: int, limit: int
) -> tuple[list[Alert], int]:
    clauses = _alert_clauses(principal, where)
    rows = await session.scalars(
        select(Alert)
        .where(*clauses)
        .order_by(Alert.fired_at.desc(), Alert.uuid.desc())
        .offset(offset)
        .limit(limit)
    )
    total = await session.scalar(select(func.count()).select_from(Alert).where(*clauses))
    return list(rows.all()), int(total or 0)


async def get_alert(session: AsyncSession, principal: Principal, alert: uuid.UUID) -> Alert | None:
    """An episode by its FIRING's uuid or its CLEARING's."""
    return await session.scalar(
        select(Alert).where(
            or_(Alert.uuid == alert, Alert.clearing_uuid == alert), _visible_alerts(principal)
        )
    )


async def purge_alerts(session: AsyncSession, before: datetime, limit: int = PURGE_CHUNK) -> int:
    """Delete a chunk of episodes that ended before `before`; firing ones are kept."""
    chunk = select(Alert.uuid).where(Alert.cleared_at < before).limit(limit)
    result: Any = await session.execute(
        delete(Alert)
        .where(Alert.uuid.in_(chunk.scalar_subquery()))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)
