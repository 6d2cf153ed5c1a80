"""The device behind a request of the device API, as a request dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from vsense.deps import SessionDep
from vsense.device_auth.identity import DeviceIdentity
from vsense.device_auth.service import DeviceAuth
from vsense.kit.parts import part

DeviceAuthDep = Annotated[DeviceAuth, Depends(part(DeviceAuth))]
AuthorizationHeader = Annotated[str | None, Header(alias="Authorization")]


async def current_device(
    session: SessionDep, auth: DeviceAuthDep, authorization: AuthorizationHeader = None
) -> DeviceIdentity:
    """The device whose token the request carries (401 otherwise), read in the request's
    own transaction."""
    return await auth.authenticate(session, authorization)


DeviceDep = Annotated[DeviceIdentity, Depends(current_device)]
