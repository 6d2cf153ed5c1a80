"""What one simulated sensor sees, and the messages it sends about it (spec/devices.md).

One class per application type holds the state of one sensor. Scenes have no clock
and no randomness of their own: every call takes the wall-clock time `now` (UNIX
seconds) and the device's `random.Random`, so the same seed and the same times give
the same messages.

Two times are in play. What the platform sees and checks (message timestamps,
`event_ts`, periods, VPM's one message per 30 s) is wall-clock time. The world (how
full a car park is at 11:00) follows simulated time, which a `SimClock` derives from
wall-clock time, so that a fleet at rate 60 lives a day in 24 minutes while its
messages still carry real timestamps the platform accepts.
"""

from __future__ import annotations

import math
import random
import uuid
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

Message = dict[str, Any]

# Spot classes of spec/devices.md, weighted for what each kind of site sees.
PARKING_CLASSES = {
    "car": 0.84,
    "van": 0.06,
    "motorcycle": 0.04,
    "truck": 0.02,
    "bicycle": 0.01,
    "bus": 0.01,
    "other": 0.02,
}
YARD_CLASSES = {"truck": 0.62, "van": 0.30, "car": 0.06, "other": 0.02}
ZONE_PROFILES = (
    {"person": 0.86, "bicycle": 0.10, "other": 0.04},
    {"car": 0.55, "person": 0.25, "bicycle": 0.10, "van": 0.05, "truck": 0.03, "motorcycle": 0.02},
)
BARRIER_CLASSES = {"person": 0.93, "bicycle": 0.05, "other": 0.02}
FIRMWARE_VERSIONS = ("2.3.1", "2.4.0", "2.4.2", "3.0.0-rc.2")
# Documentation ranges (RFC 5737): a simulated sensor must never claim a real address.
DOCUMENTATION_NETWORKS = ("192.0.2", "198.51.100", "203.0.113")
VPM_MIN_INTERVAL_S = 30.0
DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class SimClock:
    """Maps wall-clock time to simulated time: `sim = sim_origin + (wall - wall_origin) * rate`.

    The default is the identity: simulated time is wall-clock time.
    """

    wall_origin: float = 0.0
    sim_origin: float = 0.0
    rate: float = 1.0

    def sim(self, wall: float) -> float:
        """The simulated time at wall-clock time `wall`."""
        return self.sim_origin + (wall - self.wall_origin) * self.rate

    def wall(self, sim: float) -> float:
        """The wall-clock time at which simulated time reaches `sim`."""
        return self.wall_origin + (sim - self.sim_origin) / self.rate


def _bump(hour: float, center: float, width: float) -> float:
    distance = abs(hour - center) % 24
    distance = min(distance, 24 - distance)  # the day wraps: 23:00 is close to 01:00
    return math.exp(-((distance / width) ** 2))


def parking_demand(hour: float) -> float:
    """Share of car-park spots taken at a local hour: low at night, peaks at 11:00 and 19:00."""
    return min(0.95, 0.08 + 0.75 * _bump(hour, 11, 2.5) + 0.62 * _bump(hour, 19, 2.0))


def yard_demand(hour: float) -> float:
    """Share of yard docks taken at a local hour: busy through working hours."""
    return min(0.95, 0.12 + 0.8 * _bump(hour, 10.5, 3.5) + 0.3 * _bump(hour, 15.5, 2.5))


def activity(hour: float) -> float:
    """How busy a street is at a local hour, 0 to 1: rush hours, lunch, a quiet night."""
    return min(
        1.0,
        0.04
        + 0.55 * _bump(hour, 8.5, 1.5)
        + 0.6 * _bump(hour, 13, 2.5)
        + 0.75 * _bump(hour, 18, 2),
    )


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean < 30:  # Knuth's method: exact, and cheap for small means
        limit, count, product = math.exp(-mean), 0, rng.random()
        while product > limit:
            count += 1
            product *= rng.random()
        return count
    return max(0, round(rng.gauss(mean, math.sqrt(mean))))


