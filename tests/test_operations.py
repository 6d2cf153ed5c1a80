"""Health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import httpx

from tests.factories import Api
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


async def test_interactive_docs_are_served(api: Api) -> None:
    response = await api.client.get("/api/v1/docs")
    assert response.status_code == 200 and "swagger" in response.text.lower()
