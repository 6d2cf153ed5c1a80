"""The rules about users: admins manage their organization; nobody escapes it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from vsense.accounts.principal import Principal
from vsense.accounts.schemas import GroupRef, Me, OrganizationRef
from vsense.accounts.scopes import Role
from vsense.accounts.service import Callers, end_sessions, require_scope
from vsense.groups import repository as groups_repository
from vsense.kit.crypto import hash_password
from vsense.kit.errors import (
    Conflict,
    Forbidden,
    NotFound,
    Unauthorized,
    Unprocessable,
    field_error,
)
from vsense.kit.pagination import PageRequest, page_meta
from vsense.kit.passwords import password_problem
from vsense.kit.schemas import Page
from vsense.kit.text import text_problem
from vsense.models import Organization
from vsense.models import User as UserRow
from vsense.users import repository
from vsense.users.schemas import User, UserCreate, UserUpdate

LAST_ADMIN = "An organization keeps at least one admin."
# The platform owner is visible to its organization's admins (it is listed), so a change
# refused to them is a 403, not a 404: there is nothing to hide, only a right they lack.
OWNER_FROM_COMMAND_LINE = (
    "The platform owner's email, password and role change from the command line only "
    "(`vsense admin update-user`)."
)


async def describe_caller(session: AsyncSession, principal: Principal) -> Me:
    user = await repository.get_user(session, principal.organization_id, principal.user_id)
    organization = await repository.get_organization(session, principal.organization_id)
    if user is None or organization is None:
        raise Unauthorized("The token's user no longer exists.")
    groups = (await groups_repository.groups_of_users(session, [user.id]))[user.id]
    return Me(
        id=user.id,
        name=user.name,
        email=user.email,
        role=user.role,
        organization=OrganizationRef(id=organization.id, name=organization.name),
        groups=[GroupRef(id=g.id, name=g.name) for g in groups],
        scopes=sorted(principal.scopes),
        token_kind=principal.token_kind,
    )


async def _views(session: AsyncSession, users: Sequence[UserRow]) -> list[User]:
    groups = await groups_repository.groups_of_users(session, [u.id for u in users])
    return [
        User(
            id=u.id,
            email=u.email,
            name=u.name,
            role=u.role,
            groups=[GroupRef(id=g.id, name=g.name) for g in groups[u.id]],
            created=u.created,
            updated=u.updated,
        )
        for u in users
    ]


async def list_users(
    session: AsyncSession, principal: Principal, request: PageRequest
) -> Page[User]:
    require_scope(principal, "users:read")
    users, total = await repository.list_users(
        session, principal.organization_id, offset=request.offset, limit=request.per_page
    )
    return Page[User].model_validate(
        {"data": await _views(session, users), "meta": page_meta(request, total, len(users))}
    )


async def get_user(session: AsyncSession, principal: Principal, user_id: int) -> User:
    require_scope(principal, "users:read")
    user = await repository.get_user(session, principal.organization_id, user_id)
    if user is None:
        raise NotFound("No such user.")
    return (await _views(session, [user]))[0]


async def _group_ids(
    session: AsyncSession, organization_id: int, references: Sequence[int | str]
) -> list[int]:
    found = await groups_repository.find_groups(session, organization_id, references)
    missing = [str(r) for r in references if r not in found]
    if missing:
        raise Unprocessable(
            "Some groups do not exist.",
            errors=[field_error("groups", f"no such group: {', '.join(missing)}")],
        )
    return [found[r].id for r in references]


async def create_user(session: AsyncSession, principal: Principal, body: UserCreate) -> User:
    require_scope(principal, "users:write")
    if await repository.email_taken(session, body.email):
        raise Conflict("A user with this email already exists.")
    group_ids = await _group_ids(session, principal.organization_id, body.groups)
    user = UserRow(
        organization_id=principal.organization_id,
        email=body.email,
        name=body.name,
        password_hash=await hash_password(body.password),
        role=body.role,
    )
    await repository.add(session, user)
    await groups_repository.set_user_groups(session, user.id, group_ids)
    return (await _views(session, [user]))[0]


async def update_user(
    session: AsyncSession, callers: Callers, principal: Principal, user_id: int, body: UserUpdate
) -> User:
    require_scope(principal, "users:write")
    # Locked before the user is read, so that the rule and the change see the same rows.
    admins = (
        await repository.lock_admins(session, principal.organization_id)
        if body.role == "standard"
        else None
    )
    user = await repository.get_user(session, principal.organization_id, user_id)
    if user is None:
        raise NotFound("No such user.")
    sent = body.model_fields_set
    changes_email = body.email is not None and body.email != user.email
    changes_role = body.role is not None and body.role != user.role
    if user.role == Role.OWNER and (changes_email or body.password is not None or changes_role):
        raise Forbidden(OWNER_FROM_COMMAND_LINE)
    if body.email is not None and changes_email:
        if await repository.email_taken(session, body.email, except_id=user.id):
            raise Conflict("A user with this email already exists.")
        user.email = body.email
    if "name" in sent:
        user.name = body.name or ""
    if body.password is not None:
        # The session that changes its own user's password goes on; every other ends.
        own = user.id == principal.user_id
        await _change_password(
            session, callers, user, body.password, keep_family=principal.family_id if own else None
        )
    if body.role is not None and changes_role:
        if admins is not None and admins <= 1:
            raise Conflict(LAST_ADMIN)
        user.role = body.role
    if body.groups is not None:
        group_ids = await _group_ids(session, principal.organization_id, body.groups)
        await groups_repository.set_user_groups(session, user.id, group_ids)
    await session.flush()
    callers.forget_user(user.id, session)
    return (await _views(session, [user]))[0]


async def _change_password(
    session: AsyncSession,
    callers: Callers | None,
    user: UserRow,
    password: str,
    *,
    keep_family: uuid.UUID | None = None,
) -> None:
    """A new password ends the user's login sessions (README: "Accounts and sessions").
    The body model checked the password against what was sent; here it is checked
    against the user's stored email and name too."""
    problem = password_problem(password, [user.email, user.name])
    if problem:
        raise Unprocessable(
            "The password is too easy to guess.", errors=[field_error("password", problem)]
        )
    user.password_hash = await hash_password(password)
    await session.flush()  # locks the user's row first (see accounts.service.open_session)
    await end_sessions(session, callers, user.id, reason="password", keep_family=keep_family)


