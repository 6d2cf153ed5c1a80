"""What the portal tests share: a portal link made through the API, and a browser-like
visitor of the portal (its own cookie jar) that opens it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.factories import Caller

CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


async def portal_link(admin: Caller, group_id: int, **fields: Any) -> dict[str, Any]:
    """A link to one group, created through the API; returns the 201 body (with `url`)."""
    response = await admin.post(
        "/api/v1/portal-links", json={"group_id": group_id, "label": "Acme Corp", **fields}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def link_path(link: dict[str, Any]) -> str:
    return urlsplit(link["url"]).path


@dataclass
class Visitor:
    """A customer's browser: a cookie jar of its own, and the CSRF token of its page."""

    http: httpx.AsyncClient
    csrf_token: str = ""

    @classmethod
    def over(cls, client: httpx.AsyncClient) -> Visitor:
        return cls(httpx.AsyncClient(transport=client._transport, base_url=client.base_url))

    async def open(self, link: dict[str, Any]) -> httpx.Response:
        """Follow the link, then the page's refresh, as a browser does."""
        opened = await self.http.get(link_path(link))
        assert opened.status_code == 200, opened.text
        return await self.page("/portal/")

    async def page(self, path: str) -> httpx.Response:
        response = await self.http.get(path)
        found = CSRF.search(response.text)
        if found:
            self.csrf_token = found.group(1)
        return response

    async def post(self, path: str, data: dict[str, Any] | None = None) -> httpx.Response:
        return await self.http.post(path, data={"csrf_token": self.csrf_token, **(data or {})})

    async def close(self) -> None:
        await self.http.aclose()