def _binomial(rng: random.Random, trials: int, probability: float) -> int:
    if trials < 50:
        return sum(rng.random() < probability for _ in range(trials))
    spread = math.sqrt(trials * probability * (1 - probability))
    return min(trials, max(0, round(rng.gauss(trials * probability, spread))))


def _split(rng: random.Random, total: int, weights: dict[str, float]) -> dict[str, int]:
    """`total` shared out between classes at random; only classes that got some are kept."""
    drawn = Counter(rng.choices(list(weights), list(weights.values()), k=total))
    return {name: drawn[name] for name in weights if drawn[name]}


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


_PLATE_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"  # plates avoid I, O and Q


def plate(rng: random.Random, country: str = "") -> str:
    """A plausible licence plate in the style of `country` (ISO alpha-2), or a generic one."""

    def letters(count: int) -> str:
        return "".join(rng.choices(_PLATE_LETTERS, k=count))

    def digits(count: int) -> str:
        return "".join(rng.choices("0123456789", k=count))

    match country.upper():
        case "DE":
            return f"{letters(rng.randint(1, 2))}-{letters(2)} {rng.randint(1, 9999)}"
        case "FR":
            return f"{letters(2)}-{digits(3)}-{letters(2)}"
        case "NL":
            return f"{digits(2)}-{letters(3)}-{digits(1)}"
        case "GB":
            return f"{letters(2)}{digits(2)} {letters(3)}"
        case "PL":
            return f"{letters(2)} {digits(5)}"
        case _:
            return f"{letters(3)} {digits(4)}"


def message(app_type: str, timestamp: int, payload: list[dict[str, Any]]) -> Message:
    """A device message in the envelope of spec/devices.md."""
    return {"type": app_type, "timestamp": timestamp, "payload": payload, "version": 1}


class Scene(ABC):
    """One simulated sensor: its world, and the messages and health it reports.

    `now` is wall-clock UNIX seconds; `clock` gives simulated time, and `utc_offset_s`
    the sensor's local time zone, for the day curves. `country` (ISO alpha-2) flavours
    details such as plates.
    """

    app_type: ClassVar[str]

    def __init__(
        self,
        rng: random.Random,
        *,
        now: float,
        clock: SimClock = SimClock(),
        utc_offset_s: float = 0.0,
        country: str = "",
    ) -> None:
        self.clock = clock
        self.utc_offset_s = utc_offset_s
        self.country = country
        self._fw_version = rng.choice(FIRMWARE_VERSIONS)
        self._ip = f"{rng.choice(DOCUMENTATION_NETWORKS)}.{rng.randint(1, 254)}"
        # A sensor is found running: up for anything between an hour and a month.
        self._boot = now - rng.uniform(3600, 30 * DAY_S)
        self._free_disk_mb = rng.randint(2_000, 28_000)
        self._signal_dbm = rng.uniform(-88, -55)

    def local_hour(self, now: float) -> float:
        """The sensor's simulated local hour of day (0 to 24) at wall-clock time `now`."""
        return ((self.clock.sim(now) + self.utc_offset_s) % DAY_S) / 3600

    @abstractmethod
    def next_due(self) -> float:
        """Wall-clock time of the next `step` that may produce a message (may be past)."""

    @abstractmethod
    def step(self, now: float, rng: random.Random) -> Message | None:
        """Advance the world to `now`; the message to send now, if any."""

    def reboot(self, now: float) -> None:
        """Restart the sensor: its uptime starts again from `now`."""
        self._boot = now

    def health(self, now: float, rng: random.Random) -> dict[str, Any]:
        """The optional health body of a keepalive (spec/devices.md, HTTP transport)."""
        busy = activity(self.local_hour(now))
        # Recordings fill the disk slowly; housekeeping keeps a floor.
        self._free_disk_mb = max(500, self._free_disk_mb - rng.randint(0, 3))
        return {
            "fw_version": self._fw_version,
            "uptime_s": max(0, int(now - self._boot)),
            "temperature_c": round(36 + 9 * busy + rng.gauss(0, 1.2), 1),
            "cpu_load": round(min(1.0, max(0.0, 0.12 + 0.55 * busy + rng.gauss(0, 0.05))), 2),
            "free_disk_mb": self._free_disk_mb,
            "ip": self._ip,
            "signal_dbm": round(self._signal_dbm + rng.gauss(0, 2.5)),
        }


