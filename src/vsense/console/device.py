"""The device page (fields, edit form, status history, webhooks, alerts, credentials)
and the onboarding form. The live parts of the page (chart, payload log, snapshot) are
fragments of `device_live`."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response

from vsense.alerts import service as alerts
from vsense.console.deps import ConsoleUserDep
from vsense.console.forms import form_dict, none_if_blank
from vsense.console.render import CONSOLE, ConsoleRoute, redirect, render
from vsense.deps import CountsDep, SessionDep, SettingsDep
from vsense.device_auth.deps import DeviceAuthDep
from vsense.devices import service as devices
from vsense.devices.schemas import DeviceCreate, DeviceUpdate
from vsense.groups import service as groups
from vsense.kit.origin import public_base_url
from vsense.kit.pagination import page_request
from vsense.webhooks import service as webhooks

router = APIRouter(prefix=CONSOLE, route_class=ConsoleRoute, include_in_schema=False)
APP_TYPES = ("VPM", "VYD", "VCZ", "VCB", "VCW")
EDITABLE = ("name", "client_identifier", "geo_city", "geo_country", "group", "keepalive_interval")


def mqtt_host(mqtt_url: str | None, request: Request) -> str:
    """The broker devices connect to, as the snippet shows it (never its credentials)."""
    if mqtt_url:
        parts = urlsplit(mqtt_url)
        return f"{parts.hostname}:{parts.port or 1883}"
    return f"{request.url.hostname or 'localhost'}:1883"


async def _group_choices(session: SessionDep, user: ConsoleUserDep) -> list[Any]:
    return await groups.group_choices(session, user.principal)


@router.get("/devices/new")
async def onboard_page(request: Request, user: ConsoleUserDep, session: SessionDep) -> Response:
    return render(
        request,
        "onboard.html",
        user=user,
        nav="onboard",
        groups=await _group_choices(session, user),
        app_types=APP_TYPES,
        onboarded=None,
    )


@router.post("/devices/new")
async def onboard(
    request: Request,
    user: ConsoleUserDep,
    session: SessionDep,
    counts: CountsDep,
    settings: SettingsDep,
) -> Response:
    """Onboards through the devices service; the answer shows the token once."""
    fields = await form_dict(request, ("name", "client_identifier", "app_type", "geo_city"))
    more = await form_dict(request, ("geo_country", "group", "keepalive_interval"))
    body = DeviceCreate.model_validate(
        none_if_blank(
            {**fields, **more}, keep_blank=("client_identifier", "geo_city", "geo_country")
        )
    )
    onboarded = await devices.onboard_device(session, user.principal, counts, body)
    base = public_base_url(request, settings.public_url, settings.allowed_hosts)
    return render(
        request,
        "onboard.html",
        user=user,
        nav="onboard",
        groups=await _group_choices(session, user),
        app_types=APP_TYPES,
        onboarded=onboarded,
        base_url=base,
        mqtt_host=mqtt_host(settings.mqtt_url, request),
    )


@router.get("/devices/{device_uuid}")
async def device_page(
    request: Request,
    device_uuid: str,
    user: ConsoleUserDep,
    session: SessionDep,
    saved: str | None = None,
) -> Response:
    principal = user.principal
    device = await devices.get_device(session, principal, devices.parse_device_uuid(device_uuid))
    return render(
        request,
        "device.html",
        user=user,
        nav="fleet",
        device=device,
        groups=await _group_choices(session, user) if user.can("devices:write") else [],
        saved=saved,
    )


@router.get("/devices/{device_uuid}/activity")
async def activity_fragment(
    request: Request, device_uuid: str, user: ConsoleUserDep, session: SessionDep
) -> Response:
    """The status history, webhooks and alerts: loaded after the page's first paint."""
    principal = user.principal
    readable = await devices.visible_device(session, principal, device_uuid)
    events = await devices.list_events(session, readable, page_request("1", "20"))
    # Each section only for a caller with its permission, as the API would answer.
    hooks = (
        await webhooks.list_webhooks(session, principal, str(readable))
        if user.can(webhooks.READ_SCOPE)
        else None
    )
    device_alerts = (
        (
            await alerts.list_alerts(session, principal, device_uuid=str(readable), per_page="10")
        ).data
        if user.can(alerts.READ_SCOPE)
        else None
    )
    return render(
        request,
        "_activity.html",
        user=user,
        device_uuid=str(readable),
        events=events.data,
        webhooks=hooks,
        alerts=device_alerts,
    )


@router.post("/devices/{device_uuid}")
async def edit_device(
    request: Request,
    device_uuid: str,
    user: ConsoleUserDep,
    session: SessionDep,
    counts: CountsDep,
) -> Response:
    """The API's editable fields; a blank group or interval clears it, as null does."""
    fields = await form_dict(request, EDITABLE)
    body = DeviceUpdate.model_validate(
        none_if_blank(fields, keep_blank=("geo_city", "geo_country"))
    )
    target = devices.parse_device_uuid(device_uuid)
    await devices.update_device(session, user.principal, counts, target, body)
    return redirect(f"{CONSOLE}/devices/{target}?saved=1", request)


@router.post("/devices/{device_uuid}/credentials")
async def rotate_credentials(
    request: Request,
    device_uuid: str,
    user: ConsoleUserDep,
    session: SessionDep,
    device_auth: DeviceAuthDep,
) -> Response:
    """A new device token, shown once in the answer; the old one stops working."""
    target = devices.parse_device_uuid(device_uuid)
    credentials = await devices.rotate_credentials(session, device_auth, user.principal, target)
    return render(request, "_credentials.html", user=user, credentials=credentials)
