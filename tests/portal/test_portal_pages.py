"""The webhook portal over HTTP: what a link opens, and everything it does not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from tests.factories import Api, Caller
from tests.portal.helpers import Visitor, link_path, portal_link
from tests.receiver import Receiver, running_receiver
from tests.webhooks.helpers import hook
from vsense.components import Components
from vsense.config import Settings
from vsense.db import session_scope
from vsense.kit.time import utcnow
from vsense.models import PortalLink
from vsense.webhooks.dispatcher import close_sender

CLOSED = "This link has expired or was revoked"


@pytest.fixture
async def state(database_settings: Settings, shared_engine: Any) -> AsyncIterator[Components]:
    """State whose webhooks may target the loopback receiver."""
    settings = database_settings.model_copy(update={"webhook_allow_private": True})
    state = Components.for_server(settings, shared_engine)
    yield state
    await close_sender(state)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as running:
        yield running


@pytest.fixture
async def visitor(api: Api) -> AsyncIterator[Visitor]:
    browser = Visitor.over(api.client)
    yield browser
    await browser.close()


async def webhooks_of(admin: Caller, device: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """A device's webhooks by id, as the API lists them."""
    listed = await admin.get("/api/v1/webhooks", params={"device_uuid": device["uuid"]})
    assert listed.status_code == 200, listed.text
    return {w["id"]: w for w in listed.json()["data"]}


class Fleet:
    """An organization with two groups, a device and a webhook in each."""

    def __init__(self, admin: Caller) -> None:
        self.admin = admin

    async def build(self, receiver: Receiver) -> Fleet:
        self.ours = await self.admin.group("Acme sites")
        self.theirs = await self.admin.group("Other customer")
        self.device = await self.admin.device(name="Acme door", group=self.ours["id"])
        self.other_device = await self.admin.device(name="Other gate", group=self.theirs["id"])
        self.hook = await hook(self.admin, self.device["uuid"], receiver.on("/acme"))
        self.other_hook = await hook(self.admin, self.other_device["uuid"], receiver.on("/other"))
        self.link = await portal_link(self.admin, self.ours["id"])
        return self


@pytest.fixture
async def fleet(api: Api, receiver: Receiver) -> Fleet:
    return await Fleet(await api.organization()).build(receiver)


async def test_a_link_sets_the_portal_cookie_and_moves_on_to_the_portal(
    fleet: Fleet, visitor: Visitor
) -> None:
    opened = await visitor.http.get(link_path(fleet.link))
    assert opened.status_code == 200, opened.text
    cookie = opened.headers["set-cookie"]
    assert cookie.startswith("vsense_portal=vsp_")
    for attribute in ("HttpOnly", "Path=/portal", "SameSite=strict"):
        assert attribute.lower() in cookie.lower()
    assert 'http-equiv="refresh" content="0; url=/portal/"' in opened.text
    assert opened.headers["referrer-policy"] == "no-referrer"

    page = await visitor.page("/portal/")
    assert page.status_code == 200, page.text
    assert "Webhooks of Acme sites" in page.text


async def test_the_portal_shows_only_its_groups_webhooks_and_devices(
    fleet: Fleet, visitor: Visitor
) -> None:
    page = await visitor.open(fleet.link)
    assert page.status_code == 200
    assert f'data-webhook="{fleet.hook["id"]}"' in page.text
    assert fleet.hook["url"] in page.text
    assert "Acme door" in page.text
    assert f'data-webhook="{fleet.other_hook["id"]}"' not in page.text
    for elsewhere in (fleet.other_hook["url"], "Other gate", "Other customer", "/console/"):
        assert elsewhere not in page.text.replace("/console/static/", "")


async def test_a_webhook_of_another_group_answers_404(fleet: Fleet, visitor: Visitor) -> None:
    await visitor.open(fleet.link)
    other = f"/portal/webhooks/{fleet.other_hook['id']}"
    assert (await visitor.page(other)).status_code == 404
    assert (await visitor.page(f"{other}/deliveries")).status_code == 404
    edited = await visitor.post(other, {"url": "https://example.com/stolen"})
    assert edited.status_code == 404
    assert (await visitor.post(f"{other}/test")).status_code == 404
    assert (await visitor.post(f"{other}/rotate-secret")).status_code == 404
    assert (await visitor.post(f"{other}/delete")).status_code == 404

    kept = await webhooks_of(fleet.admin, fleet.other_device)
    assert kept[fleet.other_hook["id"]]["url"] == fleet.other_hook["url"]


async def test_a_webhook_for_a_device_of_another_group_is_refused(
    fleet: Fleet, visitor: Visitor, receiver: Receiver
) -> None:
    await visitor.open(fleet.link)
    refused = await visitor.post(
        "/portal/webhooks/new",
        {"device_uuid": fleet.other_device["uuid"], "url": receiver.on("/sneaky")},
    )
    assert refused.status_code == 404
    assert list(await webhooks_of(fleet.admin, fleet.other_device)) == [fleet.other_hook["id"]]


