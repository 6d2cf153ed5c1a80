"""The state machine of one (rule, device, marker), in pure functions.

Each function takes a rule, where it stands (`Standing`) and what happened (a value at
a time, or the clock and the device's liveness), and returns where it stands next and
the transition, if any. Nothing here reads a clock or a database: the callers (ingest,
the sweep) bring the times and store the result.

Kinds:
- GREATER_THAN fires when a value rises above `trigger_value` and clears when one falls
  below `clearing_value` (<= trigger). LESS_THAN mirrors it. A value touching a
  threshold, or between the two, changes nothing (hysteresis).
- With `for_s`, the firing condition must hold that long (from the first value past the
  trigger, measured on the values' times and on the sweep's clock) before it fires;
  `clear_for_s` likewise before it clears. A value that breaks the condition resets it.
- NO_DATA fires when an online device sent no payload for `for_s` and clears at the
  first sweep after one arrives; while the device is offline it neither fires nor clears.
- FROZEN fires when the metric kept one value for `for_s` while the device is online,
  and clears on the first different value.
- OFFLINE fires when the device has been offline `for_s` and clears once it is online.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

GREATER_THAN = "GREATER_THAN"
LESS_THAN = "LESS_THAN"
NO_DATA = "NO_DATA"
FROZEN = "FROZEN"
OFFLINE = "OFFLINE"
THRESHOLD_KINDS = (GREATER_THAN, LESS_THAN)
# Kinds that look at the values of messages (evaluated at ingest).
VALUE_KINDS = (GREATER_THAN, LESS_THAN, FROZEN)
# Kinds the sweep looks at: those that fire on the passing of time.
TIMED_KINDS = (NO_DATA, FROZEN, OFFLINE)
KINDS = (GREATER_THAN, LESS_THAN, NO_DATA, FROZEN, OFFLINE)

FIRING = "FIRING"
CLEARING = "CLEARING"

# The `state` of each kind's FIRING and CLEARING on the wire (the vendor's for the
# thresholds), and those of an episode ended by a change of the rule rather than by
# a value.
FIRING_STATES = {
    GREATER_THAN: "LIMIT_REACHED",
    LESS_THAN: "LIMIT_REACHED",
    NO_DATA: "NO_DATA",
    FROZEN: "VALUE_FROZEN",
    OFFLINE: "DEVICE_OFFLINE",
}
CLEARING_STATES = {
    GREATER_THAN: "LIMIT_CLEARED",
    LESS_THAN: "LIMIT_CLEARED",
    NO_DATA: "DATA_RESUMED",
    FROZEN: "VALUE_CHANGED",
    OFFLINE: "DEVICE_ONLINE",
}
RULE_DISABLED = "RULE_DISABLED"
RULE_DELETED = "RULE_DELETED"
RULE_CHANGED = "RULE_CHANGED"
OUT_OF_SCOPE = "OUT_OF_SCOPE"


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """What the state machine needs of a rule."""

    kind: str
    trigger_value: float | None = None
    clearing_value: float | None = None
    for_s: int | None = None
    clear_for_s: int | None = None


@dataclass(frozen=True, slots=True)
class Standing:
    """Where one (rule, device, marker) stands between two evaluations."""

    firing: bool = False
    # Since when the condition that would flip `firing` has held (durations).
    pending_since: datetime | None = None
    # The last value seen while pending (thresholds), or the current value (FROZEN)...
    last_value: float | None = None
    # ...and since when it has had that value (FROZEN).
    value_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """The outcome of one evaluation: the next standing, and FIRING, CLEARING or None."""

    standing: Standing
    transition: str | None = None
    value: float | None = None
    at: datetime | None = None


def check_thresholds(kind: str, trigger: float, clearing: float) -> str | None:
    """Why a threshold rule's two values are out of order, or None when they are not."""
    if kind == GREATER_THAN and clearing > trigger:
        return "clearing_value must be less than or equal to trigger_value for GREATER_THAN"
    if kind == LESS_THAN and clearing < trigger:
        return "clearing_value must be greater than or equal to trigger_value for LESS_THAN"
    return None


def _past_trigger(rule: RuleSpec, value: float) -> bool:
    assert rule.trigger_value is not None
    if rule.kind == GREATER_THAN:
        return value > rule.trigger_value
    return value < rule.trigger_value


def _past_clearing(rule: RuleSpec, value: float) -> bool:
    assert rule.clearing_value is not None
    if rule.kind == GREATER_THAN:
        return value < rule.clearing_value
    return value > rule.clearing_value


