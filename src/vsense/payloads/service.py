"""What integrators read of what devices sent: the payload log, metrics, the schemas."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from vsense.accounts.principal import Principal
from vsense.devices.types import ReadableDeviceId
from vsense.kit.errors import BadRequest, NotFound
from vsense.kit.pagination import PageRequest, page_meta
from vsense.kit.schemas import ListMeta, Page
from vsense.kit.time import utcnow
from vsense.payloads import repository
from vsense.payloads.schemas import (
    MetricPoint,
    Metrics,
    MetricsWindow,
    StoredMessage,
    json_schema,
)

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DEFAULT_WINDOW = timedelta(hours=24)
MAX_BUCKETS = 10_000


def parse_interval(raw: str | None) -> timedelta:
    """`30s`, `5m`, `1h`, `1d` or plain seconds; between 1 s and 31 days."""
    match = re.fullmatch(r"(\d{1,7})([smhd]?)", (raw or "5m").strip())
    seconds = int(match[1]) * UNITS[match[2] or "s"] if match else 0
    if not 1 <= seconds <= 31 * 86400:
        raise BadRequest("`interval` must be like 30s, 5m, 1h or 1d (1 s to 31 days).")
    return timedelta(seconds=seconds)


async def list_payloads(
    session: AsyncSession,
    device: ReadableDeviceId,
    paging: PageRequest,
    *,
    since: datetime | None,
    until: datetime | None,
    message_type: str | None,
) -> Page[StoredMessage]:
    """The device's stored messages, newest first (by the message's own timestamp)."""
    messages, total = await repository.list_messages(
        session,
        device,
        since=since,
        until=until,
        message_type=message_type,
        offset=paging.offset,
        limit=paging.per_page,
    )
    return Page[StoredMessage](
        data=[
            StoredMessage(
                id=m.id,
                type=m.type,
                version=m.version,
                timestamp=m.timestamp,
                received_at=m.received_at,
                payload=m.payload,
            )
            for m in messages
        ],
        meta=ListMeta.model_validate(page_meta(paging, total, len(messages))),
    )


async def metrics(
    session: AsyncSession,
    device: ReadableDeviceId,
    *,
    interval: timedelta,
    since: datetime | None,
    until: datetime | None,
    name: str | None,
    marker: str | None,
) -> Metrics:
    """The device's metrics bucketed by `interval` over `[since, until]` (default: 24 h)."""
    end = until or utcnow()
    start = since or end - DEFAULT_WINDOW
    if start > end:
        raise BadRequest("`since` must not be after `until`.")
    step = int(interval.total_seconds())
    if (end - start).total_seconds() / step > MAX_BUCKETS:
        raise BadRequest(f"The window holds more than {MAX_BUCKETS} intervals; widen `interval`.")
    rows = await repository.metric_buckets(
        session,
        device,
        since=int(start.timestamp()),
        until=int(end.timestamp()),
        interval=step,
        name=name,
        marker=marker,
    )
    return Metrics(
        data=[
            MetricPoint(
                name=row[0],
                marker_id=row[1],
                marker_name=row[2],
                start=datetime.fromtimestamp(int(row[3]), UTC),
                avg=float(row[4]),
                min=float(row[5]),
                max=float(row[6]),
                count=int(row[7]),
            )
            for row in rows
        ],
        meta=MetricsWindow(interval=step, since=start, until=end),
    )


def payload_schema(principal: Principal, message_type: str, version: int) -> dict[str, Any]:
    del principal  # any authenticated caller may read the published schemas
    try:
        return json_schema(message_type, version)
    except LookupError:
        raise NotFound(f"No schema for type {message_type!r} version {version}.") from None
