"""Application payloads: what devices may send, what is refused and where, and the metrics."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vsense.devices.schemas import AppType
from vsense.payloads.metrics import METRIC_NAMES, Metric, derive_metrics, next_occupancy
from vsense.payloads.schemas import (
    MAX_NESTING,
    MAX_TIMESTAMP_AGE,
    MAX_TIMESTAMP_AHEAD,
    PAYLOAD_TYPES,
    PayloadInvalid,
    ValidatedMessage,
    json_schema,
    validate_message,
)

TIMESTAMP = 1705682525
NOW = datetime.fromtimestamp(TIMESTAMP + 5, UTC)
SPOT_0 = "c2b69525-974e-4d26-a80c-70817a628e08"
SPOT_1 = "5f0e8f62-2f43-4d8a-9a51-0b7c7d1f4c11"
ZONE = "0b8a3c1e-7d5f-4a29-b6e4-2f1d9c8e7a60"
LINE = "9d4e2b7a-1c3f-4e8d-a5b6-7c8d9e0f1a2b"

# The spec's examples (spec/devices.md), with real UUIDs and a second spot where it helps.
EXAMPLES: dict[str, list[dict[str, Any]]] = {
    "VPM": json.loads(f"""[
        {{"id": "{SPOT_0}", "name": "P-0", "is_active": true, "deactivated": false,
          "cls": "car", "event_ts": 1705682525}},
        {{"id": "{SPOT_1}", "name": "P-1", "is_active": false, "deactivated": false,
          "cls": null, "event_ts": 1705680000}}]"""),
    "VYD": json.loads(f"""[
        {{"id": "{SPOT_0}", "name": "Dock 1", "is_active": true, "deactivated": false,
          "cls": "truck", "event_ts": 1705682525, "dwell_s": 5400, "plate": "B-AB 1234"}},
        {{"id": "{SPOT_1}", "name": "Dock 2", "is_active": false, "deactivated": false,
          "cls": null, "event_ts": 1705680000}}]"""),
    "VCZ": json.loads(f"""[
        {{"id": "{ZONE}", "name": "Z-0", "count": 4, "by_class": {{"person": 3, "bicycle": 1}},
          "period_start": 1705682460, "period_end": 1705682520}}]"""),
    "VCB": json.loads(f"""[
        {{"id": "{LINE}", "name": "Entrance", "in": 12, "out": 9,
          "by_class": {{"person": {{"in": 11, "out": 9}}, "bicycle": {{"in": 1, "out": 0}}}},
          "period_start": 1705682460, "period_end": 1705682520}}]"""),
    "VCW": json.loads(f"""[
        {{"id": "{ZONE}", "name": "Hall", "count": 112, "density": 0.8,
          "period_start": 1705682460, "period_end": 1705682520}}]"""),
}


def message(type_: str = "VCZ", payload: Any = None, **envelope: Any) -> dict[str, Any]:
    """A valid message of this type (the spec's example payload unless one is given)."""
    body = {"type": type_, "timestamp": TIMESTAMP, "version": 1}
    body["payload"] = copy.deepcopy(EXAMPLES[type_]) if payload is None else payload
    return body | envelope


def zones(count: int) -> list[dict[str, Any]]:
    return [EXAMPLES["VCZ"][0] | {"name": f"Z-{n}"} for n in range(count)]


def refused(raw: object, **options: Any) -> list[dict[str, Any]]:
    with pytest.raises(PayloadInvalid) as caught:
        validate_message(raw, now=NOW, **options)
    return caught.value.errors


def refused_fields(raw: object, **options: Any) -> list[str]:
    return [error["field"] for error in refused(raw, **options)]


def nested(depth: int) -> Any:
    """A list nested `depth` levels deep."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


# Accepted


@pytest.mark.parametrize("type_", PAYLOAD_TYPES)
def test_spec_examples_are_accepted_and_forwarded_unchanged(type_: str) -> None:
    raw = message(type_)
    accepted = validate_message(raw, now=NOW)
    assert (accepted.type, accepted.version, accepted.timestamp) == (type_, 1, TIMESTAMP)
    assert accepted.payload is raw["payload"]
    assert accepted.payload == EXAMPLES[type_]
    assert accepted.parsed is not None
    assert len(accepted.parsed.root) == len(EXAMPLES[type_])


def test_payload_types_are_the_device_app_types() -> None:
    assert set(PAYLOAD_TYPES) == {app_type.value for app_type in AppType}
    assert set(METRIC_NAMES) == set(PAYLOAD_TYPES)


def test_version_defaults_to_1() -> None:
    raw = message("VPM")
    del raw["version"]
    assert validate_message(raw, now=NOW).version == 1


def test_vcb_in_is_read_from_its_alias() -> None:
    accepted = validate_message(message("VCB"), now=NOW)
    assert accepted.parsed is not None
    line = accepted.parsed.root[0]
    assert (line.in_, line.out, line.by_class["person"].in_) == (12, 9, 11)


def test_vyd_optional_fields_may_be_absent_or_null() -> None:
    spot = EXAMPLES["VPM"][0] | {"dwell_s": None, "plate": None}
    validate_message(message("VYD", [spot, EXAMPLES["VPM"][1]]), now=NOW)


def test_extra_fields_are_ignored_but_forwarded() -> None:
    zone = EXAMPLES["VCZ"][0] | {"confidence": 0.93, "polygon": [[0, 0], [1, 1]]}
    raw = message("VCZ", [zone], firmware="2.4.1")
    accepted = validate_message(raw, now=NOW)
    assert accepted.parsed is not None
    assert not hasattr(accepted.parsed.root[0], "confidence")
    assert accepted.payload[0]["confidence"] == 0.93


def test_a_full_payload_of_1000_items_is_accepted() -> None:
    validate_message(message("VCZ", zones(1000)), now=NOW)


def test_an_empty_payload_is_accepted() -> None:
    validate_message(message("VCW", []), now=NOW)


def test_a_period_may_be_a_single_instant() -> None:
    zone = EXAMPLES["VCZ"][0] | {"period_start": TIMESTAMP, "period_end": TIMESTAMP}
    validate_message(message("VCZ", [zone]), now=NOW)


def test_density_may_be_an_integer_or_null() -> None:
    for density in (2, None):
        validate_message(message("VCW", [EXAMPLES["VCW"][0] | {"density": density}]), now=NOW)


# Refused: the envelope


@pytest.mark.parametrize("raw", [[], "VPM", None, 3, [message("VPM")]])
def test_a_message_that_is_not_an_object_is_refused(raw: object) -> None:
    assert refused_fields(raw) == ["message"]


def test_missing_envelope_fields_are_all_reported() -> None:
    assert refused_fields({"version": 1}) == ["type", "timestamp", "payload"]


def test_an_unknown_type_is_refused() -> None:
    errors = refused(message("VCZ", type="VXX"))
    assert [error["field"] for error in errors] == ["type"]
    assert "VPM" in errors[0]["message"]


def test_an_unknown_type_is_accepted_by_setting_without_validation_or_metrics() -> None:
    raw = message("VCZ", {"anything": ["goes", 1, None]}, type="VXX", version=7)
    accepted = validate_message(raw, now=NOW, accept_unknown_types=True)
    assert (accepted.type, accepted.version, accepted.parsed) == ("VXX", 7, None)
    assert accepted.payload == {"anything": ["goes", 1, None]}
    assert derive_metrics(accepted) == []


def test_an_accepted_unknown_type_must_still_be_a_short_string() -> None:
    assert refused_fields(message(type="V" * 33), accept_unknown_types=True) == ["type"]
    assert refused_fields(message(type=""), accept_unknown_types=True) == ["type"]
    assert refused_fields(message(type=5), accept_unknown_types=True) == ["type"]


@pytest.mark.parametrize("version", [2, 0, -1, "1", True, 1.0, None])
def test_a_bad_version_is_refused(version: object) -> None:
    assert refused_fields(message("VPM", version=version)) == ["version"]


@pytest.mark.parametrize("timestamp", ["1705682525", True, 1705682525.0, None])
def test_a_timestamp_that_is_not_an_integer_is_refused(timestamp: object) -> None:
    assert refused_fields(message(timestamp=timestamp)) == ["timestamp"]


@pytest.mark.parametrize("offset", [timedelta(days=2), -timedelta(days=40)])
def test_a_timestamp_too_far_from_now_is_refused(offset: timedelta) -> None:
    timestamp = int((NOW + offset).timestamp())
    assert refused_fields(message(timestamp=timestamp)) == ["timestamp"]


def test_timestamps_at_the_limits_are_accepted() -> None:
    for edge in (NOW + MAX_TIMESTAMP_AHEAD, NOW - MAX_TIMESTAMP_AGE):
        validate_message(message(timestamp=int(edge.timestamp())), now=NOW)


def test_a_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        validate_message(message(), now=NOW.replace(tzinfo=None))


# Refused: hostile input


def test_nesting_100_levels_deep_is_refused() -> None:
    errors = refused(message("VCZ", nested(100)))
    assert len(errors) == 1
    assert errors[0]["field"].startswith("payload.0.0")
    assert str(MAX_NESTING) in errors[0]["message"]


def test_nesting_is_limited_even_for_accepted_unknown_types() -> None:
    # The message object is level 1, its payload level 2, so the payload holds 15 levels.
    at_limit = message("VCZ", nested(MAX_NESTING - 1), type="VXX")
    validate_message(at_limit, now=NOW, accept_unknown_types=True)
    too_deep = message("VCZ", nested(MAX_NESTING), type="VXX")
    assert refused_fields(too_deep, accept_unknown_types=True) == [
        "payload" + ".0" * (MAX_NESTING - 1)
    ]


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinity_are_refused(number: float) -> None:
    raw = message("VCW", [EXAMPLES["VCW"][0] | {"density": number}])
    assert refused_fields(raw) == ["payload.0.density"]


def test_nan_parsed_from_json_text_is_refused_even_in_ignored_and_unknown_fields() -> None:
    text = json.dumps(message("VCW", [EXAMPLES["VCW"][0] | {"extra": 1.0}]))
    raw = json.loads(text.replace('"density": 0.8', '"density": NaN').replace("1.0", "Infinity"))
    assert refused_fields(raw) == ["payload.0.density", "payload.0.extra"]
    unknown = json.loads('{"type": "VXX", "timestamp": 1705682525, "payload": {"a": NaN}}')
    assert refused_fields(unknown, accept_unknown_types=True) == ["payload.a"]


def test_nul_characters_are_refused() -> None:
    raw = message("VCZ", [EXAMPLES["VCZ"][0] | {"name": "Z\x00"}])
    assert refused_fields(raw) == ["payload.0.name"]


def test_1001_items_are_refused() -> None:
    errors = refused(message("VCZ", zones(1001)))
    assert [error["field"] for error in errors] == ["payload"]
    assert "1000" in errors[0]["message"]


def test_more_than_32_classes_are_refused() -> None:
    by_class = {f"class-{n}": 1 for n in range(33)}
    raw = message("VCZ", [EXAMPLES["VCZ"][0] | {"by_class": by_class}])
    assert refused_fields(raw) == ["payload.0.by_class"]


# Refused: payload fields


@pytest.mark.parametrize("count", ["4", True, 1.5, 4.0, None, -1, 2**53])
def test_a_count_that_is_not_a_non_negative_integer_is_refused(count: object) -> None:
    items = zones(4)
    items[3]["count"] = count
    assert refused_fields(message("VCZ", items)) == ["payload.3.count"]


@pytest.mark.parametrize(
    ("type_", "field", "value", "path"),
    [
        ("VPM", "is_active", "true", "payload.0.is_active"),
        ("VPM", "is_active", 1, "payload.0.is_active"),
        ("VPM", "cls", "dragon", "payload.0.cls"),
        ("VPM", "id", "P-0", "payload.0.id"),
        ("VPM", "name", "", "payload.0.name"),
        ("VPM", "event_ts", "1705682525", "payload.0.event_ts"),
        ("VYD", "dwell_s", -5, "payload.0.dwell_s"),
        ("VYD", "plate", "X" * 21, "payload.0.plate"),
        ("VCZ", "by_class", {"person": -1}, "payload.0.by_class.person"),
        ("VCB", "in", -1, "payload.0.in"),
        ("VCB", "by_class", {"person": {"in": 1, "out": "2"}}, "payload.0.by_class.person.out"),
        ("VCW", "density", -0.5, "payload.0.density"),
        ("VCW", "density", "0.8", "payload.0.density"),
    ],
)
def test_a_bad_field_is_refused_with_its_path(
    type_: str, field: str, value: object, path: str
) -> None:
    raw = message(type_, [EXAMPLES[type_][0] | {field: value}])
    assert refused_fields(raw) == [path]


def test_a_missing_required_field_is_refused() -> None:
    spot = dict(EXAMPLES["VPM"][0])
    del spot["cls"]
    assert refused_fields(message("VPM", [spot])) == ["payload.0.cls"]


def test_a_payload_that_is_not_a_list_is_refused() -> None:
    assert refused_fields(message("VPM", EXAMPLES["VPM"][0])) == ["payload"]


@pytest.mark.parametrize("type_", ["VCZ", "VCB", "VCW"])
def test_a_period_that_ends_before_it_starts_is_refused(type_: str) -> None:
    item = EXAMPLES[type_][0] | {"period_start": 1705682520, "period_end": 1705682460}
    errors = refused(message(type_, [item]))
    assert [error["field"] for error in errors] == ["payload.0.period_end"]
    assert errors[0]["message"] == "period_end must not be before period_start"


def test_envelope_and_payload_errors_are_reported_together() -> None:
    raw = message("VCZ", zones(2), timestamp=TIMESTAMP + 3 * 86400)
    raw["payload"][1]["count"] = -1
    assert refused_fields(raw) == ["timestamp", "payload.1.count"]


# Metrics


def metrics(raw: dict[str, Any]) -> list[Metric]:
    return derive_metrics(validate_message(raw, now=NOW))


def test_vpm_metrics() -> None:
    deactivated = EXAMPLES["VPM"][0] | {"id": LINE, "name": "P-2", "deactivated": True}
    assert metrics(message("VPM", [*EXAMPLES["VPM"], deactivated])) == [
        Metric("occupied", 1.0),
        Metric("is_active", 1.0, SPOT_0, "P-0"),
        Metric("is_active", 0.0, SPOT_1, "P-1"),
    ]


def test_vyd_metrics() -> None:
    assert metrics(message("VYD")) == [
        Metric("occupied", 1.0),
        Metric("is_active", 1.0, SPOT_0, "Dock 1"),
        Metric("dwell_s", 5400.0, SPOT_0, "Dock 1"),
        Metric("is_active", 0.0, SPOT_1, "Dock 2"),
    ]


def test_vcz_metrics() -> None:
    assert metrics(message("VCZ")) == [Metric("count", 4.0, ZONE, "Z-0")]


def test_vcb_metrics() -> None:
    assert metrics(message("VCB")) == [
        Metric("in", 12.0, LINE, "Entrance"),
        Metric("out", 9.0, LINE, "Entrance"),
        Metric("net", 3.0, LINE, "Entrance"),
    ]


def test_vcw_metrics() -> None:
    assert metrics(message("VCW")) == [Metric("count", 112.0, ZONE, "Hall")]


def test_metric_names_are_declared() -> None:
    for type_ in PAYLOAD_TYPES:
        derived = {metric.name for metric in metrics(message(type_))}
        assert derived <= set(METRIC_NAMES[type_])


def test_a_message_without_a_model_has_no_metrics() -> None:
    unknown = ValidatedMessage(type="VXX", version=1, timestamp=TIMESTAMP, payload=[], parsed=None)
    assert derive_metrics(unknown) == []


@pytest.mark.parametrize(
    ("previous", "net", "expected"),
    [(0.0, 3.0, 3.0), (3.0, -2.0, 1.0), (3.0, -3.0, 0.0), (1.0, -5.0, 0.0), (0.0, -1.0, 0.0)],
)
def test_next_occupancy_adds_net_and_never_goes_below_0(
    previous: float, net: float, expected: float
) -> None:
    assert next_occupancy(previous, net) == expected


# JSON Schema


@pytest.mark.parametrize("type_", PAYLOAD_TYPES)
def test_json_schema_names_the_payload_item_fields(type_: str) -> None:
    schema = json_schema(type_)
    assert set(schema["required"]) == {"type", "timestamp", "payload"}
    assert schema["properties"]["type"]["const"] == type_
    payload = schema["$defs"][schema["properties"]["payload"]["$ref"].rsplit("/", 1)[1]]
    assert payload["maxItems"] == 1000
    item = schema["$defs"][payload["items"]["$ref"].rsplit("/", 1)[1]]
    assert set(EXAMPLES[type_][0]) <= set(item["properties"])
    json.dumps(schema)  # a plain JSON value, fit to publish


def test_json_schema_of_an_unknown_type_or_version_is_a_lookup_error() -> None:
    with pytest.raises(LookupError):
        json_schema("VXX")
    with pytest.raises(LookupError):
        json_schema("VPM", 2)
