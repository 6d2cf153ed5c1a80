"""Evaluating rules: values at ingest, time in the sweep, episodes ended by rule changes.

Every change of a state is a compare and set on its row (`repository.compare_and_set`):
an evaluation that loses the race reads the state again and starts over, so however
many processes evaluate one (rule, device, marker) at once, an episode fires once and
clears once. The history row and the `alert` event of a transition are written in the
same transaction as the state, through the outbox (`emit`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import groupby
from operator import itemgetter
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from vsense.alerts import repository
from vsense.alerts.engine import (
    CLEARING,
    FIRING,
    FROZEN,
    NO_DATA,
    THRESHOLD_KINDS,
    VALUE_KINDS,
    RuleSpec,
    Standing,
    Step,
    on_tick,
    on_value,
    state_name,
    total,
    unmoved,
)
from vsense.alerts.events import alert_body, rule_summary
from vsense.alerts.repository import RuleView, StateRow, Watched
from vsense.models import Alert

logger = logging.getLogger("vsense.alerts")

ALERT_EVENT = "alert"
# Attempts at one compare and set before giving up until the next value or sweep.
MAX_ATTEMPTS = 8

EventItem = tuple[uuid.UUID, str, dict[str, Any]]
# The outbox: queues events in the caller's transaction; returns deliveries written.
Emit = Callable[[AsyncSession, Sequence[EventItem]], Awaitable[int]]


def spec_of(rule: RuleView) -> RuleSpec:
    return RuleSpec(
        kind=rule.kind,
        trigger_value=rule.trigger_value,
        clearing_value=rule.clearing_value,
        for_s=rule.for_s,
        clear_for_s=rule.clear_for_s,
    )


def summary_of(rule: RuleView) -> dict[str, Any]:
    return rule_summary(
        rule.kind, rule.trigger_value, rule.clearing_value, rule.for_s, rule.clear_for_s
    )


@dataclass(frozen=True, slots=True)
class Target:
    """One (rule, device, marker) being evaluated."""

    rule: RuleView
    device: uuid.UUID
    app_type: str | None
    marker_key: str
    marker_name: str | None


Evolve = Callable[[Standing], tuple[Standing, list[Step]]]


async def _settle(
    session: AsyncSession,
    target: Target,
    read: StateRow,
    evolve: Evolve,
    now: datetime,
    ended_as: str | None = None,
) -> list[EventItem]:
    """Apply `evolve` to the state with a compare and set, retried on a lost race; then
    write the transitions' history and events. `ended_as` names the CLEARING state of an
    episode ended by the rule rather than by a value."""
    for _ in range(MAX_ATTEMPTS):
        standing, steps = evolve(read.standing)
        if standing == read.standing and not steps:
            return []
        alert_uuid = read.alert_uuid
        plan: list[tuple[Step, uuid.UUID, uuid.UUID | None]] = []
        for step in steps:
            new = uuid.uuid4()
            plan.append((step, new, alert_uuid))
            alert_uuid = new if step.transition == FIRING else None
        if await repository.compare_and_set(
            session,
            rule_id=target.rule.id,
            device=target.device,
            marker_key=target.marker_key,
            marker_name=target.marker_name or read.marker_name,
            read=read,
            standing=standing,
            alert_uuid=alert_uuid,
            now=now,
        ):
            return [
                await _record(session, target, step, new, previous, ended_as)
                for step, new, previous in plan
            ]
        read = await repository.state_of(session, target.rule.id, target.device, target.marker_key)
    logger.warning(
        "alert state of rule %s on %s kept changing; left for the next evaluation",
        target.rule.id,
        target.device,
    )
    return []


async def _record(
    session: AsyncSession,
    target: Target,
    step: Step,
    new: uuid.UUID,
    previous: uuid.UUID | None,
    ended_as: str | None,
) -> EventItem:
    rule = target.rule
    assert step.transition is not None and step.at is not None
    state = ended_as or state_name(rule.kind, step.transition)
    marker_id = target.marker_key or None
    marker_name = target.marker_name if marker_id else None
    summary = summary_of(rule)
    if step.transition == FIRING:
        await repository.add_alert(
            session,
            Alert(
                uuid=new,
                organization_id=rule.organization_id,
                rule_id=rule.id,
                rule_name=rule.name,
                rule_summary=summary,
                severity=rule.severity,
                device_uuid=target.device,
                app_type=target.app_type,
                metric=rule.metric,
                marker_id=marker_id,
                marker_name=marker_name,
                fired_at=step.at,
                fired_state=state,
                fired_value=step.value,
            ),
        )
    elif previous is not None:
        await repository.close_alert(
            session, previous, clearing_uuid=new, at=step.at, state=state, value=step.value
        )
    body = alert_body(
        device=target.device,
        app_type=target.app_type,
        alert_uuid=new,
        summary=summary,
        actual_value=step.value,
        timestamp=int(step.at.timestamp()),
        transition=step.transition,
        state=state,
        marker_id=marker_id,
        marker_name=marker_name,
        previous_uuid=previous,
    )
    return (target.device, ALERT_EVENT, body)


# Values -------------------------------------------------------------------------------


@dataclass(slots=True)
class Series:
    """The values a batch gives one (metric, reference marker) at one marker key, in time
    order, with their messages' times (epoch seconds: turned into datetimes only for
    the values stepped through)."""

    name: str | None
    values: list[float]
    epochs: list[int]


Selector = tuple[str, str | None]
_EPOCH, _ID = itemgetter("epoch"), itemgetter("message_id")  # of a metric row


def _in_time_order(rows: Iterable[Mapping[str, Any]], metrics: Set[str]) -> list[Mapping[str, Any]]:
    """The rows of a batch on `metrics`, in time order. The sort is stable, so among
    messages of the same time the batch's order stands, a message's rows together (the
    payload log writes them so, in a run per message)."""
    picked = [row for row in rows if row["name"] in metrics]
    picked.sort(key=_EPOCH)
    return picked


def _series(selector: Selector, rows: Sequence[Mapping[str, Any]]) -> dict[str, Series]:
    """The batch's values (rows in time order) for every rule that reads `selector`
    (metric, reference marker), by marker key: worked out once however many rules share
    it. With a reference marker, one value per message and matching marker (its name,
    or its id in any case); without, one per message: the device's own metric, else
    the markers' total."""
    metric, reference_marker = selector
    named = [row for row in rows if row["name"] == metric]
    picked: list[tuple[str, str | None, float, int]]  # marker key and name, value, time
    if reference_marker:
        lowered = reference_marker.lower()
        picked = [
            (row["marker_id"], row["marker_name"], float(row["value"]), row["epoch"])
            for row in named
            if row["marker_id"] is not None
            and (row["marker_name"] == reference_marker or row["marker_id"].lower() == lowered)
        ]
    else:
        picked = [_device_value(metric, list(of_message)) for _, of_message in groupby(named, _ID)]
    found: dict[str, Series] = {}
    for key, name, value, epoch in picked:
        series = found.get(key)
        if series is None:
            found[key] = Series(name, [value], [epoch])
        else:
            series.name = name
            series.values.append(value)
            series.epochs.append(epoch)
    return found


