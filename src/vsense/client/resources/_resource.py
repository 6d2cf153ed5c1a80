"""Base classes of the resources: each holds the client it sends through."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

if TYPE_CHECKING:
    from vsense.client._async import AsyncClient
    from vsense.client._sync import Client


class NotGiven:
    """Marks a parameter that was not passed, so that `None` can mean "set to null"."""

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = NotGiven()


def body(**fields: Any) -> dict[str, Any]:
    """A request body of the fields that were given (`None` included, `NOT_GIVEN` left out)."""
    return {name: value for name, value in fields.items() if not isinstance(value, NotGiven)}


def path(value: str | int) -> str:
    """A value as one path segment (a `/` in it cannot reach another endpoint)."""
    return quote(str(value).strip(), safe="")


class SyncResource:
    def __init__(self, client: Client) -> None:
        self._client = client


class AsyncResource:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client
