"""The SDK (`vsense.client`) against a real running server, sync and async.

Each test body runs twice: with `Client` and with `AsyncClient` (`call` awaits what the
async client returns), on every backend.
"""

from __future__ import annotations

import base64
import email.utils
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook

from tests.client.helpers import (
    SDK,
    call,
    close,
    collect,
    online_device,
    same_kind,
)
from tests.client.live_api import Account, LiveApi
from tests.factories import unique
from vsense.client import (
    APIConnectionError,
    APITimeoutError,
    AsyncClient,
    AuthenticationError,
    Client,
    ConflictError,
    Credentials,
    ImageCaptureError,
    InternalServerError,
    MissingCredentialsError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
    WebhookVerificationError,
    _async,
    _sync,
    normalize_api_addr,
    signatures,
    verify_webhook,
)
from vsense.client.models import Device
from vsense.client.resources import images as images_resource


async def test_login_then_me_names_the_caller(sdk: SDK, account: Account) -> None:
    login = await call(sdk.login())
    assert login.user.email == account.email and login.user.role == ["admin"]
    assert sdk.credentials is not None and sdk.credentials.refresh_token == login.refresh_token
    me = await call(sdk.me.get())
    assert me.email == account.email
    assert me.organization.name == account.organization
    assert "devices:write" in me.scopes


async def test_devices_are_onboarded_read_changed_and_removed(sdk: SDK, live: LiveApi) -> None:
    group = await call(sdk.groups.create(name=unique("site")))
    created, device = await online_device(sdk, live, client_identifier="site-1/cam-1")
    assert created.device_token.startswith("vsd_")
    fetched = await call(sdk.devices.get(created.uuid))
    assert fetched.online and fetched.client_identifier == "site-1/cam-1"

    moved = await call(
        sdk.devices.update(created.uuid, name="Gate B", group=group.name, keepalive_interval=60)
    )
    assert (moved.name, moved.group, moved.keepalive_interval) == ("Gate B", group.name, 60)
    released = await call(sdk.devices.update(created.uuid, group=None, keepalive_interval=None))
    assert released.group is None and released.keepalive_interval is None
    assert released.name == "Gate B"  # fields not given are left alone

    events = await call(sdk.devices.events(created.uuid))
    assert [e.status for e in events.data] == ["online"]
    device.send(7)
    metrics = await call(sdk.devices.metrics(created.uuid, interval="1h"))
    assert any(bucket.name == "count" and bucket.max == 7 for bucket in metrics.data)

    rotated = await call(sdk.devices.rotate_credentials(created.uuid))
    assert rotated.device_token != created.device_token
    assert device.http.post("/keepalive").status_code == 401

    await call(sdk.devices.delete(created.uuid))
    with pytest.raises(NotFoundError) as missing:
        await call(sdk.devices.get(created.uuid))
    assert (missing.value.httpError, missing.value.code) == (404, 4004)
    assert missing.value.message and missing.value.error == []
    device.close()


async def test_device_lists_filter_and_iterate_every_page(sdk: SDK, live: LiveApi) -> None:
    names = [f"Cam {i}" for i in range(5)]
    uuids = [(await call(sdk.devices.create(name=name))).uuid for name in names]
    _, device = await online_device(sdk, live)
    device.close()

    page = await call(sdk.devices.list(per_page=2, sort="-name"))
    assert page.meta.total == 6 and page.meta.last_page == 3 and page.has_next_page
    every = await collect(sdk.devices.list_all(per_page=2, search="Cam"))
    assert sorted(d.uuid for d in every) == sorted(uuids)
    online = await collect(sdk.devices.list_all(is_online=True))
    assert [d.uuid for d in online] == [device.uuid]
    offline = await call(sdk.devices.list(is_online=False))
    assert offline.meta.total == 5


