"""The device behind a request of the device API, as a request dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from vsense.device_auth.identity import DeviceIdentity
from vsense.device_auth.service import DeviceAuth
from vsense.kit.parts import part

DeviceAuthDep = Annotated[DeviceAuth, Depends(part(DeviceAuth))]
AuthorizationHeader = Annotated[str | None, Header(alias="Authorization")]
# The identity the device gate (`gateway/gate.py`) verified, in the request's state.
GATED_DEVICE = "vsense.device"


async def gated_device(
    request: Request,
    device_auth: DeviceAuthDep,
    authorization: AuthorizationHeader = None,
) -> DeviceIdentity:
    """The device the gate let in (a request that came another way is verified here):
    no transaction is opened for it, so that the route may hand its work to the group
    commit, or open its write transaction once the request's body is in."""
    device: DeviceIdentity | None = request.scope.get("state", {}).get(GATED_DEVICE)
    if device is not None:
        return device
    return await device_auth.verify(authorization)


GatedDeviceDep = Annotated[DeviceIdentity, Depends(gated_device)]
