"""Typed request dependencies on the parts of a process.

The composition root (`vsense.components`) puts each part the routes use on the
application, keyed by its type; a domain declares the dependency it needs once,

    OutboxDep = Annotated[Outbox, Depends(part(Outbox))]

and its routes receive that part, nothing else, without importing the root.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

from fastapi import FastAPI, Request

T = TypeVar("T")
PARTS = "vsense_parts"


def install_parts(app: FastAPI, parts: Mapping[type[Any], object]) -> None:
    """Make `parts` (each keyed by its type) available to the routes of `app`."""
    setattr(app.state, PARTS, dict(parts))


def part(kind: type[T]) -> Callable[[Request], Awaitable[T]]:
    """A dependency that yields the application's part of type `kind`. Call it once per
    kind (in an `Annotated` alias): FastAPI shares a dependency by its function."""

    # Async on purpose: FastAPI runs plain-function dependencies in a thread pool, and
    # a thread hop per request costs more than the rest of a cached request.
    async def provide(request: Request) -> T:
        return cast(T, getattr(request.app.state, PARTS)[kind])

    provide.__name__ = f"part_{kind.__name__}"
    return provide
