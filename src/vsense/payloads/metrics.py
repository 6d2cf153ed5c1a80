"""Metrics derived from an accepted message: the numbers alert rules look at.

Each metric belongs to the device, or to one of its markers (a spot, a zone or a line,
named by the payload item's `id` and `name`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vsense.payloads.schemas import (
    ParkingSpot,
    PeriodItem,
    ValidatedMessage,
    VcbPayload,
    VcwPayload,
    VczPayload,
    VpmPayload,
    VydPayload,
    YardSpot,
)

# The metric names each type can yield, for checking alert rules against. VCB's
# `occupancy` is kept by the gateway with `next_occupancy`, not derived per message.
METRIC_NAMES: dict[str, tuple[str, ...]] = {
    "VPM": ("occupied", "is_active"),
    "VYD": ("occupied", "is_active", "dwell_s"),
    "VCZ": ("count",),
    "VCB": ("in", "out", "net", "occupancy"),
    "VCW": ("count",),
}


@dataclass(frozen=True, slots=True)
class Metric:
    """One value; `marker_id` and `marker_name` are None for a metric of the device."""

    name: str
    value: float
    marker_id: str | None = None
    marker_name: str | None = None


def _marker_metric(name: str, value: float, item: ParkingSpot | PeriodItem) -> Metric:
    return Metric(name=name, value=float(value), marker_id=item.id, marker_name=item.name)


def _spot_metrics(spots: Sequence[ParkingSpot]) -> list[Metric]:
    # A deactivated spot is excluded from monitoring: it counts in no metric, so no
    # alert rule can fire on what a device reports about it.
    monitored = [spot for spot in spots if not spot.deactivated]
    metrics = [Metric("occupied", float(sum(spot.is_active for spot in monitored)))]
    for spot in monitored:
        metrics.append(_marker_metric("is_active", spot.is_active, spot))
        if isinstance(spot, YardSpot) and spot.dwell_s is not None:
            metrics.append(_marker_metric("dwell_s", spot.dwell_s, spot))
    return metrics


def derive_metrics(message: ValidatedMessage) -> list[Metric]:
    """The metrics of one accepted message, in payload order (spec/devices.md).

    VPM and VYD: `occupied` for the device (active spots that are not deactivated),
    and per monitored spot `is_active` (1 or 0), plus `dwell_s` for VYD when sent.
    VCZ and VCW: `count` per zone. VCB: `in`, `out` and `net` (`in - out`) per line.
    A type without a model (an unknown type accepted by setting) yields none.

    VCB's running `occupancy` spans messages, so it is not derived here: the gateway
    keeps each line's value and updates it with `next_occupancy`.
    """
    parsed = message.parsed
    if isinstance(parsed, VpmPayload | VydPayload):
        return _spot_metrics(parsed.root)
    if isinstance(parsed, VczPayload | VcwPayload):
        return [_marker_metric("count", zone.count, zone) for zone in parsed.root]
    if isinstance(parsed, VcbPayload):
        return [
            _marker_metric(name, value, line)
            for line in parsed.root
            for name, value in (("in", line.in_), ("out", line.out), ("net", line.in_ - line.out))
        ]
    return []


def next_occupancy(previous: float, net: float) -> float:
    """A line's running occupancy after a message with this `net`: never below 0.

    Pure on purpose: the state (the previous value, and its daily reset) belongs to
    the gateway, which stores it per line.
    """
    return max(0.0, previous + net)
