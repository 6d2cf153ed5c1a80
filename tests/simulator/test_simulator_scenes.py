"""Simulated sensors: their messages follow spec/devices.md, and their worlds behave."""

from __future__ import annotations

import ipaddress
import itertools
import random
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from vsense.payloads.schemas import validate_message
from vsense.simulator.scenes import (
    SCENES,
    Message,
    Scene,
    SimClock,
    VcbScene,
    VcwScene,
    VpmScene,
    VydScene,
    make_scene,
    parking_demand,
)

MIDNIGHT = datetime(2026, 3, 2, tzinfo=UTC).timestamp()  # a Monday, 00:00 UTC
DAY = 86_400.0
SPOT_CLASSES = {"car", "truck", "van", "motorcycle", "bus", "bicycle", "person", "other"}
DOCUMENTATION_NETWORKS = [
    ipaddress.ip_network(net) for net in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
]


def drive(
    scene: Scene, rng: random.Random, start: float, end: float, *, every: float | None = None
) -> list[Message]:
    """Step a scene from `start` to `end`: whenever it is due, or every `every` seconds."""
    messages: list[Message] = []
    now = start
    while True:
        now = now + every if every else max(now + 1, scene.next_due())
        if now > end:
            return messages
        if (sent := scene.step(now, rng)) is not None:
            messages.append(sent)


def a_day_of(app_type: str, seed: int = 1) -> list[Message]:
    rng = random.Random(seed)
    scene = make_scene(app_type, rng, now=MIDNIGHT)
    return drive(scene, rng, MIDNIGHT, MIDNIGHT + DAY)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_envelope(sent: Message, app_type: str) -> None:
    assert set(sent) == {"type", "timestamp", "payload", "version"}
    assert sent["type"] == app_type
    assert is_int(sent["timestamp"])
    assert sent["version"] == 1
    assert isinstance(sent["payload"], list)
    assert sent["payload"]


def check_item_identity(item: dict[str, Any]) -> None:
    assert str(uuid.UUID(item["id"])) == item["id"]  # lower-case, hyphenated
    assert isinstance(item["name"], str)
    assert item["name"]


def check_spot(item: dict[str, Any], timestamp: int) -> None:
    check_item_identity(item)
    assert isinstance(item["is_active"], bool)
    assert isinstance(item["deactivated"], bool)
    assert (item["cls"] in SPOT_CLASSES) if item["is_active"] else item["cls"] is None
    assert not (item["is_active"] and item["deactivated"])
    assert is_int(item["event_ts"])
    assert 0 <= item["event_ts"] <= timestamp


def check_period(item: dict[str, Any], timestamp: int) -> None:
    assert is_int(item["period_start"])
    assert is_int(item["period_end"])
    assert item["period_start"] <= item["period_end"] == timestamp


def check_vpm(sent: Message) -> None:
    for item in sent["payload"]:
        assert set(item) == {"id", "name", "is_active", "deactivated", "cls", "event_ts"}
        check_spot(item, sent["timestamp"])


def check_vyd(sent: Message) -> None:
    for item in sent["payload"]:
        assert set(item) == {"id", "name", "is_active", "deactivated", "cls", "event_ts"} | {
            "dwell_s",
            "plate",
        }
        check_spot(item, sent["timestamp"])
        if item["is_active"]:
            assert item["dwell_s"] == sent["timestamp"] - item["event_ts"]
        else:
            assert item["dwell_s"] is None
            assert item["plate"] is None
        assert item["plate"] is None or (
            isinstance(item["plate"], str) and len(item["plate"]) <= 20
        )


def check_vcz(sent: Message) -> None:
    for item in sent["payload"]:
        assert set(item) == {"id", "name", "count", "by_class", "period_start", "period_end"}
        check_item_identity(item)
        check_period(item, sent["timestamp"])
        assert is_int(item["count"])
        assert item["count"] >= 0
        assert all(
            isinstance(cls, str) and is_int(n) and n > 0 for cls, n in item["by_class"].items()
        )
        assert sum(item["by_class"].values()) == item["count"]


def check_vcb(sent: Message) -> None:
    for item in sent["payload"]:
        assert set(item) == {"id", "name", "in", "out", "by_class", "period_start", "period_end"}
        check_item_identity(item)
        check_period(item, sent["timestamp"])
        crossings = item["by_class"].values()
        assert all(set(entry) == {"in", "out"} for entry in crossings)
        assert all(is_int(entry["in"]) and is_int(entry["out"]) for entry in crossings)
        assert item["in"] == sum(entry["in"] for entry in crossings) >= 0
        assert item["out"] == sum(entry["out"] for entry in crossings) >= 0


def check_vcw(sent: Message) -> None:
    for item in sent["payload"]:
        assert set(item) == {"id", "name", "count", "density", "period_start", "period_end"}
        check_item_identity(item)
        check_period(item, sent["timestamp"])
        assert is_int(item["count"])
        assert item["count"] >= 0
        assert item["density"] is None or (
            isinstance(item["density"], float) and item["density"] >= 0
        )


