"""The integrator API of portal links: admins create, list and revoke them."""

from __future__ import annotations

from datetime import datetime

from tests.factories import Api


async def test_an_admin_creates_lists_and_revokes_a_link(api: Api) -> None:
    admin = await api.organization()
    group = await admin.group()
    created = await admin.post(
        "/api/v1/portal-links",
        json={"group_id": group["id"], "label": "Acme Corp", "expires_in_hours": 48},
    )
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    link = created.json()
    assert link["url"].startswith("http://testserver/portal/vsp_")
    assert (link["group_id"], link["group_name"], link["label"]) == (
        group["id"],
        group["name"],
        "Acme Corp",
    )
    assert (link["state"], link["revoked_at"], link["created_by"]) == (
        "active",
        None,
        admin.user_id,
    )

    listed = (await admin.get("/api/v1/portal-links")).json()
    assert [entry["id"] for entry in listed["data"]] == [link["id"]]
    assert "url" not in listed["data"][0]
    assert listed["meta"]["total"] == 1

    assert (await admin.delete(f"/api/v1/portal-links/{link['id']}")).status_code == 204
    (revoked,) = (await admin.get("/api/v1/portal-links")).json()["data"]
    assert revoked["state"] == "revoked"
    assert revoked["revoked_at"] is not None


async def test_a_link_lasts_seven_days_when_no_lifetime_is_given(api: Api) -> None:
    admin = await api.organization()
    group = await admin.group()
    response = await admin.post(
        "/api/v1/portal-links", json={"group_id": group["id"], "label": "Acme"}
    )
    assert response.status_code == 201, response.text
    link = response.json()
    created = datetime.fromisoformat(link["created"])
    expires = datetime.fromisoformat(link["expires_at"])
    assert round((expires - created).total_seconds() / 3600) == 7 * 24


async def test_a_standard_user_is_refused(api: Api) -> None:
    admin = await api.organization()
    group = await admin.group()
    standard = await admin.user(groups=[group["id"]])
    refused = await standard.post(
        "/api/v1/portal-links", json={"group_id": group["id"], "label": "Acme"}
    )
    assert refused.status_code == 403, refused.text
    assert refused.json()["httpError"] == 403
    assert refused.json()["code"] == 4003
    assert (await standard.get("/api/v1/portal-links")).status_code == 403
    link = (
        await admin.post("/api/v1/portal-links", json={"group_id": group["id"], "label": "Acme"})
    ).json()
    assert (await standard.delete(f"/api/v1/portal-links/{link['id']}")).status_code == 403


async def test_a_group_of_another_organization_is_refused(api: Api) -> None:
    admin, other = await api.organization(), await api.organization()
    foreign = await other.group()
    refused = await admin.post(
        "/api/v1/portal-links", json={"group_id": foreign["id"], "label": "Acme"}
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"][0]["field"] == "group_id"


async def test_a_link_of_another_organization_cannot_be_revoked_or_listed(api: Api) -> None:
    admin, other = await api.organization(), await api.organization()
    group = await other.group()
    link = (
        await other.post("/api/v1/portal-links", json={"group_id": group["id"], "label": "A"})
    ).json()
    assert (await admin.delete(f"/api/v1/portal-links/{link['id']}")).status_code == 404
    assert (await admin.get("/api/v1/portal-links")).json()["data"] == []


async def test_a_lifetime_outside_one_hour_to_thirty_days_is_refused(api: Api) -> None:
    admin = await api.organization()
    group = await admin.group()
    for hours in (0, 30 * 24 + 1):
        refused = await admin.post(
            "/api/v1/portal-links",
            json={"group_id": group["id"], "label": "Acme", "expires_in_hours": hours},
        )
        assert refused.status_code == 422, refused.text
        assert [e["field"] for e in refused.json()["error"]] == ["expires_in_hours"]
    for hours in (1, 30 * 24):
        accepted = await admin.post(
            "/api/v1/portal-links",
            json={"group_id": group["id"], "label": "Acme", "expires_in_hours": hours},
        )
        assert accepted.status_code == 201, accepted.text


async def test_a_blank_label_is_refused(api: Api) -> None:
    admin = await api.organization()
    group = await admin.group()
    refused = await admin.post(
        "/api/v1/portal-links", json={"group_id": group["id"], "label": "   "}
    )
    assert refused.status_code == 422, refused.text
    assert [e["field"] for e in refused.json()["error"]] == ["label"]