def _held(since: datetime, now: datetime, seconds: int | None) -> bool:
    return not seconds or (now - since).total_seconds() >= seconds


def on_value(rule: RuleSpec, standing: Standing, value: float, at: datetime) -> Step:
    """A new value of the rule's metric at `at` (the message's time)."""
    if rule.kind == FROZEN:
        return _frozen_value(standing, value, at)
    if rule.kind not in THRESHOLD_KINDS:
        return Step(standing)
    moving = _past_clearing(rule, value) if standing.firing else _past_trigger(rule, value)
    if not moving:
        # Between the thresholds (or back on the side it stands on): nothing pending.
        if standing.pending_since is None and standing.last_value is None:
            return Step(standing)
        return Step(Standing(firing=standing.firing))
    since = standing.pending_since or at
    if _held(since, at, rule.clear_for_s if standing.firing else rule.for_s):
        return Step(
            Standing(firing=not standing.firing),
            CLEARING if standing.firing else FIRING,
            value,
            at,
        )
    return Step(Standing(firing=standing.firing, pending_since=since, last_value=value))


def unmoved(rule: RuleSpec, standing: Standing, values: list[float]) -> bool:
    """Whether none of these values can move a threshold rule that stands still (nothing
    pending): the common case of a batch, told without stepping through it."""
    if rule.kind not in THRESHOLD_KINDS or standing.pending_since is not None:
        return False
    if standing.last_value is not None:
        return False
    if not values:
        return True
    # The value furthest towards the change the rule waits for decides for all of them.
    above = rule.kind == GREATER_THAN
    if standing.firing:
        return not _past_clearing(rule, min(values) if above else max(values))
    return not _past_trigger(rule, max(values) if above else min(values))


def _frozen_value(standing: Standing, value: float, at: datetime) -> Step:
    if standing.last_value == value and standing.value_since is not None:
        return Step(standing)
    changed = Standing(firing=False, last_value=value, value_since=at)
    if standing.firing:
        return Step(changed, CLEARING, value, at)
    return Step(changed)


def on_tick(
    rule: RuleSpec,
    standing: Standing,
    now: datetime,
    *,
    online: bool,
    silent_since: datetime | None = None,
    offline_since: datetime | None = None,
) -> Step:
    """The sweep's look at one (rule, device, marker) at `now`.

    `silent_since`: the time of the device's last payload (or since when it could have
    sent one); `offline_since`: since when it has been offline.
    """
    if rule.kind in THRESHOLD_KINDS:
        return _threshold_tick(rule, standing, now)
    if rule.kind == FROZEN:
        if (
            not standing.firing
            and online
            and standing.value_since is not None
            and _held(standing.value_since, now, rule.for_s)
        ):
            return Step(replace(standing, firing=True), FIRING, standing.last_value, now)
        return Step(standing)
    if rule.kind == NO_DATA:
        if not online or silent_since is None:
            return Step(standing)
        silent = max(0.0, (now - silent_since).total_seconds())
        quiet = _held(silent_since, now, rule.for_s)
        if quiet != standing.firing:
            return Step(Standing(firing=quiet), FIRING if quiet else CLEARING, silent, now)
        return Step(standing)
    if rule.kind == OFFLINE:
        if online:
            if standing.firing:
                return Step(Standing(), CLEARING, 0.0, now)
            return Step(standing)
        if standing.firing or offline_since is None or not _held(offline_since, now, rule.for_s):
            return Step(standing)
        seconds = max(0.0, (now - offline_since).total_seconds())
        return Step(Standing(firing=True), FIRING, seconds, now)
    return Step(standing)


def _threshold_tick(rule: RuleSpec, standing: Standing, now: datetime) -> Step:
    """A pending condition held until now by the last value (no value since broke it)."""
    if standing.pending_since is None:
        return Step(standing)
    seconds = rule.clear_for_s if standing.firing else rule.for_s
    if not _held(standing.pending_since, now, seconds):
        return Step(standing)
    return Step(
        Standing(firing=not standing.firing),
        CLEARING if standing.firing else FIRING,
        standing.last_value,
        now,
    )


def state_name(kind: str, transition: str) -> str:
    """The wire `state` of a kind's FIRING or CLEARING."""
    return (FIRING_STATES if transition == FIRING else CLEARING_STATES)[kind]


def total(metric: str, values: list[float]) -> float:
    """A device total of a metric reported per marker: the sum, except `dwell_s`, whose
    total is the longest dwell."""
    if metric == "dwell_s":
        return max(values)
    return sum(values)
