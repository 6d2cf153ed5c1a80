"""The fleet page in Chromium: counts, search, filters, sorting, paging, live status,
and what a standard user may see."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.client.live_api import Account, LiveApi
from tests.console.helpers import WAIT_MS, ApiUser, log_in
from tests.factories import unique

pytestmark = pytest.mark.browser


def names_in_table(page: Page) -> list[str]:
    return page.locator("table.devices tbody tr td:first-child a").all_inner_texts()


def test_search_filters_sorting_and_paging(
    page: Page, live: LiveApi, account: Account, admin: ApiUser
) -> None:
    north, south = admin.group("North"), admin.group("South")
    for i in range(27):
        admin.device(name=f"cam-{i:02d}", group=north["id"] if i % 3 == 0 else south["id"])
    online = admin.device(name="door-online", group=north["id"], geo_city="Aarhus")
    online.keepalive()
    log_in(page, live.base_url, account)

    expect(page.locator("[data-count=total]")).to_have_text("28")
    expect(page.locator("[data-count=online]")).to_have_text("1")
    expect(page.locator("[data-count=offline]")).to_have_text("27")
    assert names_in_table(page) == [f"cam-{i:02d}" for i in range(25)]

    page.get_by_role("link", name="Next").click()
    expect(page.locator("table.devices caption")).to_have_text("Devices 26 to 28 of 28")
    assert names_in_table(page) == ["cam-25", "cam-26", "door-online"]

    page.get_by_role("link", name="Name").click()  # sorted by name: again, descending
    expect(page.locator("th[aria-sort=descending]")).to_contain_text("Name")
    assert names_in_table(page)[:2] == ["door-online", "cam-26"]

    page.get_by_label("Status").select_option("online")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("table.devices tbody tr")).to_have_count(1)
    row = page.locator("table.devices tbody tr")
    expect(row.locator(".status")).to_have_text("Online")
    expect(row.locator(".status")).to_have_class(re.compile(r"\bonline\b"))
    expect(row).to_contain_text("Aarhus")
    expect(row.locator("time").first).to_have_text(
        re.compile(r"^(\d+ s|just now|1 min) ago$|^just now$")
    )

    page.get_by_label("Status").select_option("")
    page.get_by_label("Group").select_option(label="North")
    page.get_by_label("Search").fill("cam-1")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("table.devices caption")).to_contain_text("of 3")
    assert sorted(names_in_table(page)) == ["cam-12", "cam-15", "cam-18"]

    page.get_by_role("link", name="City").click()
    expect(page.locator("th[aria-sort=ascending]")).to_contain_text("City")
    page.get_by_role("link", name="Last seen").click()
    expect(page.locator("th[aria-sort=ascending]")).to_contain_text("Last seen")


@pytest.mark.slow
def test_a_device_that_stops_turns_offline_on_the_open_page(
    page: Page, live: LiveApi, account: Account, admin: ApiUser
) -> None:
    name = unique("stops")
    device = admin.device(name=name, keepalive_interval=10)
    device.keepalive()
    log_in(page, live.base_url, account)
    row = page.locator("tr", has_text=name)
    expect(row.locator(".status")).to_have_text("Online")
    url = page.url
    # The device sends nothing more: after 1.5 keepalive intervals the sweep marks it
    # offline, and the page's poll shows it without a reload.
    expect(row.locator(".status")).to_have_text("Offline", timeout=WAIT_MS)
    expect(row.locator(".status")).to_have_class(re.compile(r"\boffline\b"))
    expect(page.locator("[data-count=offline]")).to_have_text("1")
    assert page.url == url


def test_a_standard_user_sees_only_its_groups_devices(
    page: Page, live: LiveApi, admin: ApiUser
) -> None:
    ours, theirs = admin.group(), admin.group()
    mine = admin.device(name="ours-1", group=ours["id"])
    other = admin.device(name="theirs-1", group=theirs["id"])
    admin.device(name="no-group-1")
    standard = admin.user(role="standard", groups=[ours["id"]])
    log_in(page, live.base_url, standard)

    assert names_in_table(page) == ["ours-1"]
    expect(page.locator("[data-count=total]")).to_have_text("1")
    group_options = page.get_by_label("Group").locator("option").all_inner_texts()
    assert theirs["name"] not in group_options

    page.goto(f"{live.base_url}/console/devices/{mine.uuid}")
    expect(page.get_by_role("heading", name="ours-1")).to_be_visible()
    # Typing the other device's address: not found, as the API answers.
    answer = page.goto(f"{live.base_url}/console/devices/{other.uuid}")
    assert answer is not None and answer.status == 404
    expect(page.get_by_role("alert")).to_contain_text("No such device.")
    expect(page.locator("body")).not_to_contain_text("theirs-1")
    for fragment in ("activity", "metrics", "payloads", "snapshot"):
        answer = page.goto(f"{live.base_url}/console/devices/{other.uuid}/{fragment}")
        assert answer is not None and answer.status == 404
