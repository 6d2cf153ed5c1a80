"""The console's routes and static files, installed on the application."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.staticfiles import StaticFiles

from vsense.console import admin, alerts, auth, device, device_live, fleet, portal, webhooks
from vsense.console.render import CONSOLE, STATIC_DIR

ROUTERS = (
    auth.router,
    fleet.router,
    device.router,
    device_live.router,
    webhooks.router,
    alerts.router,
    admin.router,
    portal.router,
)


def install_console(app: FastAPI) -> None:
    """The console's pages under /console/, its files under /console/static/, the
    webhook portal under /portal/, and the server's root redirecting to the console."""
    for router in ROUTERS:
        app.include_router(router)
    app.mount(f"{CONSOLE}/static", StaticFiles(directory=STATIC_DIR), name="console-static")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse(f"{CONSOLE}/", status_code=307)
