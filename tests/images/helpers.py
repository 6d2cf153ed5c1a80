"""What the snapshot tests share: a camera driven over HTTP, images, and image stores."""

from __future__ import annotations

import io
import uuid
from typing import Any

import httpx
from PIL import Image
from pydantic import SecretStr

from tests.factories import Caller
from vsense.config import Settings

BUCKET = "vsense-test-images"
TESTSERVER = "http://testserver"


def storage_settings(settings: Settings, storage: str, endpoint: str, **extra: Any) -> Settings:
    """The session's database settings with an image store of its own for one test."""
    overrides: dict[str, Any] = {"image_storage": storage, **extra}
    if storage == "s3":
        overrides |= {
            "image_s3_endpoint": endpoint,
            "image_s3_bucket": BUCKET,
            "image_s3_prefix": f"{uuid.uuid4().hex}/",
            "image_s3_access_key": SecretStr("test"),
            "image_s3_secret_key": SecretStr("test"),
        }
    return settings.model_copy(update=overrides)


def picture(fmt: str = "PNG", color: str = "teal", size: tuple[int, int] = (32, 24)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, fmt)
    return buffer.getvalue()


class Camera:
    """A device as the tests drive it."""

    def __init__(self, client: httpx.AsyncClient, onboarded: dict[str, Any]) -> None:
        self.client = client
        self.uuid = onboarded["uuid"]
        self.headers = {"Authorization": f"Bearer {onboarded['device_token']}"}

    async def keepalive(self) -> list[dict[str, Any]]:
        response = await self.client.post("/device/v1/keepalive", headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()["commands"]  # type: ignore[no-any-return]

    async def poll(self, wait: float = 0) -> list[dict[str, Any]]:
        response = await self.client.get(
            "/device/v1/commands", params={"wait": wait}, headers=self.headers
        )
        assert response.status_code == 200, response.text
        return response.json()["commands"]  # type: ignore[no-any-return]

    async def upload(
        self, request_id: str, kind: str, data: bytes, content_type: str = "image/png"
    ) -> httpx.Response:
        return await self.client.put(
            f"/device/v1/images/{request_id}/{kind}",
            content=data,
            headers={**self.headers, "Content-Type": content_type},
        )

    async def result(self, command_id: str, ok: bool, error: str | None = None) -> None:
        response = await self.client.post(
            f"/device/v1/commands/{command_id}/result",
            headers=self.headers,
            json={"ok": ok, "error": error},
        )
        assert response.status_code == 204, response.text


async def camera(admin: Caller, *, online: bool = True, **fields: Any) -> Camera:
    device = Camera(admin.client, await admin.device(**fields))
    if online:
        await device.keepalive()
    return device


async def ask(caller: Caller, device: Camera) -> dict[str, Any]:
    response = await caller.post(f"/api/v1/devices/{device.uuid}/image")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def path_of(link: str) -> str:
    assert link.startswith(TESTSERVER + "/api/v1/images/"), link
    return link.removeprefix(TESTSERVER)
