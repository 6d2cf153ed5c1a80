"""Application payloads: one model per type and version, and the message envelope around them.

A device message is `{"type", "timestamp", "payload", "version"}` (spec/devices.md,
"Application payloads"). `validate_message` checks the envelope by hand, so that every
error names its field, and hands `payload` to the model registered for its type and
version. Errors are `{"field", "message"}` with dotted paths from the message's root
(`payload.3.count`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
)

from vsense.kit.errors import field_error
from vsense.kit.schemas import Timestamp
from vsense.kit.text import clean_json, text_problem

# How far a message's timestamp may stray from the server's clock: a device a day ahead
# has a broken clock, and a message a month old is a replay rather than a late delivery.
MAX_TIMESTAMP_AHEAD = timedelta(hours=24)
MAX_TIMESTAMP_AGE = timedelta(days=30)
_LIMITS_TEXT = (
    f"at most {MAX_TIMESTAMP_AHEAD // timedelta(hours=1)} hours ahead of the server's clock "
    f"and {MAX_TIMESTAMP_AGE.days} days behind it"
)
# Deep nesting costs recursion in every later consumer (pydantic, the JSON encoder, a
# webhook receiver); no payload type needs more than five levels.
MAX_NESTING = 16
MAX_ITEMS = 1000
MAX_CLASSES = 32
# Past this many, more errors tell a device's developer nothing new and cost memory.
MAX_ERRORS = 20
# The field of errors about the message as a whole.
ROOT_FIELD = "message"

# 2**53: the largest integer every JSON reader (JavaScript's among them) keeps exactly.
_SAFE_INTEGER = 2**53
Count = Annotated[int, Field(ge=0, lt=_SAFE_INTEGER)]
UnixSeconds = Annotated[int, Field(ge=0, lt=_SAFE_INTEGER)]
_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
Uuid = Annotated[str, Field(pattern=_UUID, json_schema_extra={"format": "uuid"})]
Name = Annotated[str, Field(min_length=1, max_length=120)]
# Counting devices may report classes beyond the eight of a parking spot.
ClassName = Annotated[str, Field(min_length=1, max_length=40)]
ObjectClass = Literal["car", "truck", "van", "motorcycle", "bus", "bicycle", "person", "other"]


class _DeviceModel(BaseModel):
    # strict: a device that sends "4" or true for a count is broken, and coercing would
    # hide it. extra="ignore": devices may send more than this version knows (newer
    # firmware); such fields are left out of the model but forwarded with the payload.
    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False, frozen=True)


class PayloadItem(_DeviceModel):
    """Base of every item of a payload: a spot, a zone or a line."""

    id: Uuid
    name: Name


class PeriodItem(PayloadItem):
    """An item counted over a period `[period_start, period_end]`, in UNIX seconds."""

    period_start: UnixSeconds
    period_end: UnixSeconds

    @field_validator("period_end")
    @classmethod
    def _period_in_order(cls, value: int, info: ValidationInfo) -> int:
        start = info.data.get("period_start")  # absent when period_start was invalid
        if start is not None and value < start:
            raise ValueError("period_end must not be before period_start")
        return value


class ParkingSpot(PayloadItem):
    """A spot of a VPM payload."""

    is_active: bool
    deactivated: bool
    cls: ObjectClass | None
    event_ts: UnixSeconds


class YardSpot(ParkingSpot):
    """A spot of a VYD payload: a parking spot with a dwell time and a plate."""

    dwell_s: Count | None = None
    plate: Annotated[str, Field(max_length=20)] | None = None


class CountingZone(PeriodItem):
    """A zone of a VCZ payload."""

    count: Count
    by_class: dict[ClassName, Count] = Field(max_length=MAX_CLASSES)


class Crossings(_DeviceModel):
    """Crossings of a line in each direction."""

    in_: Count = Field(alias="in")  # `in` is a Python keyword
    out: Count


class BarrierLine(PeriodItem):
    """A line of a VCB payload."""

    in_: Count = Field(alias="in")
    out: Count
    by_class: dict[ClassName, Crossings] = Field(max_length=MAX_CLASSES)


class CrowdZone(PeriodItem):
    """A zone of a VCW payload."""

    count: Count
    density: Annotated[float, Field(ge=0)] | None = Field(
        description="People per square metre when the zone's area is configured, else null."
    )


ItemT = TypeVar("ItemT", bound=PayloadItem)
Items = Annotated[list[ItemT], Field(max_length=MAX_ITEMS, strict=True)]


class VpmPayload(RootModel[Items[ParkingSpot]]):
    """A VPM payload: parking spots, sent when one changes state."""


class VydPayload(RootModel[Items[YardSpot]]):
    """A VYD payload: yard and dock spots, sent when one changes state."""


class VczPayload(RootModel[Items[CountingZone]]):
    """A VCZ payload: objects present in each zone over a period."""


class VcbPayload(RootModel[Items[BarrierLine]]):
    """A VCB payload: crossings of each line over a period."""


class VcwPayload(RootModel[Items[CrowdZone]]):
    """A VCW payload: people in each zone over a period."""


# Every (type, version) the platform validates. A new version is a new model here; the
# old one stays for as long as devices send it.
PAYLOAD_MODELS: dict[tuple[str, int], type[RootModel[Any]]] = {
    ("VPM", 1): VpmPayload,
    ("VYD", 1): VydPayload,
    ("VCZ", 1): VczPayload,
    ("VCB", 1): VcbPayload,
    ("VCW", 1): VcwPayload,
}
PAYLOAD_TYPES: tuple[str, ...] = tuple(dict.fromkeys(type_ for type_, _ in PAYLOAD_MODELS))
_UNKNOWN_TYPE_LENGTH = 32


class PayloadInvalid(Exception):
    """A message was refused; `errors` lists `{"field", "message"}` entries."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors[:MAX_ERRORS]
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in self.errors))


