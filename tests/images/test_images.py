"""Snapshots: requests, signed links, uploads, failures, retention, the `image` event.

Every test here runs on both databases and on both image stores: the local folder and
an S3-compatible server (moto's server mode, on 127.0.0.1, started once per session).
"""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI
from PIL import Image
from sqlalchemy import select
from time_machine import TimeMachineFixture

from tests.factories import Api, Caller, in_one_group
from tests.images.helpers import TESTSERVER, ask, camera, path_of, picture, storage_settings
from tests.live_server import free_port
from vsense.app import create_app
from vsense.components import Components
from vsense.config import Settings
from vsense.db import session_scope
from vsense.kit.time import utcnow
from vsense.models import WebhookEvent
from vsense.simulator.fleet import run_fleet
from vsense.webhooks.dispatcher import Dispatcher, close_sender
from vsense.worker import BackgroundRuntime


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def state(  # type: ignore[no-untyped-def]
    database_settings: Settings, shared_engine, storage: str, s3_endpoint: str, tmp_path
) -> Components:
    """Overrides conftest's: the same database, and this test's own image store."""
    own = {"data_dir": tmp_path, "webhook_allow_private": True}  # the receiver is local
    settings = storage_settings(database_settings.model_copy(update=own), storage, s3_endpoint)
    return Components.for_server(settings, shared_engine)


class Clock:
    """The process's clock, moved by the tests with time-machine: whatever reads the time
    (`utcnow`, `time.time`) sees it moved, and time itself is not waited for."""

    def __init__(self, machine: TimeMachineFixture) -> None:
        self.machine = machine
        machine.move_to(utcnow(), tick=True)

    def now(self) -> datetime:
        return utcnow()

    def advance(self, **delta: float) -> datetime:
        self.machine.shift(timedelta(**delta))
        return self.now()


@pytest.fixture
def clock(time_machine: TimeMachineFixture) -> Clock:
    return Clock(time_machine)


async def fetch(client: httpx.AsyncClient, link: str, **headers: str) -> httpx.Response:
    """GET a link, with no bearer token; a redirect to the image store is followed."""
    response = await client.get(path_of(link), headers=headers)
    if response.status_code == 307:
        async with httpx.AsyncClient() as outside:
            stored = await outside.get(response.headers["location"])
        assert stored.status_code == 200, stored.text
        headers = {**response.headers, "content-type": stored.headers["content-type"]}
        return httpx.Response(200, content=stored.content, headers=headers)
    return response


async def test_a_snapshot_goes_pending_then_ready_then_expired(api: Api, clock: Clock) -> None:
    admin = await api.organization()
    device = await camera(admin, app_type="VPM")
    asked = await ask(admin, device)
    raw_link, annotated_link = asked["data"]
    request_id = asked["meta"]["request_id"]
    assert asked["meta"]["status"] == "pending"
    assert raw_link.endswith(f"/{request_id}_raw_image")
    assert annotated_link.endswith(f"/{request_id}_annotated_image")
    expires = datetime.fromisoformat(asked["meta"]["expires_at"].replace("Z", "+00:00"))
    assert timedelta(minutes=29) < expires - utcnow() <= timedelta(minutes=30)

    pending = await fetch(api.client, raw_link)
    assert pending.status_code == 202 and pending.json() == {"status": "pending"}
    assert int(pending.headers["retry-after"]) > 0

    [command] = await device.poll()
    assert command["type"] == "capture_image" and command["request_id"] == request_id
    raw, annotated = picture("PNG"), picture("JPEG", "orange")
    assert (await device.upload(request_id, "raw", raw)).status_code == 204
    assert (await fetch(api.client, raw_link)).content == raw
    assert (await fetch(api.client, annotated_link)).status_code == 202
    # The type comes from the bytes, whatever the header says.
    uploaded = await device.upload(request_id, "annotated", annotated, "text/plain")
    assert uploaded.status_code == 204
    await device.result(command["id"], True)

    for link, data, media_type in ((raw_link, raw, "png"), (annotated_link, annotated, "jpeg")):
        served = await fetch(api.client, link)
        assert served.status_code == 200 and served.content == data
        assert served.headers["content-type"] == f"image/{media_type}"
        assert served.headers["cache-control"].startswith("private")
        assert served.headers["etag"].startswith('"')
        again = await api.client.get(
            path_of(link), headers={"If-None-Match": served.headers["etag"]}
        )
        assert again.status_code == 304
    listed = (await admin.get(f"/api/v1/devices/{device.uuid}/images")).json()
    [item] = listed["data"]
    assert (item["request_id"], item["status"], item["links"]) == (
        request_id,
        "ready",
        asked["data"],
    )
    assert item["ready_at"] is not None and listed["meta"]["total"] == 1

    clock.advance(minutes=30, seconds=1)
    for link in asked["data"]:
        expired = await api.client.get(path_of(link))
        assert expired.status_code == 403 and expired.json()["code"] == 4003
    [item] = (await admin.get(f"/api/v1/devices/{device.uuid}/images")).json()["data"]
    assert (item["status"], item["links"]) == ("expired", [])


