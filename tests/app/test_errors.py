"""Every error answers in the envelope: the framework's own, bad JSON, big bodies, crashes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.factories import Api
from vsense.app import create_app
from vsense.components import Components
from vsense.db import session_scope
from vsense.kit.errors import Unprocessable
from vsense.users import service as users_service


def assert_envelope(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"httpError", "code", "message", "error"}
    assert (body["httpError"], body["code"]) == (status, code)
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["error"], list)
    return body


async def test_unknown_path_is_404(api: Api) -> None:
    assert_envelope(await api.client.get("/api/v1/nothing-here"), 404, 4004)
    assert_envelope(await api.client.get("/nowhere"), 404, 4004)


async def test_wrong_method_is_405(api: Api) -> None:
    admin = await api.organization()
    assert_envelope(await admin.client.delete("/api/v1/login"), 405, 4005)
    assert_envelope(await admin.patch("/api/v1/devices"), 405, 4005)


async def test_bad_json_is_400(api: Api) -> None:
    admin = await api.organization()
    response = await admin.post(
        "/api/v1/devices", content=b'{"name": ', headers={"Content-Type": "application/json"}
    )
    assert_envelope(response, 400, 4000)
    response = await api.client.post(
        "/api/v1/login", content=b"not json", headers={"Content-Type": "application/json"}
    )
    assert_envelope(response, 400, 4000)


async def test_invalid_body_is_422_with_field_errors(api: Api) -> None:
    response = await api.client.post("/api/v1/login", json={"email": 3})
    body = assert_envelope(response, 422, 4022)
    assert {e["field"] for e in body["error"]} == {"email", "password"}
    response = await api.client.post("/api/v1/login", json=["a", "list"])
    assert_envelope(response, 422, 4022)


async def test_oversized_body_is_413(api: Api) -> None:
    admin = await api.organization()
    limit = api.state.settings.max_body_bytes
    big = b'{"name": "' + b"x" * limit + b'"}'
    response = await admin.post(
        "/api/v1/devices", content=big, headers={"Content-Type": "application/json"}
    )
    assert_envelope(response, 413, 4013)

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(limit // 1000 + 2):
            yield b"x" * 1000

    response = await admin.post(
        "/api/v1/devices", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_envelope(response, 413, 4013)


async def test_chunked_body_under_the_limit_is_read(api: Api) -> None:
    admin = await api.organization()

    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"name": '
        yield b'"chunked"}'

    response = await admin.post(
        "/api/v1/devices", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.text


async def test_unexpected_exception_is_5000_without_internals(state: Components) -> None:
    app: FastAPI = create_app(state=state)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/boom")
    body = assert_envelope(response, 500, 5000)
    assert "hunter2" not in response.text and "RuntimeError" not in body["message"]


async def test_path_ids_out_of_range_are_404(api: Api) -> None:
    admin = await api.organization()
    for path in ("/api/v1/users/99999999999999999999", "/api/v1/groups/0", "/api/v1/groups/x"):
        assert_envelope(await admin.get(path), 404, 4004)


async def test_huge_group_reference_is_not_a_server_error(api: Api) -> None:
    admin = await api.organization()
    response = await admin.get("/api/v1/devices?group=99999999999999999999")
    assert response.status_code == 200
    assert response.json()["data"] == []


async def test_nul_in_query_is_not_a_server_error(api: Api) -> None:
    admin = await api.organization()
    response = await admin.get("/api/v1/devices", params={"search": "a\x00b"})
    assert response.status_code in (200, 400)
    if response.status_code == 400:
        assert_envelope(response, 400, 4000)


async def test_out_of_range_pages_and_times_are_400_on_every_list(api: Api) -> None:
    admin = await api.organization()
    device = (await admin.device())["uuid"]
    webhook = await admin.post(
        "/api/v1/webhooks", params={"device_uuid": device}, json={"url": "https://example.com/x"}
    )
    assert webhook.status_code == 201, webhook.text
    lists = [
        "/api/v1/devices",
        "/api/v1/users",
        "/api/v1/groups",
        "/api/v1/tokens",
        f"/api/v1/devices/{device}/payloads",
        f"/api/v1/devices/{device}/events",
        f"/api/v1/devices/{device}/images",
        f"/api/v1/webhooks/{webhook.json()['data']['id']}/deliveries",
    ]
    for path in lists:
        for page in (2**62, 2**63, 10**30):
            assert_envelope(await admin.get(path, params={"page": page}), 400, 4000)
        assert (await admin.get(path, params={"page": 2})).status_code == 200
    times = [
        {"since": "0001-01-01T00:00:00+14:00"},
        {"until": "9999-12-31T23:59:59-14:00"},
        {"since": "0001-01-01T00:00:00Z"},
        {"until": "9999-12-31T23:59:59Z"},
        {"since": str(-(2**40))},
        {"until": str(2**40)},
    ]
    for params in times:
        for path in ("payloads", "metrics"):
            response = await admin.get(f"/api/v1/devices/{device}/{path}", params=params)
            assert_envelope(response, 400, 4000)
            assert next(iter(params)) in response.json()["message"]
        replay = await admin.post(
            f"/api/v1/webhooks/{webhook.json()['data']['id']}/replay",
            json={"since": "2026-01-01T00:00:00Z", **params},
        )
        assert_envelope(replay, 400, 4000)
    within = {"since": "1970-01-01T00:00:00Z", "until": "9998-12-31T23:59:59Z"}
    assert (await admin.get(f"/api/v1/devices/{device}/payloads", params=within)).status_code == 200


async def test_out_of_range_times_in_bodies_are_422(api: Api) -> None:
    admin = await api.organization()
    for expiry in ("9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59Z"):
        response = await admin.post(
            "/api/v1/tokens", json={"name": "far", "scopes": ["devices:read"], "expires_at": expiry}
        )
        body = assert_envelope(response, 422, 4022)
        assert [e["field"] for e in body["error"]] == ["expires_at"]
    response = await admin.post(
        "/api/v1/tokens",
        json={
            "name": "near",
            "scopes": ["devices:read"],
            "expires_at": "2999-01-01T00:00:00+14:00",
        },
    )
    assert response.status_code == 201, response.text


async def test_every_response_says_nosniff(state: Components, api: Api) -> None:
    app: FastAPI = create_app(state=state)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("unexpected")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        admin = await api.organization()
        big = b"x" * (state.settings.max_body_bytes + 1)
        responses = [
            await client.get("/healthz"),
            await client.get("/metrics"),
            await client.get("/api/v1/devices", headers=admin.headers),
            await client.get("/api/v1/nothing-here"),
            await client.get("/api/v1/devices"),
            await client.post("/api/v1/login", content=big),
            await client.get("/api/v1/devices%00"),
            await client.get("/api/v1/docs"),
            await client.get("/boom"),
        ]
    assert [r.status_code for r in responses] == [200, 200, 200, 404, 401, 413, 400, 200, 500]
    for response in responses:
        assert response.headers.get("x-content-type-options") == "nosniff", response.request.url


async def test_an_organization_name_that_cannot_be_stored_is_refused(state: Components) -> None:
    for name in ("org-\udcff", "org-\x00"):  # argv decodes undecodable bytes to surrogates
        with pytest.raises(Unprocessable, match="organization name"):
            async with session_scope(state.sessionmaker) as session:
                await users_service.create_organization(session, name)


async def test_an_unexpected_error_is_answered_without_ending_the_connection(
    state: Components,
) -> None:
    app: FastAPI = create_app(state=state)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    # The application must not raise past its answer: a server closes the keep-alive
    # connection of a request whose application raised.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/boom")
        body = assert_envelope(response, 500, 5000)
        assert "secret" not in response.text and body["error"] == []
        assert response.headers["x-content-type-options"] == "nosniff"
        metrics = (await client.get("/metrics")).text
    assert 'vsense_http_requests_total{method="GET",route="/boom",status="500"} 1.0' in metrics
