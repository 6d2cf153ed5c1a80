"""HTTP routes of the device-facing API, /device/v1 (device tokens only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.device_auth.deps import gated_device
from vsense.device_auth.identity import DeviceIdentity
from vsense.gateway.schemas import Accepted, CommandResult, Commands, Health
from vsense.gateway.service import MAX_WAIT, Gateway
from vsense.kit.errors import NotFound
from vsense.kit.http import error_responses, json_response
from vsense.kit.metrics import Metrics
from vsense.kit.parts import part

router = APIRouter(prefix="/device/v1", tags=["device"])
MetricsDep = Annotated[Metrics, Depends(part(Metrics))]
_gateway_of = part(Gateway)


@dataclass(frozen=True, slots=True)
class DeviceCall:
    """What a device request's route works with: the device the gate let in, and the
    gateway (with the process's database, for the group commit)."""

    device: DeviceIdentity
    gateway: Gateway


async def device_call(request: Request) -> DeviceCall:
    """The device routes' one dependency. FastAPI solves each dependency of a route at
    every request, about 7.5 µs apiece (it works out each one's cache key anew), and
    these are the busiest routes: the device and the gateway come in one."""
    return DeviceCall(await gated_device(request), await _gateway_of(request))


DeviceCallDep = Annotated[DeviceCall, Depends(device_call)]


@router.post("/keepalive", response_model=Commands, responses=error_responses(401, 422))
async def keepalive(
    call: DeviceCallDep,
    health: Annotated[Health | None, Body()] = None,
) -> Response:
    """A sign of life, with optional health figures; answered with pending commands."""
    return json_response({"commands": await call.gateway.keepalive(call.device, health)})


@router.post(
    "/payloads",
    status_code=202,
    response_model=Accepted,
    responses=error_responses(400, 401, 413, 422),
)
async def payloads(
    call: DeviceCallDep,
    messages: Annotated[
        Any,
        Body(
            description="One message `{type, timestamp, payload, version}` or a list of up to 500"
        ),
    ],
) -> Response:
    """Application messages. A refused message is named by its index in the 422; the
    accepted messages of the same batch are kept.

    Checked here, then stored in a transaction shared with the process's concurrent
    requests (group commit): answered 202 (or the 422 of the refused part) only once
    that transaction has committed."""
    gateway = call.gateway
    batch = gateway.check(messages)
    kept = 0
    if batch.valid:
        kept = await gateway.database.grouped_many(
            gateway.store_many, (call.device, batch), weight=len(batch.valid)
        )
    batch.raise_refusals(kept)
    return json_response({"accepted": kept}, 202)


@router.get("/commands", response_model=Commands, responses=error_responses(400, 401))
async def commands(
    call: DeviceCallDep,
    metrics: MetricsDep,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT)] = 25,
) -> Response:
    """Long poll: pending commands as soon as there are some, or [] after `wait` s."""
    with metrics.long_polls.track_inprogress():
        found = await call.gateway.wait_for_commands(call.device, wait)
    return json_response({"commands": found})


@router.post(
    "/commands/{command_id}/result", status_code=204, responses=error_responses(401, 404, 422)
)
async def command_result(
    command_id: str,
    body: CommandResult,
    call: DeviceCallDep,
) -> Response:
    """The outcome of a command the device took, stored in a transaction shared with
    the process's concurrent device requests (group commit)."""
    gateway = call.gateway

    async def record(session: AsyncSession) -> None:
        await gateway.command_result(session, call.device, command_id, body.ok, body.error)

    await gateway.database.grouped(record, refusals=(NotFound,))
    return Response(status_code=204)