async def test_the_command_also_comes_with_the_keepalive_answer(api: Api) -> None:
    admin = await api.organization()
    device = await camera(admin)
    asked = await ask(admin, device)
    [command] = await device.keepalive()
    assert command["type"] == "capture_image"
    assert command["request_id"] == asked["meta"]["request_id"]
    assert await device.poll() == []  # taken once


async def test_a_waiting_long_poll_receives_the_command(api: Api) -> None:
    admin = await api.organization()
    device = await camera(admin)
    polling = asyncio.create_task(device.poll(wait=20))
    await asyncio.sleep(0.2)  # the poll is waiting
    asked = await ask(admin, device)
    [command] = await polling
    assert command["request_id"] == asked["meta"]["request_id"]


async def test_forged_or_altered_links_are_refused(api: Api) -> None:
    admin = await api.organization()
    device = await camera(admin)
    raw_link, annotated_link = (await ask(admin, device))["data"]
    prefix, token, name = path_of(raw_link).rsplit("/", 2)
    expiry, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    other_token = path_of(annotated_link).rsplit("/", 2)[1]
    forgeries = [
        f"{prefix}/{expiry}.{flipped}/{name}",  # a changed signature
        f"{prefix}/{int(expiry) + 3600}.{signature}/{name}",  # a longer life
        f"{prefix}/{other_token}/{name}",  # the annotated image's signature on the raw one
        f"{prefix}/{token}/{uuid.uuid4()}_raw_image",  # another request
        f"{prefix}/not-a-token/{name}",
    ]
    for forged in forgeries:
        response = await api.client.get(forged)
        assert response.status_code == 403, forged
        assert response.json()["code"] == 4003
    assert (await api.client.get(path_of(raw_link))).status_code == 202


async def test_a_failure_reported_by_the_device_fails_the_request(api: Api) -> None:
    admin = await api.organization()
    device = await camera(admin)
    asked = await ask(admin, device)
    [command] = await device.poll()
    await device.result(command["id"], False, "lens covered")
    failed = await api.client.get(path_of(asked["data"][0]))
    assert failed.status_code == 504
    assert failed.json()["status"] == "failed" and failed.json()["code"] == 5004
    [item] = (await admin.get(f"/api/v1/devices/{device.uuid}/images")).json()["data"]
    assert (item["status"], item["error"]) == ("failed", "lens covered")
    late = await device.upload(asked["meta"]["request_id"], "raw", picture())
    assert late.status_code == 409
    retried = await ask(admin, device)  # a failed request is not reused
    assert retried["meta"]["request_id"] != asked["meta"]["request_id"]


async def test_a_device_that_does_not_upload_in_time_fails_the_request(
    api: Api, clock: Clock
) -> None:
    admin = await api.organization()
    device = await camera(admin)
    asked = await ask(admin, device)
    request_id = asked["meta"]["request_id"]
    await device.poll()
    assert (await device.upload(request_id, "raw", picture())).status_code == 204
    later = clock.advance(seconds=api.state.settings.image_capture_timeout.total_seconds() + 1)
    timed_out = await api.client.get(path_of(asked["data"][1]))
    assert timed_out.status_code == 504 and timed_out.json()["status"] == "failed"
    # Past its deadline the upload is refused, before the sweep has marked it too.
    assert (await device.upload(request_id, "annotated", picture())).status_code == 409
    assert await BackgroundRuntime(api.state).fail_overdue_images(later) >= 1
    [item] = (await admin.get(f"/api/v1/devices/{device.uuid}/images")).json()["data"]
    assert (item["status"], item["error"]) == ("failed", "timeout")
    assert (await device.upload(request_id, "annotated", picture())).status_code == 409


