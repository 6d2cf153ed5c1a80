"""`vsense demo`: the whole system in one process, on the embedded database.

The API on localhost, an organization with an admin, and a dozen simulated sensors of
every type reporting to it over HTTP, the way real ones would. The sensors are
enrolled, and their webhooks wired, through the SDK, as an integrator would.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_network
from typing import Any

import typer
import uvicorn

from vsense.accounts.principal import Principal
from vsense.accounts.schemas import TokenCreate
from vsense.accounts.scopes import ALL_SCOPES, Role
from vsense.accounts.service import create_personal_token
from vsense.app import create_app
from vsense.cli.demo_receiver import DemoReceiver
from vsense.cli.serving import server_options
from vsense.client import APIConnectionError, APIStatusError, AsyncClient
from vsense.client.models import Device
from vsense.config import Settings
from vsense.db import create_engine, create_sessionmaker, session_scope
from vsense.kit.passwords import generate_password
from vsense.migrate import upgrade_async
from vsense.simulator.fleet import FleetStats, run_fleet
from vsense.users import repository as users_repository
from vsense.users import service as users_service

DEMO_ORGANIZATION = "Demo"
DEMO_EMAIL = "demo@vsense.local"
DEMO_TYPES = ["VPM", "VYD", "VCZ", "VCB", "VCW"]
DEMO_SAMPLE = 10  # recent payloads a demo rule's level is taken from
DEMO_CAPTURE_DELAY = 3.0  # seconds a demo sensor takes to answer a snapshot request


@dataclass(frozen=True)
class DemoAccount:
    email: str
    password: str
    token: str


async def prepare_account(settings: Settings) -> DemoAccount:
    """The demo organization and admin, with a new password for this run, and an API
    token the simulated fleet uses to onboard its devices."""
    engine = create_engine(settings)
    password = generate_password(9)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            organization = await users_repository.get_organization_by_name(
                session, DEMO_ORGANIZATION
            )
            if organization is None:
                organization = await users_service.create_organization(session, DEMO_ORGANIZATION)
            user = await users_repository.get_user_by_email(session, DEMO_EMAIL)
            if user is None:
                user = await users_service.create_user_in(
                    session,
                    organization_name=DEMO_ORGANIZATION,
                    email=DEMO_EMAIL,
                    password=password,
                    role=Role.ADMIN,
                    name="Demo admin",
                )
            else:
                await users_service.set_password(session, user, password)
            principal = Principal(
                user_id=user.id,
                organization_id=organization.id,
                role=user.role,
                scopes=frozenset(ALL_SCOPES),
                token_kind="access",
            )
            _, token = await create_personal_token(
                session,
                principal,
                TokenCreate(
                    name="demo fleet",
                    scopes=[
                        "devices:read",
                        "devices:write",
                        "webhooks:read",
                        "webhooks:write",
                        "alerts:read",
                        "alerts:write",
                    ],
                ),
            )
    finally:
        await engine.dispose()
    return DemoAccount(DEMO_EMAIL, password, token)


def guide(base: str, account: DemoAccount) -> str:
    api = f"{base}/api/v1"
    return f"""
vsense demo is running. Open the console in a browser and log in:

    {base}/console/
    email:    {account.email}
    password: {account.password}