def _device_value(metric: str, of_message: list[Mapping[str, Any]]) -> tuple[str, None, float, int]:
    """A message's value of `metric` for the device as a whole: its own, else the total
    of its markers'."""
    own = [row for row in of_message if row["marker_id"] is None]
    if own:
        value = float(own[-1]["value"])
    else:
        value = total(metric, [float(row["value"]) for row in of_message])
    return "", None, value, of_message[0]["epoch"]


def _fold(rule: RuleSpec, series: Series) -> Evolve:
    def evolve(standing: Standing) -> tuple[Standing, list[Step]]:
        if unmoved(rule, standing, series.values):
            return standing, []
        steps: list[Step] = []
        for value, epoch in zip(series.values, series.epochs, strict=True):
            step = on_value(rule, standing, value, datetime.fromtimestamp(epoch, UTC))
            standing = step.standing
            if step.transition is not None:
                steps.append(step)
        return standing, steps

    return evolve


async def evaluate_values(
    session: AsyncSession,
    emit: Emit,
    device: uuid.UUID,
    rows: Sequence[Mapping[str, Any]],
    now: datetime,
    known: repository.DeviceRules | None = None,
) -> int:
    """Evaluate the value rules covering a device against the metrics of a stored batch
    (rows of `device_metrics`: `message_id`, `epoch`, `name`, `value`, `marker_id`,
    `marker_name`), in the transaction that stores it. Returns the transitions.
    `known`: the device's rules and states read earlier in this transaction, before
    anything changed them (else they are read here)."""
    if not rows:
        return 0
    if known is None:
        known = await repository.rules_of_device(session, device, VALUE_KINDS)
    rules = [rule for rule in known.rules if rule.metric]
    if not rules:
        return 0
    ordered = _in_time_order(rows, {rule.metric for rule in rules if rule.metric})
    by_selector: dict[Selector, dict[str, Series]] = {}
    items: list[EventItem] = []
    new = repository.new_state()
    for rule in rules:
        assert rule.metric is not None
        selector = (rule.metric, rule.reference_marker or None)
        found = by_selector.get(selector)
        if found is None:
            found = by_selector[selector] = _series(selector, ordered)
        spec = spec_of(rule)
        for key, series in found.items():
            read = known.states.get((rule.id, key), new)
            if unmoved(spec, read.standing, series.values):
                continue  # the common case, told without stepping (`_settle` would agree)
            target = Target(rule, device, known.app_type, key, series.name)
            items += await _settle(session, target, read, _fold(spec, series), now)
    if items:
        await emit(session, items)
    return len(items)


