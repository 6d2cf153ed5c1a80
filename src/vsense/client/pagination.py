"""Iterators over every item of a paginated list, fetching pages as they are needed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TypeVar

from vsense.client.models import Page

T = TypeVar("T")
DEFAULT_PER_PAGE = 100


def iterate_pages(fetch: Callable[[int], Page[T]]) -> Iterator[T]:
    """Every item of `fetch(1)`, `fetch(2)`, ... until the last page."""
    number = 1
    while True:
        page = fetch(number)
        yield from page.data
        if not page.data or not page.has_next_page:
            return
        number += 1


async def aiterate_pages(fetch: Callable[[int], Awaitable[Page[T]]]) -> AsyncIterator[T]:
    """Every item of `await fetch(1)`, `await fetch(2)`, ... until the last page."""
    number = 1
    while True:
        page = await fetch(number)
        for item in page.data:
            yield item
        if not page.data or not page.has_next_page:
            return
        number += 1