async def test_groups_and_users_are_managed(sdk: SDK, live: LiveApi, account: Account) -> None:
    group = await call(sdk.groups.create(name=unique("north"), keepalive_interval=120))
    assert (await call(sdk.groups.get(group.id))).keepalive_interval == 120
    renamed = await call(sdk.groups.update(group.id, name=group.name + "-x"))
    assert renamed.name == group.name + "-x"
    assert [g.id for g in await collect(sdk.groups.list_all())] == [group.id]
    assert (await call(sdk.groups.list())).meta.total == 1

    seen, _ = await online_device(sdk, live, group=group.id)
    await online_device(sdk, live)  # outside the group
    email = f"{unique('viewer')}@example.com"
    user = await call(
        sdk.users.create(email=email, password="viewer password", groups=[renamed.name])
    )
    assert user.role == "standard" and [g.id for g in user.groups] == [group.id]
    viewer = same_kind(sdk, base_url=live.base_url, email=email, password="viewer password")
    visible = await call(viewer.devices.list())
    assert [d.uuid for d in visible.data] == [seen.uuid]
    with pytest.raises(PermissionDeniedError) as denied:
        await call(viewer.groups.create(name=unique("nope")))
    assert denied.value.code == 4003
    await close(viewer)

    changed = await call(sdk.users.update(user.id, name="Viewer", role="admin", groups=[]))
    assert (changed.name, changed.role, changed.groups) == ("Viewer", "admin", [])
    assert (await call(sdk.users.get(user.id))).email == email
    emails = {u.email for u in await collect(sdk.users.list_all())}
    assert emails == {email, account.email}
    assert (await call(sdk.users.list())).meta.total == 2
    await call(sdk.users.delete(user.id))
    await call(sdk.groups.delete(group.id))
    with pytest.raises(NotFoundError):
        await call(sdk.groups.get(group.id))


async def test_personal_tokens_carry_their_scopes_until_revoked(sdk: SDK, live: LiveApi) -> None:
    created = await call(sdk.tokens.create(name="reader", scopes=["devices:read"]))
    assert created.token.startswith("vst_") and created.scopes == ["devices:read"]
    listed = await collect(sdk.tokens.list_all())
    assert [t.name for t in listed] == ["reader"]
    assert (await call(sdk.tokens.list())).data[0].id == created.id

    reader = same_kind(sdk, base_url=live.base_url, token=created.token)
    assert (await call(reader.devices.list())).meta.total == 0
    with pytest.raises(PermissionDeniedError):
        await call(reader.devices.create(name="x"))
    await call(sdk.tokens.revoke(created.id))
    with pytest.raises(AuthenticationError) as revoked:
        await call(reader.devices.list())
    assert (revoked.value.httpError, revoked.value.code) == (401, 4001)
    await close(reader)


async def test_devices_sort_by_online_status_and_are_refreshed_from_onboarding(
    sdk: SDK, live: LiveApi
) -> None:
    up, device = await online_device(sdk, live)
    down = await call(sdk.devices.create(name=unique("Gate")))
    assert down.refreshed is not None and down.refreshed == down.created
    online_first = await call(sdk.devices.list(sort="-is_online"))
    assert [d.uuid for d in online_first.data] == [up.uuid, down.uuid]
    offline_first = await call(sdk.devices.list(sort="is_online"))
    assert [d.uuid for d in offline_first.data] == [down.uuid, up.uuid]
    assert all(d.refreshed is not None for d in offline_first.data)
    device.close()


async def test_payloads_are_listed_and_schemas_read(sdk: SDK, live: LiveApi) -> None:
    created, device = await online_device(sdk, live)
    now = int(time.time())
    for offset, count in ((-30, 1), (-20, 2), (-10, 3)):
        device.send(count, now + offset)
    page = await call(sdk.payloads.list(created.uuid, per_page=2))
    assert [p.payload[0]["count"] for p in page.data] == [3, 2] and page.has_next_page
    recent = await collect(sdk.payloads.list_all(created.uuid, since=now - 25, per_page=1))
    assert [p.payload[0]["count"] for p in recent] == [3, 2]
    assert (await call(sdk.payloads.list(created.uuid, type="VPM"))).data == []
    schema = await call(sdk.payloads.schema("VCZ"))
    assert schema["type"] in ("array", "object")
    device.close()