@dataclass(slots=True)
class Spot:
    """One parking spot or dock; `event_ts` is its last change, wall-clock seconds."""

    id: str
    name: str
    deactivated: bool
    is_active: bool = False
    cls: str | None = None
    event_ts: int = 0
    plate: str | None = None


class _SpotScene(Scene):
    """Spots that fill and empty with a day curve; a message on change, one per 30 s at most."""

    spot_prefix: ClassVar[str]
    classes: ClassVar[dict[str, float]]
    # Mean simulated seconds between two looks at one spot; each look flips it or not
    # so that, over time, the share of taken spots follows the day curve.
    look_interval_s: ClassVar[float]
    # After a long pause, replaying hours of changes one by one is pointless.
    max_looks_per_step: ClassVar[int] = 2_000

    def __init__(
        self,
        rng: random.Random,
        *,
        now: float,
        clock: SimClock = SimClock(),
        utc_offset_s: float = 0.0,
        country: str = "",
        spots: int | None = None,
    ) -> None:
        super().__init__(rng, now=now, clock=clock, utc_offset_s=utc_offset_s, country=country)
        self._popularity = rng.uniform(0.7, 1.0)
        self.spots = [
            # Spot 0 is always monitored, so that every site has something to report.
            Spot(
                id=_uuid(rng),
                name=f"{self.spot_prefix}{index}",
                deactivated=index > 0 and rng.random() < 0.04,
            )
            for index in range(spots if spots is not None else rng.randint(8, 40))
        ]
        self._monitored = [spot for spot in self.spots if not spot.deactivated]
        demand = self._demand(now)
        for spot in self.spots:
            if spot.deactivated:
                spot.event_ts = max(0, int(now - rng.uniform(1, 60) * DAY_S))
                continue
            spot.event_ts = max(0, int(now - rng.uniform(60, 4 * 3600)))
            if rng.random() < demand:
                self._occupy(spot, rng)
        # A sensor that starts reports what it sees at once (the platform knows nothing
        # yet), as if its last message were just old enough: the first step at `now`
        # sends, and a scene made for a later `now` waits until then.
        self._changed = True
        self._last_sent = now - VPM_MIN_INTERVAL_S
        self._next_look = self.clock.sim(now) + self._look_gap(rng)

    def _demand(self, now: float) -> float:
        return self._popularity * self.demand_curve(self.local_hour(now))

    @abstractmethod
    def demand_curve(self, hour: float) -> float:
        """Share of spots taken at a local hour."""

    def _look_gap(self, rng: random.Random) -> float:
        return rng.expovariate(len(self._monitored) / self.look_interval_s)

    def _occupy(self, spot: Spot, rng: random.Random) -> None:
        spot.is_active = True
        spot.cls = rng.choices(list(self.classes), list(self.classes.values()))[0]

    def _free(self, spot: Spot) -> None:
        spot.is_active, spot.cls, spot.plate = False, None, None

    def _look(self, when: float, rng: random.Random) -> None:
        spot = rng.choice(self._monitored)
        demand = self._demand(when)
        # Flipping a free spot with probability `demand` and a taken one with `1 - demand`
        # makes `demand` the stationary share of taken spots.
        if spot.is_active == (rng.random() < demand):
            return
        if spot.is_active:
            self._free(spot)
        else:
            self._occupy(spot, rng)
        spot.event_ts = int(when)
        self._changed = True

    def next_due(self) -> float:
        earliest = self._last_sent + VPM_MIN_INTERVAL_S
        if self._changed:
            return earliest
        return max(earliest, self.clock.wall(self._next_look))

    def step(self, now: float, rng: random.Random) -> Message | None:
        sim_now = self.clock.sim(now)
        looks = 0
        while self._next_look <= sim_now:
            if looks == self.max_looks_per_step:
                self._next_look = sim_now + self._look_gap(rng)
                break
            self._look(self.clock.wall(self._next_look), rng)
            self._next_look += self._look_gap(rng)
            looks += 1
        if not self._changed or now < self._last_sent + VPM_MIN_INTERVAL_S:
            return None
        self._changed = False
        self._last_sent = now
        return message(self.app_type, int(now), [self._item(spot, now) for spot in self.spots])

    def _item(self, spot: Spot, now: float) -> dict[str, Any]:
        return {
            "id": spot.id,
            "name": spot.name,
            "is_active": spot.is_active,
            "deactivated": spot.deactivated,
            "cls": spot.cls,
            "event_ts": spot.event_ts,
        }