async def test_requests_while_one_is_pending_are_coalesced(api: Api) -> None:
    admin = await api.organization()
    device = await camera(admin)
    answers = await asyncio.gather(*(ask(admin, device) for _ in range(5)))
    assert len({answer["meta"]["request_id"] for answer in answers}) == 1
    assert all(answer["data"] == answers[0]["data"] for answer in answers)
    assert len(await device.poll()) == 1  # one capture asked of the device
    listed = (await admin.get(f"/api/v1/devices/{device.uuid}/images")).json()
    assert listed["meta"]["total"] == 1


async def test_snapshot_requests_of_a_burst_share_a_write_turn_on_sqlite(
    api: Api, backend: str
) -> None:
    admin = await api.organization()
    cameras = [await camera(admin) for _ in range(3)]
    offline = await camera(admin, online=False)
    asked = [admin.post(f"/api/v1/devices/{device.uuid}/image") for device in cameras]
    if backend == "sqlite":
        # Committed once for the three, the offline device's refusal answered alone.
        asked.append(admin.post(f"/api/v1/devices/{offline.uuid}/image"))
        answers = await in_one_group(api.state, asked)
    else:  # each in a transaction of its own: the group commit sees none of them
        groups = api.state.database.group_commit.groups
        answers = await asyncio.gather(*asked)
        answers.append(await admin.post(f"/api/v1/devices/{offline.uuid}/image"))
        assert api.state.database.group_commit.groups == groups
    assert [answer.status_code for answer in answers] == [200, 200, 200, 409]
    requests = [answer.json()["meta"]["request_id"] for answer in answers[:3]]
    assert len(set(requests)) == 3
    for device, request_id in zip(cameras, requests, strict=True):
        [command] = await device.poll()
        assert (command["type"], command["request_id"]) == ("capture_image", request_id)


async def test_uploads_for_another_devices_request_are_refused(api: Api) -> None:
    admin = await api.organization()
    device, intruder = await camera(admin), await camera(admin)
    asked = await ask(admin, device)
    request_id = asked["meta"]["request_id"]
    refused = await intruder.upload(request_id, "raw", picture())
    assert refused.status_code == 404 and refused.json()["code"] == 4004
    assert (await intruder.upload(str(uuid.uuid4()), "raw", picture())).status_code == 404
    assert (await device.upload(request_id, "thumbnail", picture())).status_code == 404
    assert (await api.client.get(path_of(asked["data"][0]))).status_code == 202
    no_token = await api.client.put(f"/device/v1/images/{request_id}/raw", content=picture())
    assert no_token.status_code == 401


async def test_uploads_that_are_not_jpeg_or_png_are_refused(api: Api) -> None:
    admin = await api.organization()
    device = await camera(admin)
    request_id = (await ask(admin, device))["meta"]["request_id"]
    for body in (b"<html>not an image</html>", picture("GIF"), b"", b"\x89PNG\r\n\x1a\n"):
        refused = await device.upload(request_id, "raw", body, "image/png")
        assert refused.status_code == 422, body[:20]
        assert refused.json()["code"] == 4022


async def test_uploads_with_only_the_magic_bytes_of_an_image_are_refused(api: Api) -> None:
    admin = await api.organization()
    device = await camera(admin)
    request_id = (await ask(admin, device))["meta"]["request_id"]
    png = picture("PNG")
    forged = [
        b"\xff\xd8\xff\xe0" + b"<script>alert(1)</script>" * 20,  # JPEG magic, then HTML
        b"\xff\xd8\xff" + bytes(500),
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"<html>" * 50,  # PNG magic and IHDR tag
        png[:40],  # a PNG cut short
        png[:29] + bytes(4) + png[33:],  # a PNG whose header checksum is wrong
    ]
    for body in forged:
        refused = await device.upload(request_id, "raw", body, "image/jpeg")
        assert refused.status_code == 422, body[:20]
        assert refused.json()["code"] == 4022
    assert (await device.upload(request_id, "raw", png)).status_code == 204