A dozen simulated sensors report to it; the API is at {api}.

  Log in to the API with the same email and password:
    TOKEN=$(curl -s -X POST {api}/login -H 'Content-Type: application/json' \\
      -d '{{"email": "{account.email}", "password": "{account.password}"}}' \\
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["access_token"])')

  List the devices, the online ones, one device's messages and metrics:
    curl -s -H "Authorization: Bearer $TOKEN" '{api}/devices'
    curl -s -H "Authorization: Bearer $TOKEN" '{api}/devices?is_online=Online&sort=-refreshed'
    curl -s -H "Authorization: Bearer $TOKEN" '{api}/devices/<uuid>/payloads?per_page=3'
    curl -s -H "Authorization: Bearer $TOKEN" '{api}/devices/<uuid>/metrics?interval=1m'

  Ask a sensor for a snapshot: the answer holds two links, the raw and the annotated
  image; open them in a browser (no token needed) once the sensor has uploaded, about
  {DEMO_CAPTURE_DELAY:.0f} s later, for the next 30 minutes:
    UUID=$(curl -s -H "Authorization: Bearer $TOKEN" '{api}/devices?is_online=Online' \\
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["uuid"])')
    curl -s -X POST -H "Authorization: Bearer $TOKEN" "{api}/devices/$UUID/image"
    curl -s -H "Authorization: Bearer $TOKEN" "{api}/devices/$UUID/images"

  One alert rule per application type fires and clears within minutes; the demo's
  receiver prints each FIRING and CLEARING. See the rules and the alerts:
    curl -s -H "Authorization: Bearer $TOKEN" '{api}/alert-rules'
    curl -s -H "Authorization: Bearer $TOKEN" '{api}/alerts?state=firing'

  The demo's webhook receiver prints what reaches it; see each webhook's delivery log:
    curl -s -H "Authorization: Bearer $TOKEN" '{api}/webhooks'
    curl -s -H "Authorization: Bearer $TOKEN" '{api}/webhooks/<id>/deliveries?per_page=3'

  Or click through the interactive documentation: {api}/docs
  Ctrl-C stops the demo; its data stays in the data folder.
"""


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


async def wire_webhooks(base: str, token: str, devices: int, receiver: DemoReceiver) -> None:
    """Point a webhook of every demo sensor at the demo receiver, once the fleet has
    onboarded them (webhooks of earlier runs, aimed at an old port, are removed first)."""
    async with AsyncClient(base_url=base, token=token) as client:
        for old in (await client.webhooks.list()).data:
            await client.webhooks.delete(old.id)
        found: list[Device] = []
        for _ in range(600):
            found = (await client.devices.list(per_page=500)).data
            if len(found) >= devices:
                break
            await asyncio.sleep(0.1)
        for device in found:
            created = await client.webhooks.create(
                device_uuid=device.uuid, url=receiver.url, actions="payload,status,image,alert"
            )
            receiver.secrets[device.uuid] = created.secret
        typer.echo(
            f"  webhooks: {len(found)} sensors forward their messages, status changes, "
            f"snapshots and alerts to {receiver.url} (signed; the receiver checks every "
            "signature)"
        )
        await create_rules(client, found)


# The metric each type's demo rule watches, and how to read its device total from a
# payload as the sensor sent it.
DEMO_METRICS: dict[str, tuple[str, Callable[[list[dict[str, Any]]], float]]] = {
    "VPM": (
        "occupied",
        lambda items: sum(1 for i in items if i["is_active"] and not i["deactivated"]),
    ),
    "VYD": (
        "occupied",
        lambda items: sum(1 for i in items if i["is_active"] and not i["deactivated"]),
    ),
    "VCZ": ("count", lambda items: sum(i["count"] for i in items)),
    "VCB": ("in", lambda items: sum(i["in"] for i in items)),
    "VCW": ("count", lambda items: sum(i["count"] for i in items)),
}


async def create_rules(client: AsyncClient, devices: list[Device]) -> None:
    """One rule per application type, on the sensor of the type whose metric moves most,
    with one level for firing and clearing at the middle of what that sensor reported
    so far: the traffic crosses it both ways within minutes, so the receiver soon prints
    a FIRING and its CLEARING.

    Counting sensors (VCZ, VCB, VCW) send a count per period, noisy from one message to
    the next: the rule fires on a count above the median of the first counts and clears
    on one at or below it. Spot sensors (VPM, VYD) send a message when spots change,
    one step at a time: the rule fires once the occupied spots are back at (or above)
    the last number seen and clears on the next step below it.
    """
    async for old in client.alert_rules.list_all():
        await client.alert_rules.delete(old.id)
    for app_type, (metric, read) in DEMO_METRICS.items():
        candidates = [d for d in devices if d.app_type == app_type]
        if not candidates:
            continue
        seen = {d.uuid: await _recent_payloads(client, d.uuid) for d in candidates}
        device = max(candidates, key=lambda d: _busyness(app_type, seen[d.uuid], read))
        values = [float(read(items)) for items in seen[device.uuid]] or [0.0]
        if app_type in SPOT_TYPES:
            level = values[0] - 0.5  # the newest first
        else:
            level = math.floor(statistics.median(values)) + 0.5
        level = max(0.5, level)
        rule = await client.alert_rules.create(
            name=f"demo {app_type} {metric} above {level:g}",
            device_uuid=device.uuid,
            metric=metric,
            rule="GREATER_THAN",
            trigger_value=level,
            clearing_value=level,
            severity="info",
        )
        typer.echo(f"  alerts: rule {rule.name!r} on {device.name}")


SPOT_TYPES = ("VPM", "VYD")


def _busyness(
    app_type: str,
    payloads: list[list[dict[str, Any]]],
    read: Callable[[list[dict[str, Any]]], float],
) -> float:
    """How fast a sensor's metric crosses a level both ways: the more spots a spot sensor
    watches, the more often its number moves; the smaller the counts of a counting sensor
    (as long as it counts something), the more its noise outweighs the day's slow drift."""
    if not payloads:
        return -math.inf
    if app_type in SPOT_TYPES:
        return float(sum(1 for item in payloads[0] if not item["deactivated"]))
    values = [float(read(items)) for items in payloads]
    median = statistics.median(values)
    # A sensor that mostly counts nothing comes last, the one counting more first.
    return -median if median >= 1 else -1e9 + sum(values)


