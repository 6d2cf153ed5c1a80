"""Login, refresh-token rotation, logout, the caller, personal access tokens."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import PASSWORD, Api, login


async def test_login_answers_the_seed_shape(api: Api) -> None:
    admin = await api.organization()
    response = await admin.client.post(
        "/api/v1/login", json={"email": admin.email, "password": PASSWORD}
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["user"] == {"type": "user", "name": "Ada", "email": admin.email, "role": ["admin"]}
    assert data["token_type"] == "Bearer"
    assert data["expires_in"] == 3600
    assert data["access_token"] and data["refresh_token"]


async def test_login_email_is_case_insensitive(api: Api) -> None:
    admin = await api.organization()
    response = await admin.client.post(
        "/api/v1/login", json={"email": admin.email.upper(), "password": PASSWORD}
    )
    assert response.status_code == 200


async def test_wrong_password_and_unknown_email_answer_alike(api: Api) -> None:
    admin = await api.organization()
    wrong = await admin.client.post(
        "/api/v1/login", json={"email": admin.email, "password": "nope-nope"}
    )
    unknown = await admin.client.post(
        "/api/v1/login", json={"email": "nobody@example.com", "password": "nope-nope"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["code"] == 4001


async def test_repeated_failures_for_one_email_are_answered_429(api: Api) -> None:
    admin = await api.organization()
    limit = api.state.settings.login_max_failures_per_email
    for _ in range(limit):
        response = await admin.client.post(
            "/api/v1/login", json={"email": admin.email, "password": "wrong-password"}
        )
        assert response.status_code == 401
    response = await admin.client.post(
        "/api/v1/login", json={"email": admin.email, "password": PASSWORD}
    )
    assert response.status_code == 429
    assert response.json()["code"] == 4029
    assert int(response.headers["Retry-After"]) > 0


async def test_repeated_failures_from_one_address_are_answered_429(api: Api) -> None:
    admin = await api.organization()
    limit = api.state.settings.login_max_failures_per_address
    for attempt in range(limit):
        await admin.client.post(
            "/api/v1/login", json={"email": f"x{attempt}@example.com", "password": "wrong-pass"}
        )
    response = await admin.client.post(
        "/api/v1/login", json={"email": admin.email, "password": PASSWORD}
    )
    assert response.status_code == 429
    assert "Retry-After" in response.headers


async def test_refresh_rotates_the_pair(api: Api) -> None:
    admin = await api.organization()
    response = await admin.client.post(
        "/api/v1/refresh", json={"refresh_token": admin.refresh_token}
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["refresh_token"] != admin.refresh_token
    me = await admin.client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {data['access_token']}"}
    )
    assert me.status_code == 200


async def test_reusing_a_refresh_token_revokes_the_whole_family(api: Api) -> None:
    admin = await api.organization()
    first = await admin.client.post("/api/v1/refresh", json={"refresh_token": admin.refresh_token})
    newer = first.json()["data"]
    reuse = await admin.client.post("/api/v1/refresh", json={"refresh_token": admin.refresh_token})
    assert reuse.status_code == 401
    # The token handed out by the legitimate refresh is dead too, and so is its access token.
    descendant = await admin.client.post(
        "/api/v1/refresh", json={"refresh_token": newer["refresh_token"]}
    )
    assert descendant.status_code == 401
    me = await admin.client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {newer['access_token']}"}
    )
    assert me.status_code == 401
    # A new login still works.
    assert (await login(admin.client, admin.email, PASSWORD, admin.organization)).token


async def test_unknown_refresh_token_is_401(api: Api) -> None:
    response = await api.client.post("/api/v1/refresh", json={"refresh_token": "vsr_nothing"})
    assert response.status_code == 401
    assert response.json()["code"] == 4001


async def test_logout_revokes_access_and_refresh_tokens(api: Api) -> None:
    admin = await api.organization()
    assert (await admin.post("/api/v1/logout")).status_code == 204
    assert (await admin.get("/api/v1/me")).status_code == 401
    refresh = await admin.client.post(
        "/api/v1/refresh", json={"refresh_token": admin.refresh_token}
    )
    assert refresh.status_code == 401


async def test_me_describes_the_caller(api: Api) -> None:
    admin = await api.organization()
    group = await admin.group("Lyon")
    user = await admin.user(groups=[group["id"]])
    me = (await user.get("/api/v1/me")).json()
    assert me["email"] == user.email
    assert me["role"] == "standard"
    assert me["organization"]["name"] == admin.organization
    assert me["groups"] == [{"id": group["id"], "name": "Lyon"}]
    assert "devices:read" in me["scopes"] and "devices:write" not in me["scopes"]
    assert me["token_kind"] == "access"


async def test_missing_and_malformed_bearer_are_401(api: Api) -> None:
    assert (await api.client.get("/api/v1/me")).status_code == 401
    for header in ("Basic abc", "Bearer", "Bearer vsa_not-a-jwt", "Bearer whatever"):
        response = await api.client.get("/api/v1/me", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.json()["httpError"] == 401


async def test_personal_token_is_shown_once_and_listed_without_secret(api: Api) -> None:
    admin = await api.organization()
    response = await admin.post("/api/v1/tokens", json={"name": "ci", "scopes": ["devices:read"]})
    assert response.status_code == 201
    created = response.json()
    assert created["token"].startswith("vst_")
    listed = (await admin.get("/api/v1/tokens")).json()
    assert [t["id"] for t in listed["data"]] == [created["id"]]
    assert "token" not in listed["data"][0]
    assert listed["meta"]["total"] == 1
    token_caller = api.as_token(created["token"])
    assert (await token_caller.get("/api/v1/devices")).status_code == 200
    last_used = (await admin.get("/api/v1/tokens")).json()["data"][0]["last_used_at"]
    assert last_used is not None


async def test_personal_token_scopes_limit_what_it_does(api: Api) -> None:
    admin = await api.organization()
    reader = api.as_token(await admin.personal_token(["devices:read"]))
    assert (await reader.get("/api/v1/devices")).status_code == 200
    refused = await reader.post("/api/v1/devices", json={"name": "Gate"})
    assert refused.status_code == 403
    assert refused.json()["code"] == 4003
    assert (await reader.get("/api/v1/users")).status_code == 403


async def test_token_cannot_exceed_its_creators_rights(api: Api) -> None:
    admin = await api.organization()
    user = await admin.user()
    response = await user.post(
        "/api/v1/tokens", json={"name": "sneaky", "scopes": ["devices:write"]}
    )
    assert response.status_code == 422
    assert response.json()["error"][0]["field"] == "scopes"


async def test_token_never_exceeds_its_owners_role_after_a_demotion(api: Api) -> None:
    admin = await api.organization()
    second_admin = await admin.user(role="admin")
    token = api.as_token(await second_admin.personal_token(["devices:read", "devices:write"]))
    device = await admin.device()
    assert (await token.post("/api/v1/devices", json={"name": "ok"})).status_code == 201
    demote = await admin.put(f"/api/v1/users/{second_admin.user_id}", json={"role": "standard"})
    assert demote.status_code == 200
    assert (await token.post("/api/v1/devices", json={"name": "no"})).status_code == 403
    # Demoted to a standard user without groups: the device is no longer visible at all.
    assert (await token.get(f"/api/v1/devices/{device['uuid']}")).status_code == 404
    assert (await second_admin.post("/api/v1/devices", json={"name": "no"})).status_code == 403


async def test_expired_personal_token_is_401(api: Api) -> None:
    admin = await api.organization()
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    token = await admin.personal_token(["devices:read"], expires_at=soon)
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    response = await admin.post(
        "/api/v1/tokens", json={"name": "old", "scopes": ["devices:read"], "expires_at": past}
    )
    assert response.status_code == 422
    from vsense.accounts import repository
    from vsense.db import session_scope
    from vsense.kit.crypto import token_digest
    from vsense.models import PersonalAccessToken

    async with session_scope(api.state.sessionmaker) as session:
        row = await session.scalar(
            repository.select(PersonalAccessToken).where(  # type: ignore[attr-defined]
                PersonalAccessToken.token_hash == token_digest(token)
            )
        )
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    response = await api.as_token(token).get("/api/v1/devices")
    assert response.status_code == 401
    assert "expired" in response.json()["message"]


async def test_revoked_personal_token_is_401(api: Api) -> None:
    admin = await api.organization()
    created = (
        await admin.post("/api/v1/tokens", json={"name": "t", "scopes": ["devices:read"]})
    ).json()
    assert (await admin.delete(f"/api/v1/tokens/{created['id']}")).status_code == 204
    assert (await api.as_token(created["token"]).get("/api/v1/devices")).status_code == 401
    assert (await admin.delete(f"/api/v1/tokens/{created['id']}")).status_code == 404


async def test_another_users_token_cannot_be_revoked(api: Api) -> None:
    admin = await api.organization()
    other = await admin.user(role="admin")
    created = (
        await other.post("/api/v1/tokens", json={"name": "t", "scopes": ["devices:read"]})
    ).json()
    assert (await admin.delete(f"/api/v1/tokens/{created['id']}")).status_code == 404


async def test_device_token_opens_nothing_under_the_api(api: Api) -> None:
    admin = await api.organization()
    device = await admin.device()
    response = await api.as_token(device["device_token"]).get("/api/v1/devices")
    assert response.status_code == 401


async def test_personal_token_cannot_log_out(api: Api) -> None:
    admin = await api.organization()
    token = api.as_token(await admin.personal_token(["devices:read"]))
    assert (await token.post("/api/v1/logout")).status_code == 403


async def test_a_password_reset_ends_every_session_of_the_user(api: Api) -> None:
    admin = await api.organization()
    user = await admin.user()
    # A second session of the same user, refreshed once: its whole family must end.
    second = await login(api.client, user.email, PASSWORD, admin.organization)
    rotated = await api.client.post("/api/v1/refresh", json={"refresh_token": second.refresh_token})
    newer = rotated.json()["data"]
    newer_caller = api.as_token(newer["access_token"])
    personal = api.as_token(await user.personal_token(["devices:read"]))
    # Both callers are verified (and so cached) before the reset.
    assert (await user.get("/api/v1/me")).status_code == 200
    assert (await newer_caller.get("/api/v1/me")).status_code == 200
    reset = await admin.put(
        f"/api/v1/users/{user.user_id}", json={"password": "a brand new passphrase"}
    )
    assert reset.status_code == 200
    assert (await user.get("/api/v1/me")).status_code == 401
    assert (await newer_caller.get("/api/v1/me")).status_code == 401
    for refresh_token in (user.refresh_token, newer["refresh_token"]):
        refreshed = await api.client.post("/api/v1/refresh", json={"refresh_token": refresh_token})
        assert refreshed.status_code == 401
    # The new password opens a new session; personal tokens are kept (README: Accounts).
    assert (await login(api.client, user.email, "a brand new passphrase", "")).token
    assert (await personal.get("/api/v1/devices")).status_code == 200


async def test_changing_ones_own_password_keeps_the_session_that_did_it(api: Api) -> None:
    admin = await api.organization()
    other_session = await login(api.client, admin.email, PASSWORD, admin.organization)
    changed = await admin.put(
        f"/api/v1/users/{admin.user_id}", json={"password": "a brand new passphrase"}
    )
    assert changed.status_code == 200
    assert (await admin.get("/api/v1/me")).status_code == 200
    assert (await other_session.get("/api/v1/me")).status_code == 401


@pytest.mark.slow
async def test_passwords_are_hashed_and_verified_off_the_event_loop_in_a_bounded_pool(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vsense.kit import crypto

    admin = await api.organization()
    bound = api.state.settings.password_hashing_threads
    logins = bound * 3
    loop_thread = threading.get_ident()
    seen = {"inside": 0, "most": 0, "entered": 0}
    threads: set[int] = set()
    changed = threading.Condition()
    real = crypto._hasher

    class Watched:
        """The real hasher, noting where it runs and how many run at once."""

        def hash(self, password: str) -> str:
            threads.add(threading.get_ident())
            return real.hash(password)

        def verify(self, password_hash: str, password: str) -> bool:
            threads.add(threading.get_ident())
            with changed:
                seen["inside"] += 1
                seen["entered"] += 1
                seen["most"] = max(seen["most"], seen["inside"])
                changed.notify_all()
                if threading.get_ident() != loop_thread:  # never block the loop itself
                    # Hold on until another verification runs beside this one (or all
                    # have started), so that the pool's bound is reached if it exists.
                    changed.wait_for(
                        lambda: seen["inside"] >= bound or seen["entered"] == logins, timeout=10
                    )
            try:
                return real.verify(password_hash, password)
            finally:
                with changed:
                    seen["inside"] -= 1
                    changed.notify_all()

    monkeypatch.setattr(crypto, "_hasher", Watched())
    await admin.user()  # a hash
    answers = await asyncio.gather(
        *(
            api.client.post("/api/v1/login", json={"email": admin.email, "password": PASSWORD})
            for _ in range(logins)
        )
    )
    assert [a.status_code for a in answers] == [200] * logins
    assert threads and loop_thread not in threads
    assert seen["most"] == bound


async def test_logins_are_limited_per_account_whether_they_succeed_or_not(api: Api) -> None:
    admin = await api.organization()  # its login is the first attempt
    limit = api.state.settings.login_max_attempts_per_email
    for _ in range(limit - 1):
        response = await admin.client.post(
            "/api/v1/login", json={"email": admin.email.upper(), "password": PASSWORD}
        )
        assert response.status_code == 200
    response = await admin.client.post(
        "/api/v1/login", json={"email": admin.email, "password": PASSWORD}
    )
    assert response.status_code == 429
    assert response.json()["code"] == 4029
    assert int(response.headers["Retry-After"]) > 0
    # The sessions already open go on.
    assert (await admin.get("/api/v1/me")).status_code == 200


async def test_logins_are_limited_per_address_whether_they_succeed_or_not(api: Api) -> None:
    admin = await api.organization()  # its login is the first attempt from the address
    user = await admin.user()  # the second
    limit = 4
    api.state.callers.settings = api.state.settings.model_copy(
        update={"login_max_attempts_per_address": limit}
    )
    for attempt in range(limit - 2):
        caller = (admin, user)[attempt % 2]
        assert (await login(api.client, caller.email, PASSWORD, "")).token
    response = await admin.client.post(
        "/api/v1/login", json={"email": user.email, "password": PASSWORD}
    )
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0


async def test_the_retention_job_purges_expired_sessions_and_spent_tokens(api: Api) -> None:
    from sqlalchemy import func, select, update

    from vsense.db import session_scope
    from vsense.kit.crypto import token_digest
    from vsense.models import RefreshToken, RefreshTokenFamily
    from vsense.worker import BackgroundRuntime

    admin = await api.organization()
    ended = await login(api.client, admin.email, PASSWORD, admin.organization)
    rotated = await api.client.post("/api/v1/refresh", json={"refresh_token": admin.refresh_token})
    live_refresh_token = rotated.json()["data"]["refresh_token"]
    past = datetime.now(UTC) - timedelta(seconds=1)
    async with session_scope(api.state.sessionmaker) as session:
        # One session ran out, and so did the spent token of the session that goes on.
        for raw in (ended.refresh_token, admin.refresh_token):
            await session.execute(
                update(RefreshToken)
                .where(RefreshToken.token_hash == token_digest(raw))
                .values(expires_at=past)
            )
    await BackgroundRuntime(api.state).purge_once()
    async with session_scope(api.state.sessionmaker) as session:
        families = await session.scalar(
            select(func.count())
            .select_from(RefreshTokenFamily)
            .where(RefreshTokenFamily.user_id == admin.user_id)
        )
        tokens = await session.scalar(
            select(func.count())
            .select_from(RefreshToken)
            .join(RefreshTokenFamily)
            .where(RefreshTokenFamily.user_id == admin.user_id)
        )
    assert (families, tokens) == (1, 1)
    assert (await ended.get("/api/v1/me")).status_code == 401
    refreshed = await api.client.post("/api/v1/refresh", json={"refresh_token": live_refresh_token})
    assert refreshed.status_code == 200


async def test_answers_that_carry_credentials_are_not_stored_by_caches(api: Api) -> None:
    admin = await api.organization()
    logged_in = await admin.client.post(
        "/api/v1/login", json={"email": admin.email, "password": PASSWORD}
    )
    refreshed = await admin.client.post(
        "/api/v1/refresh", json={"refresh_token": logged_in.json()["data"]["refresh_token"]}
    )
    token = await admin.post("/api/v1/tokens", json={"name": "ci", "scopes": ["devices:read"]})
    for response in (logged_in, refreshed, token):
        assert response.status_code in (200, 201)
        assert response.headers["Cache-Control"] == "no-store"