async def delete_user(
    session: AsyncSession, callers: Callers, principal: Principal, user_id: int
) -> None:
    require_scope(principal, "users:write")
    admins = await repository.lock_admins(session, principal.organization_id)
    user = await repository.get_user(session, principal.organization_id, user_id)
    if user is None:
        raise NotFound("No such user.")
    if user.id == principal.user_id:
        raise Conflict("You cannot delete yourself.")
    if user.role == Role.OWNER:
        raise Forbidden("The platform owner is removed from the command line only.")
    if user.role == Role.ADMIN and admins <= 1:  # its deleter was demoted meanwhile
        raise Conflict(LAST_ADMIN)
    await repository.delete_user(session, user)
    callers.forget_user(user.id, session)


async def set_password(session: AsyncSession, user: UserRow, password: str) -> None:
    """Give a user a new password, ending their sessions (the demo resets its admin's at
    each start)."""
    UserCreate(email=user.email, password=password)  # the same rules as anywhere else
    await _change_password(session, None, user, password)
    await session.flush()


async def create_organization(session: AsyncSession, name: str) -> Organization:
    """A new organization (command line: `vsense admin create-org`)."""
    name = name.strip()
    if not name or len(name) > 120:
        raise Unprocessable("An organization name has 1 to 120 characters.")
    if problem := text_problem(name):  # a command-line argument may hold anything
        raise Unprocessable(f"The organization name {problem}.")
    if await repository.get_organization_by_name(session, name):
        raise Conflict(f"An organization named {name!r} already exists.")
    organization = Organization(name=name)
    await repository.add(session, organization)
    return organization


async def create_user_in(
    session: AsyncSession,
    *,
    organization_name: str,
    email: str,
    password: str,
    role: str,
    name: str = "",
) -> UserRow:
    """A user of a named organization, any role, owner included (command line only)."""
    organization = await repository.get_organization_by_name(session, organization_name)
    if organization is None:
        raise NotFound(f"No organization named {organization_name!r}.")
    if role not in ("admin", "standard", "owner"):
        raise Unprocessable("The role must be admin, standard or owner.")
    checked = UserCreate(email=email, password=password, name=name)
    if await repository.email_taken(session, checked.email):
        raise Conflict("A user with this email already exists.")
    user = UserRow(
        organization_id=organization.id,
        email=checked.email,
        name=checked.name,
        password_hash=await hash_password(checked.password),
        role=role,
    )
    await repository.add(session, user)
    return user


async def update_user_in(
    session: AsyncSession,
    *,
    email: str,
    new_email: str | None = None,
    password: str | None = None,
    role: str | None = None,
    name: str | None = None,
) -> UserRow:
    """Change any user, the platform owner included (command line only). A new password
    ends the user's sessions; an organization keeps at least one admin."""
    if role is not None and role not in (Role.ADMIN, Role.STANDARD, Role.OWNER):
        raise Unprocessable("The role must be admin, standard or owner.")
    user = await repository.get_user_by_email(session, email)
    if user is None:
        raise NotFound(f"No user with the email {email!r}.")
    if role == Role.STANDARD and user.role != Role.STANDARD:
        admins = await repository.lock_admins(session, user.organization_id)
        await session.refresh(user)  # as it is now that the admins are locked
        if user.role != Role.STANDARD and admins <= 1:
            raise Conflict(LAST_ADMIN)
    checked = UserUpdate(email=new_email, password=password, name=name)
    if checked.email is not None and checked.email != user.email:
        if await repository.email_taken(session, checked.email, except_id=user.id):
            raise Conflict("A user with this email already exists.")
        user.email = checked.email
    if checked.name is not None:
        user.name = checked.name
    if checked.password is not None:
        await _change_password(session, None, user, checked.password)
    if role is not None:
        user.role = role
    await session.flush()
    return user