@dataclass(frozen=True)
class ValidatedMessage:
    """An accepted message. `payload` is the JSON value as received, to store and forward
    unchanged; `parsed` is its model, or None for an unknown type accepted by setting."""

    type: str
    version: int
    timestamp: int
    payload: Any
    parsed: RootModel[Any] | None
    # The version as the device sent it (None: absent, `version` then says 1); webhooks
    # forward what was sent.
    sent_version: int | None = None


def _dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in path) or ROOT_FIELD


def _json_tree_errors(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Errors of values no payload may hold, looked for before any parsing.

    Iterative, so that hostile nesting cannot exhaust the stack. Refuses depth beyond
    MAX_NESTING, NaN and infinities (not JSON; a webhook receiver could not parse the
    forwarded payload), texts `text_problem` refuses (NUL characters, which PostgreSQL
    cannot store; lone UTF-16 surrogates, which would poison the payload log and the
    webhook bodies) and non-JSON values. Fields that models ignore are checked too,
    since they are forwarded.
    """
    if clean_json(message, MAX_NESTING):
        return []
    return _walk_json_tree(message)


def _walk_json_tree(message: dict[str, Any]) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    stack: list[tuple[Any, tuple[str | int, ...], int]] = [(message, (), 1)]
    while stack and len(errors) < MAX_ERRORS:
        value, path, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_NESTING:
                errors.append(field_error(_dotted(path), f"nested deeper than {MAX_NESTING}"))
                continue
            if isinstance(value, dict):
                if not all(isinstance(key, str) for key in value):
                    errors.append(field_error(_dotted(path), "keys must be strings"))
                    continue
                if problem := next(filter(None, map(text_problem, value)), None):
                    errors.append(field_error(_dotted(path), f"a key {problem}"))
                    continue
            children = list(value.items() if isinstance(value, dict) else enumerate(value))
            # Reversed, so that errors come out in document order.
            stack.extend((item, (*path, key), depth + 1) for key, item in reversed(children))
        elif isinstance(value, float) and not math.isfinite(value):
            errors.append(field_error(_dotted(path), "NaN and infinite numbers are not JSON"))
        elif isinstance(value, str) and (problem := text_problem(value)):
            errors.append(field_error(_dotted(path), problem))
        elif value is not None and not isinstance(value, bool | int | float | str):
            errors.append(field_error(_dotted(path), "not a JSON value"))
    return errors


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _timestamp_errors(message: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    if "timestamp" not in message:
        return [field_error("timestamp", "field required")]
    timestamp = message["timestamp"]
    if not _is_int(timestamp):
        return [field_error("timestamp", "must be an integer (UNIX seconds)")]
    if timestamp > (now + MAX_TIMESTAMP_AHEAD).timestamp():
        return [field_error("timestamp", f"too far in the future; {_LIMITS_TEXT}")]
    if timestamp < (now - MAX_TIMESTAMP_AGE).timestamp():
        return [field_error("timestamp", f"too old; {_LIMITS_TEXT}")]
    return []


def _type_errors(message: dict[str, Any], accept_unknown_types: bool) -> list[dict[str, Any]]:
    if "type" not in message:
        return [field_error("type", "field required")]
    type_ = message["type"]
    if not isinstance(type_, str):
        return [field_error("type", "must be a string")]
    if type_ in PAYLOAD_TYPES:
        return []
    if not accept_unknown_types:
        return [field_error("type", f"unknown type; expected one of {', '.join(PAYLOAD_TYPES)}")]
    # Stored and shown to integrators, so even an unknown type must be a short code.
    if not 1 <= len(type_) <= _UNKNOWN_TYPE_LENGTH or not type_.isprintable():
        return [field_error("type", f"must be 1 to {_UNKNOWN_TYPE_LENGTH} printable characters")]
    return []


def _parse_payload(
    model: type[RootModel[Any]], payload: Any
) -> tuple[RootModel[Any] | None, list[dict[str, Any]]]:
    try:
        return model.model_validate(payload), []
    except ValidationError as exc:
        return None, [
            field_error(
                _dotted(("payload", *error["loc"])),
                error["msg"].removeprefix("Value error, "),
            )
            for error in exc.errors(include_url=False, include_input=False)
        ]


def validate_message(
    raw: object, *, now: datetime, accept_unknown_types: bool = False
) -> ValidatedMessage:
    """Check one device message and parse its payload, or raise `PayloadInvalid`.

    `now` must be timezone-aware: the timestamp is refused when more than
    MAX_TIMESTAMP_AHEAD after it or more than MAX_TIMESTAMP_AGE before it. A type
    without a model is refused unless `accept_unknown_types`, and then its payload is
    only checked for JSON sanity. Envelope errors are reported together; the payload
    is validated only once its type and version are known good.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not isinstance(raw, dict):
        raise PayloadInvalid([field_error(ROOT_FIELD, "a message must be a JSON object")])
    if errors := _json_tree_errors(raw):
        raise PayloadInvalid(errors)

    type_errors = _type_errors(raw, accept_unknown_types)
    errors = type_errors + _timestamp_errors(raw, now)
    version = raw.get("version", 1)
    model: type[RootModel[Any]] | None = None
    if not _is_int(version) or not 1 <= version < 2**31:
        errors.append(field_error("version", "must be a positive integer"))
    elif not type_errors:
        model = PAYLOAD_MODELS.get((raw["type"], version))
        known = [str(v) for t, v in PAYLOAD_MODELS if t == raw["type"]]
        if model is None and known:
            errors.append(field_error("version", f"unsupported; expected {', '.join(known)}"))
    parsed: RootModel[Any] | None = None
    if "payload" not in raw:
        errors.append(field_error("payload", "field required"))
    elif model is not None:
        parsed, payload_errors = _parse_payload(model, raw["payload"])
        errors += payload_errors
    if errors:
        raise PayloadInvalid(errors)
    return ValidatedMessage(
        type=raw["type"],
        version=version,
        timestamp=raw["timestamp"],
        payload=raw["payload"],
        parsed=parsed,
        sent_version=raw.get("version"),
    )


@cache
def _message_model(type_: str, version: int) -> type[BaseModel]:
    return create_model(
        f"{type_}MessageV{version}",
        __config__=ConfigDict(strict=True, extra="ignore"),
        # A `const` rather than Literal[type_]: Literal takes no runtime values under mypy.
        type=(str, Field(json_schema_extra={"const": type_})),
        timestamp=(int, Field(description=f"UNIX seconds, UTC; {_LIMITS_TEXT}.")),
        payload=(PAYLOAD_MODELS[(type_, version)], ...),
        version=(int, Field(version, json_schema_extra={"const": version})),
    )


def json_schema(type: str, version: int = 1) -> dict[str, Any]:
    """The JSON Schema of a message of this type and version, payload included.

    Raises `LookupError` when the platform has no model for them.
    """
    if (type, version) not in PAYLOAD_MODELS:
        raise LookupError(f"no payload schema for {type} version {version}")
    return _message_model(type, version).model_json_schema()


# What integrators read back: the payload log and the derived metrics.


class StoredMessage(BaseModel):
    """A message of the payload log, as the device sent it."""

    id: int
    type: str
    version: int | None
    timestamp: Timestamp = Field(description="The message's own time (ISO 8601, UTC)")
    received_at: Timestamp = Field(description="When the platform received it")
    payload: Any = Field(description="The payload as the device sent it")


class MetricPoint(BaseModel):
    """One metric of one marker over one interval."""

    name: str
    marker_id: str | None
    marker_name: str | None
    start: Timestamp = Field(description="Start of the interval (ISO 8601, UTC)")
    avg: float
    min: float
    max: float
    count: int


class MetricsWindow(BaseModel):
    interval: int = Field(description="Seconds per point")
    since: Timestamp
    until: Timestamp


class Metrics(BaseModel):
    data: list[MetricPoint]
    meta: MetricsWindow
