"""`vsense devices ...` and `vsense payloads UUID [--follow]`."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated

import typer

from vsense.cli.client import views
from vsense.cli.client.context import CommandError, Context, command, parse_instant
from vsense.client import NOT_GIVEN
from vsense.client.models import Payload

devices_app = typer.Typer(
    help="Devices: list, read, change, onboard, remove.", no_args_is_help=True
)

AppTypeOption = Annotated[
    str | None, typer.Option("--app-type", help="VPM, VYD, VCZ, VCB or VCW.", show_default=False)
]
Uuid = Annotated[str, typer.Argument(help="The device's UUID.")]


@command(devices_app, "list")
def list_devices(
    cli: Context,
    online: Annotated[
        bool | None,
        typer.Option("--online/--offline", help="Only online, or only offline, devices."),
    ] = None,
    group: Annotated[
        str | None, typer.Option(help="A group's name or id; `none` for devices without one.")
    ] = None,
    search: Annotated[
        str | None, typer.Option(help="Part of the name or client identifier.")
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option(
            help="name, refreshed, is_online, geo_city, geo_country or created; `-` first: "
            "descending."
        ),
    ] = None,
    page: Annotated[int | None, typer.Option(min=1, help="Page number.")] = None,
    per_page: Annotated[int | None, typer.Option(min=1, max=500, help="Items per page.")] = None,
    all_pages: Annotated[
        bool, typer.Option("--all", help='Every page (JSON: {"data": [...]}).')
    ] = False,
) -> None:
    """The devices you may see, with their online status."""
    client = cli.client()
    render = lambda items: views.devices(cli.out, items)  # noqa: E731
    if all_pages:
        everything = client.devices.list_all(
            sort=sort, group=group, is_online=online, search=search, per_page=per_page or 100
        )
        cli.out.every(everything, render, "devices")
        return
    result = client.devices.list(
        sort=sort, group=group, is_online=online, search=search, page=page, per_page=per_page
    )
    cli.out.page(result, render, "devices")


@command(devices_app, "get")
def get_device(cli: Context, uuid: Uuid) -> None:
    """One device."""
    cli.out.result(cli.client().devices.get(uuid), lambda item: views.device(cli.out, item))


@command(devices_app, "add")
def add_device(
    cli: Context,
    name: Annotated[str, typer.Option(help="The device's name.")],
    client_identifier: Annotated[
        str | None, typer.Option(help="Your own identifier (site-12/cam-3).", show_default=False)
    ] = None,
    group: Annotated[str | None, typer.Option(help="A group's name or id.")] = None,
    app_type: AppTypeOption = None,
    city: Annotated[str | None, typer.Option(help="City.")] = None,
    country: Annotated[str | None, typer.Option(help="Country (ISO code or name).")] = None,
    keepalive_interval: Annotated[
        int | None, typer.Option(min=10, max=86400, help="Seconds between keepalives.")
    ] = None,
) -> None:
    """Onboard a device (admins); its token is shown once."""
    device = cli.client().devices.create(
        name=name,
        client_identifier=NOT_GIVEN if client_identifier is None else client_identifier,
        group=NOT_GIVEN if group is None else group,
        app_type=NOT_GIVEN if app_type is None else app_type.upper(),
        geo_city=NOT_GIVEN if city is None else city,
        geo_country=NOT_GIVEN if country is None else country,
        keepalive_interval=NOT_GIVEN if keepalive_interval is None else keepalive_interval,
    )
    cli.out.result(device, lambda item: views.device(cli.out, item))
    cli.out.secret("Device token", device.device_token)


@command(devices_app, "update")
def update_device(
    cli: Context,
    uuid: Uuid,
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    client_identifier: Annotated[str | None, typer.Option(help="New client identifier.")] = None,
    group: Annotated[str | None, typer.Option(help="Move to this group (name or id).")] = None,
    no_group: Annotated[bool, typer.Option("--no-group", help="Take out of its group.")] = False,
    city: Annotated[str | None, typer.Option(help="New city.")] = None,
    country: Annotated[str | None, typer.Option(help="New country.")] = None,
    keepalive_interval: Annotated[
        int | None, typer.Option(min=10, max=86400, help="Seconds between keepalives.")
    ] = None,
    inherit_keepalive: Annotated[
        bool, typer.Option("--inherit-keepalive", help="Use the group's keepalive interval.")
    ] = False,
) -> None:
    """Change a device (admins); only the options given change."""
    if group is not None and no_group:
        raise CommandError("give --group or --no-group, not both")
    if keepalive_interval is not None and inherit_keepalive:
        raise CommandError("give --keepalive-interval or --inherit-keepalive, not both")
    device = cli.client().devices.update(
        uuid,
        name=NOT_GIVEN if name is None else name,
        client_identifier=NOT_GIVEN if client_identifier is None else client_identifier,
        geo_city=NOT_GIVEN if city is None else city,
        geo_country=NOT_GIVEN if country is None else country,
        group=None if no_group else (NOT_GIVEN if group is None else group),
        keepalive_interval=None
        if inherit_keepalive
        else (NOT_GIVEN if keepalive_interval is None else keepalive_interval),
    )
    cli.out.result(device, lambda item: views.device(cli.out, item))


@command(devices_app, "rm")
def remove_device(
    cli: Context,
    uuid: Uuid,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove a device and its credentials (admins)."""
    client = cli.client()
    if not yes:
        device = client.devices.get(uuid)
        typer.confirm(f"Remove device {device.name!r} ({device.uuid})?", abort=True, err=True)
    client.devices.delete(uuid)
    cli.out.done(f"Removed device {uuid}.")


