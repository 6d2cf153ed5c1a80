"""Logging in and out of the console, its session cookies, and CSRF."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.client.live_api import Account, LiveApi
from tests.console.helpers import ApiUser, log_in

pytestmark = pytest.mark.browser


def test_the_root_leads_to_the_login_page_and_back_after_logging_in(
    page: Page, live: LiveApi, account: Account
) -> None:
    page.goto(live.base_url + "/")
    expect(page).to_have_url(f"{live.base_url}/console/login?next=%2Fconsole%2F")
    page.get_by_label("Email").fill(account.email)
    page.get_by_label("Password").fill(account.password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Fleet")).to_be_visible()
    expect(page).to_have_url(f"{live.base_url}/console/")


def test_a_wrong_password_is_refused_on_the_form(
    page: Page, live: LiveApi, account: Account
) -> None:
    page.goto(live.base_url + "/console/login")
    page.get_by_label("Email").fill(account.email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("The email or password is wrong.")
    assert page.context.cookies() and all(
        c["name"] != "vsense_session" for c in page.context.cookies()
    )


def test_the_session_cookies_are_http_only_and_logout_revokes_the_session(
    page: Page, live: LiveApi, account: Account
) -> None:
    log_in(page, live.base_url, account)
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["vsense_session"]
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    assert cookies["vsense_refresh"]["httpOnly"]
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    # The old cookies open nothing any more: the session's family is revoked, and its
    # access token is refused by the API too.
    old = {"vsense_session": session["value"], "vsense_refresh": cookies["vsense_refresh"]["value"]}
    answer = httpx.get(f"{live.base_url}/console/", cookies=old, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/console/login")
    api = httpx.get(
        f"{live.base_url}/api/v1/me",
        headers={"Authorization": f"Bearer {session['value']}"},
    )
    assert api.status_code == 401


def test_a_state_changing_request_without_the_csrf_token_is_refused(
    page: Page, live: LiveApi, account: Account, admin: ApiUser
) -> None:
    device = admin.device(name="Before")
    log_in(page, live.base_url, account)
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    url = f"{live.base_url}/console/devices/{device.uuid}"
    forged = httpx.post(url, data={"name": "Forged"}, cookies=cookies)
    assert forged.status_code == 403
    assert "CSRF" in forged.text
    wrong = httpx.post(url, data={"name": "Forged", "csrf_token": "0" * 64}, cookies=cookies)
    assert wrong.status_code == 403
    assert admin.call("GET", f"/devices/{device.uuid}")["name"] == "Before"
    # The page's own form carries the token and goes through.
    page.goto(url)
    page.get_by_label("Name", exact=True).fill("After")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Saved.")
    assert admin.call("GET", f"/devices/{device.uuid}")["name"] == "After"
