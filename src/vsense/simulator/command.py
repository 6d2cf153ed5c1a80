"""`vsense simulate`: run a simulated fleet against a server and report on it as it goes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Annotated, Any

import typer

from vsense.simulator.captures import DEFAULT_CAPTURE_DELAY_S
from vsense.simulator.fleet import FleetError, FleetStats, run_fleet
from vsense.simulator.mqtt import Broker
from vsense.simulator.scenes import SCENES

DEFAULT_TYPES = "VPM,VYD,VCZ,VCB,VCW"
SUMMARY_EVERY_S = 10.0


def api_base_url(api_addr: str) -> str:
    """The server's base URL: a bare host (`api.example.com`) means HTTPS, and an
    explicit scheme (`http://127.0.0.1:8000`) is kept."""
    address = api_addr.strip().rstrip("/")
    if not address:
        raise typer.BadParameter("give the server's address, e.g. api.example.com")
    # Not urlsplit: it reads `localhost:8000` as scheme "localhost".
    return address if "://" in address else f"https://{address}"


def parse_types(types: str) -> list[str]:
    """`"vpm, VCZ"` as `["VPM", "VCZ"]`; unknown codes are a usage error."""
    codes = [code.strip().upper() for code in types.split(",") if code.strip()]
    unknown = [code for code in codes if code not in SCENES]
    if not codes or unknown:
        raise typer.BadParameter(
            f"expected a comma-separated list of {', '.join(SCENES)}; got {types!r}",
            param_hint="--types",
        )
    return codes


def _event(text: str) -> None:
    typer.echo(text, err=True)


async def _run_and_report(fleet_run: Coroutine[Any, Any, FleetStats], stats: FleetStats) -> None:
    """Await the fleet, printing `stats` every SUMMARY_EVERY_S seconds meanwhile."""
    started = time.monotonic()
    fleet = asyncio.create_task(fleet_run)
    try:
        while True:
            done, _ = await asyncio.wait({fleet}, timeout=SUMMARY_EVERY_S)
            if done:
                fleet.result()  # raises what the fleet raised
                return
            typer.echo(f"[{time.monotonic() - started:6.0f} s] {stats.summary()}")
    finally:
        fleet.cancel()
        await asyncio.gather(fleet, return_exceptions=True)


def simulate_command(
    api_addr: Annotated[
        str,
        typer.Option(
            "--api-addr",
            help="The server: a host such as api.example.com (HTTPS) or a URL with its scheme.",
        ),
    ],
    token: Annotated[
        str,
        typer.Option(
            envvar="VSENSE_TOKEN",
            help="Integrator token allowed to onboard devices (devices:write).",
            show_default=False,
        ),
    ],
    devices: Annotated[int, typer.Option(min=0, help="How many sensors to simulate.")],
    types: Annotated[
        str, typer.Option(help="Application types, comma-separated, assigned round-robin.")
    ] = DEFAULT_TYPES,
    mqtt: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Send keepalives, payloads and command results over this MQTT broker "
            "(mqtt://host:1883, mqtts://host) instead of HTTP; onboarding stays on HTTP. "
            "Devices share a few unauthenticated connections: use a broker that allows it.",
        ),
    ] = None,
    per_device_connections: Annotated[
        bool,
        typer.Option(
            help="With --mqtt: one connection per device, authenticated with its UUID and "
            "token, as real devices do (heavier)."
        ),
    ] = False,
    rate: Annotated[
        float, typer.Option(help="Simulated seconds per real second (60: a day in 24 minutes).")
    ] = 1.0,
    keepalive_interval: Annotated[
        int, typer.Option(min=10, help="Simulated seconds between keepalives of each device.")
    ] = 60,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: until Ctrl-C).")
    ] = None,
    capture_delay: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds a device takes to answer a snapshot request (render and upload its "
            "raw and annotated images); real hardware takes about 20.",
        ),
    ] = DEFAULT_CAPTURE_DELAY_S,
) -> None:
    """Simulate a fleet of sensors: onboard them, then send keepalives and payloads.

    Devices are named sim/00000, sim/00001, ...; a second run reuses them with new
    tokens. A summary line is printed every 10 seconds; problems go to stderr.
    """
    if mqtt is not None:
        try:
            Broker.parse(mqtt)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--mqtt") from None
    elif per_device_connections:
        raise typer.BadParameter("needs --mqtt", param_hint="--per-device-connections")
    if rate <= 0:
        raise typer.BadParameter("must be above 0", param_hint="--rate")
    if duration is not None and duration <= 0:
        raise typer.BadParameter("must be above 0", param_hint="--duration")
    stats = FleetStats()
    fleet_run = run_fleet(
        api_addr=api_base_url(api_addr),
        token=token,
        devices=devices,
        types=parse_types(types),
        rate=rate,
        keepalive_interval=keepalive_interval,
        duration=duration,
        on_event=_event,
        stats=stats,
        mqtt=mqtt,
        per_device_connections=per_device_connections,
        capture_delay=capture_delay,
    )
    try:
        asyncio.run(_run_and_report(fleet_run, stats))
    except FleetError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        # Ctrl-C is how an open-ended run ends: a normal stop, not a failure.
        typer.echo("stopped", err=True)
    typer.echo(f"done: {stats.summary()}")
