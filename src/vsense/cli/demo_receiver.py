"""The demo's webhook receiver: what an integrator's endpoint sees, signatures checked.

It listens on localhost, verifies every call with the reference Standard Webhooks
implementation (the way a receiver should), and reports what arrives: each kind's first
event in full, then counts.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

PATH = "/vsense-webhooks"


@dataclass
class DemoReceiver:
    """Receives the demo's webhooks; `secrets` maps a device to its webhook's secret."""

    echo: Callable[[str], None]
    secrets: dict[str, str] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    bad_signatures: int = 0
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self, host: str = "127.0.0.1") -> str:
        app = web.Application()
        app.router.add_route("*", PATH, self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://{host}:{port}{PATH}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        event = json.loads(body) if body else dict(request.query)
        device = str(event.get("stream_id") or event.get("id") or "")
        secret = self.secrets.get(device)
        try:
            if secret is None:
                raise WebhookVerificationError("no webhook of this demo for the device")
            Webhook(secret).verify(body, dict(request.headers))
        except WebhookVerificationError as exc:
            self.bad_signatures += 1
            self.echo(f"  webhook: REFUSED a call for {device or '?'}: {exc}")
            return web.Response(status=401, text="bad signature")
        alerts = event.get("alert")
        if isinstance(alerts, list):
            self.counts["ALERT"] += 1
            for alert in alerts:
                self.echo(f"  webhook: ALERT {_alert_line(alert)}, signature valid")
            return web.Response(text="ok")
        kind = str(event.get("type") or "KEEPALIVE")
        self.counts[kind] += 1
        if self.counts[kind] == 1 or kind == "IMAGE" or event.get("status") == "offline":
            self.echo(f"  webhook: {kind} for {device[:8]}, signature valid: {_short(event)}")
        return web.Response(text="ok")

    def summary(self) -> str:
        received = sum(self.counts.values())
        kinds = ", ".join(f"{kind.lower()} {count}" for kind, count in sorted(self.counts.items()))
        checked = (
            "all signatures valid"
            if not self.bad_signatures
            else (f"{self.bad_signatures} refused")
        )
        return f"{received} received ({kinds or 'none yet'}), {checked}"


def _alert_line(alert: dict[str, Any]) -> str:
    rule = alert.get("rule_summary") or {}
    marker = alert.get("reference_marker") or {}
    where = f" at {marker.get('name')}" if marker else ""
    return (
        f"{alert.get('type')} {alert.get('state')} {alert.get('app_type')} "
        f"{str(alert.get('deviceUuid'))[:8]}{where}: {rule.get('rule')} "
        f"{rule.get('trigger_value')}/{rule.get('clearing_value')}, value "
        f"{alert.get('actual_value')}"
    )


def _short(event: dict[str, object], limit: int = 160) -> str:
    text = json.dumps(event, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 3] + "..."