CHECKS = {"VPM": check_vpm, "VYD": check_vyd, "VCZ": check_vcz, "VCB": check_vcb, "VCW": check_vcw}


@pytest.mark.parametrize("app_type", list(SCENES))
def test_a_day_of_messages_follows_the_spec(app_type: str) -> None:
    for seed in range(3):
        messages = a_day_of(app_type, seed)
        assert len(messages) > 20
        for sent in messages:
            check_envelope(sent, app_type)
            CHECKS[app_type](sent)


@pytest.mark.parametrize("app_type", list(SCENES))
def test_messages_pass_the_platform_validator(app_type: str) -> None:
    messages = a_day_of(app_type)
    assert messages
    for sent in messages:
        accepted = validate_message(sent, now=datetime.fromtimestamp(sent["timestamp"], UTC))
        # A known type, parsed by its model, kept as sent.
        assert (accepted.type, accepted.version) == (app_type, 1)
        assert accepted.parsed is not None
        assert accepted.timestamp == sent["timestamp"] and accepted.payload == sent["payload"]


@pytest.mark.parametrize("app_type", list(SCENES))
def test_items_keep_their_ids_and_names(app_type: str) -> None:
    messages = a_day_of(app_type)
    first = [(item["id"], item["name"]) for item in messages[0]["payload"]]
    assert all([(item["id"], item["name"]) for item in m["payload"]] == first for m in messages)
    assert len({item_id for item_id, _ in first}) == len(first)


@pytest.mark.parametrize(
    ("app_type", "low", "high"),
    [("VPM", 8, 40), ("VYD", 8, 40), ("VCZ", 1, 4), ("VCB", 1, 2), ("VCW", 1, 3)],
)
def test_item_counts_stay_in_range(app_type: str, low: int, high: int) -> None:
    sizes = set()
    for seed in range(40):
        rng = random.Random(seed)
        sent = drive(make_scene(app_type, rng, now=MIDNIGHT), rng, MIDNIGHT, MIDNIGHT + 7200)[0]
        sizes.add(len(sent["payload"]))
    assert min(sizes) >= low
    assert max(sizes) <= high
    assert len(sizes) > 1


def test_parking_spots_are_named_in_order() -> None:
    sent = a_day_of("VPM")[0]
    assert [item["name"] for item in sent["payload"]] == [
        f"P-{i}" for i in range(len(sent["payload"]))
    ]


@pytest.mark.parametrize("scene_class", [VpmScene, VydScene])
def test_spot_messages_come_only_on_change_and_30_s_apart(scene_class: type[Scene]) -> None:
    # At rate 60 spots change every few seconds, so the 30 s limit is what holds messages back.
    for rate in (1.0, 60.0):
        rng = random.Random(7)
        scene = scene_class(rng, now=MIDNIGHT, clock=SimClock(MIDNIGHT, MIDNIGHT + 9 * 3600, rate))
        messages = drive(scene, rng, MIDNIGHT, MIDNIGHT + 4 * 3600, every=1.0)
        times = [sent["timestamp"] for sent in messages]
        assert all(later - earlier >= 30 for earlier, later in itertools.pairwise(times))
        payloads = [sent["payload"] for sent in messages]
        assert all(a != b for a, b in itertools.pairwise(payloads))
        if rate == 1.0:
            assert len(messages) < 4 * 3600 / 30 / 2  # quiet spells send nothing
        else:
            assert len(messages) > 4 * 3600 / 30 * 0.6  # busy: mostly every 30 s


def test_a_changed_spot_carries_its_change_time() -> None:
    rng = random.Random(3)
    scene = VpmScene(rng, now=MIDNIGHT)
    messages = drive(scene, rng, MIDNIGHT, MIDNIGHT + DAY)
    for before, after in itertools.pairwise(messages):
        spots = {item["id"]: item for item in before["payload"]}
        for item in after["payload"]:
            if item["is_active"] != spots[item["id"]]["is_active"]:
                assert before["timestamp"] - 30 < item["event_ts"] <= after["timestamp"]


