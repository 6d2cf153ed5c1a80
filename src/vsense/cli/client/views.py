"""Tables and field lists of each resource, for people."""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text

from vsense.cli.client.output import Printer, online_mark, text, when
from vsense.client.models import (
    Delivery,
    Device,
    Group,
    ImageRequest,
    ImageRequestSummary,
    Me,
    Payload,
    Token,
    User,
    Webhook,
)


def devices(out: Printer, items: list[Device]) -> None:
    out.table(
        ["STATUS", "NAME", "UUID", "GROUP", "TYPE", "CITY", "COUNTRY", "REFRESHED"],
        (
            [
                online_mark(d.is_online),
                d.name,
                d.uuid,
                text(d.group),
                text(d.app_type),
                text(d.geo_city),
                text(d.geo_country),
                when(d.refreshed, short=True),
            ]
            for d in items
        ),
    )


def device(out: Printer, item: Device) -> None:
    status = online_mark(item.is_online)
    if item.status_reason:
        status = status + Text(f" ({item.status_reason})", style="dim")
    out.fields(
        [
            ("name", item.name),
            ("uuid", item.uuid),
            ("status", status),
            ("client identifier", text(item.client_identifier)),
            ("group", text(item.group)),
            ("app type", text(item.app_type)),
            ("city", text(item.geo_city)),
            ("country", text(item.geo_country)),
            ("keepalive interval", text(item.keepalive_interval)),
            ("refreshed", when(item.refreshed)),
            ("last seen", when(item.last_seen)),
            ("created", when(item.created)),
        ]
    )


def groups(out: Printer, items: list[Group]) -> None:
    out.table(
        ["ID", "NAME", "DEVICES", "KEEPALIVE (s)", "CREATED"],
        (
            [
                str(g.id),
                g.name,
                str(g.device_count),
                text(g.keepalive_interval),
                when(g.created, short=True),
            ]
            for g in items
        ),
    )


def group(out: Printer, item: Group) -> None:
    groups(out, [item])


def users(out: Printer, items: list[User]) -> None:
    out.table(
        ["ID", "EMAIL", "NAME", "ROLE", "GROUPS", "CREATED"],
        (
            [
                str(u.id),
                u.email,
                text(u.name),
                u.role,
                text([g.name for g in u.groups]),
                when(u.created, short=True),
            ]
            for u in items
        ),
    )


def user(out: Printer, item: User) -> None:
    users(out, [item])


def me(out: Printer, item: Me) -> None:
    out.fields(
        [
            ("name", text(item.name)),
            ("email", item.email),
            ("role", item.role),
            ("organization", item.organization.name),
            ("groups", text([g.name for g in item.groups])),
            ("scopes", text(item.scopes)),
            ("token", text(item.token_kind)),
        ]
    )


def tokens(out: Printer, items: list[Token]) -> None:
    out.table(
        ["ID", "NAME", "PREFIX", "SCOPES", "EXPIRES", "LAST USED", "CREATED"],
        (
            [
                str(t.id),
                t.name,
                t.prefix,
                text(t.scopes),
                when(t.expires_at, short=True) if t.expires_at else "never",
                when(t.last_used_at, short=True),
                when(t.created, short=True),
            ]
            for t in items
        ),
    )


def _active(status: int, reason: str | None) -> Text:
    if status:
        return Text("● active", style="green")
    return Text("○ inactive" + (f" ({reason})" if reason else ""), style="red")


def webhooks(out: Printer, items: list[Webhook]) -> None:
    out.table(
        ["ID", "STATUS", "DEVICE", "TYPE", "ACTIONS", "METHOD", "URL"],
        (
            [
                str(w.id),
                _active(w.status, w.disabled_reason),
                text(w.device_uuid),
                w.webhook_type,
                text(w.actions),
                w.method,
                w.url,
            ]
            for w in items
        ),
    )


def webhook(out: Printer, item: Webhook) -> None:
    out.fields(
        [
            ("id", str(item.id)),
            ("status", _active(item.status, item.disabled_reason)),
            ("device", text(item.device_uuid)),
            ("url", item.url),
            ("type", item.webhook_type),
            ("actions", text(item.actions)),
            ("events", text(item.events)),
            ("method", item.method),
            ("headers", text([f"{h.name}: {h.value}" for h in item.data.headers])),
            ("params", text([f"{p.name}={p.value}" for p in item.data.params])),
            ("created", when(item.created)),
            ("updated", when(item.updated)),
        ]
    )


_DELIVERY_STYLES = {"succeeded": "green", "pending": "yellow", "failed": "red", "dead": "red"}


def deliveries(out: Printer, items: list[Delivery]) -> None:
    def last(delivery: Delivery) -> str:
        if not delivery.attempt_log:
            return "-"
        attempt = delivery.attempt_log[-1]
        outcome = str(attempt.status_code) if attempt.status_code else (attempt.error or "?")
        return f"{outcome} in {attempt.duration_ms or 0:.0f} ms"

    out.table(
        ["ID", "STATUS", "EVENT", "WEBHOOK-ID", "ATTEMPTS", "LAST ATTEMPT", "NEXT", "CREATED"],
        (
            [
                str(d.id),
                Text(d.status, style=_DELIVERY_STYLES.get(d.status, "")),
                d.event.type,
                d.event.id,
                str(d.attempts),
                last(d),
                when(d.next_attempt_at, short=True),
                when(d.created, short=True),
            ]
            for d in items
        ),
    )


def compact(value: Any, width: int = 100) -> str:
    """JSON on one line, cut at `width` characters."""
    line = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return line if len(line) <= width else line[: width - 1] + "…"


def payloads(out: Printer, items: list[Payload]) -> None:
    out.table(
        ["TIME", "TYPE", "VERSION", "PAYLOAD"],
        (
            [
                p.timestamp.strftime("%Y-%m-%d %H:%M:%SZ"),
                p.type,
                text(p.version),
                compact(p.payload),
            ]
            for p in items
        ),
    )


def payload_line(out: Printer, item: Payload) -> None:
    """One message as one line (for `payloads --follow`)."""
    stamp = item.timestamp.strftime("%Y-%m-%d %H:%M:%SZ")
    out.console.print(
        Text(f"{stamp}  ", style="dim")
        + Text(f"{item.type:<4}", style="bold")
        + Text("  " + compact(item.payload, 400))
    )


def image_request(out: Printer, item: ImageRequest) -> None:
    out.fields(
        [
            ("request", item.request_id),
            ("status", item.status),
            ("links expire", when(item.meta.expires_at)),
        ]
    )
    out.lines([f"raw image:       {item.raw_url}", f"annotated image: {item.annotated_url}"])


def image_requests(out: Printer, items: list[ImageRequestSummary]) -> None:
    out.table(
        ["REQUEST", "STATUS", "CREATED", "READY", "EXPIRES"],
        (
            [
                i.request_id,
                i.status + (f" ({i.error})" if i.error else ""),
                when(i.created, short=True),
                when(i.ready_at, short=True),
                when(i.expires_at, short=True),
            ]
            for i in items
        ),
    )
    out.lines(
        f"{i.request_id} {kind}: {link}"
        for i in items
        for kind, link in zip(("raw", "annotated"), i.links, strict=False)
    )