async def test_image_request_is_waited_for_and_listed(sdk: SDK, live: LiveApi) -> None:
    created, device = await online_device(sdk, live)
    capturing = device.answer_capture(delay=0.5)
    request = await call(sdk.images.request(created.uuid))
    assert request.status == "pending" and len(request.data) == 2
    assert await call(sdk.images.fetch(request.raw_url)) is None  # not uploaded yet
    capturing.join(timeout=20)
    images = await call(sdk.images.wait(request))
    assert images.raw.content.startswith(b"\x89PNG") and images.raw.content_type == "image/png"
    assert images.annotated.content == images.raw.content
    fetched = await call(sdk.images.fetch(request.annotated_url))
    assert fetched is not None and fetched.content == images.annotated.content
    listed = await call(sdk.images.list(created.uuid))
    assert [(i.request_id, i.status) for i in listed.data] == [(request.request_id, "ready")]
    device.close()


async def test_image_request_failures_are_errors(sdk: SDK, live: LiveApi) -> None:
    offline = await call(sdk.devices.create(name=unique("Off")))
    with pytest.raises(ConflictError) as conflict:
        await call(sdk.images.request(offline.uuid))
    assert conflict.value.code == 4009

    created, device = await online_device(sdk, live)
    answering = device.answer_capture(fail=True, delay=0)
    request = await call(sdk.images.request(created.uuid))
    answering.join(timeout=20)
    with pytest.raises(ImageCaptureError):
        await call(sdk.images.wait(request, timeout=20, poll_interval=0.2))
    device.close()


