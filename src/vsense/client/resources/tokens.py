"""`client.tokens`: the caller's personal access tokens; `client.me`: the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime

from vsense.client._base import isoformat, query
from vsense.client.models import Page, Token, TokenCreated
from vsense.client.pagination import DEFAULT_PER_PAGE, aiterate_pages, iterate_pages
from vsense.client.resources._resource import AsyncResource, SyncResource, body, path


def _create_body(name: str, scopes: Sequence[str], expires_at: datetime | str | None) -> object:
    expires = isoformat(expires_at) if isinstance(expires_at, datetime) else expires_at
    payload = body(name=name, scopes=list(scopes))
    if expires is not None:
        payload["expires_at"] = expires
    return payload


class Tokens(SyncResource):
    def list(self, *, page: int | None = None, per_page: int | None = None) -> Page[Token]:
        """One page of the caller's personal access tokens."""
        params = query(page=page, per_page=per_page)
        return self._client._call("GET", "/tokens", cast=Page[Token], params=params)

    def list_all(self, *, per_page: int = DEFAULT_PER_PAGE) -> Iterator[Token]:
        """Every personal access token of the caller."""
        return iterate_pages(lambda number: self.list(page=number, per_page=per_page))

    def create(
        self, *, name: str, scopes: Sequence[str], expires_at: datetime | str | None = None
    ) -> TokenCreated:
        """Create a personal access token with a subset of the caller's scopes
        (`devices:read`, `webhooks:write`, ...). The token (`vst_...`) is shown once."""
        payload = _create_body(name, scopes, expires_at)
        return self._client._call("POST", "/tokens", cast=TokenCreated, json=payload)

    def revoke(self, token_id: int) -> None:
        """Revoke a personal access token."""
        self._client._call_empty("DELETE", f"/tokens/{path(token_id)}")


class AsyncTokens(AsyncResource):
    async def list(self, *, page: int | None = None, per_page: int | None = None) -> Page[Token]:
        """One page of the caller's personal access tokens."""
        params = query(page=page, per_page=per_page)
        return await self._client._call("GET", "/tokens", cast=Page[Token], params=params)

    def list_all(self, *, per_page: int = DEFAULT_PER_PAGE) -> AsyncIterator[Token]:
        """Every personal access token of the caller (`async for`)."""
        return aiterate_pages(lambda number: self.list(page=number, per_page=per_page))

    async def create(
        self, *, name: str, scopes: Sequence[str], expires_at: datetime | str | None = None
    ) -> TokenCreated:
        """Create a personal access token (see `Tokens.create`)."""
        payload = _create_body(name, scopes, expires_at)
        return await self._client._call("POST", "/tokens", cast=TokenCreated, json=payload)

    async def revoke(self, token_id: int) -> None:
        """Revoke a personal access token."""
        await self._client._call_empty("DELETE", f"/tokens/{path(token_id)}")
