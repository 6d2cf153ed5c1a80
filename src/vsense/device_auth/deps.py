"""The device behind a request of the device API, as a request dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from vsense.device_auth.identity import DeviceIdentity
from vsense.device_auth.service import DeviceAuth
from vsense.kit.parts import part

_device_auth_of = part(DeviceAuth)
DeviceAuthDep = Annotated[DeviceAuth, Depends(_device_auth_of)]
# The identity the device gate (`gateway/gate.py`) verified, in the request's state.
GATED_DEVICE = "vsense.device"


async def gated_device(request: Request) -> DeviceIdentity:
    """The device the gate let in (a request that came another way is verified here):
    no transaction is opened for it, so that the route may hand its work to the group
    commit, or open its write transaction once the request's body is in.

    It asks FastAPI for the request alone: every sub-dependency (the `DeviceAuth` part,
    the `Authorization` header) is solved for every device request, about 15 µs each,
    for a fallback that requests through the gate never take. The header is documented
    on the device API's operations by the OpenAPI document (`app._openapi`)."""
    device: DeviceIdentity | None = request.scope.get("state", {}).get(GATED_DEVICE)
    if device is not None:
        return device
    device_auth = await _device_auth_of(request)
    return await device_auth.verify(request.headers.get("Authorization"))


GatedDeviceDep = Annotated[DeviceIdentity, Depends(gated_device)]
