"""What the fault tests share: an organization on a live server, devices, traffic."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import httpx
import orjson

from tests.factories import PASSWORD, vcz
from tests.live_server import LiveServer
from vsense.components import Components
from vsense.config import load_settings
from vsense.db import session_scope
from vsense.users import service as users_service

PAUSE = 0.2  # seconds between two messages of a device


async def organization_admin(server: LiveServer) -> dict[str, str]:
    """Headers of a new organization's admin, made in the server's database."""
    name = f"faults-{uuid.uuid4().hex[:8]}"
    email = f"{name}@example.com"
    settings = load_settings(
        data_dir=Path(server.env["VSENSE_DATA_DIR"]),
        database_url=server.env.get("VSENSE_DATABASE_URL"),
        environment="test",
        secret_key=server.env["VSENSE_SECRET_KEY"],
    )
    state = Components.for_server(settings)
    try:
        async with session_scope(state.sessionmaker) as session:
            await users_service.create_organization(session, name)
            await users_service.create_user_in(
                session,
                organization_name=name,
                email=email,
                password=PASSWORD,
                role="admin",
                name="Operator",
            )
    finally:
        await state.engine.dispose()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        login = await client.post("/api/v1/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['data']['access_token']}"}


async def onboard(
    client: httpx.AsyncClient, admin: dict[str, str], count: int
) -> list[dict[str, str]]:
    """`count` VCZ devices: their uuid and the headers of their token."""
    devices = []
    for index in range(count):
        created = await client.post(
            "/api/v1/devices", json={"name": f"sensor-{index}", "app_type": "VCZ"}, headers=admin
        )
        assert created.status_code == 201, created.text
        shown = created.json()
        devices.append(
            {"uuid": str(shown["uuid"]), "Authorization": f"Bearer {shown['device_token']}"}
        )
    return devices


@dataclass
class Traffic:
    """What the devices were told: the counts acknowledged, and every other answer."""

    acknowledged: dict[str, set[int]] = field(default_factory=dict)
    refusals: list[tuple[int, str]] = field(default_factory=list)
    retry_later: int = 0  # 503 with Retry-After: the database was busy, send again
    sequence: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    failovers: int = 0

    def mark(self) -> int:
        """A count no message has: every message sent from now on has a higher one."""
        return next(self.sequence)


async def send_over_http(
    base_urls: list[str], device: dict[str, str], traffic: Traffic, stop: asyncio.Event
) -> None:
    """Messages to the first server until it is gone, then to the next (as a load
    balancer would); a server that vanished mid-request acknowledged nothing."""
    headers = {"Authorization": device["Authorization"]}
    acknowledged = traffic.acknowledged.setdefault(device["uuid"], set())
    servers = list(base_urls)
    while not stop.is_set():
        async with httpx.AsyncClient(base_url=servers[0], timeout=60) as client:
            try:
                while not stop.is_set():
                    count = next(traffic.sequence)
                    answer = await client.post(
                        "/device/v1/payloads", json=vcz(count), headers=headers
                    )
                    if answer.status_code == 202:
                        acknowledged.add(count)
                    elif answer.status_code == 503 and answer.headers.get("retry-after"):
                        traffic.retry_later += 1
                    else:
                        traffic.refusals.append((answer.status_code, answer.text))
                    await asyncio.sleep(PAUSE)
            except httpx.TransportError:
                if len(servers) == 1:
                    raise
                servers.pop(0)
                traffic.failovers += 1


async def send_over_mqtt(device: dict[str, str], traffic: Traffic, stop: asyncio.Event) -> None:
    acknowledged = traffic.acknowledged.setdefault(device["uuid"], set())
    async with aiomqtt.Client("127.0.0.1", 1883, protocol=aiomqtt.ProtocolVersion.V5) as client:
        while not stop.is_set():
            count = next(traffic.sequence)
            # Returns once the broker's PUBACK is in.
            await client.publish(
                f"vsense/{device['uuid']}/payloads", orjson.dumps(vcz(count)), qos=1
            )
            acknowledged.add(count)
            await asyncio.sleep(PAUSE)


async def stored_counts(client: httpx.AsyncClient, admin: dict[str, str], device: str) -> list[int]:
    """The counts of a device's stored messages, one per stored message."""
    counts: list[int] = []
    page = 1
    while True:
        answer = await until_not_busy(
            lambda at=page: client.get(
                f"/api/v1/devices/{device}/payloads",
                params={"per_page": 500, "page": at},
                headers=admin,
            )
        )
        assert answer.status_code == 200, answer.text
        entries = answer.json()["data"]
        counts += [entry["payload"][0]["count"] for entry in entries]
        if len(entries) < 500:
            return counts
        page += 1


async def eventually_true(check: Callable[[], Awaitable[bool]], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.5)
    return True


async def until_not_busy(ask: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    """An API call, asked again while it is answered 503 with `Retry-After` (the
    database is busy: a shared machine's connections may run out)."""
    while True:
        answer = await ask()
        if answer.status_code != 503 or not answer.headers.get("retry-after"):
            return answer
        await asyncio.sleep(float(answer.headers["retry-after"]))
