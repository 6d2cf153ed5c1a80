"""The client commands of `vsense`: a thin layer over the SDK (`vsense.client`)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the client commands and groups to the `vsense` app."""
    from vsense.cli.client import admin, alerts, auth, devices, images, listen, webhooks

    auth.register(app)
    devices.register(app)
    images.register(app)
    webhooks.register(app)
    alerts.register(app)
    admin.register(app)
    listen.register(app)