class Receiver:
    """A local webhook endpoint recording what it receives."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.received = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.calls.append((dict(self.headers.items()), body))
                receiver.received.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


async def test_webhooks_deliver_signed_calls_and_keep_a_log(
    sdk: SDK, live: LiveApi, receiver: Receiver
) -> None:
    created, device = await online_device(sdk, live)
    hook = await call(
        sdk.webhooks.create(
            device_uuid=created.uuid,
            url=receiver.url,
            actions=["payload", "status"],
            headers={"X-Site": "12"},
            params=[("site", "12")],
        )
    )
    assert hook.secret.startswith("whsec_") and hook.actions == "payload,status"
    assert [(h.name, h.value) for h in hook.data.headers] == [("X-Site", "12")]

    result = await call(sdk.webhooks.test(hook.id))
    assert result.status == "succeeded" and result.status_code == 204
    headers, body = receiver.calls[-1]
    event = sdk.webhooks.verify(body, headers, hook.secret)
    assert event["type"] == "TEST" and event["stream_id"] == created.uuid
    assert headers["X-Site"] == "12"

    listed = await call(sdk.webhooks.list(device_uuid=created.uuid))
    assert [w.id for w in listed.data] == [hook.id] and listed.meta is None
    assert [w.id for w in await collect(sdk.webhooks.list_all())] == [hook.id]
    updated = await call(sdk.webhooks.update(hook.id, status=0, url=receiver.url + "?v=2"))
    assert updated.status == 0 and updated.url.endswith("?v=2")

    deliveries = await call(sdk.webhooks.deliveries.list(hook.id))
    assert [(d.event.type, d.status) for d in deliveries.data] == [("test", "succeeded")]
    every = await collect(sdk.webhooks.deliveries.list_all(hook.id, status="succeeded"))
    assert [d.id for d in every] == [deliveries.data[0].id]
    queued = await call(sdk.webhooks.deliveries.redeliver(hook.id, deliveries.data[0].id))
    assert queued.queued == 1
    replayed = await call(sdk.webhooks.replay(hook.id, since=int(time.time()) - 600))
    assert replayed.queued >= 1

    rotated = await call(sdk.webhooks.rotate_secret(hook.id))
    assert rotated.secret.startswith("whsec_") and rotated.secret != hook.secret
    await call(sdk.webhooks.delete(hook.id))
    assert (await call(sdk.webhooks.list(device_uuid=created.uuid))).data == []
    device.close()


async def test_webhooks_as_the_seed_writes_them(sdk: SDK) -> None:
    created = await call(sdk.devices.create(name=unique("Gate")))
    alive = await call(
        sdk.webhooks.create(
            device_uuid=created.uuid,
            url="https://example.com/alive",
            webhook_type="keepalive",
            actions="Keep alive",
        )
    )
    assert (alive.method, alive.actions, alive.events) == ("GET", "Keep alive", ["keepalive"])
    assert alive.secret.startswith("whsec_")

    # The seed's update names only the device: its only webhook is the one changed.
    off = await call(sdk.webhooks.update(device_uuid=created.uuid, active=False))
    assert (off.id, off.status) == (alive.id, 0)
    payload = await call(
        sdk.webhooks.create(
            device_uuid=created.uuid,
            url="https://example.com/payload",
            actions="Payload transfer, Alert",
            active=True,
        )
    )
    assert (payload.method, payload.status, payload.events) == ("POST", 1, ["payload", "alert"])
    on = await call(
        sdk.webhooks.update(device_uuid=created.uuid, webhook_type="keepalive", active=True)
    )
    assert (on.id, on.status) == (alive.id, 1)

    with pytest.raises(ConflictError) as several:
        await call(sdk.webhooks.update(device_uuid=created.uuid, url="https://example.com/x"))
    assert several.value.error == [
        {"field": "id", "message": f"{alive.id} (keepalive)"},
        {"field": "id", "message": f"{payload.id} (payload)"},
    ]
    with pytest.raises(NotFoundError):
        await call(
            sdk.webhooks.update(device_uuid=created.uuid, webhook_type="alert", active=False)
        )


async def test_invalid_bodies_name_their_fields(sdk: SDK) -> None:
    with pytest.raises(UnprocessableEntityError) as invalid:
        await call(sdk.devices.create(name=""))
    assert invalid.value.httpError == 422 and invalid.value.code == 4022
    assert [e["field"] for e in invalid.value.error] == ["name"]


async def test_an_expired_session_is_refreshed_before_the_request(sdk: SDK, live: LiveApi) -> None:
    login = await call(sdk.login())
    saved: list[Credentials] = []
    stale = Credentials(login.access_token, login.refresh_token, expires_at=time.time() - 5)
    client = same_kind(sdk, base_url=live.base_url, credentials=stale, on_credentials=saved.append)
    assert (await call(client.me.get())).email == login.user.email
    assert len(saved) == 1 and saved[0].refresh_token != login.refresh_token
    assert client.credentials is saved[0] and not saved[0].expires_soon()
    # The spent refresh token is good once only.
    reuse = same_kind(
        sdk, base_url=live.base_url, credentials=Credentials("x", login.refresh_token)
    )
    with pytest.raises(AuthenticationError):
        await call(reuse.refresh())
    await close(client)
    await close(reuse)


async def test_a_rejected_access_token_is_refreshed_and_the_request_retried(
    sdk: SDK, live: LiveApi
) -> None:
    login = await call(sdk.login())
    revoked = Credentials("not-a-valid-token", login.refresh_token, time.time() + 3600)
    client = same_kind(sdk, base_url=live.base_url, credentials=revoked)
    devices = await call(client.devices.list())
    assert devices.meta.total == 0
    assert client.credentials is not None
    assert client.credentials.access_token != "not-a-valid-token"
    assert client.credentials.refresh_token != login.refresh_token
    await close(client)


async def test_a_session_renewed_by_another_process_is_taken_up_not_refreshed_twice(
    sdk: SDK, live: LiveApi
) -> None:
    login = await call(sdk.login())
    store: dict[str, Credentials] = {}  # what processes sharing a credentials file see

    def process() -> SDK:
        expired = Credentials(login.access_token, login.refresh_token, time.time() - 5)
        return same_kind(
            sdk,
            base_url=live.base_url,
            credentials=expired,
            on_credentials=lambda renewed: store.update(session=renewed),
            load_credentials=lambda: store.get("session"),
        )

    first, second = process(), process()
    await call(first.me.get())  # renews the session and stores it
    await call(second.me.get())  # takes the stored session up instead of refreshing again
    assert second.credentials is store["session"] is first.credentials
    # Had `second` spent the used refresh token, the server would have revoked the session.
    renewed = await call(first.refresh())
    assert renewed.user.email == login.user.email
    await close(first)
    await close(second)


async def test_a_dead_session_logs_in_again_with_the_password(
    sdk: SDK, live: LiveApi, account: Account
) -> None:
    login = await call(sdk.login())
    await call(sdk.logout())
    assert sdk.credentials is None
    dead = Credentials(login.access_token, login.refresh_token, time.time() + 3600)
    client = same_kind(
        sdk,
        base_url=live.base_url,
        credentials=dead,
        email=account.email,
        password=account.password,
    )
    assert (await call(client.me.get())).email == account.email
    assert client.credentials is not None and client.credentials.access_token != login.access_token
    await close(client)


async def test_a_throttled_login_is_a_rate_limit_error_with_retry_after(
    sdk: SDK, live: LiveApi, account: Account
) -> None:
    client = same_kind(sdk, base_url=live.base_url, email=account.email, password="wrong password")
    failures: list[type[Exception]] = []
    for _ in range(10):
        try:
            await call(client.login())
        except (AuthenticationError, RateLimitError) as exc:
            failures.append(type(exc))
            if isinstance(exc, RateLimitError):
                assert exc.retry_after is not None and exc.retry_after > 0
                assert exc.code == 4029
                break
    assert failures[0] is AuthenticationError and failures[-1] is RateLimitError
    await close(client)


def test_the_sdk_imports_nothing_from_the_server() -> None:
    script = (
        "import json, sys, vsense.client;"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('vsense.'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = json.loads(result.stdout)
    assert "vsense.client.resources.devices" in loaded
    assert [m for m in loaded if not m.startswith("vsense.client")] == []


# Behaviours of the SDK itself, against scripted answers (no server needed).

API = "http://api.test"


class Script:
    """An HTTP transport answering from a list (an exception is raised instead)."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def client(self, **options: Any) -> Client:
        http = httpx.Client(transport=httpx.MockTransport(self))
        return Client(base_url=API, token="t", http_client=http, **options)

    def async_client(self, **options: Any) -> AsyncClient:
        http = httpx.AsyncClient(transport=httpx.MockTransport(self))
        return AsyncClient(base_url=API, token="t", http_client=http, **options)


