"""The door of the device API: a device is known before anything of its request is read.

Every request under `/device/v1` is authenticated from its headers alone, before the
application reads (and parses) its body, so a request without a valid device token costs
one look-up (none when the token is missing or not a device token; one shared with the
requests that missed the cache at the same time) and none of its body. The routes take
the device from here (`device_auth.deps.gated_device`).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from vsense.db import is_unavailable
from vsense.device_auth.deps import GATED_DEVICE
from vsense.device_auth.service import DeviceAuth
from vsense.kit.errors import AppError, database_unavailable
from vsense.kit.middleware import send_error

DEVICE_API = "/device/v1/"


def authorization_of(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return bytes(value).decode("latin-1")
    return None


class DeviceGateMiddleware:
    """401 (or 503 while the database is away) for device requests without a valid
    device token, answered before the body is read."""

    def __init__(self, app: ASGIApp, device_auth: DeviceAuth) -> None:
        self.app = app
        self.device_auth = device_auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(DEVICE_API):
            await self.app(scope, receive, send)
            return
        try:
            device = await self.device_auth.verify(authorization_of(scope))
        except AppError as error:
            await send_error(send, error)
            return
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            await send_error(send, database_unavailable())
            return
        # The routes take the device from here (`gated_device`) instead of again from
        # the token. `state` is the request's own copy of the application's state.
        scope["state"] = {**scope.get("state", {}), GATED_DEVICE: device}
        await self.app(scope, receive, send)
