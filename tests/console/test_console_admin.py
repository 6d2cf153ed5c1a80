"""Administration in Chromium: a group with its keepalive interval, a user with a role
and groups, a personal access token shown once and revoked."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.client.live_api import Account, LiveApi
from tests.console.helpers import ApiUser, log_in
from tests.factories import PASSWORD, unique

pytestmark = pytest.mark.browser


def test_groups_users_and_tokens(
    page: Page, live: LiveApi, account: Account, admin: ApiUser
) -> None:
    log_in(page, live.base_url, account)
    page.get_by_role("link", name="Administration").click()
    group = unique("depot")
    page.get_by_label("New group's name").fill(group)
    page.get_by_label("New group's keepalive (s)").fill("120")
    page.get_by_role("button", name="Create group").click()
    row = page.locator("tr[data-group]", has_text=group)
    expect(row.get_by_label(f"Keepalive of {group} (s)")).to_have_value("120")
    row.get_by_label(f"Keepalive of {group} (s)").fill("300")
    row.get_by_role("button", name="Save").click()
    expect(page.locator("#flash")).to_contain_text("keepalive interval 300 s")

    email = f"{unique('clerk')}@example.com"
    page.get_by_label("New user's email").fill(email)
    page.get_by_label("New user's password").fill(PASSWORD)
    page.get_by_label("New user's role").select_option("standard")
    page.get_by_role("group", name="New user's groups").get_by_label(group).check()
    page.get_by_role("button", name="Create user").click()
    expect(page.locator("tr[data-user]", has_text=email)).to_be_visible()
    (created,) = [u for u in admin.call("GET", "/users")["data"] if u["email"] == email]
    assert created["role"] == "standard"
    assert [g["name"] for g in created["groups"]] == [group]
    groups = admin.call("GET", "/groups")["data"]
    assert [g["keepalive_interval"] for g in groups if g["name"] == group] == [300]

    page.get_by_label("Token name").fill("ci")
    page.get_by_role("group", name="Permissions").get_by_label("devices:read").check()
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#personal-token").inner_text().strip()
    assert token.startswith("vst_")
    me = httpx.get(f"{live.base_url}/api/v1/devices", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    page.get_by_role("link", name="Done").click()
    expect(page.locator("tr[data-token]", has_text="ci")).to_be_visible()
    assert token not in page.content()
    page.get_by_role("button", name="Revoke ci").click()
    expect(page.locator("tr[data-token]")).to_have_count(0)
    gone = httpx.get(
        f"{live.base_url}/api/v1/devices", headers={"Authorization": f"Bearer {token}"}
    )
    assert gone.status_code == 401