def _print_follow(cli: Context, item: Payload) -> None:
    if cli.out.json_mode:
        cli.out.json_line(item.api_json())
    else:
        views.payload_line(cli.out, item)


def payloads(
    cli: Context,
    uuid: Uuid,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new messages as they arrive.")
    ] = False,
    since: Annotated[
        datetime | None,
        typer.Option(
            help="Messages from this time on (ISO 8601 or UNIX seconds).", parser=parse_instant
        ),
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(help="Messages up to this time.", parser=parse_instant)
    ] = None,
    message_type: Annotated[
        str | None, typer.Option("--type", help="Only this type (VPM, VCZ, ...).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many recent messages.")] = 20,
    interval: Annotated[
        float, typer.Option(min=0.2, help="Seconds between two polls with --follow.")
    ] = 2.0,
) -> None:
    """A device's recent messages, newest first.

    With --follow: oldest first, then each new one as it arrives (JSON output: one
    message per line), until Ctrl-C.
    """
    client = cli.client()
    kind = message_type.upper() if message_type else None
    first = client.payloads.list(uuid, since=since, until=until, type=kind, per_page=limit)
    if not follow:
        cli.out.page(first, lambda items: views.payloads(cli.out, items), "messages")
        return
    for item in reversed(first.data):
        _print_follow(cli, item)
    newest = max((item.timestamp for item in first.data), default=since)
    # Messages already printed at the newest time (the next poll asks from that time on).
    seen = {item.id for item in first.data if item.timestamp == newest}
    while True:
        time.sleep(interval)
        fresh = client.payloads.list(uuid, since=newest, type=kind, per_page=500).data
        for item in sorted(fresh, key=lambda p: (p.timestamp, p.id)):
            if item.id not in seen:
                _print_follow(cli, item)
        if fresh:
            latest = max(item.timestamp for item in fresh)
            if newest is None or latest > newest:
                newest, seen = latest, set()
            seen |= {item.id for item in fresh if item.timestamp == newest}


def register(app: typer.Typer) -> None:
    app.add_typer(devices_app, name="devices")
    command(app, "payloads")(payloads)