async def test_the_portal_creates_edits_and_deletes_a_webhook_of_its_group(
    fleet: Fleet, visitor: Visitor, receiver: Receiver
) -> None:
    await visitor.open(fleet.link)
    created = await visitor.post(
        "/portal/webhooks/new",
        {
            "device_uuid": fleet.device["uuid"],
            "url": receiver.on("/new"),
            "webhook_type": "payload",
            "headers": "X-Customer: acme",
        },
    )
    assert created.status_code == 200, created.text
    assert "whsec_" in created.text
    hooks = await webhooks_of(fleet.admin, fleet.device)
    (new,) = [w for w in hooks.values() if w["id"] != fleet.hook["id"]]
    assert new["data"]["headers"] == [{"name": "X-Customer", "value": "acme"}]

    edited = await visitor.post(
        f"/portal/webhooks/{new['id']}",
        {"url": receiver.on("/moved"), "webhook_type": "payload", "active": "off"},
    )
    assert edited.status_code == 303
    changed = (await webhooks_of(fleet.admin, fleet.device))[new["id"]]
    assert changed["url"] == receiver.at("/moved")
    assert changed["status"] == 0

    deleted = await visitor.post(f"/portal/webhooks/{new['id']}/delete")
    assert deleted.status_code == 303
    assert new["id"] not in await webhooks_of(fleet.admin, fleet.device)


async def test_the_apis_webhook_rules_apply_in_the_portal(fleet: Fleet, visitor: Visitor) -> None:
    await visitor.open(fleet.link)
    refused = await visitor.post(
        "/portal/webhooks/new",
        {"device_uuid": fleet.device["uuid"], "url": "http://169.254.169.254/latest"},
    )
    assert refused.status_code == 422
    assert "The webhook is invalid." in refused.text


async def test_test_sends_and_the_attempt_is_in_the_delivery_log(
    fleet: Fleet, visitor: Visitor, receiver: Receiver
) -> None:
    await visitor.open(fleet.link)
    tested = await visitor.post(f"/portal/webhooks/{fleet.hook['id']}/test")
    assert tested.status_code == 200, tested.text
    assert "Succeeded" in tested.text
    assert len(receiver.to("/acme")) == 1
    log = await visitor.page(f"/portal/webhooks/{fleet.hook['id']}/deliveries")
    assert log.status_code == 200
    assert 'table class="attempts"' in log.text
    assert f'hx-post="/portal/webhooks/{fleet.hook["id"]}/deliveries/' in log.text


async def test_a_state_changing_request_without_the_csrf_token_is_refused(
    fleet: Fleet, visitor: Visitor
) -> None:
    await visitor.open(fleet.link)
    target = f"/portal/webhooks/{fleet.hook['id']}/delete"
    missing = await visitor.http.post(target)
    assert missing.status_code == 403
    wrong = await visitor.http.post(target, data={"csrf_token": "0" * 64})
    assert wrong.status_code == 403
    assert fleet.hook["id"] in await webhooks_of(fleet.admin, fleet.device)


async def _expire(state: Components, link_id: int) -> None:
    async with session_scope(state.sessionmaker) as session:
        await session.execute(
            update(PortalLink)
            .where(PortalLink.id == link_id)
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )


async def test_an_expired_link_and_its_cookie_show_the_expired_page(
    fleet: Fleet, visitor: Visitor, state: Components
) -> None:
    assert (await visitor.open(fleet.link)).status_code == 200
    await _expire(state, fleet.link["id"])

    page = await visitor.page("/portal/")
    assert page.status_code == 403
    assert CLOSED in page.text
    assert fleet.hook["url"] not in page.text
    assert 'vsense_portal=""' in page.headers["set-cookie"]
    reopened = await visitor.http.get(link_path(fleet.link))
    assert reopened.status_code == 403
    assert CLOSED in reopened.text
    assert "set-cookie" not in reopened.headers or "vsp_" not in reopened.headers["set-cookie"]


async def test_a_revoked_link_and_its_cookie_show_the_expired_page(
    fleet: Fleet, visitor: Visitor
) -> None:
    assert (await visitor.open(fleet.link)).status_code == 200
    token = visitor.http.cookies["vsense_portal"]
    assert token.startswith("vsp_")
    revoked = await fleet.admin.delete(f"/api/v1/portal-links/{fleet.link['id']}")
    assert revoked.status_code == 204

    page = await visitor.http.get("/portal/")
    assert page.status_code == 403
    assert CLOSED in page.text
    assert "vsense_portal" not in visitor.http.cookies
    later = Visitor.over(visitor.http)
    later.http.cookies.set("vsense_portal", token, path="/portal")
    hook_page = await later.http.get(f"/portal/webhooks/{fleet.hook['id']}")
    await later.close()
    assert hook_page.status_code == 403
    assert (await visitor.http.get(link_path(fleet.link))).status_code == 403


async def test_a_mistyped_portal_address_is_not_found_and_keeps_the_session(
    fleet: Fleet, visitor: Visitor
) -> None:
    await visitor.open(fleet.link)
    assert (await visitor.http.get("/portal/webhooks")).status_code == 404
    assert (await visitor.page("/portal/")).status_code == 200


async def test_without_a_cookie_the_portal_asks_for_the_link(visitor: Visitor) -> None:
    page = await visitor.http.get("/portal/")
    assert page.status_code == 403
    assert "Open the portal link you were given" in page.text