class VpmScene(_SpotScene):
    """VPM: a car park of 8 to 40 spots named P-0, P-1, ..."""

    app_type = "VPM"
    spot_prefix = "P-"
    classes = PARKING_CLASSES
    look_interval_s = 2_400.0

    def demand_curve(self, hour: float) -> float:
        return parking_demand(hour)


class VydScene(_SpotScene):
    """VYD: a truck yard of 8 to 40 docks named D-0, D-1, ..., with dwell times and plates.

    About 60 % of yards read plates; the others send `plate` null, as the spec says.
    """

    app_type = "VYD"
    spot_prefix = "D-"
    classes = YARD_CLASSES
    look_interval_s = 5_400.0  # trucks stay longer than cars

    def demand_curve(self, hour: float) -> float:
        return yard_demand(hour)

    def __init__(
        self,
        rng: random.Random,
        *,
        now: float,
        clock: SimClock = SimClock(),
        utc_offset_s: float = 0.0,
        country: str = "",
        spots: int | None = None,
    ) -> None:
        # Decided before the spots are filled, since filling them reads plates.
        self.reads_plates = rng.random() < 0.6
        super().__init__(
            rng, now=now, clock=clock, utc_offset_s=utc_offset_s, country=country, spots=spots
        )

    def _occupy(self, spot: Spot, rng: random.Random) -> None:
        super()._occupy(spot, rng)
        spot.plate = plate(rng, self.country) if self.reads_plates else None

    def _item(self, spot: Spot, now: float) -> dict[str, Any]:
        item = super()._item(spot, now)
        item["dwell_s"] = max(0, int(now) - spot.event_ts) if spot.is_active else None
        item["plate"] = spot.plate
        return item


class _PeriodScene(Scene):
    """A message at the end of every period of `period_s` simulated seconds."""

    def __init__(
        self,
        rng: random.Random,
        *,
        now: float,
        clock: SimClock = SimClock(),
        utc_offset_s: float = 0.0,
        country: str = "",
        period_s: float = 60.0,
    ) -> None:
        super().__init__(rng, now=now, clock=clock, utc_offset_s=utc_offset_s, country=country)
        self.period_s = period_s
        self._period_start = now
        self._build(rng, now)

    @abstractmethod
    def _build(self, rng: random.Random, now: float) -> None:
        """Set up the zones or lines of this sensor (one constructor for every kind)."""

    def next_due(self) -> float:
        return self._period_start + self.period_s / self.clock.rate

    def step(self, now: float, rng: random.Random) -> Message | None:
        if now < self.next_due():
            return None
        start, self._period_start = self._period_start, now
        items = self._measure(start, now, rng)
        for item in items:
            item["period_start"], item["period_end"] = int(start), int(now)
        return message(self.app_type, int(now), items)

    @abstractmethod
    def _measure(self, start: float, end: float, rng: random.Random) -> list[dict[str, Any]]:
        """The payload items of the period from `start` to `end` (wall-clock)."""