# Time ---------------------------------------------------------------------------------


def _tick(rule: RuleSpec, now: datetime, **device: Any) -> Evolve:
    def evolve(standing: Standing) -> tuple[Standing, list[Step]]:
        step = on_tick(rule, standing, now, **device)
        return step.standing, ([step] if step.transition is not None else [])

    return evolve


def _target(watched: Watched) -> Target:
    return Target(
        watched.rule,
        watched.device,
        watched.app_type,
        watched.marker_key,
        watched.state.marker_name,
    )


async def sweep(session: AsyncSession, emit: Emit, now: datetime) -> int:
    """The sweep's pass over every rule that time can change: NO_DATA and OFFLINE for
    the devices they cover, pending thresholds and FROZEN values, and firing episodes
    whose device the rule no longer covers. Returns the transitions."""
    items: list[EventItem] = []
    device_rules = await repository.device_time_rules(session)
    quiet = [w.device for w in device_rules if w.rule.kind == NO_DATA]
    payloads = await repository.last_payloads(session, quiet)
    online_since = await repository.last_online(session, quiet)
    for watched in device_rules:
        silent_since = None
        if watched.rule.kind == NO_DATA:
            candidates = [
                moment
                for moment in (
                    payloads.get(watched.device),
                    online_since.get(watched.device),
                    watched.rule.updated,
                )
                if moment is not None
            ]
            silent_since = max(candidates)
        evolve = _tick(
            spec_of(watched.rule),
            now,
            online=watched.is_online,
            silent_since=silent_since,
            offline_since=watched.offline_since,
        )
        items += await _settle(session, _target(watched), watched.state, evolve, now)
    for watched in await repository.pending_states(session, (*THRESHOLD_KINDS, FROZEN)):
        evolve = _tick(spec_of(watched.rule), now, online=watched.is_online)
        items += await _settle(session, _target(watched), watched.state, evolve, now)
    items += await _end(session, await repository.firing_out_of_scope(session), now, "OUT_OF_SCOPE")
    if items:
        await emit(session, items)
    return len(items)


def _ending(now: datetime) -> Evolve:
    def evolve(standing: Standing) -> tuple[Standing, list[Step]]:
        if not standing.firing:
            return Standing(), []
        return Standing(), [Step(Standing(), CLEARING, None, now)]

    return evolve


async def _end(
    session: AsyncSession, firing: Sequence[Watched], now: datetime, state: str
) -> list[EventItem]:
    items: list[EventItem] = []
    for watched in firing:
        items += await _settle(
            session, _target(watched), watched.state, _ending(now), now, ended_as=state
        )
    return items


async def end_episodes(
    session: AsyncSession, emit: Emit, rule_id: int, state: str, now: datetime
) -> int:
    """End a rule's firing episodes with a CLEARING whose `state` says why (the rule was
    disabled, deleted or changed)."""
    items = await _end(session, await repository.firing_of_rule(session, rule_id), now, state)
    if items:
        await emit(session, items)
    return len(items)


async def end_out_of_scope(session: AsyncSession, emit: Emit, rule_id: int, now: datetime) -> int:
    """End the firing episodes of devices a rule no longer covers (its scope changed)."""
    items = await _end(
        session, await repository.firing_out_of_scope(session, rule_id), now, "OUT_OF_SCOPE"
    )
    if items:
        await emit(session, items)
    return len(items)
