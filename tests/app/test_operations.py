"""Health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.factories import Api
from tests.live_server import start_server
from vsense.app import create_app
from vsense.components import Components
from vsense.config import load_settings


async def test_healthz(api: Api) -> None:
    response = await api.client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_readyz_when_the_database_answers(api: Api) -> None:
    response = await api.client.get("/readyz")
    assert response.status_code == 200 and response.json() == {"status": "ready"}


async def test_readyz_is_503_when_the_database_is_down(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(
        data_dir=tmp_path,
        database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none",
        secret_key="x" * 40,
    )
    app = create_app(state=Components.for_server(settings))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["code"] == 5003


async def test_metrics_count_requests_by_route_template(api: Api) -> None:
    admin = await api.organization()
    device = await admin.device()
    await admin.get(f"/api/v1/devices/{device['uuid']}")
    response = await api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert (
        'vsense_http_requests_total{method="GET",route="/api/v1/devices/{device_uuid}",'
        'status="200"} 1.0' in text
    )
    assert "vsense_http_request_duration_seconds_bucket" in text


async def test_openapi_is_3_1_and_documents_the_error_envelope(api: Api) -> None:
    response = await api.client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    for path in (
        "/api/v1/login",
        "/api/v1/devices",
        "/api/v1/devices/{device_uuid}",
        "/api/v1/tokens",
        "/api/v1/groups",
        "/api/v1/users",
        "/api/v1/me",
    ):
        assert path in paths, path
    listing = paths["/api/v1/devices"]["get"]["responses"]
    assert listing["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert "HTTPValidationError" not in document["components"]["schemas"]


async def test_openapi_documents_the_device_token_header_on_every_device_operation(
    api: Api,
) -> None:
    """The device gate reads the header, not the routes' dependencies; the document still
    names it on each operation of the device API, and only there."""
    document = (await api.client.get("/api/v1/openapi.json")).json()
    device_operations = 0
    for path, item in document["paths"].items():
        for operation in item.values():
            headers = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
            if path.startswith("/device/v1/"):
                device_operations += 1
                assert headers.count("Authorization") == 1, path
            else:
                assert "Authorization" not in headers, path
    assert device_operations >= 5


async def test_interactive_docs_are_served(api: Api) -> None:
    response = await api.client.get("/api/v1/docs")
    assert response.status_code == 200 and "swagger" in response.text.lower()


async def failed_logins(client: httpx.AsyncClient, forwarded_for: list[str]) -> list[int]:
    """Statuses of one failed login (each for another email) per X-Forwarded-For value."""
    statuses = []
    for n, address in enumerate(forwarded_for):
        response = await client.post(
            "/api/v1/login",
            json={"email": f"nobody-{n}@example.com", "password": "not the password"},
            headers={"X-Forwarded-For": address},
        )
        statuses.append(response.status_code)
    return statuses


@pytest.mark.live
async def test_x_forwarded_for_of_a_local_peer_is_not_believed_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VSENSE_LOGIN_MAX_FAILURES_PER_ADDRESS", "3")
    server = start_server(tmp_path)  # `vsense serve`, as a pass-through proxy would reach it
    try:
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            # Each claims another address; all come from this machine's one.
            statuses = await failed_logins(client, [f"203.0.113.{n}" for n in range(4)])
    finally:
        server.stop()
    assert statuses == [401, 401, 401, 429]


@pytest.mark.live
@pytest.mark.slow
async def test_an_idle_connection_outlives_a_clients_five_second_keep_alive(
    tmp_path: Path,
) -> None:
    """httpx keeps an idle connection for 5 s and then sends on it: a server that closes
    at 5 s too races it, and a POST caught in that race fails with no answer. The server
    keeps it longer, so the request 6 s later is answered on the same connection."""
    server = start_server(tmp_path)
    host, port = server.base_url.removeprefix("http://").split(":")
    request = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    try:
        reader, writer = await asyncio.open_connection(host, int(port))
        answers = []
        for wait in (0, 6):
            await asyncio.sleep(wait)
            writer.write(request)
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            status, *fields = head.decode().split("\r\n")
            length = next(
                int(field.partition(":")[2])
                for field in fields
                if field.lower().startswith("content-length:")
            )
            await asyncio.wait_for(reader.readexactly(length), 5)
            answers.append(status)
        writer.close()
    finally:
        server.stop()
    assert answers == ["HTTP/1.1 200 OK"] * 2


async def test_x_forwarded_for_of_a_trusted_proxy_is_the_client_address(state: Components) -> None:
    settings = state.settings.model_copy(
        update={"trusted_proxies": ["127.0.0.0/8"], "login_max_failures_per_address": 3}
    )
    app = create_app(state=Components.for_server(settings, state.engine))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert await failed_logins(client, [f"203.0.113.{n}" for n in range(4)]) == [401] * 4
        assert await failed_logins(client, ["198.51.100.7"] * 4) == [401, 401, 401, 429]


async def test_metrics_behind_a_token_when_one_is_set(state: Components) -> None:
    token = {"metrics_token": SecretStr("scrape-token-0123456789")}
    cases: list[tuple[dict[str, Any], str | None, int]] = [
        (token, None, 401),
        (token, "Bearer wrong", 401),
        (token, "Bearer scrape-token-0123456789", 200),
        ({"environment": "production"}, None, 403),
        ({**token, "environment": "production"}, "Bearer scrape-token-0123456789", 200),
        ({"environment": "development"}, None, 200),
    ]
    for overrides, authorization, status in cases:
        settings = state.settings.model_copy(update=overrides)
        app = create_app(state=Components.for_server(settings, state.engine))
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": authorization} if authorization else {}
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/metrics", headers=headers)
        assert response.status_code == status, (overrides, authorization, response.text)
        if status == 200:
            assert "vsense_http_requests_total" in response.text
        else:
            assert response.json()["httpError"] == status
