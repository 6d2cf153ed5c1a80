"""API shapes of users."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from vsense.accounts.schemas import GroupRef
from vsense.kit.schemas import RequestBody, Timestamp

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_LENGTH = 8

ApiRole = Literal["admin", "standard"]


def _check_email(value: str) -> str:
    value = value.strip()
    if not EMAIL_PATTERN.match(value):
        raise ValueError("must be an email address")
    return value


class User(BaseModel):
    id: int
    email: str
    name: str
    role: str
    groups: list[GroupRef]
    created: Timestamp
    updated: Timestamp


class UserCreate(RequestBody):
    email: str = Field(max_length=254)
    name: str = Field("", max_length=120)
    password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=1024)
    role: ApiRole = "standard"
    groups: list[int | str] = Field(default_factory=list, max_length=1000)

    _email = field_validator("email")(_check_email)


class UserUpdate(RequestBody):
    email: str | None = Field(None, max_length=254)
    name: str | None = Field(None, max_length=120)
    password: str | None = Field(None, min_length=MIN_PASSWORD_LENGTH, max_length=1024)
    role: ApiRole | None = None
    groups: list[int | str] | None = Field(None, max_length=1000)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return None if value is None else _check_email(value)
