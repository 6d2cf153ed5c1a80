"""Webhooks end to end: device messages in, real HTTP requests out to a local receiver."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from ipaddress import ip_network
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from standardwebhooks import Webhook as StandardWebhook

from tests.factories import Api, sensor, vcz
from tests.receiver import Receiver, running_receiver
from tests.webhooks.helpers import hook
from vsense.components import Components
from vsense.config import Settings
from vsense.db import session_scope
from vsense.kit.time import utcnow
from vsense.models import Webhook, WebhookDelivery
from vsense.webhooks import queue_repository
from vsense.webhooks.dispatcher import PER_DEVICE, TOP_UP, Dispatcher, close_sender
from vsense.worker import BackgroundRuntime


@pytest.fixture
async def state(database_settings: Settings, shared_engine: Any) -> AsyncIterator[Components]:
    """State whose webhooks may target the loopback receiver."""
    settings = database_settings.model_copy(update={"webhook_allow_private": True})
    state = Components.for_server(settings, shared_engine)
    yield state
    await close_sender(state)


@pytest.fixture(autouse=True)
async def no_leftover_webhooks(state: Components) -> AsyncIterator[None]:
    """Each test sees only its own deliveries: the dispatcher claims from the whole
    database, so webhooks (and with them their deliveries) go after each test."""
    yield
    async with session_scope(state.sessionmaker) as session:
        await session.execute(delete(Webhook))


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as running:
        yield running


async def deliver(state: Components) -> list[Any]:
    """One dispatcher round: claim what is due, send it, write the outcomes."""
    try:
        return await Dispatcher(state).run_once()
    finally:
        await close_sender(state)


def verify(received: Any, secret: str) -> dict[str, Any]:
    """Check the Standard Webhooks signature with the reference package."""
    return StandardWebhook(secret).verify(received.body, received.headers)  # type: ignore[no-any-return]


async def test_payload_webhook_gets_the_seed_envelope_signed(api: Api, receiver: Receiver) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    created = await hook(
        admin,
        device.uuid,
        receiver.on("/payload"),
        data={
            "headers": [{"name": "Authorization", "value": "Token abc"}],
            "params": [{"name": "site", "value": "12"}],
        },
    )
    assert created["secret"].startswith("whsec_")
    message = vcz(3)
    assert (await device.send(message)).status_code == 202

    outcomes = await deliver(api.state)

    assert [o.status for o in outcomes] == ["succeeded"]
    (got,) = receiver.to("/payload")
    assert got.method == "POST"
    assert got.query == [("site", "12")]
    assert got.headers["content-type"] == "application/json"
    assert got.headers["accept"] == "application/json, text/plain, */*"
    assert got.headers["user-agent"].startswith("vsense-webhooks/")
    assert got.headers["authorization"] == "Token abc"
    assert json.loads(got.body) == {
        "stream_id": device.uuid,
        "type": "VCZ",
        "timestamp": message["timestamp"],
        "payload": message["payload"],
    }
    verify(got, created["secret"])


async def test_a_payload_is_forwarded_as_sent_even_what_the_fast_json_writer_refuses(
    api: Api, receiver: Receiver
) -> None:
    # An integer beyond 64 bits in a field no model reads is kept (the payload log
    # serves it back) and forwarded, and text beyond ASCII too.
    admin = await api.organization()
    device = await sensor(admin)
    created = await hook(admin, device.uuid, receiver.on("/big"))
    message = vcz(3)
    message["payload"][0] |= {"serial": 2**70, "label": "Entrée 🚪"}
    assert (await device.send(message)).status_code == 202

    outcomes = await deliver(api.state)

    assert [o.status for o in outcomes] == ["succeeded"]
    (got,) = receiver.to("/big")
    assert json.loads(got.body)["payload"] == message["payload"]
    verify(got, created["secret"])


async def test_keepalive_get_webhook_uses_the_seed_query(api: Api, receiver: Receiver) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    await hook(
        admin,
        device.uuid,
        receiver.on("/alive"),
        webhook_type="keepalive",
        method="GET",
        data={"params": [{"name": "id", "value": "mine"}, {"name": "site", "value": "7"}]},
    )
    assert (await device.keepalive({"fw_version": "1.2"})).status_code == 200
    assert (await device.keepalive()).status_code == 200  # within a minute: not forwarded

    await deliver(api.state)

    (got,) = receiver.to("/alive")
    assert got.method == "GET"
    assert got.query == [("source", "VIZIOSENSE"), ("id", device.uuid), ("site", "7")]
    assert got.body == b""
    assert got.headers["content-type"] == "application/json"


async def test_status_webhook_on_coming_online_and_going_offline(
    api: Api, receiver: Receiver
) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    created = await hook(admin, device.uuid, receiver.on("/status"), actions="status")
    assert (await device.keepalive()).status_code == 200
    await BackgroundRuntime(api.state).sweep_once(utcnow() + timedelta(hours=2))

    await deliver(api.state)

    bodies = [json.loads(r.body) for r in receiver.to("/status")]
    assert [(b["type"], b["status"], b["reason"]) for b in bodies] == [
        ("STATUS", "online", "keepalive"),
        ("STATUS", "offline", "keepalive_timeout"),
    ]
    assert all(b["stream_id"] == device.uuid for b in bodies)
    for received in receiver.to("/status"):
        verify(received, created["secret"])


async def test_receiver_failing_then_recovering_is_retried_and_logged(
    api: Api, receiver: Receiver
) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    created = await hook(admin, device.uuid, receiver.on("/flaky", 500, 200))
    await device.send(vcz(1))

    first = await deliver(api.state)
    assert [(o.status, o.status_code) for o in first] == [("pending", 500)]
    await _make_due(api.state, created["id"])
    second = await deliver(api.state)
    assert [(o.status, o.status_code) for o in second] == [("succeeded", 200)]

    log = (await admin.get(f"/api/v1/webhooks/{created['id']}/deliveries")).json()
    (delivery,) = log["data"]
    assert delivery["status"] == "succeeded"
    assert delivery["attempts"] == 2
    assert [a["status_code"] for a in delivery["attempt_log"]] == [500, 200]
    assert delivery["attempt_log"][0]["response"] == "answer 500"
    ids = {r.headers["webhook-id"] for r in receiver.to("/flaky")}
    assert ids == {delivery["event"]["id"]}  # the same webhook-id on the retry


async def test_gone_disables_the_webhook(api: Api, receiver: Receiver) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    await hook(admin, device.uuid, receiver.on("/gone", 410))
    await device.send(vcz(1))

    assert [o.status for o in await deliver(api.state)] == ["failed"]

    (listed,) = (await admin.get("/api/v1/webhooks", params={"device_uuid": device.uuid})).json()[
        "data"
    ]
    assert listed["status"] == 0
    assert "410" in listed["disabled_reason"]
    await device.send(vcz(2))
    assert await deliver(api.state) == []  # a disabled webhook gets nothing new


async def test_test_endpoint_answers_with_the_attempt(api: Api, receiver: Receiver) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    created = await hook(admin, device.uuid, receiver.on("/t", 204))
    response = await admin.post(f"/api/v1/webhooks/{created['id']}/test")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "succeeded"
    assert response.json()["status_code"] == 204
    (got,) = receiver.to("/t")
    body = json.loads(got.body)
    assert body["type"] == "TEST" and body["stream_id"] == device.uuid
    assert abs(body["timestamp"] - time.time()) < 60


async def _make_due(state: Components, webhook_id: int) -> None:
    async with session_scope(state.sessionmaker) as session:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == webhook_id, WebhookDelivery.status == "pending")
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


async def test_timeout_is_retried_later(api: Api, receiver: Receiver) -> None:
    api.state.settings = api.state.settings.model_copy(
        update={"webhook_timeout": timedelta(seconds=1)}
    )
    admin = await api.organization()
    device = await sensor(admin)
    await hook(admin, device.uuid, receiver.on("/slow", ("hang", 5)))
    await device.send(vcz(1))

    (outcome,) = await deliver(api.state)

    assert outcome.status == "pending"
    assert outcome.status_code is None
    assert outcome.error is not None and outcome.error.startswith("timeout")
    assert outcome.next_attempt_at is not None
    wait = (outcome.next_attempt_at - utcnow()).total_seconds()
    assert 2 < wait < 7  # the first retry: 5 s +- 20 %


async def test_retry_after_is_honoured(api: Api, receiver: Receiver) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    await hook(admin, device.uuid, receiver.on("/busy", (429, {"Retry-After": "120"})))
    await device.send(vcz(1))

    (outcome,) = await deliver(api.state)

    assert (outcome.status, outcome.status_code) == ("pending", 429)
    assert outcome.next_attempt_at is not None
    assert 100 < (outcome.next_attempt_at - utcnow()).total_seconds() <= 120


async def test_redirects_are_not_followed(api: Api, receiver: Receiver) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    await hook(
        admin,
        device.uuid,
        receiver.on("/moved", (302, {"Location": "http://169.254.169.254/latest/meta-data/"})),
    )
    receiver.on("/elsewhere")
    await device.send(vcz(1))

    (outcome,) = await deliver(api.state)

    assert (outcome.status, outcome.status_code) == ("pending", 302)
    assert outcome.error is not None and outcome.error.startswith("redirect")
    assert [r.path for r in receiver.received] == ["/moved"]


async def test_other_client_errors_are_final(api: Api, receiver: Receiver) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    await hook(admin, device.uuid, receiver.on("/bad", 400))
    await device.send(vcz(1))
    assert [(o.status, o.status_code) for o in await deliver(api.state)] == [("failed", 400)]


async def test_last_attempt_makes_the_delivery_dead(api: Api, receiver: Receiver) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    created = await hook(admin, device.uuid, receiver.on("/down", 503))
    await device.send(vcz(1))
    async with session_scope(api.state.sessionmaker) as session:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == created["id"])
            .values(attempts=7)
        )
    assert [o.status for o in await deliver(api.state)] == ["dead"]
    log = (await admin.get(f"/api/v1/webhooks/{created['id']}/deliveries")).json()
    assert log["data"][0]["status"] == "dead" and log["data"][0]["attempts"] == 8


async def test_webhook_failing_for_five_days_is_disabled(api: Api, receiver: Receiver) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    created = await hook(admin, device.uuid, receiver.on("/broken", 500))
    async with session_scope(api.state.sessionmaker) as session:
        await session.execute(
            update(Webhook)
            .where(Webhook.id == created["id"])
            .values(failing_since=utcnow() - timedelta(days=5, minutes=1))
        )
    await device.send(vcz(1))
    await deliver(api.state)

    (listed,) = (await admin.get("/api/v1/webhooks")).json()["data"]
    assert listed["status"] == 0
    assert "5 days" in listed["disabled_reason"]
    again = await admin.put(f"/api/v1/webhooks/{created['id']}", json={"status": 1})
    assert again.json()["data"]["status"] == 1 and again.json()["data"]["disabled_reason"] is None


async def test_a_success_ends_the_failing_run(api: Api, receiver: Receiver) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    created = await hook(admin, device.uuid, receiver.on("/mend", 500, 200))
    await device.send(vcz(1))
    await deliver(api.state)
    assert await _failing_since(api.state, created["id"]) is not None
    await _make_due(api.state, created["id"])
    await deliver(api.state)
    assert await _failing_since(api.state, created["id"]) is None


async def _failing_since(state: Components, webhook_id: int) -> Any:
    async with session_scope(state.sessionmaker) as session:
        return await session.scalar(select(Webhook.failing_since).where(Webhook.id == webhook_id))


async def test_open_breaker_defers_without_spending_attempts(api: Api, receiver: Receiver) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    created = await hook(admin, device.uuid, receiver.on("/sick", 500))
    await device.send(vcz(1))
    dispatcher = Dispatcher(api.state)
    for attempt in range(1, 6):
        (outcome,) = await dispatcher.run_once()
        assert (outcome.status, outcome.status_code) == ("pending", 500)
        assert await _attempts(api.state, created["id"]) == attempt
        await _make_due(api.state, created["id"])

    assert await dispatcher.run_once() == []  # five failures in a row: the breaker is open
    assert await _attempts(api.state, created["id"]) == 5
    assert len(receiver.to("/sick")) == 5


async def _attempts(state: Components, webhook_id: int) -> int:
    async with session_scope(state.sessionmaker) as session:
        total = await session.scalar(
            select(func.sum(WebhookDelivery.attempts)).where(
                WebhookDelivery.webhook_id == webhook_id
            )
        )
    return int(total or 0)


async def test_one_device_is_delivered_in_order(api: Api, receiver: Receiver) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    await hook(admin, device.uuid, receiver.on("/ordered"))
    start = int(time.time()) - 100
    assert (await device.send([vcz(n, start + n) for n in range(20)])).status_code == 202
    await device.send(vcz(20, start + 20))
    dispatcher = Dispatcher(api.state)
    rounds = 0
    while await dispatcher.run_once():  # a claim takes a few of one device at a time
        rounds += 1
    assert rounds > 1
    assert _counts(receiver.to("/ordered")) == list(range(21))


def _counts(received: list[Any]) -> list[int]:
    return [json.loads(r.body)["payload"][0]["count"] for r in received]


async def test_a_dispatcher_queues_a_devices_next_deliveries_behind_its_own(
    api: Api, receiver: Receiver
) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    await hook(admin, device.uuid, receiver.on("/behind", ("hang", 0.5), 200))
    start = int(time.time()) - 100
    await device.send(vcz(0, start))
    first, other = Dispatcher(api.state), Dispatcher(api.state)
    assert await first.claim_round() == 1
    await receiver.wait_for(1)  # its request is out
    await device.send([vcz(1, start + 1), vcz(2, start + 2)])

    assert await other.claim_round() == 0  # the device's delivery out is not its own
    assert await first.claim_round() == 2  # queued behind its own request
    await first.settled()
    assert await other.claim_round() == 0  # sent, but not written yet: still leased
    await first.drain()
    assert _counts(receiver.to("/behind")) == [0, 1, 2]

    await device.send(vcz(3, start + 3))  # written: anyone may take the next one
    assert await other.claim_round() == 1
    await other.drain()
    assert _counts(receiver.to("/behind")) == [0, 1, 2, 3]


async def test_a_devices_chain_is_topped_up_before_it_runs_dry(
    api: Api, receiver: Receiver
) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    await hook(admin, device.uuid, receiver.on("/topped", ("hang", 0.1)))
    start = int(time.time()) - 100
    rest = 3  # beyond one claim's share
    await device.send([vcz(n, start + n) for n in range(PER_DEVICE + rest)])
    dispatcher = Dispatcher(api.state)
    try:
        assert await dispatcher.claim_round() == PER_DEVICE  # one claim's share of a device
        assert await dispatcher.claim_round() == 0  # more than TOP_UP left to send
        await receiver.wait_for(PER_DEVICE - TOP_UP)  # at most TOP_UP left behind this one
        assert await dispatcher.claim_round() == rest  # queued behind its own
        assert len(receiver.to("/topped")) < PER_DEVICE  # before the chain ran dry
        outcomes = await dispatcher.drain()
    finally:
        await close_sender(api.state)
    assert [o.status for o in outcomes] == ["succeeded"] * (PER_DEVICE + rest)
    assert _counts(receiver.to("/topped")) == list(range(PER_DEVICE + rest))


async def test_nothing_queues_behind_a_failed_delivery_before_its_outcome_is_written(
    api: Api, receiver: Receiver
) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    await hook(admin, device.uuid, receiver.on("/failed", 500))
    start = int(time.time()) - 100
    await device.send(vcz(0, start))
    dispatcher = Dispatcher(api.state)
    assert await dispatcher.claim_round() == 1
    await dispatcher.settled()
    await device.send(vcz(1, start + 1))
    assert await dispatcher.claim_round() == 0
    (outcome,) = await dispatcher.drain()
    assert (outcome.status, outcome.status_code) == ("pending", 500)
    assert len(receiver.to("/failed")) == 1


async def test_redeliver_and_replay_send_the_same_event_again(api: Api, receiver: Receiver) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    created = await hook(admin, device.uuid, receiver.on("/again"))
    before = utcnow() - timedelta(seconds=1)
    await device.send(vcz(1))
    await device.send(vcz(2))
    await deliver(api.state)
    log = (await admin.get(f"/api/v1/webhooks/{created['id']}/deliveries")).json()["data"]
    assert len(log) == 2

    one = await admin.post(f"/api/v1/webhooks/{created['id']}/deliveries/{log[0]['id']}/redeliver")
    assert one.status_code == 202 and one.json()["queued"] == 1
    window = await admin.post(
        f"/api/v1/webhooks/{created['id']}/replay",
        json={"since": before.isoformat(), "until": (utcnow() + timedelta(seconds=1)).isoformat()},
    )
    assert window.status_code == 202 and window.json()["queued"] == 2
    await deliver(api.state)

    ids = [r.headers["webhook-id"] for r in receiver.to("/again")]
    assert len(ids) == 5
    assert sorted(set(ids)) == sorted({d["event"]["id"] for d in log})
    assert ids.count(log[0]["event"]["id"]) == 3  # sent, redelivered, replayed


async def test_rotation_signs_with_both_secrets(api: Api, receiver: Receiver) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    created = await hook(admin, device.uuid, receiver.on("/rotated"))
    rotated = await admin.post(f"/api/v1/webhooks/{created['id']}/rotate-secret")
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret != created["secret"]
    await device.send(vcz(1))
    await deliver(api.state)

    (got,) = receiver.to("/rotated")
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    verify(got, new_secret)
    verify(got, created["secret"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "https://example.com/" + "x" * 2048}, "url"),
        ({"url": "https://example.com/x", "method": "GET"}, "method"),
        ({"url": "https://example.com/x", "actions": "x" * 201}, "actions"),
        ({"url": "https://example.com/x", "webhook_type": "everything"}, "webhook_type"),
        (
            {"url": "https://example.com/x", "data": {"headers": [{"name": "Host", "value": "a"}]}},
            "data.headers.0.name",
        ),
        (
            {"url": "https://example.com/x", "data": {"headers": [{"name": "a b", "value": "c"}]}},
            "data.headers.0.name",
        ),
    ],
)
async def test_invalid_webhooks_are_refused_by_field(
    api: Api, body: dict[str, Any], field: str
) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    response = await admin.post("/api/v1/webhooks", params={"device_uuid": device.uuid}, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == 4022
    assert field in [e["field"] for e in response.json()["error"]]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Token", "a\x0bb"),
        ("X-Token", "a\x7fb"),
        ("X-Token", "a\x1fb"),
        ("X-Token", "a\r\nX-Injected: 1"),
        ("X-Token\n", "a"),
    ],
    ids=["vertical-tab", "delete", "unit-separator", "crlf", "name-with-newline"],
)
async def test_headers_that_could_never_be_sent_are_refused_at_creation_and_update(
    api: Api, name: str, value: str
) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    bad = {"headers": [{"name": name, "value": value}]}
    created = await admin.post(
        "/api/v1/webhooks",
        params={"device_uuid": device.uuid},
        json={"url": "https://example.com/x", "data": bad},
    )
    assert created.status_code == 422, created.text
    assert created.json()["error"][0]["field"].startswith("data.headers.0.")
    good = await admin.post(
        "/api/v1/webhooks",
        params={"device_uuid": device.uuid},
        json={
            "url": "https://example.com/x",
            "data": {"headers": [{"name": "X-A", "value": "a\tb é"}]},
        },
    )
    assert good.status_code == 201, good.text
    updated = await admin.put(f"/api/v1/webhooks/{good.json()['data']['id']}", json={"data": bad})
    assert updated.status_code == 422, updated.text
    [kept] = (await admin.get("/api/v1/webhooks", params={"device_uuid": device.uuid})).json()[
        "data"
    ]
    assert kept["data"]["headers"] == [{"name": "X-A", "value": "a\tb é"}]


async def test_private_targets_are_refused_unless_allowed(
    api: Api, database_settings: Settings, shared_engine: Any
) -> None:
    strict = Components.for_server(database_settings, shared_engine)
    from vsense.app import create_app

    transport = httpx.ASGITransport(app=create_app(state=strict))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        admin = await Api(http, strict).organization()
        device = await admin.device()
        for url in ("http://127.0.0.1/x", "http://[::ffff:127.0.0.1]/x", "http://localhost/x",
                    "http://169.254.169.254/latest", "http://10.1.2.3/x"):  # fmt: skip
            response = await admin.post(
                "/api/v1/webhooks", params={"device_uuid": device["uuid"]}, json={"url": url}
            )
            assert response.status_code == 422, url
            assert response.json()["error"][0]["field"] == "url"


async def test_a_name_resolving_to_loopback_is_refused_at_send_time(
    api: Api, receiver: Receiver, database_settings: Settings, shared_engine: Any
) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    created = await hook(
        admin, device.uuid, receiver.on("/named").replace("127.0.0.1", "localhost")
    )
    await device.send(vcz(1))
    strict = Components.for_server(database_settings, shared_engine)

    (outcome,) = await deliver(strict)

    assert outcome.status == "failed"
    assert outcome.error is not None and outcome.error.startswith("blocked")
    assert receiver.received == []

    # An allow-listed network reaches it (on-premises receivers).
    again = await admin.post(
        f"/api/v1/webhooks/{created['id']}/deliveries/{outcome.delivery_id}/redeliver"
    )
    assert again.status_code == 202
    allow_listed = Components.for_server(
        database_settings.model_copy(
            update={"webhook_allow_networks": [ip_network("127.0.0.0/8")]}
        ),
        shared_engine,
    )
    outcomes = await deliver(allow_listed)
    assert [(o.status, o.error) for o in outcomes] == [("succeeded", None)]
    assert len(receiver.to("/named")) == 1


async def test_standard_users_cannot_manage_webhooks(api: Api) -> None:
    admin = await api.organization()
    device = await admin.device()
    standard = await admin.user(role="standard")
    response = await standard.get("/api/v1/webhooks")
    assert response.status_code == 403
    response = await standard.post(
        "/api/v1/webhooks", params={"device_uuid": device["uuid"]}, json={"url": "https://a.b/c"}
    )
    assert response.status_code == 403


async def test_deleting_a_webhook_stops_its_deliveries(api: Api, receiver: Receiver) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    created = await hook(admin, device.uuid, receiver.on("/deleted"))
    assert (await admin.delete(f"/api/v1/webhooks/{created['id']}")).status_code == 204
    await device.send(vcz(1))
    assert await deliver(api.state) == []
    assert (await admin.delete(f"/api/v1/webhooks/{created['id']}")).status_code == 404


async def test_a_webhook_deleted_while_its_delivery_is_out_stops_no_other_outcome(
    api: Api, receiver: Receiver
) -> None:
    # The deletion takes the delivery along while it is being sent: its outcome has no
    # row left, and the outcomes written with it in one batch must still be written.
    admin = await api.organization()
    doomed, other = await sensor(admin), await sensor(admin)
    deleted = await hook(admin, doomed.uuid, receiver.on("/doomed"))
    kept = await hook(admin, other.uuid, receiver.on("/kept"))
    await doomed.send(vcz(1))
    await other.send(vcz(1))
    dispatcher = Dispatcher(api.state)
    try:
        assert await dispatcher.claim_round() == 2
        assert (await admin.delete(f"/api/v1/webhooks/{deleted['id']}")).status_code == 204
        outcomes = await dispatcher.drain()
    finally:
        await close_sender(api.state)
    assert sorted(o.webhook_id for o in outcomes) == sorted([deleted["id"], kept["id"]])
    async with session_scope(api.state.sessionmaker) as session:
        rows = (
            await session.execute(
                select(WebhookDelivery.webhook_id, WebhookDelivery.status, WebhookDelivery.attempts)
            )
        ).all()
    assert [tuple(row) for row in rows] == [(kept["id"], "succeeded", 1)]


async def test_outcomes_that_cannot_be_written_are_dropped_not_retried_forever(
    api: Api, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fault in what is written would fail every later write it is retried with: the
    # batch is dropped (its deliveries are sent again once their leases run out) and
    # the next outcomes are written.
    admin = await api.organization()
    device = await sensor(admin)
    await hook(admin, device.uuid, receiver.on("/poisoned"))
    await device.send(vcz(1))
    dispatcher = Dispatcher(api.state)
    written = queue_repository.record_outcomes

    async def refused(*_: Any) -> None:
        raise IntegrityError("INSERT INTO webhook_attempts", {}, Exception("foreign key"))

    monkeypatch.setattr(queue_repository, "record_outcomes", refused)
    try:
        assert await dispatcher.claim_round() == 1
        assert await dispatcher.drain() == []
        monkeypatch.setattr(queue_repository, "record_outcomes", written)
        await device.send(vcz(2))
        assert await dispatcher.run_once() == []  # the first is still leased: in order
        async with session_scope(api.state.sessionmaker) as session:
            await session.execute(update(WebhookDelivery).values(lease_until=None))
        (first, second) = await dispatcher.run_once(), await dispatcher.run_once()
    finally:
        await close_sender(api.state)
    assert [o.status for o in first + second] == ["succeeded", "succeeded"]


async def test_add_and_update_answer_the_webhook_beside_the_seeds_error_key(api: Api) -> None:
    admin = await api.organization()
    device = await admin.device()
    added = await admin.post(
        "/api/v1/webhooks", params={"device_uuid": device["uuid"]}, json={"url": "https://a.b/c"}
    )
    assert added.status_code == 201
    assert sorted(added.json()) == ["data", "error"] and added.json()["error"] == []
    created = added.json()["data"]
    assert created["secret"].startswith("whsec_") and created["device_uuid"] == device["uuid"]
    for method in ("PUT", "PATCH"):
        updated = await admin.request(
            method, f"/api/v1/webhooks/{created['id']}", json={"url": f"https://a.b/{method}"}
        )
        assert updated.status_code == 200, updated.text
        assert sorted(updated.json()) == ["data", "error"] and updated.json()["error"] == []
        assert updated.json()["data"]["url"] == f"https://a.b/{method}"
        assert "secret" not in updated.json()["data"]
    (listed,) = (await admin.get("/api/v1/webhooks")).json()["data"]
    assert listed == updated.json()["data"]


async def test_a_keepalive_webhook_without_method_is_sent_as_get(
    api: Api, receiver: Receiver
) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    alive = await hook(
        admin,
        device.uuid,
        receiver.on("/alive"),
        webhook_type="keepalive",
        data={"params": [{"name": "site", "value": "7"}]},
    )
    both = await hook(admin, device.uuid, receiver.on("/both"), actions="keepalive, status")
    assert (alive["method"], both["method"]) == ("GET", "POST")
    asked = await hook(
        admin, device.uuid, receiver.on("/posted"), webhook_type="keepalive", method="POST"
    )
    assert asked["method"] == "POST"
    assert (await device.keepalive()).status_code == 200

    await deliver(api.state)

    (got,) = receiver.to("/alive")
    assert (got.method, got.body) == ("GET", b"")
    assert got.query == [("source", "VIZIOSENSE"), ("id", device.uuid), ("site", "7")]
    assert {r.method for r in receiver.to("/posted")} == {"POST"}
    assert json.loads(receiver.to("/posted")[0].body)["id"] == device.uuid
    # A GET chosen by default follows the events: POST once they are not keepalives only.
    changed = await admin.put(f"/api/v1/webhooks/{alive['id']}", json={"actions": "payload"})
    assert changed.json()["data"]["method"] == "POST"
    explicit = await admin.put(
        f"/api/v1/webhooks/{asked['id']}", json={"actions": "payload", "method": "GET"}
    )
    assert explicit.status_code == 422
    assert [e["field"] for e in explicit.json()["error"]] == ["method"]


async def test_update_by_device_picks_its_only_webhook_or_the_one_of_the_type(api: Api) -> None:
    admin = await api.organization()
    device = await admin.device()
    url = "/api/v1/webhooks"
    query = {"device_uuid": device["uuid"].upper()}
    none = await admin.put(url, params=query, json={"active": False})
    assert (none.status_code, none.json()["code"]) == (404, 4004)
    assert none.json()["error"] == []

    payload = await hook(admin, device["uuid"], "https://a.b/payload")
    only = await admin.put(url, params=query, json={"active": False})
    assert only.status_code == 200, only.text
    assert (only.json()["data"]["id"], only.json()["data"]["status"]) == (payload["id"], 0)

    alive = await hook(admin, device["uuid"], "https://a.b/alive", webhook_type="keepalive")
    several = await admin.patch(url, params=query, json={"url": "https://a.b/x"})
    assert (several.status_code, several.json()["code"]) == (409, 4009)
    assert str(payload["id"]) in several.json()["message"]
    assert str(alive["id"]) in several.json()["message"]
    assert several.json()["error"] == [
        {"field": "id", "message": f"{payload['id']} (payload)"},
        {"field": "id", "message": f"{alive['id']} (keepalive)"},
    ]
    typed = await admin.patch(
        url, params=query, json={"webhook_type": "keepalive", "url": "https://a.b/alive2"}
    )
    assert typed.status_code == 200
    assert (typed.json()["data"]["id"], typed.json()["data"]["url"]) == (
        alive["id"],
        "https://a.b/alive2",
    )
    missing = await admin.put(url, params=query, json={"webhook_type": "alert", "status": 1})
    assert missing.status_code == 404
    assert f"{payload['id']}, {alive['id']}" in missing.json()["message"]
    assert [e["message"] for e in missing.json()["error"]] == [
        f"{payload['id']} (payload)",
        f"{alive['id']} (keepalive)",
    ]
    body_only = await admin.put(
        url, json={"device_uuid": device["uuid"], "webhook_type": "payload"}
    )
    assert body_only.status_code == 200 and body_only.json()["data"]["id"] == payload["id"]
    assert (await admin.put(url, json={"status": 1})).status_code == 400
    other = await admin.device()
    elsewhere = await admin.put(url, params={"device_uuid": other["uuid"]}, json={"status": 1})
    assert elsewhere.status_code == 404


async def test_active_is_status_in_add_and_update(api: Api, receiver: Receiver) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    created = await hook(admin, device.uuid, receiver.on("/switch"), active=False)
    assert created["status"] == 0
    await device.send(vcz(1))
    assert await deliver(api.state) == []  # created off: nothing is queued

    on = await admin.put(f"/api/v1/webhooks/{created['id']}", json={"active": True})
    assert on.json()["data"]["status"] == 1
    await device.send(vcz(2))
    assert [o.status for o in await deliver(api.state)] == ["succeeded"]

    off = await admin.put(f"/api/v1/webhooks/{created['id']}", json={"active": False})
    assert off.json()["data"]["status"] == 0
    await device.send(vcz(3))
    assert await deliver(api.state) == []
    assert [json.loads(r.body)["payload"][0]["count"] for r in receiver.to("/switch")] == [2]

    for body in ({"active": True, "status": 0}, {"active": "maybe"}):
        refused = await admin.put(f"/api/v1/webhooks/{created['id']}", json=body)
        assert refused.status_code == 422, body
    agreed = await admin.put(f"/api/v1/webhooks/{created['id']}", json={"active": 1, "status": 1})
    assert agreed.json()["data"]["status"] == 1


@pytest.mark.parametrize(
    ("webhook_type", "actions", "events"),
    [
        ("payload", "string", ["payload"]),
        ("keepalive", "string", ["keepalive"]),
        ("payload", "Keep alive", ["keepalive"]),
        ("payload", "Payload transfer", ["payload"]),
        ("keepalive", "Alert", ["alert"]),
        ("payload", "Keep alive, Payload transfer, Alert", ["keepalive", "payload", "alert"]),
        ("payload", "KEEPALIVE status", ["keepalive", "status"]),
        ("alert", "payload;sms image", ["payload", "image"]),
        ("payload", "", ["payload"]),
    ],
)
async def test_actions_is_a_free_string_whose_event_names_select_the_events(
    api: Api, webhook_type: str, actions: str, events: list[str]
) -> None:
    admin = await api.organization()
    device = await admin.device()
    created = await hook(
        admin, device["uuid"], "https://a.b/c", webhook_type=webhook_type, actions=actions
    )
    assert (created["actions"], created["events"]) == (actions, events)


async def test_every_event_named_in_actions_is_delivered(api: Api, receiver: Receiver) -> None:
    admin = await api.organization()
    device = await sensor(admin)
    await hook(
        admin, device.uuid, receiver.on("/all"), actions="Keep alive, Payload transfer, Status"
    )
    await hook(admin, device.uuid, receiver.on("/typed"), actions="string")
    assert (await device.keepalive()).status_code == 200
    await device.send(vcz(1))

    await deliver(api.state)

    bodies = [json.loads(r.body) for r in receiver.to("/all")]
    assert sorted(b.get("type", "KEEPALIVE") for b in bodies) == ["KEEPALIVE", "STATUS", "VCZ"]
    assert [json.loads(r.body)["type"] for r in receiver.to("/typed")] == ["VCZ"]


async def test_device_uuid_in_the_query_or_the_body_of_an_add(api: Api) -> None:
    admin = await api.organization()
    device, other = await admin.device(), await admin.device()
    in_body = await admin.post(
        "/api/v1/webhooks", json={"url": "https://a.b/c", "device_uuid": device["uuid"].upper()}
    )
    assert in_body.status_code == 201
    assert in_body.json()["data"]["device_uuid"] == device["uuid"]
    both = await admin.post(
        "/api/v1/webhooks",
        params={"device_uuid": device["uuid"]},
        json={"url": "https://a.b/c", "device_uuid": device["uuid"].upper()},
    )
    assert both.status_code == 201
    conflict = await admin.post(
        "/api/v1/webhooks",
        params={"device_uuid": device["uuid"]},
        json={"url": "https://a.b/c", "device_uuid": other["uuid"]},
    )
    assert (conflict.status_code, conflict.json()["code"]) == (422, 4022)
    assert [e["field"] for e in conflict.json()["error"]] == ["device_uuid"]
    neither = await admin.post("/api/v1/webhooks", json={"url": "https://a.b/c"})
    assert (neither.status_code, neither.json()["code"]) == (400, 4000)
    unknown = await admin.post(
        "/api/v1/webhooks", json={"url": "https://a.b/c", "device_uuid": str(uuid.uuid4())}
    )
    assert unknown.status_code == 404
    listed = (await admin.get("/api/v1/webhooks", params={"device_uuid": device["uuid"]})).json()
    assert len(listed["data"]) == 2
