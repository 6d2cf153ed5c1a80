"""The door of the device API: a device is known before anything of its request is read.

Every request under `/device/v1` is authenticated from its headers alone, before the
application reads (and parses) its body, so a request without a valid device token costs
one look-up (none when the token is missing or not a device token; one shared with the
requests that missed the cache at the same time) and none of its body. The routes take
the device from here (`gated_device`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from vsense.db import is_unavailable
from vsense.device_auth.deps import AuthorizationHeader, DeviceAuthDep
from vsense.device_auth.identity import DeviceIdentity
from vsense.device_auth.service import DeviceAuth
from vsense.kit.errors import AppError, database_unavailable
from vsense.kit.middleware import send_error

DEVICE_API = "/device/v1/"
GATED_DEVICE = "vsense.device"  # the identity the gate verified, in the request's state


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


async def gated_device(
    request: Request,
    device_auth: DeviceAuthDep,
    authorization: AuthorizationHeader = None,
) -> DeviceIdentity:
    """The device the gate let in (a request that came another way is verified here):
    no transaction is opened for it, so that the route may hand its work to the group
    commit."""
    device: DeviceIdentity | None = request.scope.get("state", {}).get(GATED_DEVICE)
    if device is not None:
        return device
    return await device_auth.verify(authorization)


GatedDeviceDep = Annotated[DeviceIdentity, Depends(gated_device)]
