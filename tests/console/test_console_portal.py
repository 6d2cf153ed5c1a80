"""Portal links in Chromium: an admin makes one in Administration; the customer who opens
it sees only the group's webhooks, creates one, tests it, and is shut out once the link
expires."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import update

from tests.client.live_api import Account, LiveApi, run_async
from tests.console.helpers import WAIT_MS, ApiUser, log_in, receiver_in_thread
from tests.factories import unique
from vsense.config import Settings
from vsense.db import create_engine, create_sessionmaker, session_scope
from vsense.kit.time import utcnow
from vsense.models import PortalLink

pytestmark = pytest.mark.browser


async def _expire(settings: Settings, link_id: int) -> None:
    engine = create_engine(settings)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            await session.execute(
                update(PortalLink)
                .where(PortalLink.id == link_id)
                .values(expires_at=utcnow() - timedelta(minutes=1))
            )
    finally:
        await engine.dispose()


def test_a_portal_link_sees_only_its_group_and_expires(
    page: Page, live: LiveApi, admin: ApiUser
) -> None:
    ours, theirs = admin.group(unique("Acme sites")), admin.group(unique("Other customer"))
    door = admin.device(name="Acme door", group=ours["id"])
    gate = admin.device(name="Other gate", group=theirs["id"])
    with receiver_in_thread() as receiver:
        kept = receiver.on("/acme-existing", 200)
        hidden = receiver.on("/other", 200)
        admin.call("POST", "/webhooks", 201, json={"device_uuid": door.uuid, "url": kept})
        admin.call("POST", "/webhooks", 201, json={"device_uuid": gate.uuid, "url": hidden})
        link = admin.call(
            "POST", "/portal-links", 201, json={"group_id": ours["id"], "label": "Acme"}
        )

        page.goto(link["url"])
        page.wait_for_url(f"{live.base_url}/portal/")
        expect(page.get_by_role("heading", level=1)).to_have_text(f"Webhooks of {ours['name']}")
        rows = page.locator("tr[data-webhook]")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text(kept)
        assert hidden not in page.content()
        assert "Other gate" not in page.content()
        expect(page.get_by_role("link", name="Administration")).to_have_count(0)

        created = receiver.on("/acme-new", 200)
        page.get_by_label("Device", exact=True).select_option(door.uuid)
        page.get_by_label("URL").fill(created)
        page.get_by_role("button", name="Create").click()
        expect(page.locator("#webhook-secret")).to_contain_text("whsec_")
        page.get_by_role("button", name="Test").click()
        result = page.locator(".test-result")
        expect(result).to_contain_text("Succeeded", timeout=WAIT_MS)
        expect(result).to_contain_text("HTTP 200")
        delivery = page.locator("#deliveries li[data-delivery]").first
        expect(delivery).to_contain_text("test", timeout=WAIT_MS)
        expect(delivery.locator("table.attempts tbody tr")).to_have_count(1)
        assert len(receiver.to("/acme-new")) == 1

    page.get_by_role("link", name=f"Webhooks of {ours['name']}").click()
    expect(page.locator("tr[data-webhook]")).to_have_count(2)
    page.get_by_role("link", name=f"payload → {created}").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete webhook").click()
    page.wait_for_url(f"{live.base_url}/portal/")
    expect(page.locator("tr[data-webhook]")).to_have_count(1)

    run_async(_expire(live.settings, link["id"]))
    page.reload()
    expect(page.get_by_text("This link has expired or was revoked")).to_be_visible()
    expect(page.locator("tr[data-webhook]")).to_have_count(0)
    page.goto(link["url"])
    expect(page.get_by_text("This link has expired or was revoked")).to_be_visible()


def test_a_portal_link_followed_from_another_site_opens_the_portal(
    page: Page, live: LiveApi, admin: ApiUser
) -> None:
    """As from a mail: the SameSite=Strict cookie is set on a navigation another site
    started, and the portal still opens (a redirect would lose the cookie)."""
    group = admin.group(unique("Acme sites"))
    link = admin.call("POST", "/portal-links", 201, json={"group_id": group["id"], "label": "A"})
    page.route(
        "http://mail.example/",
        lambda route: route.fulfill(
            body=f'<a id="link" href="{link["url"]}">Your webhook portal</a>',
            content_type="text/html",
        ),
    )
    page.goto("http://mail.example/")
    page.get_by_role("link", name="Your webhook portal").click()
    page.wait_for_url(f"{live.base_url}/portal/")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Webhooks of {group['name']}")


def test_an_admin_creates_and_revokes_a_portal_link_in_administration(
    page: Page, live: LiveApi, account: Account, admin: ApiUser
) -> None:
    group = admin.group(unique("depot"))
    log_in(page, live.base_url, account)
    page.get_by_role("link", name="Administration").click()
    page.get_by_label("Portal group").select_option(label=group["name"])
    page.get_by_label("Portal label (whom it is for)").fill("Acme Corp")
    page.get_by_label("Portal lifetime").select_option("24")
    page.get_by_role("button", name="Create portal link").click()
    url = page.locator("#portal-link-url").inner_text().strip()
    assert url.startswith(f"{live.base_url}/portal/vsp_")
    row = page.locator("tr[data-portal-link]", has_text="Acme Corp")
    expect(row).to_contain_text("Active")
    expect(row).to_contain_text(group["name"])

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revoke Acme Corp").click()
    expect(page.locator("#flash")).to_contain_text("Portal link Acme Corp revoked.")
    expect(row).to_contain_text("Revoked")

    visitor = page.context.browser.new_context()  # type: ignore[union-attr]
    try:
        tab = visitor.new_page()
        response = tab.goto(url)
        assert response is not None and response.status == 403
        expect(tab.get_by_text("This link has expired or was revoked")).to_be_visible()
    finally:
        visitor.close()
