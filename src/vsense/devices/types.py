"""Typed values of the device domain: what routes hand to the service, what it returns."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NewType

from vsense.kit.pagination import PageMeta

# A device UUID that `service.visible_device` has checked the caller may read. Services
# that take one trust that check instead of repeating it.
ReadableDeviceId = NewType("ReadableDeviceId", uuid.UUID)


class DeviceSortKey(StrEnum):
    """What the device list can be sorted by; ties break on the device's UUID."""

    NAME = "name"
    REFRESHED = "refreshed"
    IS_ONLINE = "is_online"
    GEO_CITY = "geo_city"
    GEO_COUNTRY = "geo_country"
    CREATED = "created"


@dataclass(frozen=True, slots=True)
class DeviceOrder:
    key: DeviceSortKey = DeviceSortKey.NAME
    descending: bool = False


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    """Which devices a list shows. `group` is a group's name or id; `without_group`
    selects devices that have none."""

    group: str | None = None
    without_group: bool = False
    is_online: bool | None = None
    search: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceListQuery:
    filter: DeviceFilter
    order: DeviceOrder


# Not frozen and without slots on purpose: orjson writes such a dataclass straight from
# its `__dict__`, about as fast as a dict, and building one is a plain `__init__`.
@dataclass
class DeviceView:
    """A device as the API shows it, in the seed's field order (`schemas.Device`
    documents it). Times stay datetimes: `kit.http.json_response` writes them."""

    uuid: str
    name: str
    client_identifier: str
    refreshed: datetime | None
    is_online: int
    geo_city: str
    geo_country: str
    group: str | None
    group_id: int | None
    app_type: str | None
    keepalive_interval: int | None
    created: datetime
    last_seen: datetime | None
    status_reason: str | None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> DeviceView:
        """From a row of `repository.DEVICE_COLUMNS`, by position: this runs for every
        device of every page."""
        device_uuid, name, client_identifier, refreshed, is_online, *rest = row
        return cls(
            str(device_uuid), name, client_identifier, refreshed, 1 if is_online else 0, *rest
        )

    @classmethod
    def from_driver_row(cls, row: Sequence[Any]) -> DeviceView:
        """From a row the driver returned itself (`repository.list_devices`): SQLite's
        text for UUIDs and times is read here, what SQLAlchemy's types do otherwise."""
        (device_uuid, name, client_identifier, refreshed, is_online, city, country, group,
         group_id, app_type, interval, created, last_seen, reason) = row  # fmt: skip
        if isinstance(created, str):
            device_uuid = uuid.UUID(device_uuid)
            refreshed, created, last_seen = _utc(refreshed), _utc(created), _utc(last_seen)
        return cls(
            str(device_uuid), name, client_identifier, refreshed, 1 if is_online else 0,
            city, country, group, group_id, app_type, interval, created, last_seen, reason,
        )  # fmt: skip


def _utc(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class OnboardedDevice(DeviceView):
    device_token: str


@dataclass
class DevicePage:
    """A page of the device list: the seed's `{"data", "meta"}`."""

    data: list[DeviceView]
    meta: PageMeta
