"""Who a device is, as the device-facing parts need to know it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """The device behind a device token, with what the gateway needs to know of it."""

    uuid: uuid.UUID
    organization_id: int
    is_online: bool
    keepalive_interval: int | None  # the device's own, else its group's; None: default