async def test_oversized_uploads_are_refused_and_large_ones_within_the_limit_kept(
    api: Api,
) -> None:
    admin = await api.organization()
    device = await camera(admin)
    request_id = (await ask(admin, device))["meta"]["request_id"]
    limit = api.state.settings.image_max_bytes
    png = picture()
    too_big = await device.upload(request_id, "raw", png + bytes(limit + 1 - len(png)))
    assert too_big.status_code == 413 and too_big.json()["code"] == 4013
    # Larger than the rest of the device API takes (4 MB), within the image limit.
    large = png + bytes(api.state.settings.device_max_body_bytes + 1024)
    assert (await device.upload(request_id, "raw", large)).status_code == 204


async def test_the_same_upload_again_is_accepted_and_a_different_one_refused_once_ready(
    api: Api,
) -> None:
    admin = await api.organization()
    device = await camera(admin)
    request_id = (await ask(admin, device))["meta"]["request_id"]
    raw, annotated = picture(), picture("JPEG")
    for kind, data in (("raw", raw), ("raw", picture(color="red")), ("annotated", annotated)):
        assert (await device.upload(request_id, kind, data)).status_code == 204
    assert (await device.upload(request_id, "annotated", annotated)).status_code == 204
    assert (await device.upload(request_id, "raw", raw)).status_code == 409


async def test_uploads_share_a_write_transaction_where_keeping_is_a_rename(
    api: Api, storage: str
) -> None:
    admin = await api.organization()
    one, two, intruder = await camera(admin), await camera(admin), await camera(admin)
    first = await ask(admin, one)
    second = await ask(admin, two)
    raw = {first["meta"]["request_id"]: picture(), second["meta"]["request_id"]: picture("JPEG")}
    first_id, second_id = raw
    uploads = [
        one.upload(first_id, "raw", raw[first_id]),
        intruder.upload(first_id, "raw", picture(color="red")),  # not its request: 404
        two.upload(second_id, "raw", raw[second_id], "image/jpeg"),
    ]
    if storage == "local":
        # One group, committed once (`in_one_group` checks it): the refusal did not
        # fail its group-mates' work.
        answers = await in_one_group(api.state, uploads)
    else:  # an S3 put keeps a transaction of its own
        answers = await asyncio.gather(*uploads)
    assert [answer.status_code for answer in answers] == [204, 404, 204]
    for device, asked in ((one, first), (two, second)):
        request_id = asked["meta"]["request_id"]
        assert (await device.upload(request_id, "annotated", picture())).status_code == 204
        served = await fetch(api.client, asked["data"][0])
        assert served.status_code == 200 and served.content == raw[request_id]


async def test_a_snapshot_is_remembered_once_its_second_upload_commits(api: Api) -> None:
    admin = await api.organization()
    device = await camera(admin)
    request_id = (await ask(admin, device))["meta"]["request_id"]
    ready = api.state.snapshots.ready
    raw, annotated = picture(), picture("JPEG")
    assert (await device.upload(request_id, "raw", raw)).status_code == 204
    assert ready.request(uuid.UUID(request_id)) is None  # half uploaded: not final yet
    assert (await device.upload(request_id, "annotated", annotated)).status_code == 204
    remembered = ready.request(uuid.UUID(request_id))
    assert remembered is not None
    assert remembered.types == {"raw": "image/png", "annotated": "image/jpeg"}
    for kind, data in (("raw", raw), ("annotated", annotated)):
        assert ready.image(f"{request_id}_{kind}", remembered.sha256[kind]) == data


async def test_offline_devices_are_refused(api: Api) -> None:
    admin = await api.organization()
    device = await camera(admin, online=False)
    refused = await admin.post(f"/api/v1/devices/{device.uuid}/image")
    assert refused.status_code == 409 and refused.json()["code"] == 4009


