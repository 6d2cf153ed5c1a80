"""Small factories that build test data through the real services and the real API."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import func, select

from vsense.commands import repository as commands_repository
from vsense.components import Components
from vsense.db import session_scope
from vsense.kit.time import utcnow
from vsense.models import WebhookDelivery
from vsense.users import service as users_service

PASSWORD = "correct horse battery"
# A zone UUID for device messages built by the tests.
ZONE = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
_sequence = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Caller:
    """A logged-in user of a test organization."""

    client: httpx.AsyncClient
    email: str
    token: str
    refresh_token: str
    organization: str
    user_id: int = 0
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.headers = {"Authorization": f"Bearer {self.token}"}

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return await self.client.request(method, url, headers=headers, **kwargs)

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", url, **kwargs)

    async def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PATCH", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", url, **kwargs)

    async def device(self, **fields: Any) -> dict[str, Any]:
        """Onboard a device through the API; returns the 201 body."""
        body = {"name": unique("Device"), **fields}
        response = await self.post("/api/v1/devices", json=body)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    async def group(self, name: str | None = None, **fields: Any) -> dict[str, Any]:
        response = await self.post(
            "/api/v1/groups", json={"name": name or unique("group"), **fields}
        )
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    async def user(self, *, role: str = "standard", groups: list[Any] | None = None) -> Caller:
        """Create a user in this organization through the API and log them in."""
        email = f"{unique('user')}@example.com"
        response = await self.post(
            "/api/v1/users",
            json={"email": email, "password": PASSWORD, "role": role, "groups": groups or []},
        )
        assert response.status_code == 201, response.text
        caller = await login(self.client, email, PASSWORD, self.organization)
        caller.user_id = response.json()["id"]
        return caller

    async def personal_token(self, scopes: list[str], **fields: Any) -> str:
        response = await self.post(
            "/api/v1/tokens", json={"name": unique("token"), "scopes": scopes, **fields}
        )
        assert response.status_code == 201, response.text
        return response.json()["token"]  # type: ignore[no-any-return]


async def login(client: httpx.AsyncClient, email: str, password: str, organization: str) -> Caller:
    response = await client.post("/api/v1/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    return Caller(client, email, data["access_token"], data["refresh_token"], organization)


@dataclass
class Api:
    client: httpx.AsyncClient
    state: Components

    async def organization(self, *, role: str = "admin") -> Caller:
        """A new organization with one user of `role`, logged in."""
        name = unique("org")
        email = f"{unique('admin')}@example.com"
        async with session_scope(self.state.sessionmaker) as session:
            await users_service.create_organization(session, name)
            user = await users_service.create_user_in(
                session,
                organization_name=name,
                email=email,
                password=PASSWORD,
                role=role,
                name="Ada",
            )
            user_id = user.id
        caller = await login(self.client, email, PASSWORD, name)
        caller.user_id = user_id
        return caller

    def as_token(self, token: str) -> Caller:
        return Caller(self.client, "", token, "", "")


class Sensor:
    """A device as the tests drive it over HTTP: its token and its calls."""

    def __init__(self, client: httpx.AsyncClient, onboarded: dict[str, Any]) -> None:
        self.client = client
        self.uuid = onboarded["uuid"]
        self.headers = {"Authorization": f"Bearer {onboarded['device_token']}"}

    async def keepalive(self, health: dict[str, Any] | None = None) -> httpx.Response:
        return await self.client.post("/device/v1/keepalive", headers=self.headers, json=health)

    async def send(self, body: Any) -> httpx.Response:
        return await self.client.post("/device/v1/payloads", headers=self.headers, json=body)


async def sensor(admin: Caller, **fields: Any) -> Sensor:
    return Sensor(admin.client, await admin.device(**fields))


def vcz(count: int, timestamp: int | None = None) -> dict[str, Any]:
    """A valid VCZ message: one zone counting `count` people."""
    now = int(time.time()) if timestamp is None else timestamp
    return {
        "type": "VCZ",
        "timestamp": now,
        "payload": [
            {
                "id": ZONE,
                "name": "Z-0",
                "count": count,
                "by_class": {"person": count},
                "period_start": now - 60,
                "period_end": now,
            }
        ],
    }


async def deliveries(state: Components, webhook_id: int) -> int:
    """How many deliveries a webhook has in the queue, whatever their status."""
    async with state.read_sessionmaker() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == webhook_id)
        )
    return int(count or 0)


async def in_one_group(
    state: Components, requests: list[Any], *, commits: bool = True
) -> list[Any]:
    """Run `requests` (coroutines of payload requests, or of anything that hands one unit
    to the group commit) so that the group commit takes them all in one group: its one
    leader is held by a unit of work until they queue. `commits`: whether that group is
    expected to commit as one (else it fails, and its units run again alone)."""
    group = state.database.group_commit
    in_flight, group.leaders.limit = group.leaders.limit, 1
    release, running = asyncio.Event(), asyncio.Event()

    async def hold(_session: Any) -> None:
        running.set()
        await release.wait()

    try:
        held = asyncio.create_task(group.run(hold))
        await running.wait()
        tasks = [asyncio.create_task(request) for request in requests]
        for _ in range(500):
            if len(group._waiting) == len(tasks):
                break
            await asyncio.sleep(0.01)
        assert len(group._waiting) == len(tasks)
        groups = group.groups
        release.set()
        await held
        responses = await asyncio.gather(*tasks)
        # They were written in one transaction, or (the group failed) each alone.
        assert group.groups == groups + commits
        return responses
    finally:
        group.leaders.limit = in_flight


async def has_pending_command(state: Components, device: uuid.UUID) -> bool:
    """Whether the device has a command to take, read from the database (no hint)."""
    async with state.read_sessionmaker() as session:
        found = await commands_repository.devices_with_pending_commands(session, [device], utcnow())
    return device in found
