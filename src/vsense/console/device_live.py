"""The live parts of the device page, each an htmx fragment: the metrics charts, the
payload log with its tail, and snapshots.

Charts are bucketed by the payloads service, never finer than the chart has pixels: the
interval asked for is widened until the window holds at most `MAX_POINTS` buckets.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from vsense.commands.service import Commands
from vsense.console.deps import ConsoleUserDep
from vsense.console.render import CONSOLE, ConsoleRoute, render
from vsense.deps import DatabaseDep, SessionDep, SettingsDep
from vsense.devices import service as devices
from vsense.devices.types import ReadableDeviceId
from vsense.images import service as images
from vsense.images.snapshots import Snapshots
from vsense.kit.errors import BadRequest
from vsense.kit.origin import public_base_url
from vsense.kit.pagination import page_request
from vsense.kit.parts import part
from vsense.kit.time import utcnow
from vsense.payloads import service as payloads
from vsense.payloads.schemas import MetricPoint

router = APIRouter(prefix=CONSOLE, route_class=ConsoleRoute, include_in_schema=False)
SnapshotsDep = Annotated[Snapshots, Depends(part(Snapshots))]
CommandsDep = Annotated[Commands, Depends(part(Commands))]

# A chart is at most this many pixels wide on the console's widest layout.
MAX_POINTS = 600
WINDOWS = {"1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
INTERVALS = {"auto": 0, "1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400}
PAYLOADS_PER_PAGE = 20
TAIL_SECONDS = 5


def bucket_seconds(window: int, asked: int) -> int:
    """The interval asked for, widened so that `window` holds at most MAX_POINTS."""
    return max(asked, math.ceil(window / MAX_POINTS), 1)


def chart_series(points: list[MetricPoint]) -> list[dict[str, Any]]:
    """One chart per metric; one line per marker (the device total when none), the
    buckets' averages aligned on one time axis (gaps as null)."""
    by_metric: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for point in points:
        label = point.marker_name or point.marker_id or "total"
        by_metric[point.name][label][int(point.start.timestamp())] = point.avg
    charts = []
    for name in sorted(by_metric):
        lines = by_metric[name]
        xs = sorted({x for line in lines.values() for x in line})
        labels = sorted(lines)
        charts.append(
            {
                "name": name,
                "x": xs,
                "labels": labels,
                "y": [[lines[label].get(x) for x in xs] for label in labels],
            }
        )
    return charts


async def _readable(session: SessionDep, user: ConsoleUserDep, raw: str) -> ReadableDeviceId:
    return await devices.visible_device(session, user.principal, raw)


@router.get("/devices/{device_uuid}/metrics")
async def metrics_fragment(
    request: Request,
    device_uuid: str,
    user: ConsoleUserDep,
    session: SessionDep,
    window: str = "24h",
    interval: str = "auto",
) -> Response:
    device = await _readable(session, user, device_uuid)
    if window not in WINDOWS or interval not in INTERVALS:
        raise BadRequest(f"window: one of {', '.join(WINDOWS)}; interval: {', '.join(INTERVALS)}")
    span = WINDOWS[window]
    step = bucket_seconds(span, INTERVALS[interval])
    until = utcnow()
    found = await payloads.metrics(
        session,
        device,
        interval=timedelta(seconds=step),
        since=until - timedelta(seconds=span),
        until=until,
        name=None,
        marker=None,
    )
    return render(
        request,
        "_metrics.html",
        user=user,
        device_uuid=str(device),
        charts=chart_series(found.data),
        window=window,
        interval=interval,
        step=step,
        windows=WINDOWS,
        intervals=INTERVALS,
    )


@router.get("/devices/{device_uuid}/payloads")
async def payloads_fragment(
    request: Request,
    device_uuid: str,
    user: ConsoleUserDep,
    session: SessionDep,
    type: str | None = None,
    page: str | None = None,
) -> Response:
    """The newest messages; on the first page the fragment polls itself (the tail)."""
    device = await _readable(session, user, device_uuid)
    paging = page_request(page, str(PAYLOADS_PER_PAGE))
    found = await payloads.list_payloads(
        session, device, paging, since=None, until=None, message_type=type or None
    )
    return render(
        request,
        "_payloads.html",
        user=user,
        device_uuid=str(device),
        messages=found.data,
        meta=found.meta,
        message_type=type or "",
        tail_seconds=TAIL_SECONDS if paging.page == 1 else None,
    )


def _base(request: Request, settings: SettingsDep) -> str:
    return public_base_url(request, settings.public_url, settings.allowed_hosts)


async def _latest_snapshot(
    request: Request,
    session: SessionDep,
    user: ConsoleUserDep,
    settings: SettingsDep,
    snapshots: Snapshots,
    device_uuid: str,
) -> Any:
    found = await images.list_images(
        session,
        snapshots,
        user.principal,
        device_uuid,
        _base(request, settings),
        page="1",
        per_page="1",
    )
    return found.data[0] if found.data else None


@router.get("/devices/{device_uuid}/snapshot")
async def snapshot_fragment(
    request: Request,
    device_uuid: str,
    user: ConsoleUserDep,
    session: SessionDep,
    settings: SettingsDep,
    snapshots: SnapshotsDep,
) -> Response:
    """The device's latest snapshot; while pending, the fragment polls itself."""
    latest = await _latest_snapshot(request, session, user, settings, snapshots, device_uuid)
    return render(request, "_snapshot.html", user=user, device_uuid=device_uuid, snapshot=latest)


@router.post("/devices/{device_uuid}/snapshot")
async def request_snapshot(
    request: Request,
    device_uuid: str,
    user: ConsoleUserDep,
    database: DatabaseDep,
    settings: SettingsDep,
    snapshots: SnapshotsDep,
    commands: CommandsDep,
) -> Response:
    """Asks the device for a snapshot, as the API's `POST .../image` does."""
    base = _base(request, settings)
    requested = await database.write_unit(
        lambda session: images.request_image(
            session, snapshots, commands, user.principal, device_uuid, base
        ),
        refusals=images.REFUSALS,
    )
    snapshot = {
        "request_id": requested.meta.request_id,
        "status": requested.meta.status,
        "expires_at": requested.meta.expires_at,
        "links": requested.data,
        "error": None,
    }
    return render(
        request,
        "_snapshot.html",
        user=user,
        device_uuid=str(uuid.UUID(device_uuid)),
        snapshot=snapshot,
    )
