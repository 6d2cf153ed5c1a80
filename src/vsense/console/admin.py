"""Administration: users (create, role, groups), groups (keepalive interval), the
caller's personal access tokens (created once shown, revoked), and portal links (admins:
created with their URL shown once, revoked). Each section appears for a caller with the
permission the API would ask for."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from vsense.accounts import service as accounts
from vsense.accounts.deps import CallersDep
from vsense.accounts.schemas import TokenCreate
from vsense.accounts.scopes import ALL_SCOPES
from vsense.console.deps import ConsoleUserDep
from vsense.console.forms import form_dict, form_list, none_if_blank
from vsense.console.render import CONSOLE, ConsoleRoute, flash, redirect, render
from vsense.deps import SessionDep, SettingsDep
from vsense.groups import service as groups
from vsense.groups.schemas import GroupCreate, GroupUpdate
from vsense.kit.errors import NotFound
from vsense.kit.origin import public_base_url
from vsense.kit.pagination import page_request
from vsense.portal import service as portal
from vsense.portal.schemas import DEFAULT_LIFETIME_HOURS, PortalLinkCreate
from vsense.users import service as users
from vsense.users.schemas import UserCreate, UserUpdate

router = APIRouter(prefix=CONSOLE, route_class=ConsoleRoute, include_in_schema=False)
ROLES = ("standard", "admin")
# The lifetimes the form offers, in hours (the API takes any from 1 to 720).
PORTAL_LIFETIMES = ((1, "1 hour"), (24, "1 day"), (168, "7 days"), (720, "30 days"))


def _id(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 2_147_483_647:
        raise NotFound("No such resource.")
    return int(raw)


@router.get("/admin")
async def admin_page(request: Request, user: ConsoleUserDep, session: SessionDep) -> Response:
    principal = user.principal
    everyone = page_request("1", "500")
    context: dict[str, Any] = {
        "users": (await users.list_users(session, principal, everyone)).data
        if user.can("users:read")
        else None,
        "groups": (await groups.list_groups(session, principal, everyone)).data,
        "tokens": (
            await accounts.list_personal_tokens(session, principal, page="1", per_page="500")
        ).data,
        "portal_links": (await portal.list_links(session, principal, page="1", per_page="500")).data
        if user.is_admin and user.can("webhooks:write")
        else None,
    }
    return render(
        request,
        "admin.html",
        user=user,
        nav="admin",
        roles=ROLES,
        portal_lifetimes=PORTAL_LIFETIMES,
        default_lifetime=DEFAULT_LIFETIME_HOURS,
        scopes=[s for s in ALL_SCOPES if s in principal.scopes],
        **context,
    )


@router.post("/admin/users")
async def create_user(request: Request, user: ConsoleUserDep, session: SessionDep) -> Response:
    fields = await form_dict(request, ("email", "name", "password", "role"))
    body = UserCreate.model_validate({**fields, "groups": await form_list(request, "groups")})
    await users.create_user(session, user.principal, body)
    return redirect(f"{CONSOLE}/admin", request)


@router.post("/admin/users/{user_id}")
async def update_user(
    request: Request, user_id: str, user: ConsoleUserDep, session: SessionDep, callers: CallersDep
) -> Response:
    """Role and groups (the groups' checkboxes: none ticked takes every group away)."""
    fields = await form_dict(request, ("role",))
    body = UserUpdate.model_validate({**fields, "groups": await form_list(request, "groups")})
    await users.update_user(session, callers, user.principal, _id(user_id), body)
    return redirect(f"{CONSOLE}/admin", request)


@router.post("/admin/groups")
async def create_group(request: Request, user: ConsoleUserDep, session: SessionDep) -> Response:
    fields = none_if_blank(await form_dict(request, ("name", "keepalive_interval")))
    await groups.create_group(session, user.principal, GroupCreate.model_validate(fields))
    return redirect(f"{CONSOLE}/admin", request)


@router.post("/admin/groups/{group_id}")
async def update_group(
    request: Request, group_id: str, user: ConsoleUserDep, session: SessionDep
) -> Response:
    """The keepalive interval; blank returns to the platform's default."""
    fields = none_if_blank(await form_dict(request, ("keepalive_interval",)))
    body = GroupUpdate.model_validate(fields)
    group = await groups.update_group(session, user.principal, _id(group_id), body)
    shown = f"{group.keepalive_interval} s" if group.keepalive_interval else "the default"
    return flash(request, f"Group {group.name}: keepalive interval {shown}.")


@router.post("/admin/tokens")
async def create_token(request: Request, user: ConsoleUserDep, session: SessionDep) -> Response:
    """The token is in this answer only."""
    fields = none_if_blank(await form_dict(request, ("name", "expires_at")))
    body = TokenCreate.model_validate({**fields, "scopes": await form_list(request, "scopes")})
    token, raw = await accounts.create_personal_token(session, user.principal, body)
    return render(request, "_token.html", user=user, token=token, raw=raw)


@router.post("/admin/tokens/{token_id}/revoke")
async def revoke_token(
    request: Request, token_id: str, user: ConsoleUserDep, session: SessionDep, callers: CallersDep
) -> Response:
    await accounts.revoke_personal_token(session, callers, user.principal, _id(token_id))
    return redirect(f"{CONSOLE}/admin", request)


@router.get("/admin/portal-links")
async def portal_links_fragment(
    request: Request, user: ConsoleUserDep, session: SessionDep
) -> Response:
    links = await portal.list_links(session, user.principal, page="1", per_page="500")
    return render(request, "_portal_links.html", user=user, portal_links=links.data)


@router.post("/admin/portal-links")
async def create_portal_link(
    request: Request, user: ConsoleUserDep, session: SessionDep, settings: SettingsDep
) -> Response:
    """The link's URL is in this answer only."""
    fields = await form_dict(request, ("group_id", "label", "expires_in_hours"))
    body = PortalLinkCreate.model_validate(fields)
    base_url = public_base_url(request, settings.public_url, settings.allowed_hosts)
    link = await portal.create_link(session, user.principal, body, base_url)
    response = render(request, "_portal_link.html", user=user, link=link)
    response.headers["HX-Trigger"] = "portal-links-changed"
    return response


@router.post("/admin/portal-links/{link_id}/revoke")
async def revoke_portal_link(
    request: Request, link_id: str, user: ConsoleUserDep, session: SessionDep
) -> Response:
    link = await portal.revoke_link(session, user.principal, _id(link_id))
    return flash(request, f"Portal link {link.label} revoked.", trigger="portal-links-changed")
