"""Screenshots of each console page for the README, taken in Debian's Chromium.

    .venv/bin/python -m tests.console.screenshots

Starts a console server on SQLite (as the browser tests do), fills an organization with
a small fleet that sends data, a webhook that has delivered, a firing alert and a
snapshot, then saves one PNG per page under docs/console/ (1280 px wide, and the fleet
page at phone width too), and one of the webhook portal a portal link opens.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from tests.client.live_api import FakeDevice
from tests.console.helpers import (
    ApiUser,
    console_server,
    launch_chromium,
    log_in,
    receiver_in_thread,
    screenshot_dir,
)

PLACES = [("Lyon", "FR"), ("Porto", "PT"), ("Vienna", "AT"), ("Aarhus", "DK"), ("Milan", "IT")]
TYPES = ["VCZ", "VPM", "VYD", "VCB", "VCW"]


def populate(admin: ApiUser) -> tuple[FakeDevice, int]:
    north, south = admin.group("North depots"), admin.group("South stores")
    devices = []
    for i in range(14):
        city, country = PLACES[i % len(PLACES)]
        device = admin.device(
            name=f"{['Gate', 'Lobby', 'Dock', 'Hall'][i % 4]} {i + 1:02d}",
            app_type=TYPES[i % len(TYPES)],
            geo_city=city,
            geo_country=country,
            group=(north if i % 2 else south)["id"],
        )
        if i % 3:
            device.keepalive()
        devices.append(device)
    counter = admin.device(
        name="Entrance counter", app_type="VCZ", geo_city="Lyon", geo_country="FR",
        group=north["id"],
    )  # fmt: skip
    counter.keepalive()
    now = int(time.time())
    for i in range(48):
        counter.send(8 + (i * 7) % 23, timestamp=now - 48 * 600 + i * 600)
    admin.call(
        "POST",
        "/alert-rules",
        201,
        json={
            "name": "Entrance crowded",
            "device_uuid": counter.uuid,
            "metric": "count",
            "rule": "GREATER_THAN",
            "trigger_value": 20,
            "clearing_value": 10,
            "severity": "critical",
        },
    )
    counter.send(27)
    return counter, 0


def shoot(page: Page, name: str) -> None:
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(screenshot_dir() / f"{name}.png"), full_page=True)
    print(f"saved docs/console/{name}.png", flush=True)


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="vsense-console-shots-"))
    live = console_server("sqlite", root)
    account = live.organization()
    admin = ApiUser.log_in(live, account)
    screenshot_dir().mkdir(parents=True, exist_ok=True)
    counter, _ = populate(admin)
    with receiver_in_thread() as receiver, sync_playwright() as driver:
        hook = admin.call(
            "POST",
            "/webhooks",
            201,
            json={"device_uuid": counter.uuid, "url": receiver.on("/hooks/vsense", 200)},
        )["data"]
        browser = launch_chromium(driver)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto(f"{live.base_url}/console/login")
        shoot(page, "login")
        log_in(page, live.base_url, account)
        shoot(page, "fleet")
        page.goto(f"{live.base_url}/console/devices/{counter.uuid}")
        answering = counter.answer_capture(delay=0.5)
        page.get_by_role("button", name="Take a snapshot").click()
        page.locator("#snapshot .status", has_text="Ready").wait_for(timeout=30_000)
        answering.join(timeout=30)
        page.get_by_role("img", name="Annotated snapshot").wait_for()
        page.locator("#payload-log summary").first.click()
        shoot(page, "device")
        page.goto(f"{live.base_url}/console/devices/new")
        shoot(page, "onboard")
        page.goto(f"{live.base_url}/console/webhooks/{hook['id']}")
        page.get_by_role("button", name="Test").click()
        page.locator(".test-result").wait_for(timeout=30_000)
        page.locator("#deliveries li[data-delivery]").first.wait_for(timeout=30_000)
        shoot(page, "webhook")
        page.goto(f"{live.base_url}/console/webhooks")
        shoot(page, "webhooks")
        page.goto(f"{live.base_url}/console/alerts")
        shoot(page, "alerts")
        page.goto(f"{live.base_url}/console/alerts/rules")
        shoot(page, "alert-rules")
        north = next(g for g in admin.call("GET", "/groups")["data"] if g["name"] == "North depots")
        link = admin.call(
            "POST", "/portal-links", 201, json={"group_id": north["id"], "label": "Acme Retail"}
        )
        page.goto(f"{live.base_url}/console/admin")
        shoot(page, "admin")
        customer = browser.new_context(viewport={"width": 1280, "height": 800})
        portal = customer.new_page()
        portal.goto(link["url"])
        portal.wait_for_url(f"{live.base_url}/portal/")
        shoot(portal, "portal")
        customer.close()
        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        small = phone.new_page()
        log_in(small, live.base_url, account)
        shoot(small, "fleet-phone")
        phone.close()
        context.close()
        browser.close()
    admin.close()
    live.server.stop()


if __name__ == "__main__":
    main()
