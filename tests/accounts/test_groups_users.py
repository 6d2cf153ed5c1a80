"""Groups and users: admin writes, visibility, conflicts, the last admin."""

from __future__ import annotations

import asyncio

from tests.factories import PASSWORD, Api, login, unique
from vsense.db import session_scope
from vsense.users import repository as users_repository


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


async def test_an_admin_cannot_change_the_platform_owners_credentials_or_role(api: Api) -> None:
    owner = await api.organization(role="owner")
    admin = await owner.user(role="admin")
    for body in (
        {"email": "taken-over@example.com"},
        {"password": "a brand new passphrase"},
        {"role": "standard"},
    ):
        response = await admin.put(f"/api/v1/users/{owner.user_id}", json=body)
        assert response.status_code == 403, body
        assert response.json()["code"] == 4003
        assert "command line" in response.json()["message"]
    # Not even the owner, through the API: a stolen session must not lock the owner out.
    response = await owner.put(
        f"/api/v1/users/{owner.user_id}", json={"password": "a brand new passphrase"}
    )
    assert response.status_code == 403
    assert (await admin.delete(f"/api/v1/users/{owner.user_id}")).status_code == 403
    # Nothing changed: the owner logs in as before; the name is not a credential.
    assert (await login(api.client, owner.email, PASSWORD, "")).token
    renamed = await admin.put(f"/api/v1/users/{owner.user_id}", json={"name": "Operator"})
    assert renamed.status_code == 200 and renamed.json()["email"] == owner.email


async def _roles(api: Api, *user_ids: int) -> list[str | None]:
    async with session_scope(api.state.sessionmaker) as session:
        users = [await users_repository.get_user_by_id(session, i) for i in user_ids]
    return [u.role if u else None for u in users]


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(api: Api) -> None:
    for _ in range(3):  # each round is a fresh race
        first = await api.organization()
        second = await first.user(role="admin")
        answers = await asyncio.gather(
            first.put(f"/api/v1/users/{second.user_id}", json={"role": "standard"}),
            second.put(f"/api/v1/users/{first.user_id}", json={"role": "standard"}),
        )
        # The loser is refused either by the rule (409) or, when the winner committed
        # before it was authenticated, as the standard user it has become (403).
        assert sorted(a.status_code for a in answers) in ([200, 403], [200, 409])
        assert sorted(await _roles(api, first.user_id, second.user_id)) == ["admin", "standard"]


async def test_two_admins_removing_each_other_at_once_leave_one_admin(api: Api) -> None:
    for _ in range(3):
        first = await api.organization()
        second = await first.user(role="admin")
        answers = await asyncio.gather(
            first.delete(f"/api/v1/users/{second.user_id}"),
            second.put(f"/api/v1/users/{first.user_id}", json={"role": "standard"}),
        )
        outcomes = sorted(a.status_code for a in answers)
        assert outcomes in ([204, 401], [204, 409], [200, 403], [200, 409]), outcomes
        assert "admin" in await _roles(api, first.user_id, second.user_id)


async def test_emails_differing_in_case_only_cannot_be_created_at_once(api: Api) -> None:
    admin = await api.organization()
    name = unique("race")
    answers = await asyncio.gather(
        *(
            admin.post(
                "/api/v1/users", json={"email": f"{local}@example.com", "password": PASSWORD}
            )
            for local in (name.capitalize(), name, name.upper())
        )
    )
    assert sorted(a.status_code for a in answers) == [201, 409, 409]
    assert all(a.json()["code"] == 4009 for a in answers if a.status_code == 409)


async def test_commonly_used_passwords_are_refused_with_a_field_message(api: Api) -> None:
    admin = await api.organization()
    user = await admin.user()
    for password in ("password", " " * 8, "Password123!", "qwertyuiop", "vsense2026"):
        email = f"{unique('someone')}@example.com"
        for response in (
            await admin.post("/api/v1/users", json={"email": email, "password": password}),
            await admin.put(f"/api/v1/users/{user.user_id}", json={"password": password}),
        ):
            assert response.status_code == 422, password
            [error] = response.json()["error"]
            assert error["field"] == "password"
            assert error["message"].startswith("is too easy to guess"), error
    # One's own email is no password either.
    email = f"{unique('jean.dupont')}@example.com"
    response = await admin.post("/api/v1/users", json={"email": email, "password": email})
    assert response.status_code == 422
    # The user's password did not change.
    assert (await login(api.client, user.email, PASSWORD, "")).token


async def test_a_new_password_is_checked_against_the_users_own_email(api: Api) -> None:
    admin = await api.organization()
    user = await admin.user()
    response = await admin.put(f"/api/v1/users/{user.user_id}", json={"password": user.email})
    assert response.status_code == 422
    assert response.json()["error"][0]["field"] == "password"
