"""An integrator's code, written from the seed API page alone, runs unchanged.

Everything here is what someone who only read the seed page would write: plain HTTP
(httpx, no SDK), the seed's paths, query parameters and exact request bodies, and a
strictly typed reading of every field the seed shows. Its webhook receiver is a real
HTTP server that checks what arrives in the vendor's formats (a keepalive is
`GET {url}?source=VIZIOSENSE&id=<uuid>&<params>`).

What the seed page does not cover is set up with the platform's other endpoints and
stands in for the outside world: onboarding a device, the device's own keepalives and
messages (the gateway), and one delivery round of the webhook dispatcher.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import delete

from tests.factories import PASSWORD, Api, Sensor, sensor, vcz
from tests.receiver import Receiver, running_receiver
from vsense.components import Components
from vsense.config import Settings
from vsense.db import session_scope
from vsense.models import Webhook
from vsense.webhooks.dispatcher import Dispatcher, close_sender

# The seed's example bodies, as printed on its page.
SEED_DEVICE_UPDATE = {
    "uuid": "string",
    "name": "string",
    "client_identifier": "string",
    "refreshed": "string",
    "is_online": 0,
    "geo_city": "string",
    "geo_country": "string",
}
SEED_WEBHOOK = {
    "url": "string",
    "webhook_type": "payload",
    "status": 0,
    "actions": "string",
    "data": {
        "headers": [{"name": "string", "value": "string"}],
        "params": [{"name": "string", "value": "string"}],
    },
}
SEED_DEVICE_FIELDS = {
    "uuid": str,
    "name": str,
    "client_identifier": str,
    "refreshed": str,
    "is_online": int,
    "geo_city": str,
    "geo_country": str,
}
SEED_META_FIELDS = ("current_page", "from", "last_page", "per_page", "total", "to", "total_pages")


@pytest.fixture
async def state(database_settings: Settings, shared_engine: Any) -> AsyncIterator[Components]:
    """A server whose webhooks may call the receiver on this machine."""
    settings = database_settings.model_copy(update={"webhook_allow_private": True})
    state = Components.for_server(settings, shared_engine)
    yield state
    await close_sender(state)
    # The dispatcher takes work from the whole database: no webhook outlives its test.
    async with session_scope(state.sessionmaker) as session:
        await session.execute(delete(Webhook))


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as running:
        yield running


async def deliver(state: Components) -> None:
    """The platform's webhook worker, one round."""
    try:
        await Dispatcher(state).run_once()
    finally:
        await close_sender(state)


