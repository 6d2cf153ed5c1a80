"""Console sessions in process (no browser): an expired access token is refreshed from
the API's refresh-token family, once for requests that race, and a logout revokes it."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import httpx
from time_machine import TimeMachineFixture

from tests.factories import PASSWORD, Api
from vsense.kit.time import utcnow


async def console_login(client: httpx.AsyncClient, email: str) -> None:
    page = await client.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    answer = await client.post(
        "/console/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token[1], "next": ""},
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/console/"


async def test_an_expired_session_is_refreshed_once_for_racing_requests(
    api: Api, client: httpx.AsyncClient, time_machine: TimeMachineFixture
) -> None:
    admin = await api.organization()
    await console_login(client, admin.email)
    access = client.cookies["vsense_session"]
    refresh = client.cookies["vsense_refresh"]
    time_machine.move_to(utcnow() + timedelta(hours=2), tick=True)  # past the access TTL

    client.cookies.clear()
    cookie = {"Cookie": f"vsense_session={access}; vsense_refresh={refresh}"}
    first, second = await asyncio.gather(
        client.get("/console/", headers=cookie), client.get("/console/", headers=cookie)
    )
    assert first.status_code == second.status_code == 200
    renewed = {r.cookies.get("vsense_refresh") for r in (first, second)}
    assert len(renewed) == 1 and None not in renewed and refresh not in renewed
    set_cookie = first.headers.get_list("set-cookie")
    assert any("HttpOnly" in c and "SameSite=lax" in c and "Path=/console" in c for c in set_cookie)

    # The new pair is the session's: it keeps working, and the API accepts its token.
    new_access = first.cookies["vsense_session"]
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {new_access}"})
    assert me.status_code == 200


async def test_a_personal_token_opens_no_console_session(
    api: Api, client: httpx.AsyncClient
) -> None:
    admin = await api.organization()
    token = await admin.personal_token(["devices:read"])
    answer = await client.get("/console/", headers={"Cookie": f"vsense_session={token}"})
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/console/login")


async def test_logging_out_needs_the_csrf_token_and_revokes_the_family(
    api: Api, client: httpx.AsyncClient
) -> None:
    admin = await api.organization()
    await console_login(client, admin.email)
    access = client.cookies["vsense_session"]
    refused = await client.post("/console/logout")
    assert refused.status_code == 403
    page = await client.get("/console/")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    out = await client.post("/console/logout", data={"csrf_token": csrf[1]})
    assert out.status_code == 303
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {access}"})
    assert me.status_code == 401
