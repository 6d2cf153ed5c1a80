"""Shapes shared by every list and every error."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, model_validator

from vsense.kit.text import json_text_problems
from vsense.kit.time import isoformat, within_range

# ISO 8601, UTC, whole seconds, `Z` suffix: how every API response shows a time.
Timestamp = Annotated[datetime, PlainSerializer(isoformat, return_type=str, when_used="always")]

# A time a client sends in a body: made UTC, and refused (422) outside the range every
# database and datetime can hold, rather than failing (500) when it is stored.
Instant = Annotated[datetime, AfterValidator(within_range)]


class ListMeta(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    current_page: int
    from_: int = Field(alias="from")
    last_page: int
    per_page: int
    total: int
    to: int
    total_pages: int


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """Every list: the seed's `{"data": [...], "meta": {...}}`."""

    data: list[T]
    meta: ListMeta


class ErrorBody(BaseModel):
    """The error envelope of every error answer."""

    httpError: int
    code: int
    message: str
    error: list[dict[str, Any]]


class RequestBody(BaseModel):
    """Base of every request body: unknown fields ignored, and texts that cannot be
    stored refused wherever they are, ignored fields included (`vsense.kit.text`: NUL
    characters, which PostgreSQL cannot store, and lone UTF-16 surrogates, which no
    database or JSON writer can encode)."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        problems = json_text_problems(data)
        if problems:
            where, problem = problems[0]
            raise ValueError(f"{where} {problem}")
        return data