async def test_standard_users_may_ask_the_devices_they_see(api: Api) -> None:
    admin = await api.organization()
    group = await admin.group()
    seen = await camera(admin, group=group["id"])
    unseen = await camera(admin)
    user = await admin.user(groups=[group["id"]])
    assert (await ask(user, seen))["meta"]["status"] == "pending"
    assert (await user.get(f"/api/v1/devices/{seen.uuid}/images")).status_code == 200
    for method in ("POST", "GET"):
        path = "image" if method == "POST" else "images"
        response = await user.request(method, f"/api/v1/devices/{unseen.uuid}/{path}")
        assert response.status_code == 404
    outsider = await api.organization()
    assert (await outsider.post(f"/api/v1/devices/{seen.uuid}/image")).status_code == 404
    narrow = api.as_token(await admin.personal_token(["devices:read"]))
    assert (await narrow.post(f"/api/v1/devices/{seen.uuid}/image")).status_code == 403
    assert (await api.client.post(f"/api/v1/devices/{seen.uuid}/image")).status_code == 401


async def test_images_older_than_the_retention_are_deleted(api: Api) -> None:
    admin = await api.organization()
    device = await camera(admin)
    asked = await ask(admin, device)
    request_id = asked["meta"]["request_id"]
    for kind in ("raw", "annotated"):
        assert (await device.upload(request_id, kind, picture())).status_code == 204
    runtime = BackgroundRuntime(api.state)
    assert await runtime.image_retention(utcnow() + timedelta(hours=1)) == 0
    assert (await fetch(api.client, asked["data"][0])).status_code == 200
    retention = api.state.settings.image_retention
    assert await runtime.image_retention(utcnow() + retention + timedelta(seconds=60)) == 2
    assert (await admin.get(f"/api/v1/devices/{device.uuid}/images")).json()["data"] == []
    assert (await api.client.get(path_of(asked["data"][0]))).status_code == 404


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver on 127.0.0.1: its URL and the bodies it received."""
    from aiohttp import web

    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    application = web.Application()
    application.router.add_post("/hook", hook)
    runner = web.AppRunner(application)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", free_port())
    await site.start()
    yield site.name + "/hook", received
    await runner.cleanup()


async def test_a_ready_snapshot_sends_the_image_event(
    api: Api, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = receiver
    admin = await api.organization()
    device = await camera(admin)
    hook = await admin.post(
        "/api/v1/webhooks",
        params={"device_uuid": device.uuid},
        json={"url": url, "webhook_type": "payload", "actions": "image"},
    )
    assert hook.status_code == 201, hook.text
    asked = await ask(admin, device)
    request_id = asked["meta"]["request_id"]
    assert (await device.upload(request_id, "raw", picture())).status_code == 204
    assert await image_events(api.state, device.uuid) == []  # not ready yet
    assert (await device.upload(request_id, "annotated", picture())).status_code == 204
    [queued] = await image_events(api.state, device.uuid)
    await Dispatcher(api.state).run_once()
    await close_sender(api.state)
    [body] = [body for body in received if body.get("request_id") == request_id]
    assert body == queued
    assert body["type"] == "IMAGE" and body["stream_id"] == device.uuid
    assert body["links"] == asked["data"]
    expires = datetime.fromisoformat(asked["meta"]["expires_at"].replace("Z", "+00:00"))
    assert body["expires_at"] == int(expires.timestamp())
    assert isinstance(body["timestamp"], int)
    assert (await fetch(api.client, body["links"][1])).status_code == 200


async def test_a_forged_host_never_ends_up_in_links_or_the_image_event(api: Api) -> None:
    admin = await api.organization()
    device = await camera(admin)
    await admin.post(
        "/api/v1/webhooks",
        params={"device_uuid": device.uuid},
        json={"url": "https://example.com/hook", "actions": "image"},
    )
    forged = await admin.post(
        f"/api/v1/devices/{device.uuid}/image", headers={"Host": "attacker.example"}
    )
    assert forged.status_code == 200, forged.text
    # The address the server listens on instead (the test client's `testserver`).
    assert all(link.startswith(TESTSERVER + "/api/v1/images/") for link in forged.json()["data"])
    request_id = forged.json()["meta"]["request_id"]
    for kind in ("raw", "annotated"):
        assert (await device.upload(request_id, kind, picture())).status_code == 204
    [event] = await image_events(api.state, device.uuid)
    assert event["links"] == forged.json()["data"]
    listed = await admin.get(
        f"/api/v1/devices/{device.uuid}/images", headers={"Host": "attacker.example:8000"}
    )
    assert listed.json()["data"][0]["links"] == forged.json()["data"]
    for host in ("localhost:8000", "127.0.0.1", "[::1]:8443"):
        allowed = await admin.get(f"/api/v1/devices/{device.uuid}/images", headers={"Host": host})
        assert allowed.json()["data"][0]["links"][0].startswith(f"http://{host}/api/v1/images/")


async def test_allowed_hosts_and_the_public_url_decide_the_links(
    state: Components, api: Api
) -> None:
    admin = await api.organization()
    device = await camera(admin)
    asked = await ask(admin, device)
    path = f"/api/v1/devices/{device.uuid}/images"
    cases = [
        ({"allowed_hosts": ["vsense.example"]}, "vsense.example", "http://vsense.example"),
        ({"allowed_hosts": ["vsense.example"]}, "other.example", TESTSERVER),
        ({"allowed_hosts": ["vsense.example"]}, "vsense.example/evil?", TESTSERVER),
        ({"allowed_hosts": ["vsense.example"]}, "user@vsense.example", TESTSERVER),
        ({"public_url": "https://api.example/"}, "attacker.example", "https://api.example"),
    ]
    for overrides, host, base in cases:
        settings = state.settings.model_copy(update=overrides)
        app = create_app(state=Components.for_server(settings, state.engine))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=TESTSERVER) as client:
            response = await client.get(path, headers={**admin.headers, "Host": host})
        assert response.status_code == 200, response.text
        [link, _] = response.json()["data"][0]["links"]
        assert link == base + path_of(asked["data"][0]), (overrides, host)


async def image_events(state: Components, device_uuid: str) -> list[dict[str, Any]]:
    """Bodies of the `image` events queued for a device (the outbox)."""
    async with session_scope(state.sessionmaker, write=False) as session:
        bodies = await session.scalars(
            select(WebhookEvent.body).where(
                WebhookEvent.device_uuid == uuid.UUID(device_uuid), WebhookEvent.type == "image"
            )
        )
        return [orjson.loads(body) for body in bodies.all()]


async def test_simulated_sensors_answer_snapshot_requests(app: FastAPI, api: Api) -> None:
    """The fleet simulator over real HTTP: it takes the command from its keepalive answer,
    renders its scene and uploads a JPEG and a PNG that the links then serve."""
    admin = await api.organization()
    token = await admin.personal_token(["devices:read", "devices:write"])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    fleet = asyncio.create_task(
        run_fleet(
            api_addr=f"http://127.0.0.1:{port}",
            token=token,
            devices=1,
            types=["VPM"],
            rate=100,
            keepalive_interval=10,
            capture_delay=0,
            name_prefix=f"snap-{uuid.uuid4().hex[:6]}",
        )
    )
    try:
        async with asyncio.timeout(60):
            device = await online_simulated_device(admin, fleet)
            asked = await admin.post(f"/api/v1/devices/{device}/image")
            raw_link, annotated_link = asked.json()["data"]
            while True:
                raw = await fetch(api.client, raw_link)
                annotated = await fetch(api.client, annotated_link)
                if raw.status_code != 202 and annotated.status_code != 202:
                    break
                await asyncio.sleep(0.1)
    finally:
        fleet.cancel()
        await asyncio.gather(fleet, return_exceptions=True)
        server.should_exit = True
        await serving
    assert raw.status_code == 200 and raw.headers["content-type"] == "image/jpeg"
    assert annotated.status_code == 200 and annotated.headers["content-type"] == "image/png"
    assert (
        Image.open(io.BytesIO(raw.content)).size == Image.open(io.BytesIO(annotated.content)).size
    )


async def online_simulated_device(admin: Caller, fleet: asyncio.Task[Any]) -> str:
    """The UUID of the organization's one device, once the simulator brought it online."""
    while True:
        assert not fleet.done(), fleet
        devices = (await admin.get("/api/v1/devices")).json()["data"]
        if devices and devices[0]["is_online"]:
            return str(devices[0]["uuid"])
        await asyncio.sleep(0.1)