@dataclass(slots=True)
class CountingZone:
    """A VCZ zone: `capacity` objects are present at the busiest hour, on average."""

    id: str
    name: str
    capacity: float
    classes: dict[str, float]


class VczScene(_PeriodScene):
    """VCZ: 1 to 4 zones Z-0, Z-1, ... counting the objects present in each period."""

    app_type = "VCZ"

    def _build(self, rng: random.Random, now: float) -> None:
        self.zones = [
            CountingZone(_uuid(rng), f"Z-{index}", rng.uniform(3, 40), rng.choice(ZONE_PROFILES))
            for index in range(rng.randint(1, 4))
        ]

    def _measure(self, start: float, end: float, rng: random.Random) -> list[dict[str, Any]]:
        busy = activity(self.local_hour((start + end) / 2))
        items = []
        for zone in self.zones:
            count = _poisson(rng, zone.capacity * busy)
            by_class = _split(rng, count, zone.classes)
            items.append({"id": zone.id, "name": zone.name, "count": count, "by_class": by_class})
        return items


def _arrivals_per_peak_hour(hour: float) -> float:
    # The morning arrival, people coming back from lunch, a trickle all day.
    return 0.02 + _bump(hour, 8.5, 1.2) + 0.3 * _bump(hour, 13.5, 0.8) + 0.08 * _bump(hour, 16, 2.5)


def _leaving_per_hour(hour: float) -> float:
    # Share of the people inside who leave per hour: some at lunch, most in the
    # evening, and whoever is left late at night, so that the building empties.
    late = 2.0 if hour >= 21 or hour < 5 else 0.0
    return 0.03 + 0.35 * _bump(hour, 12.5, 0.7) + 1.2 * _bump(hour, 17.8, 1.3) + late


@dataclass(slots=True)
class BarrierLine:
    """A VCB line and who is inside beyond it, per class (never negative)."""

    id: str
    name: str
    peak_arrivals_per_hour: float
    inside: dict[str, int]


class VcbScene(_PeriodScene):
    """VCB: 1 or 2 lines counting people in (mornings) and out (evenings) per period.

    Everyone who leaves went in first, per line and class, so the running occupancy
    the platform derives never goes below 0.
    """

    app_type = "VCB"

    def _build(self, rng: random.Random, now: float) -> None:
        names = ("Entrance", "Side door")
        self.lines = [
            BarrierLine(
                _uuid(rng), names[index], rng.uniform(40, 400), dict.fromkeys(BARRIER_CLASSES, 0)
            )
            for index in range(rng.randint(1, 2))
        ]

    def _measure(self, start: float, end: float, rng: random.Random) -> list[dict[str, Any]]:
        hour = self.local_hour((start + end) / 2)
        sim_hours = (end - start) * self.clock.rate / 3600
        leave_share = 1 - math.exp(-_leaving_per_hour(hour) * sim_hours)
        items = []
        for line in self.lines:
            arrivals = _poisson(
                rng, line.peak_arrivals_per_hour * _arrivals_per_peak_hour(hour) * sim_hours
            )
            came_in = _split(rng, arrivals, BARRIER_CLASSES)
            by_class: dict[str, dict[str, int]] = {}
            for cls in BARRIER_CLASSES:
                went_in = came_in.get(cls, 0)
                went_out = _binomial(rng, line.inside[cls], leave_share)
                line.inside[cls] += went_in - went_out
                if went_in or went_out:
                    by_class[cls] = {"in": went_in, "out": went_out}
            items.append(
                {
                    "id": line.id,
                    "name": line.name,
                    "in": sum(entry["in"] for entry in by_class.values()),
                    "out": sum(entry["out"] for entry in by_class.values()),
                    "by_class": by_class,
                }
            )
        return items


