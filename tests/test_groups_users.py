"""Groups and users: admin writes, visibility, conflicts, the last admin."""

from __future__ import annotations

from tests.factories import PASSWORD, Api, login


async def test_group_crud(api: Api) -> None:
    admin = await api.organization()
    group = await admin.group("Docks", keepalive_interval=120)
    assert group["keepalive_interval"] == 120 and group["device_count"] == 0
    await admin.device(group="Docks")
    fetched = (await admin.get(f"/api/v1/groups/{group['id']}")).json()
    assert fetched["device_count"] == 1
    renamed = await admin.put(f"/api/v1/groups/{group['id']}", json={"name": "Yard"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Yard"
    listing = (await admin.get("/api/v1/groups")).json()
    assert [g["name"] for g in listing["data"]] == ["Yard"] and listing["meta"]["total"] == 1
    assert (await admin.delete(f"/api/v1/groups/{group['id']}")).status_code == 204
    devices = (await admin.get("/api/v1/devices")).json()["data"]
    assert devices[0]["group"] is None  # the device stays, without a group


async def test_group_names_are_unique_per_organization(api: Api) -> None:
    admin = await api.organization()
    first = await admin.group("Same")
    response = await admin.post("/api/v1/groups", json={"name": "Same"})
    assert response.status_code == 409 and response.json()["code"] == 4009
    other = await admin.group("Other")
    clash = await admin.put(f"/api/v1/groups/{other['id']}", json={"name": "Same"})
    assert clash.status_code == 409
    assert first["id"] != other["id"]
    elsewhere = await api.organization()
    assert (await elsewhere.post("/api/v1/groups", json={"name": "Same"})).status_code == 201


async def test_group_name_none_is_reserved(api: Api) -> None:
    admin = await api.organization()
    response = await admin.post("/api/v1/groups", json={"name": "None"})
    assert response.status_code == 422


async def test_standard_user_sees_only_their_groups_and_cannot_change_them(api: Api) -> None:
    admin = await api.organization()
    mine = await admin.group("Mine")
    theirs = await admin.group("Theirs")
    user = await admin.user(groups=["Mine"])
    listing = (await user.get("/api/v1/groups")).json()
    assert [g["id"] for g in listing["data"]] == [mine["id"]]
    assert (await user.get(f"/api/v1/groups/{theirs['id']}")).status_code == 404
    assert (await user.post("/api/v1/groups", json={"name": "x"})).status_code == 403
    assert (await user.put(f"/api/v1/groups/{mine['id']}", json={"name": "x"})).status_code == 403
    assert (await user.delete(f"/api/v1/groups/{mine['id']}")).status_code == 403


async def test_user_crud(api: Api) -> None:
    admin = await api.organization()
    group = await admin.group("Ops")
    response = await admin.post(
        "/api/v1/users",
        json={
            "email": "Bob@Example.com",
            "name": "Bob",
            "password": PASSWORD,
            "role": "standard",
            "groups": ["Ops"],
        },
    )
    assert response.status_code == 201
    bob = response.json()
    assert bob["groups"] == [{"id": group["id"], "name": "Ops"}] and bob["role"] == "standard"
    assert "password" not in bob and "password_hash" not in bob
    updated = await admin.put(f"/api/v1/users/{bob['id']}", json={"name": "Robert", "groups": []})
    assert updated.json()["name"] == "Robert" and updated.json()["groups"] == []
    new_password = "another long password"
    await admin.put(f"/api/v1/users/{bob['id']}", json={"password": new_password})
    assert (await login(api.client, "bob@example.com", new_password, "")).token
    listing = (await admin.get("/api/v1/users")).json()
    assert listing["meta"]["total"] == 2
    assert (await admin.delete(f"/api/v1/users/{bob['id']}")).status_code == 204
    assert (await admin.get(f"/api/v1/users/{bob['id']}")).status_code == 404


async def test_user_input_is_validated(api: Api) -> None:
    admin = await api.organization()
    cases = [
        {"email": "not-an-email", "password": PASSWORD},
        {"email": "a@example.com", "password": "short"},
        {"email": "a@example.com", "password": PASSWORD, "role": "owner"},
        {"email": "a@example.com", "password": PASSWORD, "groups": ["missing"]},
    ]
    for body in cases:
        response = await admin.post("/api/v1/users", json=body)
        assert response.status_code == 422, body
        assert response.json()["error"], body


async def test_duplicate_email_is_409_across_organizations(api: Api) -> None:
    admin = await api.organization()
    other = await api.organization()
    response = await admin.post("/api/v1/users", json={"email": other.email, "password": PASSWORD})
    assert response.status_code == 409


async def test_the_last_admin_cannot_be_demoted_and_nobody_deletes_themselves(api: Api) -> None:
    admin = await api.organization()
    response = await admin.put(f"/api/v1/users/{admin.user_id}", json={"role": "standard"})
    assert response.status_code == 409
    assert (await admin.delete(f"/api/v1/users/{admin.user_id}")).status_code == 409


async def test_users_are_admin_only_and_organization_scoped(api: Api) -> None:
    admin = await api.organization()
    user = await admin.user()
    assert (await user.get("/api/v1/users")).status_code == 403
    assert (
        await user.post("/api/v1/users", json={"email": "x@y.io", "password": PASSWORD})
    ).status_code == 403
    other = await api.organization()
    assert (await other.get(f"/api/v1/users/{user.user_id}")).status_code == 404
    assert (await other.put(f"/api/v1/users/{user.user_id}", json={"name": "x"})).status_code == 404
    assert (await other.delete(f"/api/v1/users/{user.user_id}")).status_code == 404


async def test_deleting_a_user_ends_their_sessions(api: Api) -> None:
    admin = await api.organization()
    user = await admin.user()
    assert (await admin.delete(f"/api/v1/users/{user.user_id}")).status_code == 204
    assert (await user.get("/api/v1/me")).status_code == 401


async def test_a_missing_permission_is_answered_before_a_bad_page(api: Api) -> None:
    admin = await api.organization()
    webhooks_only = api.as_token(await admin.personal_token(["webhooks:read"]))
    for path, scope in (
        ("/api/v1/groups?page=0", "devices:read"),
        ("/api/v1/users?page=x", "users:read"),
    ):
        response = await webhooks_only.get(path)
        assert response.status_code == 403 and scope in response.json()["message"]
    for path in ("/api/v1/groups?page=0", "/api/v1/users?per_page=501"):
        response = await admin.get(path)
        assert response.status_code == 400 and response.json()["message"].startswith("`")
