"""The device API's door: who may send is known before a body is read; the bound on
requests in flight; bodies limited as they stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from starlette.requests import Request

from tests.factories import Api, vcz
from vsense.app import create_app
from vsense.components import Components
from vsense.device_auth.deps import gated_device
from vsense.kit.errors import Unauthorized

pytestmark = pytest.mark.faults


async def onboarded(api: Api) -> dict[str, str]:
    admin = await api.organization()
    device = await admin.device(app_type="VCZ")
    return {"Authorization": f"Bearer {device['device_token']}"}


def client_of(state: Components) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(state=state), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_a_device_route_reached_without_the_gate_verifies_the_token_itself(
    api: Api,
) -> None:
    """`gated_device` takes the device the gate verified; a request that did not come
    through the gate is verified from its own Authorization header."""
    admin = await api.organization()
    device = await admin.device(app_type="VCZ")
    app = create_app(state=api.state)

    def ungated(authorization: str | None) -> Request:
        headers = [] if authorization is None else [(b"authorization", authorization.encode())]
        return Request({"type": "http", "app": app, "headers": headers, "state": {}})

    found = await gated_device(ungated(f"Bearer {device['device_token']}"))
    assert str(found.uuid) == device["uuid"]
    for refused in (None, "Bearer vsd_not-a-device-token"):
        with pytest.raises(Unauthorized):
            await gated_device(ungated(refused))


async def test_bodies_without_a_valid_device_token_are_not_read(api: Api) -> None:
    read: list[str] = []

    def body(name: str) -> AsyncIterator[bytes]:
        async def chunks() -> AsyncIterator[bytes]:
            read.append(name)
            yield orjson.dumps(vcz(1))

        return chunks()

    user = await api.organization()
    for name, headers in (
        ("none", {}),
        ("forged", {"Authorization": "Bearer vsd_not-a-device-token"}),
        ("user", user.headers),
    ):
        for method, path in (
            ("POST", "/device/v1/payloads"),
            ("POST", "/device/v1/keepalive"),
            ("POST", "/device/v1/commands/c0ffee/result"),
            ("PUT", "/device/v1/images/9b2f7a62-0f6e-4b4e-a1a8-0e7e0e0e0e0e/raw"),
        ):
            answer = await api.client.request(method, path, content=body(name), headers=headers)
            assert answer.status_code == 401, (name, path, answer.text)
            assert answer.json()["httpError"] == 401
            assert answer.headers["www-authenticate"] == "Bearer"
    assert read == []


async def test_a_streamed_body_over_the_limit_is_cut_off_with_413(api: Api) -> None:
    headers = await onboarded(api)
    sent: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        chunk = b" " * 65536
        for _ in range(200):  # 12.5 MiB, over the 4 MiB device limit
            sent.append(len(chunk))
            yield chunk

    answer = await api.client.post(
        "/device/v1/payloads",
        content=endless(),
        headers={**headers, "content-type": "application/json"},
    )
    assert answer.status_code == 413
    assert answer.json()["code"] == 4013
    assert sum(sent) < 5 * 1024 * 1024  # reading stopped at the limit


async def test_requests_over_the_in_flight_bound_are_answered_503(
    api: Api, state: Components
) -> None:
    headers = await onboarded(api)
    state.settings = state.settings.model_copy(update={"max_requests_in_flight": 1})
    release = asyncio.Event()
    reading = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b"["
        reading.set()
        await release.wait()
        yield orjson.dumps(vcz(3)) + b"]"

    async with client_of(state) as client:
        held: asyncio.Task[httpx.Response] = asyncio.create_task(
            client.post(
                "/device/v1/payloads",
                content=slow_body(),
                headers={**headers, "content-type": "application/json"},
            )
        )
        await reading.wait()
        refused = await client.post("/device/v1/payloads", json=vcz(4), headers=headers)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        envelope: dict[str, Any] = refused.json()
        assert envelope["httpError"] == 503 and envelope["code"] == 5003
        # Health, metrics and long polls are outside the bound.
        assert (await client.get("/healthz")).status_code == 200
        poll = await client.get("/device/v1/commands", params={"wait": 0}, headers=headers)
        assert poll.status_code == 200
        release.set()
        assert (await held).status_code == 202
        again = await client.post("/device/v1/payloads", json=vcz(5), headers=headers)
        assert again.status_code == 202