@dataclass(slots=True)
class Crowd:
    """An event that draws `size` extra people: they gather, stay, then disperse."""

    start: float  # simulated seconds
    rise_s: float
    hold_s: float
    fall_s: float
    size: float

    @property
    def end(self) -> float:
        return self.start + self.rise_s + self.hold_s + self.fall_s

    def people(self, sim: float) -> float:
        """Extra people at simulated time `sim`."""
        elapsed = sim - self.start
        if elapsed < 0 or sim >= self.end:
            return 0.0
        if elapsed < self.rise_s:
            return self.size * elapsed / self.rise_s
        if elapsed < self.rise_s + self.hold_s:
            return self.size
        return self.size * (self.end - sim) / self.fall_s


@dataclass(slots=True)
class CrowdZone:
    """A VCW zone; `area_m2` None means the area is not configured (density null)."""

    id: str
    name: str
    area_m2: float | None
    baseline: float
    next_crowd: float  # simulated seconds
    crowds: list[Crowd]


class VcwScene(_PeriodScene):
    """VCW: 1 to 3 zones whose crowds swell and ebb with the day and with events."""

    app_type = "VCW"
    mean_gap_between_crowds_s: ClassVar[float] = 6 * 3600.0

    def _build(self, rng: random.Random, now: float) -> None:
        names = ("Hall", "Concourse", "Plaza")
        sim_now = self.clock.sim(now)
        self.zones = [
            CrowdZone(
                id=_uuid(rng),
                name=names[index],
                area_m2=None if rng.random() < 0.25 else rng.uniform(150, 3_000),
                baseline=rng.uniform(20, 300),
                next_crowd=sim_now + rng.expovariate(1 / self.mean_gap_between_crowds_s),
                crowds=[],
            )
            for index in range(rng.randint(1, 3))
        ]

    def _gather(self, zone: CrowdZone, sim_now: float, rng: random.Random) -> None:
        if sim_now - zone.next_crowd > DAY_S:  # after a long pause, skip the missed events
            zone.next_crowd = sim_now
        while zone.next_crowd <= sim_now:
            zone.crowds.append(
                Crowd(
                    start=zone.next_crowd,
                    rise_s=rng.uniform(10, 40) * 60,
                    hold_s=rng.uniform(20, 120) * 60,
                    fall_s=rng.uniform(15, 60) * 60,
                    size=zone.baseline * rng.uniform(0.5, 3.0) + 20,
                )
            )
            zone.next_crowd += rng.expovariate(1 / self.mean_gap_between_crowds_s)
        # Only crowds that are still there: the list stays as short as the events are.
        zone.crowds = [crowd for crowd in zone.crowds if crowd.end > sim_now]

    def _measure(self, start: float, end: float, rng: random.Random) -> list[dict[str, Any]]:
        sim_now = self.clock.sim(end)
        busy = activity(self.local_hour(end))
        items = []
        for zone in self.zones:
            self._gather(zone, sim_now, rng)
            expected = zone.baseline * busy + sum(crowd.people(sim_now) for crowd in zone.crowds)
            count = _poisson(rng, expected)
            density = None if zone.area_m2 is None else round(count / zone.area_m2, 3)
            items.append({"id": zone.id, "name": zone.name, "count": count, "density": density})
        return items


SCENES: dict[str, type[Scene]] = {
    scene.app_type: scene for scene in (VpmScene, VydScene, VczScene, VcbScene, VcwScene)
}


def make_scene(
    app_type: str,
    rng: random.Random,
    *,
    now: float,
    clock: SimClock = SimClock(),
    utc_offset_s: float = 0.0,
    country: str = "",
) -> Scene:
    """A new scene of `app_type` (a key of `SCENES`), or `KeyError` for an unknown type."""
    return SCENES[app_type](rng, now=now, clock=clock, utc_offset_s=utc_offset_s, country=country)