EMPTY_PAGE = {
    "data": [],
    "meta": {
        "current_page": 1,
        "from": 0,
        "last_page": 1,
        "per_page": 25,
        "total": 0,
        "to": 0,
        "total_pages": 1,
    },
}


def envelope(status: int, code: int, message: str, **headers: str) -> httpx.Response:
    body = {"httpError": status, "code": code, "message": message, "error": []}
    return httpx.Response(status, json=body, headers=headers)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses the clients take, recorded instead of slept."""
    recorded: list[float] = []

    async def async_sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(_sync.time, "sleep", recorded.append)
    monkeypatch.setattr(_async.asyncio, "sleep", async_sleep)
    return recorded


def test_429_and_503_are_retried_after_the_pause_the_server_asks(sleeps: list[float]) -> None:
    script = Script(
        envelope(503, 5003, "The database is unavailable.", **{"Retry-After": "2"}),
        envelope(429, 4029, "Slow down.", **{"Retry-After": "1.5"}),
        httpx.Response(200, json=EMPTY_PAGE),
    )
    page = script.client().devices.list()
    assert page.meta is not None and page.meta.total == 0
    assert len(script.requests) == 3 and sleeps == [2.0, 1.5]
    assert script.requests[-1].headers["Authorization"] == "Bearer t"


async def test_the_async_client_retries_alike(sleeps: list[float]) -> None:
    script = Script(
        envelope(503, 5003, "Down.", **{"Retry-After": "1"}), httpx.Response(200, json=EMPTY_PAGE)
    )
    async with script.async_client() as client:
        assert (await client.groups.list()).data == []
    assert len(script.requests) == 2 and sleeps == [1.0]


def test_a_retry_after_longer_than_allowed_is_left_to_the_caller(sleeps: list[float]) -> None:
    script = Script(envelope(429, 4029, "Too many failed logins.", **{"Retry-After": "600"}))
    with pytest.raises(RateLimitError) as limited:
        script.client().me.get()
    assert limited.value.retry_after == 600 and limited.value.message == "Too many failed logins."
    assert len(script.requests) == 1 and sleeps == []


def test_an_http_date_retry_after_is_understood(sleeps: list[float]) -> None:
    later = email.utils.formatdate(time.time() + 3, usegmt=True)
    script = Script(envelope(503, 5003, "Down.", **{"Retry-After": later}), httpx.Response(204))
    script.client().tokens.revoke(1)
    assert len(sleeps) == 1 and 1 <= sleeps[0] <= 4


def test_connection_errors_are_retried_with_growing_pauses(sleeps: list[float]) -> None:
    refused = httpx.ConnectError("connection refused")
    script = Script(refused, refused, httpx.Response(200, json=EMPTY_PAGE))
    script.client().devices.list()
    assert len(script.requests) == 3 and len(sleeps) == 2 and sleeps[0] < sleeps[1]

    failing = Script(refused, refused, refused)
    with pytest.raises(APIConnectionError) as unreachable:
        failing.client().devices.list()
    assert "Could not reach the server at http://api.test" in unreachable.value.message
    assert len(failing.requests) == 3


def test_a_post_that_may_have_arrived_is_not_sent_twice(sleeps: list[float]) -> None:
    timeout = httpx.ReadTimeout("no answer")
    script = Script(timeout)
    with pytest.raises(APITimeoutError):
        script.client().devices.create(name="once")
    assert len(script.requests) == 1
    reads = Script(timeout, httpx.Response(200, json=EMPTY_PAGE))
    reads.client().devices.list()  # a GET is safe to repeat
    assert len(reads.requests) == 2


def test_an_answer_outside_the_envelope_still_carries_its_fields(sleeps: list[float]) -> None:
    script = Script(httpx.Response(502, text="<html>Bad gateway</html>"))
    with pytest.raises(InternalServerError) as failed:
        script.client().me.get()
    assert (failed.value.httpError, failed.value.code) == (502, 5002)
    assert failed.value.message.startswith("HTTP 502 Bad Gateway") and failed.value.error == []


def image_request_answer() -> dict[str, Any]:
    links = [f"{API}/api/v1/images/t/r1_raw_image", f"{API}/api/v1/images/t/r1_annotated_image"]
    return {"data": links, "meta": {"request_id": "r1", "status": "pending"}}


def test_waiting_for_images_polls_as_the_server_asks_and_reports_progress(
    sleeps: list[float],
) -> None:
    pending = httpx.Response(202, json={"status": "pending"}, headers={"Retry-After": "2"})
    png = httpx.Response(200, content=b"\x89PNG...", headers={"Content-Type": "image/png"})
    script = Script(httpx.Response(200, json=image_request_answer()), pending, pending, png, png)
    client = script.client()
    progress: list[float] = []
    images = client.images.wait(client.images.request("d1"), on_progress=progress.append)
    assert images.raw.content == b"\x89PNG..." and images.request_id == "r1"
    assert sleeps == [2.0, 2.0] and len(progress) == 2
    assert "Authorization" not in script.requests[1].headers  # signed links need no token

    failed = Script(httpx.Response(200, json=image_request_answer()), pending, pending)
    failed.answers.append(httpx.Response(504, json={"status": "failed"}))
    with pytest.raises(ImageCaptureError):
        failed.client().images.wait(failed.client().images.request("d1"))


async def test_waiting_for_images_gives_up_after_the_timeout(
    sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    pending = httpx.Response(202, json={"status": "pending"}, headers={"Retry-After": "2"})
    script = Script(httpx.Response(200, json=image_request_answer()), *[pending] * 50)
    ticks = iter(range(1000))  # each look at the clock: one more second gone
    monkeypatch.setattr(images_resource, "_clock", lambda: float(next(ticks)))
    async with script.async_client() as client:
        request = await client.images.request("d1")
        with pytest.raises(ImageCaptureError) as timed_out:
            await client.images.wait(request, timeout=5)
    assert "still pending" in timed_out.value.message


def test_a_static_token_is_not_renewed_on_401(sleeps: list[float]) -> None:
    script = Script(envelope(401, 4001, "The token has expired."))
    with pytest.raises(AuthenticationError) as rejected:
        script.client().me.get()
    assert rejected.value.message == "The token has expired." and len(script.requests) == 1


def test_a_client_without_credentials_says_so() -> None:
    client = Client(base_url=API, credentials=None, email="a@b.io")
    with pytest.raises(MissingCredentialsError):
        client.me.get()


def test_models_keep_new_fields_and_the_json_they_came_from() -> None:
    body = {
        "uuid": "6f1c",
        "name": "Gate A",
        "client_identifier": "site-12/cam-3",
        "refreshed": "2026-11-28T14:05:00Z",
        "is_online": 1,
        "geo_city": "Lyon",
        "geo_country": "FR",
        "firmware": {"version": "2.1"},
    }
    device = Device.model_validate(body)
    assert device.online and device.refreshed is not None and device.refreshed.tzinfo
    assert device.firmware == {"version": "2.1"}  # type: ignore[attr-defined]
    assert device.api_json() is body and device.group is None


@pytest.mark.parametrize(
    ("address", "base_url"),
    [
        ("api.example.com", "https://api.example.com"),
        ("api.example.com:8443/", "https://api.example.com:8443"),
        ("localhost:8000", "https://localhost:8000"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("https://api.example.com/api/v1/", "https://api.example.com"),
    ],
)
def test_an_api_address_becomes_a_base_url(address: str, base_url: str) -> None:
    assert normalize_api_addr(address) == base_url
    assert Client(base_url=address, token="t").base_url == base_url


# Webhook signatures, checked against the reference implementation (standardwebhooks).


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def signed_by_reference(secret: str, body: str, at: datetime) -> dict[str, str]:
    return {
        "webhook-id": "msg_2a1b",
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": StandardWebhook(secret).sign("msg_2a1b", at, body),
    }


BODY = '{"stream_id": "6f1c", "type": "TEST", "timestamp": 1795889089}'


def test_verify_accepts_what_standard_webhooks_signs() -> None:
    secret = new_secret()
    headers = signed_by_reference(secret, BODY, datetime.now(UTC))
    assert verify_webhook(BODY.encode(), headers, secret) == json.loads(BODY)
    upper = {name.title(): value for name, value in headers.items()}  # any header case
    assert Client(token="t").webhooks.verify(BODY, upper, secret)["type"] == "TEST"


def test_standard_webhooks_accepts_what_the_sdk_signs() -> None:
    secret = new_secret()
    now = int(time.time())
    signature = signatures.sign(secret, webhook_id="msg_1", timestamp=now, body=BODY)
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(now), "webhook-signature": signature}
    assert StandardWebhook(secret).verify(BODY, headers) == json.loads(BODY)


def test_verify_accepts_either_signature_during_a_rotation() -> None:
    old, new = new_secret(), new_secret()
    now = datetime.now(UTC)
    headers = signed_by_reference(old, BODY, now)
    headers["webhook-signature"] += " " + StandardWebhook(new).sign("msg_2a1b", now, BODY)
    assert verify_webhook(BODY, headers, new)["type"] == "TEST"
    assert verify_webhook(BODY, headers, [new_secret(), old])["type"] == "TEST"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda h: {**h, "body": BODY.replace("TEST", "PAYLOAD")}, "No signature matches"),
        (lambda h: {**h, "secret": new_secret()}, "No signature matches"),
        (lambda h: {**h, "at": datetime.now(UTC) - timedelta(minutes=10)}, "timestamp"),
        (lambda h: {**h, "drop": "webhook-signature"}, "`webhook-signature` header is missing"),
    ],
)
def test_verify_refuses_tampered_stale_or_unsigned_calls(change: Any, problem: str) -> None:
    secret = new_secret()
    case = change({"body": BODY, "secret": secret, "at": datetime.now(UTC), "drop": None})
    headers = signed_by_reference(secret, BODY, case["at"])
    headers.pop(case["drop"] or "", None)
    with pytest.raises(WebhookVerificationError) as refused:
        verify_webhook(case["body"], headers, case["secret"])
    assert problem in refused.value.message
