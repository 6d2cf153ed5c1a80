"""The alert state machine on its own: hysteresis, durations and time rules, with times
given by the test (nothing here reads a clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vsense.alerts.engine import (
    CLEARING,
    FIRING,
    FROZEN,
    GREATER_THAN,
    LESS_THAN,
    NO_DATA,
    OFFLINE,
    RuleSpec,
    Standing,
    check_thresholds,
    on_tick,
    on_value,
    total,
    unmoved,
)

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ABOVE = RuleSpec(GREATER_THAN, trigger_value=100, clearing_value=90)
BELOW = RuleSpec(LESS_THAN, trigger_value=10, clearing_value=20)


def run(rule: RuleSpec, values: list[float], standing: Standing | None = None) -> list[str]:
    """Feed values one second apart; the transitions, in order."""
    standing = standing or Standing()
    seen: list[str] = []
    for index, value in enumerate(values):
        step = on_value(rule, standing, value, T0 + timedelta(seconds=index))
        standing = step.standing
        if step.transition:
            seen.append(step.transition)
    return seen


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([50, 101], [FIRING]),  # crossing the trigger
        ([50, 100], []),  # touching the trigger fires nothing
        ([101, 95, 91, 99, 95], [FIRING]),  # staying between: still firing
        ([101, 90], [FIRING]),  # touching the clearing value clears nothing
        ([101, 89], [FIRING, CLEARING]),  # crossing the clearing value
        ([101, 89, 95, 100], [FIRING, CLEARING]),  # between after clearing: nothing
        ([101, 89, 101], [FIRING, CLEARING, FIRING]),  # fires again only after clearing
        ([101, 150, 200], [FIRING]),  # once per episode
    ],
)
def test_greater_than_hysteresis(values: list[float], expected: list[str]) -> None:
    assert run(ABOVE, values) == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([50, 9], [FIRING]),
        ([50, 10], []),
        ([9, 15, 19, 11, 15], [FIRING]),
        ([9, 20], [FIRING]),
        ([9, 21], [FIRING, CLEARING]),
        ([9, 21, 15, 10], [FIRING, CLEARING]),
        ([9, 21, 9], [FIRING, CLEARING, FIRING]),
        ([9, 5, 0], [FIRING]),
    ],
)
def test_less_than_hysteresis(values: list[float], expected: list[str]) -> None:
    assert run(BELOW, values) == expected


def test_equal_thresholds_fire_above_and_clear_below() -> None:
    rule = RuleSpec(GREATER_THAN, trigger_value=5, clearing_value=5)
    assert run(rule, [5, 6, 5, 4]) == [FIRING, CLEARING]


def test_threshold_order_is_checked_in_both_directions() -> None:
    assert check_thresholds(GREATER_THAN, 100, 90) is None
    assert check_thresholds(GREATER_THAN, 100, 100) is None
    assert check_thresholds(GREATER_THAN, 90, 100) is not None
    assert check_thresholds(LESS_THAN, 10, 20) is None
    assert check_thresholds(LESS_THAN, 20, 10) is not None


def test_for_s_waits_for_the_condition_to_hold() -> None:
    rule = RuleSpec(GREATER_THAN, trigger_value=100, clearing_value=90, for_s=60)
    first = on_value(rule, Standing(), 120, T0)
    assert first.transition is None and first.standing.pending_since == T0
    early = on_value(rule, first.standing, 130, T0 + timedelta(seconds=59))
    assert early.transition is None
    held = on_value(rule, early.standing, 125, T0 + timedelta(seconds=60))
    assert (held.transition, held.value, held.at) == (FIRING, 125, T0 + timedelta(seconds=60))


def test_a_value_breaking_the_condition_restarts_the_wait() -> None:
    rule = RuleSpec(GREATER_THAN, trigger_value=100, clearing_value=90, for_s=60)
    pending = on_value(rule, Standing(), 120, T0).standing
    broken = on_value(rule, pending, 95, T0 + timedelta(seconds=30)).standing
    assert broken.pending_since is None
    again = on_value(rule, broken, 120, T0 + timedelta(seconds=61))
    assert again.transition is None and again.standing.pending_since == T0 + timedelta(seconds=61)


def test_a_pending_condition_fires_on_the_sweep_once_held_long_enough() -> None:
    rule = RuleSpec(GREATER_THAN, trigger_value=100, clearing_value=90, for_s=60)
    pending = on_value(rule, Standing(), 120, T0).standing
    assert on_tick(rule, pending, T0 + timedelta(seconds=59), online=True).transition is None
    step = on_tick(rule, pending, T0 + timedelta(seconds=60), online=True)
    assert (step.transition, step.value) == (FIRING, 120)


def test_clear_for_s_waits_before_clearing() -> None:
    rule = RuleSpec(LESS_THAN, trigger_value=10, clearing_value=20, clear_for_s=30)
    firing = on_value(rule, Standing(), 5, T0)
    assert firing.transition == FIRING
    clearing = on_value(rule, firing.standing, 25, T0 + timedelta(seconds=1))
    assert clearing.transition is None and clearing.standing.firing
    between = on_value(rule, clearing.standing, 15, T0 + timedelta(seconds=10)).standing
    assert between.pending_since is None and between.firing
    restarted = on_value(rule, between, 25, T0 + timedelta(seconds=11)).standing
    done = on_value(rule, restarted, 30, T0 + timedelta(seconds=41))
    assert done.transition == CLEARING and not done.standing.firing


def test_no_data_fires_for_an_online_silent_device_and_clears_on_data() -> None:
    rule = RuleSpec(NO_DATA, for_s=600)
    last = T0
    quiet = on_tick(rule, Standing(), T0 + timedelta(seconds=599), online=True, silent_since=last)
    assert quiet.transition is None
    fired = on_tick(rule, Standing(), T0 + timedelta(seconds=600), online=True, silent_since=last)
    assert (fired.transition, fired.value) == (FIRING, 600)
    again = on_tick(rule, fired.standing, T0 + timedelta(hours=1), online=True, silent_since=last)
    assert again.transition is None
    data = T0 + timedelta(hours=1)
    cleared = on_tick(
        rule, fired.standing, data + timedelta(seconds=10), online=True, silent_since=data
    )
    assert (cleared.transition, cleared.value) == (CLEARING, 10)


def test_no_data_waits_while_the_device_is_offline() -> None:
    rule = RuleSpec(NO_DATA, for_s=60)
    later = T0 + timedelta(hours=1)
    assert on_tick(rule, Standing(), later, online=False, silent_since=T0).transition is None
    firing = Standing(firing=True)
    recent = later - timedelta(seconds=1)
    assert on_tick(rule, firing, later, online=False, silent_since=recent).transition is None


def test_frozen_fires_on_an_unchanged_value_and_clears_on_a_change() -> None:
    rule = RuleSpec(FROZEN, for_s=300)
    standing = on_value(rule, Standing(), 4, T0).standing
    standing = on_value(rule, standing, 4, T0 + timedelta(seconds=200)).standing
    assert standing.value_since == T0
    assert on_tick(rule, standing, T0 + timedelta(seconds=299), online=True).transition is None
    offline = on_tick(rule, standing, T0 + timedelta(seconds=400), online=False)
    assert offline.transition is None
    fired = on_tick(rule, standing, T0 + timedelta(seconds=300), online=True)
    assert (fired.transition, fired.value) == (FIRING, 4)
    assert on_value(rule, fired.standing, 4, T0 + timedelta(seconds=500)).transition is None
    changed = on_value(rule, fired.standing, 5, T0 + timedelta(seconds=600))
    assert (changed.transition, changed.value) == (CLEARING, 5)
    assert changed.standing.value_since == T0 + timedelta(seconds=600)


def test_offline_fires_after_for_s_and_clears_when_back() -> None:
    rule = RuleSpec(OFFLINE, for_s=900)
    since = T0
    early = on_tick(
        rule, Standing(), T0 + timedelta(seconds=899), online=False, offline_since=since
    )
    assert early.transition is None
    fired = on_tick(
        rule, Standing(), T0 + timedelta(seconds=900), online=False, offline_since=since
    )
    assert (fired.transition, fired.value) == (FIRING, 900)
    still = on_tick(
        rule, fired.standing, T0 + timedelta(hours=2), online=False, offline_since=since
    )
    assert still.transition is None
    back = on_tick(rule, fired.standing, T0 + timedelta(hours=2), online=True)
    assert back.transition == CLEARING and not back.standing.firing


def test_device_totals() -> None:
    assert total("count", [3, 4]) == 7
    assert total("dwell_s", [30, 400, 12]) == 400


def test_a_batch_that_moves_nothing_is_told_without_stepping() -> None:
    assert unmoved(ABOVE, Standing(), [50, 100, 99])
    assert not unmoved(ABOVE, Standing(), [50, 101])
    assert unmoved(ABOVE, Standing(firing=True), [95, 90, 200])
    assert not unmoved(ABOVE, Standing(firing=True), [95, 89])
    assert unmoved(BELOW, Standing(), [50, 10, 11])
    assert not unmoved(BELOW, Standing(), [50, 9, 11])
    assert unmoved(BELOW, Standing(firing=True), [15, 20, 3])
    assert not unmoved(BELOW, Standing(firing=True), [15, 21, 3])
    assert not unmoved(ABOVE, Standing(pending_since=T0, last_value=120), [50])
    assert not unmoved(RuleSpec(FROZEN, for_s=60), Standing(), [1])
