"""What the webhook tests share: a webhook made through the API."""

from __future__ import annotations

from typing import Any

from tests.factories import Caller


async def hook(admin: Caller, device: str, url: str, **fields: Any) -> dict[str, Any]:
    """A webhook on one device, created through the API; returns its `data`."""
    response = await admin.post(
        "/api/v1/webhooks", params={"device_uuid": device}, json={"url": url, **fields}
    )
    assert response.status_code == 201, response.text
    assert response.json()["error"] == []
    return dict(response.json()["data"])
