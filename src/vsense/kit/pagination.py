"""Page numbers and the seed's `meta` block, used by every list.

Routes take a page as `PageParams`, a dependency that parses `page` and `per_page`
at the edge, and hand the parsed `PageRequest` to their service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, TypedDict

from fastapi import Depends, Query

from vsense.kit.errors import BadRequest

DEFAULT_PAGE = 1
DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 500
# Far beyond any list (a billion pages of 500), and small enough that the row offset it
# makes still fits the 64-bit integers of both databases.
MAX_PAGE = 1_000_000_000


@dataclass(frozen=True, slots=True)
class PageRequest:
    page: int
    per_page: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


def page_request(page: str | None, per_page: str | None) -> PageRequest:
    """Parse `page` and `per_page` query values; bad values are 400/4000."""
    return PageRequest(
        page=_positive_int("page", page, DEFAULT_PAGE, MAX_PAGE),
        per_page=_positive_int("per_page", per_page, DEFAULT_PER_PAGE, MAX_PER_PAGE),
    )


PAGE_DESCRIPTION = "1-based page number, default 1"
PER_PAGE_DESCRIPTION = f"Items per page, default 25, at most {MAX_PER_PAGE}"


async def page_params(
    page: Annotated[str | None, Query(description=PAGE_DESCRIPTION)] = None,
    per_page: Annotated[str | None, Query(description=PER_PAGE_DESCRIPTION)] = None,
) -> PageRequest:
    """The page a list route was asked for.

    Both are read as text and parsed here, so that a bad value is answered with the
    same 400 naming the parameter on every list, not with a generic validation error.
    Async on purpose: FastAPI runs plain-function dependencies in a thread pool.
    """
    return page_request(page, per_page)


PageParams = Annotated[PageRequest, Depends(page_params)]


def _positive_int(name: str, raw: str | None, default: int, maximum: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= maximum:
        raise BadRequest(f"`{name}` must be an integer between 1 and {maximum}.")
    return value


# `from` is a Python keyword, hence the functional form.
PageMeta = TypedDict(
    "PageMeta",
    {
        "current_page": int,
        "from": int,
        "last_page": int,
        "per_page": int,
        "total": int,
        "to": int,
        "total_pages": int,
    },
)


def page_meta(request: PageRequest, total: int, count: int) -> PageMeta:
    """The seed's `meta`: 1-based `from`/`to` (0 on an empty page), `last_page` >= 1."""
    total_pages = max(1, -(-total // request.per_page))
    first = request.offset + 1 if count else 0
    return {
        "current_page": request.page,
        "from": first,
        "last_page": total_pages,
        "per_page": request.per_page,
        "total": total,
        "to": request.offset + count if count else 0,
        "total_pages": total_pages,
    }