async def _recent_payloads(client: AsyncClient, device: str) -> list[list[dict[str, Any]]]:
    """The payloads a sensor sent so far (the newest first, a few), once it sent one."""
    for _ in range(600):
        found = (await client.payloads.list(device, per_page=DEMO_SAMPLE)).data
        payloads = [p.payload for p in found if isinstance(p.payload, list)]
        if payloads:
            return payloads
        await asyncio.sleep(0.1)
    return []


async def run_demo(settings: Settings, *, host: str, port: int, devices: int, rate: float) -> None:
    # The demo's receiver is on this machine: let webhooks reach loopback, nothing else.
    settings = settings.model_copy(update={"webhook_allow_networks": [ip_network("127.0.0.0/8")]})
    await upgrade_async(settings)
    account = await prepare_account(settings)
    receiver = DemoReceiver(echo=typer.echo)
    await receiver.start(host="127.0.0.1")
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            **server_options(settings),
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving  # raises what stopped it (a port in use, say)
            return
        await asyncio.sleep(0.05)
    base = f"http://{host}:{port}"
    typer.echo(guide(base, account))
    stats = FleetStats()
    fleet = asyncio.create_task(
        run_fleet(
            api_addr=base,
            token=account.token,
            devices=devices,
            types=DEMO_TYPES,
            rate=rate,
            keepalive_interval=30,
            name_prefix="demo",
            stats=stats,
            capture_delay=DEMO_CAPTURE_DELAY,
            on_event=lambda line: typer.echo(f"  simulator: {line}"),
        )
    )
    wiring = asyncio.create_task(wire_webhooks(base, account.token, devices, receiver))
    try:
        while True:
            done, _ = await asyncio.wait(
                {serving, fleet}, timeout=10, return_when=asyncio.FIRST_COMPLETED
            )
            if done:
                break
            typer.echo(f"  fleet: {stats.summary()}")
            typer.echo(f"  webhooks: {receiver.summary()}")
    finally:
        for task in (fleet, wiring):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, APIStatusError, APIConnectionError):
                await task
        server.should_exit = True
        await serving
        await receiver.stop()
