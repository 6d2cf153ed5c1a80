"""HTTP routes of portal links (admins): create one (its URL shown once), list, revoke."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response

from vsense.accounts.deps import PrincipalDep
from vsense.deps import SessionDep, SettingsDep
from vsense.kit.http import API_PREFIX, IdPath, error_responses
from vsense.kit.origin import public_base_url
from vsense.kit.schemas import Page
from vsense.portal import service
from vsense.portal.schemas import PortalLink, PortalLinkCreate, PortalLinkCreated

router = APIRouter(prefix=f"{API_PREFIX}/portal-links", tags=["portal links"])


@router.post(
    "",
    status_code=201,
    response_model=PortalLinkCreated,
    responses=error_responses(401, 403, 422),
    summary="Create a portal link to one group's webhooks; its URL is shown once",
)
async def create_link(
    body: PortalLinkCreate,
    request: Request,
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
    settings: SettingsDep,
) -> PortalLinkCreated:
    """An admin's link for a customer: it opens a page where the customer manages the
    webhooks of the group's devices and reads their delivery logs, until it expires
    (1 hour to 30 days, 7 days if `expires_in_hours` is not given) or is revoked."""
    base_url = public_base_url(request, settings.public_url, settings.allowed_hosts)
    created = await service.create_link(session, principal, body, base_url)
    response.headers["Cache-Control"] = "no-store"
    return created


@router.get(
    "",
    response_model=Page[PortalLink],
    responses=error_responses(400, 401, 403),
    summary="The organization's portal links, newest first",
)
async def list_links(
    session: SessionDep,
    principal: PrincipalDep,
    page: str | None = Query(None, description="1-based page number"),
    per_page: str | None = Query(None, description="Items per page, at most 500"),
) -> Page[PortalLink]:
    return await service.list_links(session, principal, page=page, per_page=per_page)


@router.delete(
    "/{link_id}",
    status_code=204,
    responses=error_responses(401, 403, 404),
    summary="Revoke a portal link: it and the sessions it opened stop working at once",
)
async def revoke_link(link_id: IdPath, session: SessionDep, principal: PrincipalDep) -> Response:
    await service.revoke_link(session, principal, link_id)
    return Response(status_code=204)