class Integrator:
    """The integrator's client: plain HTTP, the seed's paths, the token from login."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.headers: dict[str, str] = {}

    async def login(self, email: str, password: str) -> dict[str, Any]:
        response = await self.http.post(
            "/api/v1/login", json={"email": email, "password": password}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        self.headers = {"Authorization": f"Bearer {body['data']['access_token']}"}
        return body

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.request(method, f"/api/v1{path}", headers=self.headers, **kwargs)


def check_device(device: dict[str, Any]) -> None:
    """Every field of the seed's device object, with the seed's type (never null)."""
    for name, kind in SEED_DEVICE_FIELDS.items():
        assert isinstance(device[name], kind), (name, device[name])
    assert device["is_online"] in (0, 1)


def check_webhook(webhook: dict[str, Any]) -> None:
    """Every field of the seed's webhook object, with the seed's type."""
    assert isinstance(webhook["id"], int)
    for name in ("url", "webhook_type", "actions"):
        assert isinstance(webhook[name], str), name
    assert webhook["webhook_type"] in ("payload", "keepalive")
    assert webhook["status"] in (0, 1)
    for kind in ("headers", "params"):
        for pair in webhook["data"][kind]:
            assert isinstance(pair["name"], str) and isinstance(pair["value"], str)


@dataclass
class Fleet:
    integrator: Integrator
    online: Sensor
    never: Sensor


async def setup(api: Api) -> Fleet:
    """An organization with an online device in a group and a device never heard from,
    and the integrator logged in as its admin."""
    admin = await api.organization()
    group = await admin.group()
    online = await sensor(admin, name="Gate A", group=group["name"], app_type="VCZ")
    assert (await online.keepalive()).status_code == 200
    never = await sensor(admin, name="Back door")
    integrator = Integrator(api.client)
    await integrator.login(admin.email, PASSWORD)
    return Fleet(integrator, online, never)


async def test_login_answers_the_seeds_user_and_tokens(api: Api) -> None:
    admin = await api.organization()
    body = await Integrator(api.client).login(admin.email, PASSWORD)
    data = body["data"]
    user = data["user"]
    assert isinstance(user["type"], str) and isinstance(user["name"], str)
    assert user["email"] == admin.email and user["role"] == ["admin"]
    assert isinstance(data["token_type"], str) and isinstance(data["expires_in"], int)
    assert isinstance(data["access_token"], str) and isinstance(data["refresh_token"], str)


async def test_device_list_get_and_update_as_the_seed_shows(api: Api) -> None:
    fleet = await setup(api)
    integrator, online, never = fleet.integrator, fleet.online, fleet.never

    listed = await integrator.call("GET", "/devices")
    assert listed.status_code == 200
    page = listed.json()
    for device in page["data"]:
        check_device(device)
    assert all(isinstance(page["meta"][name], int) for name in SEED_META_FIELDS)
    assert [d["name"] for d in page["data"]] == ["Back door", "Gate A"]

    # "It can be sorted filter by name or online status."
    for sort, names in [
        ("name", ["Back door", "Gate A"]),
        ("-name", ["Gate A", "Back door"]),
        ("is_online", ["Back door", "Gate A"]),
        ("-is_online", ["Gate A", "Back door"]),
    ]:
        sorted_page = await integrator.call("GET", "/devices", params={"sort": sort})
        assert sorted_page.status_code == 200, sort
        assert [d["name"] for d in sorted_page.json()["data"]] == names, sort
    group = (await integrator.call("GET", f"/devices/{online.uuid}")).json()["group"]
    grouped = await integrator.call("GET", "/devices", params={"group": group})
    assert [d["uuid"] for d in grouped.json()["data"]] == [online.uuid]
    for value, expected in [("1", online.uuid), ("0", never.uuid), ("Online", online.uuid)]:
        filtered = await integrator.call("GET", "/devices", params={"is_online": value})
        assert [d["uuid"] for d in filtered.json()["data"]] == [expected], value

    fetched = await integrator.call("GET", f"/devices/{never.uuid}")
    assert fetched.status_code == 200
    check_device(fetched.json())  # `refreshed` is a string, even for a device never heard from

    updated = await integrator.call("PUT", f"/devices/{never.uuid}", json=SEED_DEVICE_UPDATE)
    assert updated.status_code == 200, updated.text
    device = updated.json()
    check_device(device)
    assert device["uuid"] == never.uuid  # uuid, refreshed and is_online are read-only
    assert device["refreshed"] == fetched.json()["refreshed"]
    assert (device["name"], device["client_identifier"]) == ("string", "string")
    assert (device["geo_city"], device["geo_country"]) == ("string", "string")


async def test_image_request_answers_the_two_image_names(api: Api) -> None:
    fleet = await setup(api)
    integrator, online = fleet.integrator, fleet.online
    response = await integrator.call("POST", f"/devices/{online.uuid}/image")
    assert response.status_code in (200, 201, 202), response.text
    raw, annotated = response.json()["data"]
    assert raw.endswith("_raw_image") and annotated.endswith("_annotated_image")


async def test_webhooks_added_and_updated_with_the_seeds_bodies(
    api: Api, receiver: Receiver
) -> None:
    fleet = await setup(api)
    integrator, online = fleet.integrator, fleet.online
    query = {"device_uuid": online.uuid}

    # Add: the seed's body as printed, with a real URL.
    payload_url = receiver.on("/payload")
    added = await integrator.call(
        "POST", "/webhooks", params=query, json={**SEED_WEBHOOK, "url": payload_url}
    )
    assert 200 <= added.status_code < 300, added.text
    assert added.json()["error"] == []
    keepalive_url = receiver.on("/keepalive")
    keepalive = {
        **SEED_WEBHOOK,
        "url": keepalive_url,
        "webhook_type": "keepalive",
        "status": 1,
        "data": {"headers": [], "params": [{"name": "site", "value": "12"}]},
    }
    added = await integrator.call("POST", "/webhooks", params=query, json=keepalive)
    assert 200 <= added.status_code < 300, added.text
    assert added.json()["error"] == []

    listed = await integrator.call("GET", "/webhooks", params=query)
    assert listed.status_code == 200
    webhooks = {w["webhook_type"]: w for w in listed.json()["data"]}
    for webhook in webhooks.values():
        check_webhook(webhook)
    assert (webhooks["payload"]["url"], webhooks["payload"]["status"]) == (payload_url, 0)
    assert webhooks["payload"]["actions"] == "string"
    assert webhooks["payload"]["data"] == SEED_WEBHOOK["data"]
    assert webhooks["keepalive"]["status"] == 1

    # The device reports: only the active keepalive webhook is called, as the vendor does.
    assert (await online.keepalive({"fw_version": "1.2"})).status_code == 200
    await online.send(vcz(3))
    await deliver(api.state)
    assert receiver.to("/payload") == []
    (alive,) = receiver.to("/keepalive")
    assert alive.method == "GET"
    assert alive.query == [("source", "VIZIOSENSE"), ("id", online.uuid), ("site", "12")]

    # Update: the seed names the device, not the webhook; its body says which one.
    update = {**SEED_WEBHOOK, "url": payload_url, "status": 1}
    updated = await integrator.call("PUT", "/webhooks", params=query, json=update)
    assert 200 <= updated.status_code < 300, updated.text
    assert updated.json()["error"] == []
    # "To activate or deactivate the webhook change the value of active to true or false."
    off = await integrator.call(
        "PUT", "/webhooks", params=query, json={"webhook_type": "keepalive", "active": False}
    )
    assert 200 <= off.status_code < 300, off.text
    assert off.json()["error"] == []

    message = vcz(4, int(time.time()))
    await online.send(message)
    assert (await online.keepalive()).status_code == 200
    await deliver(api.state)

    (sent,) = receiver.to("/payload")
    assert sent.method == "POST"
    assert sent.query == [("string", "string")]
    assert sent.headers["string"] == "string"
    assert json.loads(sent.body) == {
        "stream_id": online.uuid,
        "type": "VCZ",
        "timestamp": message["timestamp"],
        "payload": message["payload"],
    }
    assert len(receiver.to("/keepalive")) == 1  # switched off: no second keepalive call
    listed = await integrator.call("GET", "/webhooks", params=query)
    statuses = {w["webhook_type"]: w["status"] for w in listed.json()["data"]}
    assert statuses == {"payload": 1, "keepalive": 0}


async def test_webhook_seed_body_with_device_uuid_in_it(api: Api) -> None:
    """The seed lists `device_uuid` beside the body's fields without saying query or body."""
    fleet = await setup(api)
    integrator, never = fleet.integrator, fleet.never
    body = {**SEED_WEBHOOK, "url": "https://example.com/hook", "device_uuid": never.uuid}
    added = await integrator.call("POST", "/webhooks", json=body)
    assert 200 <= added.status_code < 300, added.text
    assert added.json()["error"] == []
    updated = await integrator.call("PUT", "/webhooks", json={**body, "status": 1})
    assert 200 <= updated.status_code < 300, updated.text
    listed = await integrator.call("GET", "/webhooks", params={"device_uuid": never.uuid})
    (webhook,) = listed.json()["data"]
    check_webhook(webhook)
    assert webhook["status"] == 1


async def test_the_seeds_literal_example_url_is_refused_by_field(api: Api) -> None:
    """`"url": "string"` is no URL: the contract's 422 names the field, in the envelope."""
    fleet = await setup(api)
    integrator, online = fleet.integrator, fleet.online
    refused = await integrator.call(
        "POST", "/webhooks", params={"device_uuid": online.uuid}, json=SEED_WEBHOOK
    )
    assert refused.status_code == 422
    assert refused.json()["httpError"] == 422
    assert [e["field"] for e in refused.json()["error"]] == ["url"]
