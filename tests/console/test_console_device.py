"""The device page in Chromium: the chart drawn from its metrics, the payload log, a
snapshot's two images, editing, rotating the token, and onboarding a device."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.client.live_api import Account, LiveApi
from tests.console.helpers import WAIT_MS, ApiUser, log_in

pytestmark = pytest.mark.browser

# Pixels of the chart's canvas that are drawn (not transparent): the lines and axes.
DRAWN_PIXELS = """canvas => {
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let drawn = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) drawn++;
  return drawn;
}"""


def test_the_chart_is_drawn_from_the_devices_metrics_and_the_log_shows_json(
    page: Page, live: LiveApi, account: Account, admin: ApiUser
) -> None:
    device = admin.device(name="counter", app_type="VCZ")
    now = int(time.time())
    for i, count in enumerate([3, 7, 12, 5, 9, 14]):
        device.send(count, timestamp=now - 3000 + i * 500)
    log_in(page, live.base_url, account)
    page.goto(f"{live.base_url}/console/devices/{device.uuid}")

    chart = page.locator("figure.metric", has_text="count").locator(".chart")
    expect(chart).to_have_attribute("aria-label", re.compile(r"over 24h, [2-9]\d* points"))
    canvas = chart.locator("canvas").first
    expect(canvas).to_be_visible()
    assert canvas.evaluate(DRAWN_PIXELS) > 100
    expect(page.locator(".uplot .u-legend")).to_contain_text("Z-0")

    # A narrower window redraws the chart from the server, bucketed again.
    page.get_by_label("Window").select_option("1h")
    expect(page.locator("#metrics")).to_contain_text("One point per 6 s")
    expect(page.locator("figure.metric .chart canvas").first).to_be_visible()

    log = page.locator("#payload-log")
    expect(log).to_contain_text("6 messages")
    log.locator("summary").first.click()
    expect(log.locator("pre").first).to_contain_text('"count": 14')


def test_a_snapshot_shows_pending_then_both_images(
    page: Page, live: LiveApi, account: Account, admin: ApiUser
) -> None:
    device = admin.device(name="camera")
    device.keepalive()
    log_in(page, live.base_url, account)
    page.goto(f"{live.base_url}/console/devices/{device.uuid}")
    expect(page.locator("#snapshot")).to_contain_text("No snapshot yet.")
    answering = device.answer_capture(delay=1.5)
    page.get_by_role("button", name="Take a snapshot").click()
    expect(page.locator("#snapshot .status")).to_have_text("Pending")
    expect(page.locator("#snapshot .status")).to_have_text("Ready", timeout=WAIT_MS)
    answering.join(timeout=30)
    for name in ("Raw snapshot", "Annotated snapshot"):
        image = page.get_by_role("img", name=name)
        expect(image).to_be_visible()
        assert image.evaluate("img => img.complete && img.naturalWidth") > 0
    expect(page.locator("#snapshot")).to_contain_text("links expire")


def test_onboarding_shows_the_token_once_and_rotating_replaces_it(
    page: Page, live: LiveApi, account: Account, admin: ApiUser
) -> None:
    log_in(page, live.base_url, account)
    page.get_by_role("link", name="Onboard").click()
    page.get_by_label("Name").fill("gate-7")
    page.get_by_label("App type").select_option("VCB")
    page.get_by_label("City").fill("Lyon")
    page.get_by_role("button", name="Onboard").click()
    token = page.locator("#device-token").inner_text().strip()
    assert token.startswith("vsd_")
    expect(page.locator("#snippet-http")).to_contain_text(f"Bearer {token}")
    expect(page.locator("#snippet-mqtt")).to_contain_text("/keepalive")
    page.get_by_role("link", name="Open the device").click()
    expect(page.get_by_role("heading", name="gate-7")).to_be_visible()
    assert token not in page.content()  # shown once, on the onboarding answer only

    keepalive = f"{live.base_url}/device/v1/keepalive"
    assert httpx.post(keepalive, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Rotate credentials").click()
    new_token = page.locator("#device-token").inner_text().strip()
    assert new_token.startswith("vsd_") and new_token != token
    assert httpx.post(keepalive, headers={"Authorization": f"Bearer {token}"}).status_code == 401
    fresh = httpx.post(keepalive, headers={"Authorization": f"Bearer {new_token}"})
    assert fresh.status_code == 200
