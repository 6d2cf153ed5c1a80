"""Shapes shared by every list and every error."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, model_validator

from vsense.kit.time import isoformat

# ISO 8601, UTC, whole seconds, `Z` suffix: how every API response shows a time.
Timestamp = Annotated[datetime, PlainSerializer(isoformat, return_type=str, when_used="always")]


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


def _refuse_nul(value: Any, where: str = "body") -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where} contains a NUL character")
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul(key, where)
            _refuse_nul(item, f"{key}")
    elif isinstance(value, list):
        for item in value:
            _refuse_nul(item, where)


class RequestBody(BaseModel):
    """Base of every request body: unknown fields ignored, NUL characters refused
    (PostgreSQL cannot store them, so both databases refuse them alike)."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        _refuse_nul(data)
        return data
