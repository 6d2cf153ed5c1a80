"""The webhooks pages in Chromium: create a webhook, Test it, see the attempt in the
log, and its health on the list."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.client.live_api import Account, LiveApi
from tests.console.helpers import WAIT_MS, ApiUser, log_in, receiver_in_thread

pytestmark = pytest.mark.browser


def test_create_a_webhook_test_it_and_see_the_attempt_in_the_log(
    page: Page, live: LiveApi, account: Account, admin: ApiUser
) -> None:
    device = admin.device(name="door")
    with receiver_in_thread() as receiver:
        url = receiver.on("/hook", 200)
        log_in(page, live.base_url, account)
        page.goto(f"{live.base_url}/console/devices/{device.uuid}")
        page.get_by_role("link", name="Add a webhook").click()
        expect(page.get_by_label("Device UUID")).to_have_value(device.uuid)
        page.get_by_label("URL").fill(url)
        page.get_by_label("Type", exact=True).select_option("payload")
        page.get_by_label("Headers", exact=False).fill("X-Customer: acme")
        page.get_by_label("Query parameters").fill("site=7")
        page.get_by_role("button", name="Create").click()

        secret = page.locator("#webhook-secret").inner_text().strip()
        assert secret.startswith("whsec_")
        expect(page.locator("#deliveries")).to_contain_text("No delivery yet.")
        page.get_by_role("button", name="Test").click()
        result = page.locator(".test-result")
        expect(result).to_contain_text("Succeeded", timeout=WAIT_MS)
        expect(result).to_contain_text("HTTP 200")
        expect(result).to_contain_text("answer 200")

        delivery = page.locator("#deliveries li[data-delivery]").first
        expect(delivery).to_contain_text("test", timeout=WAIT_MS)
        expect(delivery.locator(".status")).to_have_text("Succeeded")
        expect(delivery.locator("table.attempts tbody tr")).to_have_count(1)
        expect(delivery.locator("table.attempts")).to_contain_text("200")

        (sent,) = receiver.to("/hook")
        assert sent.headers["x-customer"] == "acme"
        assert ("site", "7") in sent.query
        assert sent.headers["webhook-signature"].startswith("v1,")

    page.get_by_role("link", name="Webhooks", exact=True).click()
    row = page.locator("tr[data-webhook]", has_text=url)
    expect(row).to_contain_text("Active")
    expect(row).to_contain_text("0% of 1")
    expect(row).to_contain_text("Closed")


def test_a_failing_webhook_shows_its_failures_and_redelivers(
    page: Page, live: LiveApi, account: Account, admin: ApiUser
) -> None:
    device = admin.device(name="gate")
    with receiver_in_thread() as receiver:
        url = receiver.on("/down", 503, 200)
        hook = admin.call("POST", "/webhooks", 201, json={"device_uuid": device.uuid, "url": url})[
            "data"
        ]
        log_in(page, live.base_url, account)
        page.goto(f"{live.base_url}/console/webhooks/{hook['id']}")
        page.get_by_role("button", name="Test").click()
        expect(page.locator(".test-result")).to_contain_text("HTTP 503", timeout=WAIT_MS)
        first = page.locator("#deliveries li[data-delivery]").first
        expect(first.locator("table.attempts")).to_contain_text("503", timeout=WAIT_MS)
        delivery_id = first.get_attribute("data-delivery")
        page.get_by_role("button", name=f"Redeliver #{delivery_id}").click()
        expect(page.locator("#flash")).to_contain_text("Queued again")
        assert len(receiver.to("/down")) >= 1
