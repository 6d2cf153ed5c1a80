"""Enrolment of a simulated fleet through the SDK (`vsense.client.AsyncClient`).

Devices are named `{name_prefix}/{index:05d}` (client identifier). Those a previous
run left on the server are taken over by rotating their tokens; the others are
onboarded, with types assigned round-robin, in a city of `CITIES`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from vsense.client import (
    APIConnectionError,
    APIStatusError,
    AsyncClient,
    AuthenticationError,
    PermissionDeniedError,
)
from vsense.client.models import Device
from vsense.simulator.scenes import SCENES
from vsense.simulator.transport import FleetError, FleetStats

# (city, country, UTC offset in seconds): where simulated sensors stand, so that day
# curves follow their local time. Eight cities and five types: every type everywhere.
CITIES = (
    ("Lyon", "FR", 3600),
    ("Hamburg", "DE", 3600),
    ("Rotterdam", "NL", 3600),
    ("Leeds", "GB", 0),
    ("Porto", "PT", 0),
    ("Gdansk", "PL", 3600),
    ("Austin", "US", -6 * 3600),
    ("Osaka", "JP", 9 * 3600),
)
LIST_PAGE = 500  # the largest page the device list gives


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A device of the fleet as the server knows it, with a fresh token."""

    index: int
    uuid: str
    token: str
    app_type: str


def _problem(exc: APIStatusError | APIConnectionError) -> str:
    if isinstance(exc, APIStatusError):
        return f"HTTP {exc.status_code}: {exc.message}"
    return str(exc)


async def _existing(client: AsyncClient, name_prefix: str) -> dict[str, Device]:
    """Devices a previous run onboarded, by client identifier."""
    found: dict[str, Device] = {}
    try:
        async for device in client.devices.list_all(search=f"{name_prefix}/", per_page=LIST_PAGE):
            # `search` is a substring match: keep exact identifiers only, first one wins.
            found.setdefault(device.client_identifier or "", device)
    except (APIStatusError, APIConnectionError) as exc:
        raise FleetError(f"cannot list devices: {_problem(exc)}") from None
    return found


async def enrol_all(
    client: AsyncClient,
    *,
    devices: int,
    types: list[str],
    keepalive_interval: int,
    name_prefix: str,
    concurrency: int,
    stats: FleetStats,
    log: Callable[[str], None],
) -> list[Enrolment]:
    """Onboard the missing devices and rotate the tokens of existing ones, `concurrency`
    at a time; the enrolled devices by index. FleetError when the server refuses the
    token or no device could be enrolled."""
    existing = await _existing(client, name_prefix)
    enrolled: list[Enrolment] = []
    indexes: Iterator[int] = iter(range(devices))

    async def enrol(index: int) -> None:
        identifier = f"{name_prefix}/{index:05d}"
        device = existing.get(identifier)
        try:
            if device is not None:
                credentials = await client.devices.rotate_credentials(device.uuid)
                device_uuid, token = credentials.uuid, credentials.device_token
                # A device keeps the type it was onboarded with: its payloads must match it.
                recorded = device.app_type
                known = recorded is not None and recorded in SCENES
                app_type = recorded if recorded is not None and known else types[index % len(types)]
            else:
                app_type = types[index % len(types)]
                city, country, _ = CITIES[index % len(CITIES)]
                onboarded = await client.devices.create(
                    name=f"{app_type} {index:05d} ({city})",
                    client_identifier=identifier,
                    app_type=app_type,
                    keepalive_interval=keepalive_interval,
                    geo_city=city,
                    geo_country=country,
                )
                device_uuid, token = onboarded.uuid, onboarded.device_token
        except (AuthenticationError, PermissionDeniedError) as exc:
            raise FleetError(f"the server refused the token: {_problem(exc)}") from None
        except (APIStatusError, APIConnectionError) as exc:
            stats.errors += 1
            log(f"{identifier}: onboarding failed ({_problem(exc)})")
            return
        enrolled.append(Enrolment(index, device_uuid, token, app_type))
        if device is not None:
            stats.devices_reused += 1
        else:
            stats.devices_onboarded += 1

    async def worker() -> None:
        for index in indexes:  # one shared iterator: each index is taken once
            await enrol(index)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(concurrency, devices)):
                group.create_task(worker())
    except ExceptionGroup as failures:
        fatal = [exc for exc in failures.exceptions if isinstance(exc, FleetError)]
        if fatal:
            raise fatal[0] from None
        raise
    if devices and not enrolled:
        raise FleetError(f"none of the {devices} devices could be onboarded")
    return sorted(enrolled, key=lambda enrolment: enrolment.index)


__all__ = ["CITIES", "Enrolment", "enrol_all"]
