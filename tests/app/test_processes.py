"""Nothing correct depends on which process handled a request.

Each test makes a change through one server process (`client`, over `state`) and
looks through another (`peer_client`, over `peer`: parts and an engine of its own on
PostgreSQL, listening for changes as a served process does). On SQLite, which serves
one process by design, both are the same process, and the same rules hold.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from tests.factories import PASSWORD, ZONE, Api, Caller, Sensor, deliveries, vcz
from vsense.accounts.service import CALLERS_TOPIC
from vsense.changes import UNHEARD_HORIZON, ChangeFeed
from vsense.commands.service import IDLE
from vsense.components import Components
from vsense.device_auth.service import DEVICE_TOKENS
from vsense.webhooks.outbox import TARGETS

HOOK_URL = "https://receiver.example/hook"


@asynccontextmanager
async def heard_by(peer: Components, topic: str) -> AsyncIterator[None]:
    """After the block, wait until `peer` heard a change of `topic` (the NOTIFY of a
    commit on PostgreSQL; on SQLite the peer is this process, told at once)."""
    event = asyncio.Event()
    peer.changes.subscribe(topic, lambda _key: event.set())
    yield
    async with asyncio.timeout(10):
        await event.wait()


def as_peer(caller: Caller, peer_client: httpx.AsyncClient, token: str | None = None) -> Caller:
    """The same caller, talking to the other process."""
    return Caller(peer_client, caller.email, token or caller.token, "", caller.organization)


async def hook(admin: Caller, device: str, **fields: object) -> int:
    response = await admin.post(
        "/api/v1/webhooks", params={"device_uuid": device}, json={"url": HOOK_URL, **fields}
    )
    assert response.status_code == 201, response.text
    return int(response.json()["data"]["id"])


def test_caches_trust_an_entry_for_at_most_a_second_while_other_processes_are_unheard() -> None:
    shared = ChangeFeed("postgresql+asyncpg://vsense@db.invalid/vsense")
    assert shared.horizon(5.0) == UNHEARD_HORIZON == 1.0
    shared.listening.set()
    assert shared.horizon(5.0) == 5.0
    alone = ChangeFeed("sqlite+aiosqlite:///vsense.db")
    assert alone.horizon(5.0) == 5.0


async def test_a_revoked_token_is_refused_by_every_process(
    api: Api, peer: Components, peer_client: httpx.AsyncClient
) -> None:
    admin = await api.organization()
    token = await admin.personal_token(["devices:read"])
    there = as_peer(admin, peer_client, token)
    assert (await there.get("/api/v1/me")).status_code == 200  # verified there, and cached
    listed = (await admin.get("/api/v1/tokens")).json()["data"]
    async with heard_by(peer, CALLERS_TOPIC):
        assert (await admin.delete(f"/api/v1/tokens/{listed[0]['id']}")).status_code == 204
    assert (await there.get("/api/v1/me")).status_code == 401


async def test_a_changed_role_and_a_deleted_user_apply_on_every_process(
    api: Api, peer: Components, peer_client: httpx.AsyncClient
) -> None:
    admin = await api.organization()
    user = await admin.user(role="standard")
    there = as_peer(user, peer_client)
    # The scopes come from the role the caller was verified with (cached there).
    assert "users:write" not in (await there.get("/api/v1/me")).json()["scopes"]
    async with heard_by(peer, CALLERS_TOPIC):
        changed = await admin.put(f"/api/v1/users/{user.user_id}", json={"role": "admin"})
        assert changed.status_code == 200, changed.text
    assert "users:write" in (await there.get("/api/v1/me")).json()["scopes"]
    assert (await there.get("/api/v1/devices")).status_code == 200
    async with heard_by(peer, CALLERS_TOPIC):
        assert (await admin.delete(f"/api/v1/users/{user.user_id}")).status_code == 204
    assert (await there.get("/api/v1/devices")).status_code == 401


async def test_a_rotated_device_token_is_refused_by_every_process(
    api: Api, peer: Components, peer_client: httpx.AsyncClient
) -> None:
    admin = await api.organization()
    device = Sensor(peer_client, await admin.device(app_type="VCZ"))
    assert (await device.keepalive()).status_code == 200  # its identity cached there
    async with heard_by(peer, DEVICE_TOKENS):
        rotated = await admin.post(f"/api/v1/devices/{device.uuid}/credentials")
        assert rotated.status_code in (200, 201), rotated.text
    answer = await device.keepalive()
    assert answer.status_code == 401, answer.text


async def test_a_new_webhook_gets_the_events_every_process_accepts_after_it_commits(
    api: Api, peer: Components, peer_client: httpx.AsyncClient
) -> None:
    admin = await api.organization()
    device = Sensor(peer_client, await admin.device(app_type="VCZ"))
    assert (await device.send(vcz(1))).status_code == 202  # no webhook yet, and none queued
    assert (await device.keepalive()).status_code == 200  # the other process saw none
    payloads = await hook(admin, device.uuid, webhook_type="payload")
    # A message is routed in its own transaction: no need to wait for anything.
    assert (await device.send(vcz(2))).status_code == 202
    assert await deliveries(api.state, payloads) == 1
    # A keepalive looks at a hint first, which the creation's commit dropped there.
    async with heard_by(peer, TARGETS):
        keepalives = await hook(admin, device.uuid, webhook_type="keepalive")
    assert (await device.keepalive()).status_code == 200
    assert await deliveries(api.state, keepalives) == 1


async def test_a_deleted_webhook_is_never_written_to_and_fails_no_message(
    api: Api, peer: Components, peer_client: httpx.AsyncClient
) -> None:
    admin = await api.organization()
    device = Sensor(peer_client, await admin.device(app_type="VCZ"))
    webhook = await hook(admin, device.uuid, webhook_type="keepalive", actions="payload,keepalive")
    assert (await device.send(vcz(1))).status_code == 202
    assert (await device.keepalive()).status_code == 200  # the webhook is a hint there now
    assert await deliveries(api.state, webhook) == 2
    assert (await admin.delete(f"/api/v1/webhooks/{webhook}")).status_code == 204
    # At once, whatever that process heard: 202, and nothing for the deleted webhook.
    assert (await device.send(vcz(2))).status_code == 202
    assert (await device.keepalive()).status_code == 200
    assert await deliveries(api.state, webhook) == 0


async def test_a_command_created_by_one_process_comes_with_a_keepalive_the_other_answers(
    api: Api, peer: Components, peer_client: httpx.AsyncClient
) -> None:
    admin = await api.organization()
    device = Sensor(peer_client, await admin.device(app_type="VCZ"))
    assert (await device.keepalive()).json() == {"commands": []}  # known idle there now
    assert peer.commands.idle(uuid.UUID(device.uuid))
    async with heard_by(peer, IDLE):
        asked = await admin.post(f"/api/v1/devices/{device.uuid}/image")
        assert asked.status_code == 200, asked.text
    assert not peer.commands.idle(uuid.UUID(device.uuid))
    [command] = (await device.keepalive()).json()["commands"]
    assert command["type"] == "capture_image"
    assert (await device.keepalive()).json() == {"commands": []}  # taken once


async def test_a_command_created_by_one_process_wakes_a_long_poll_of_the_other(
    api: Api, peer: Components, peer_client: httpx.AsyncClient
) -> None:
    admin = await api.organization()
    device = Sensor(peer_client, await admin.device(app_type="VCZ"))
    assert (await device.keepalive()).status_code == 200  # online
    with peer.commands.watch(uuid.UUID(device.uuid)) as poll:  # a long poll waits there
        asked = await admin.post(f"/api/v1/devices/{device.uuid}/image")
        assert asked.status_code == 200, asked.text
        # Woken by the commit heard from the database, not by its own next look: a wait
        # that ends without a wake-up says False.
        assert await poll.wait(20) is True


async def test_the_keepalive_webhook_is_throttled_across_processes(
    api: Api, peer: Components, peer_client: httpx.AsyncClient
) -> None:
    admin = await api.organization()
    onboarded = await admin.device(app_type="VCZ")
    webhook = await hook(admin, onboarded["uuid"], webhook_type="keepalive")
    here, there = Sensor(api.client, onboarded), Sensor(peer_client, onboarded)
    for device in (here, there, here, there):
        assert (await device.keepalive()).status_code == 200
    # One per `webhook_keepalive_min_interval` (a minute), whichever process heard them.
    assert await deliveries(api.state, webhook) == 1


async def test_the_login_throttle_counts_every_process(
    api: Api, peer_client: httpx.AsyncClient
) -> None:
    admin = await api.organization()  # its login is the first attempt
    limit = api.state.settings.login_max_attempts_per_email
    clients = (api.client, peer_client)
    for attempt in range(limit - 1):
        answer = await clients[attempt % 2].post(
            "/api/v1/login", json={"email": admin.email, "password": PASSWORD}
        )
        assert answer.status_code == 200, answer.text
    for client in clients:
        answer = await client.post(
            "/api/v1/login", json={"email": admin.email, "password": PASSWORD}
        )
        assert answer.status_code == 429
        assert int(answer.headers["Retry-After"]) > 0


async def test_failed_logins_count_on_every_process(
    api: Api, peer_client: httpx.AsyncClient
) -> None:
    email = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    limit = api.state.settings.login_max_failures_per_email
    clients = (api.client, peer_client)
    for attempt in range(limit):
        answer = await clients[attempt % 2].post(
            "/api/v1/login", json={"email": email, "password": "wrong-password"}
        )
        assert answer.status_code == 401
    for client in clients:
        answer = await client.post(
            "/api/v1/login", json={"email": email, "password": "wrong-password"}
        )
        assert answer.status_code == 429


def parking(timestamp: int) -> dict[str, object]:
    """A VPM message (parking devices send at most one per 30 s)."""
    spot = {"id": ZONE, "name": "P-0", "is_active": True, "deactivated": False}
    return {
        "type": "VPM",
        "timestamp": timestamp,
        "payload": [spot | {"cls": "car", "event_ts": timestamp}],
    }


async def test_the_30_s_rule_of_parking_devices_holds_across_processes(
    api: Api, peer_client: httpx.AsyncClient
) -> None:
    admin = await api.organization()
    onboarded = await admin.device(app_type="VPM")
    here, there = Sensor(api.client, onboarded), Sensor(peer_client, onboarded)
    start = int(time.time()) - 300
    assert (await here.send(parking(start))).json() == {"accepted": 1}
    assert (await there.send(parking(start + 35))).json() == {"accepted": 1}
    # 50 s after the first, but 15 s after the one the other process stored.
    assert (await here.send(parking(start + 50))).json() == {"accepted": 0}
    assert (await here.send(parking(start + 70))).json() == {"accepted": 1}
