"""The alerts pages in Chromium: acknowledge a firing alert with a note; create,
edit and disable a rule."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.client.live_api import Account, LiveApi
from tests.console.helpers import WAIT_MS, ApiUser, log_in

pytestmark = pytest.mark.browser


def test_acknowledge_a_firing_alert_with_a_note(
    page: Page, live: LiveApi, account: Account, admin: ApiUser
) -> None:
    device = admin.device(name="hall", app_type="VCZ")
    admin.call(
        "POST",
        "/alert-rules",
        201,
        json={
            "name": "crowded hall",
            "device_uuid": device.uuid,
            "metric": "count",
            "rule": "GREATER_THAN",
            "trigger_value": 10,
            "clearing_value": 5,
            "severity": "critical",
        },
    )
    device.send(25)
    (alert,) = admin.call("GET", "/alerts", params={"state": "firing"})["data"]

    log_in(page, live.base_url, account)
    page.get_by_role("link", name="Alerts", exact=True).click()
    row = page.locator("#firing tr[data-alert]", has_text="crowded hall")
    expect(row).to_contain_text("Firing")
    expect(row).to_contain_text("critical")
    row.get_by_label("Note").fill("Doors opened, staff on site")
    row.get_by_role("button", name="Acknowledge").click()
    expect(row.locator(".acked")).to_contain_text("Doors opened, staff on site", timeout=WAIT_MS)
    expect(row.locator(".acked")).to_contain_text(f"Acknowledged by {account.email}")

    acked = admin.call("GET", f"/alerts/{alert['uuid']}")
    assert acked["ack_note"] == "Doors opened, staff on site"
    assert acked["acknowledged_by"] == account.email

    page.get_by_label("State").select_option("firing")
    page.get_by_label("Severity").select_option("critical")
    page.get_by_role("button", name="Apply").click()
    history = page.locator("table.alerts").nth(1)
    expect(history.locator("tr[data-alert]")).to_have_count(1)
    page.get_by_label("Severity").select_option("info")
    page.get_by_role("button", name="Apply").click()
    expect(history.locator("tr[data-alert]")).to_have_count(0)


def test_create_edit_and_disable_a_rule(
    page: Page, live: LiveApi, account: Account, admin: ApiUser
) -> None:
    log_in(page, live.base_url, account)
    page.goto(f"{live.base_url}/console/alerts/rules")
    page.get_by_label("Name", exact=True).fill("quiet lobby")
    page.get_by_label("Condition").select_option("LESS_THAN")
    page.get_by_label("Metric").select_option("count")
    page.get_by_label("Trigger value").fill("2")
    page.get_by_label("Clearing value").fill("4")
    page.get_by_label("App type").select_option("VCZ")
    page.get_by_role("button", name="Create rule").click()
    expect(page.get_by_role("heading", name="Rule: quiet lobby")).to_contain_text("Enabled")

    page.get_by_label("Trigger value").fill("3.5")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_label("Trigger value")).to_have_value("3.5")

    page.goto(f"{live.base_url}/console/alerts/rules")
    page.get_by_role("button", name="Disable quiet lobby").click()
    expect(page.get_by_role("button", name="Enable quiet lobby")).to_be_visible(timeout=WAIT_MS)
    (rule,) = admin.call("GET", "/alert-rules")["data"]
    assert rule["enabled"] is False and rule["trigger_value"] == 3.5