def test_car_parks_fill_late_morning_and_evening_and_empty_at_night() -> None:
    assert parking_demand(3) < 0.2 < 0.7 < parking_demand(11)
    assert parking_demand(15) < parking_demand(19)
    at: dict[int, list[float]] = {3: [], 11: [], 19: []}
    for seed in range(10):
        rng = random.Random(seed)
        scene = VpmScene(rng, now=MIDNIGHT)
        for sent in drive(scene, rng, MIDNIGHT, MIDNIGHT + DAY):
            hour = int((sent["timestamp"] - MIDNIGHT) // 3600)
            if hour in at:
                spots = sent["payload"]
                at[hour].append(sum(s["is_active"] for s in spots) / len(spots))
    average = {hour: sum(shares) / len(shares) for hour, shares in at.items()}
    assert average[3] < 0.25 < 0.5 < average[11]
    assert average[3] < average[19]


def test_yard_docks_are_mostly_trucks_and_vans() -> None:
    classes = [
        item["cls"] for sent in a_day_of("VYD") for item in sent["payload"] if item["is_active"]
    ]
    assert sum(cls in ("truck", "van") for cls in classes) > 0.8 * len(classes)


def test_barrier_occupancy_never_goes_negative_and_empties_at_night() -> None:
    for seed in range(5):
        rng = random.Random(seed)
        scene = VcbScene(rng, now=MIDNIGHT)
        occupancy = {line.id: 0 for line in scene.lines}
        peak = dict.fromkeys(occupancy, 0)
        morning = evening = 0  # net crossings in each half of the working day
        for sent in drive(scene, rng, MIDNIGHT, MIDNIGHT + DAY):
            hour = (sent["timestamp"] - MIDNIGHT) / 3600
            for item in sent["payload"]:
                occupancy[item["id"]] += item["in"] - item["out"]
                assert occupancy[item["id"]] >= 0
                peak[item["id"]] = max(peak[item["id"]], occupancy[item["id"]])
                if 6 <= hour < 12:
                    morning += item["in"] - item["out"]
                elif 15 <= hour < 21:
                    evening += item["in"] - item["out"]
        assert morning > 0 > evening
        for line_id, last in occupancy.items():
            assert peak[line_id] > 20
            assert last <= 0.1 * peak[line_id]


def test_crowd_density_is_count_per_square_metre_or_null() -> None:
    zones_without_area = 0
    for seed in range(12):
        rng = random.Random(seed)
        scene = VcwScene(rng, now=MIDNIGHT)
        areas = {zone.id: zone.area_m2 for zone in scene.zones}
        zones_without_area += sum(area is None for area in areas.values())
        for sent in drive(scene, rng, MIDNIGHT, MIDNIGHT + 6 * 3600):
            for item in sent["payload"]:
                area = areas[item["id"]]
                expected = None if area is None else round(item["count"] / area, 3)
                assert item["density"] == expected
    assert zones_without_area > 0


def test_crowds_swell_and_ebb() -> None:
    rng = random.Random(11)
    scene = VcwScene(rng, now=MIDNIGHT)
    counts: dict[str, list[int]] = {}
    for sent in drive(scene, rng, MIDNIGHT, MIDNIGHT + 2 * DAY):
        for item in sent["payload"]:
            counts.setdefault(item["id"], []).append(item["count"])
    for series in counts.values():
        ordered = sorted(series)
        assert ordered[-1] > 2 * ordered[len(ordered) // 2]  # peaks well above the usual


def test_simulated_time_speeds_the_world_not_the_timestamps() -> None:
    rng = random.Random(5)
    scene = VcbScene(rng, now=MIDNIGHT, clock=SimClock(MIDNIGHT, MIDNIGHT, 60.0))
    messages = drive(scene, rng, MIDNIGHT, MIDNIGHT + DAY / 60)  # one simulated day
    assert len(messages) == 1440  # a message per simulated minute
    assert all(MIDNIGHT < sent["timestamp"] <= MIDNIGHT + DAY / 60 for sent in messages)
    crossings = sum(item["in"] for sent in messages for item in sent["payload"])
    assert crossings > 40  # a whole day of people, in 24 real minutes


@pytest.mark.parametrize("app_type", list(SCENES))
def test_the_same_seed_gives_the_same_messages(app_type: str) -> None:
    assert a_day_of(app_type, seed=42) == a_day_of(app_type, seed=42)
    assert a_day_of(app_type, seed=42) != a_day_of(app_type, seed=43)


def test_health_reports_every_field_with_a_documentation_address() -> None:
    rng = random.Random(9)
    scene = make_scene("VCZ", rng, now=MIDNIGHT)
    health = scene.health(MIDNIGHT + 60, rng)
    assert set(health) == {
        "fw_version",
        "uptime_s",
        "temperature_c",
        "cpu_load",
        "free_disk_mb",
        "ip",
        "signal_dbm",
    }
    assert isinstance(health["fw_version"], str)
    assert is_int(health["uptime_s"])
    assert health["uptime_s"] >= 3600
    assert isinstance(health["temperature_c"], float)
    assert 0.0 <= health["cpu_load"] <= 1.0
    assert is_int(health["free_disk_mb"])
    assert is_int(health["signal_dbm"])
    assert health["signal_dbm"] < 0
    assert any(ipaddress.ip_address(health["ip"]) in net for net in DOCUMENTATION_NETWORKS)


def test_uptime_starts_again_after_a_reboot() -> None:
    rng = random.Random(9)
    scene = make_scene("VPM", rng, now=MIDNIGHT)
    before = scene.health(MIDNIGHT + 100, rng)["uptime_s"]
    scene.reboot(MIDNIGHT + 100)
    assert scene.health(MIDNIGHT + 130, rng)["uptime_s"] == 30 < before
