"""`client.users`: users of the caller's organization (admins)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence

from vsense.client._base import query
from vsense.client.models import Page, User
from vsense.client.pagination import DEFAULT_PER_PAGE, aiterate_pages, iterate_pages
from vsense.client.resources._resource import (
    NOT_GIVEN,
    AsyncResource,
    NotGiven,
    SyncResource,
    body,
    path,
)

GroupRefs = Sequence[str | int]


class Users(SyncResource):
    def list(self, *, page: int | None = None, per_page: int | None = None) -> Page[User]:
        """One page of the organization's users."""
        params = query(page=page, per_page=per_page)
        return self._client._call("GET", "/users", cast=Page[User], params=params)

    def list_all(self, *, per_page: int = DEFAULT_PER_PAGE) -> Iterator[User]:
        """Every user of the organization."""
        return iterate_pages(lambda number: self.list(page=number, per_page=per_page))

    def get(self, user_id: int) -> User:
        """One user."""
        return self._client._call("GET", f"/users/{path(user_id)}", cast=User)

    def create(
        self,
        *,
        email: str,
        password: str,
        name: str | NotGiven = NOT_GIVEN,
        role: str | NotGiven = NOT_GIVEN,
        groups: GroupRefs | NotGiven = NOT_GIVEN,
    ) -> User:
        """Add a user: `role` is `admin` or `standard` (default); `groups` by name or id."""
        payload = body(
            email=email,
            password=password,
            name=name,
            role=role,
            groups=groups if isinstance(groups, NotGiven) else list(groups),
        )
        return self._client._call("POST", "/users", cast=User, json=payload)

    def update(
        self,
        user_id: int,
        *,
        email: str | NotGiven = NOT_GIVEN,
        password: str | NotGiven = NOT_GIVEN,
        name: str | NotGiven = NOT_GIVEN,
        role: str | NotGiven = NOT_GIVEN,
        groups: GroupRefs | NotGiven = NOT_GIVEN,
    ) -> User:
        """Change the given fields; `groups` replaces the user's memberships."""
        payload = body(
            email=email,
            password=password,
            name=name,
            role=role,
            groups=groups if isinstance(groups, NotGiven) else list(groups),
        )
        return self._client._call("PUT", f"/users/{path(user_id)}", cast=User, json=payload)

    def delete(self, user_id: int) -> None:
        """Remove a user; their sessions and tokens go with them."""
        self._client._call_empty("DELETE", f"/users/{path(user_id)}")


class AsyncUsers(AsyncResource):
    async def list(self, *, page: int | None = None, per_page: int | None = None) -> Page[User]:
        """One page of the organization's users."""
        params = query(page=page, per_page=per_page)
        return await self._client._call("GET", "/users", cast=Page[User], params=params)

    def list_all(self, *, per_page: int = DEFAULT_PER_PAGE) -> AsyncIterator[User]:
        """Every user of the organization (`async for`)."""
        return aiterate_pages(lambda number: self.list(page=number, per_page=per_page))

    async def get(self, user_id: int) -> User:
        """One user."""
        return await self._client._call("GET", f"/users/{path(user_id)}", cast=User)

    async def create(
        self,
        *,
        email: str,
        password: str,
        name: str | NotGiven = NOT_GIVEN,
        role: str | NotGiven = NOT_GIVEN,
        groups: GroupRefs | NotGiven = NOT_GIVEN,
    ) -> User:
        """Add a user: `role` is `admin` or `standard` (default); `groups` by name or id."""
        payload = body(
            email=email,
            password=password,
            name=name,
            role=role,
            groups=groups if isinstance(groups, NotGiven) else list(groups),
        )
        return await self._client._call("POST", "/users", cast=User, json=payload)

    async def update(
        self,
        user_id: int,
        *,
        email: str | NotGiven = NOT_GIVEN,
        password: str | NotGiven = NOT_GIVEN,
        name: str | NotGiven = NOT_GIVEN,
        role: str | NotGiven = NOT_GIVEN,
        groups: GroupRefs | NotGiven = NOT_GIVEN,
    ) -> User:
        """Change the given fields; `groups` replaces the user's memberships."""
        payload = body(
            email=email,
            password=password,
            name=name,
            role=role,
            groups=groups if isinstance(groups, NotGiven) else list(groups),
        )
        return await self._client._call("PUT", f"/users/{path(user_id)}", cast=User, json=payload)

    async def delete(self, user_id: int) -> None:
        """Remove a user; their sessions and tokens go with them."""
        await self._client._call_empty("DELETE", f"/users/{path(user_id)}")
