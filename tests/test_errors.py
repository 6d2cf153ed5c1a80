"""Every error answers in the envelope: the framework's own, bad JSON, big bodies, crashes."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from tests.factories import Api
from vsense.app import create_app
from vsense.components import Components


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
