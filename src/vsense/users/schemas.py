"""API shapes of users."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from vsense.accounts.schemas import GroupRef
from vsense.kit.passwords import MIN_PASSWORD_LENGTH, password_problem
from vsense.kit.schemas import RequestBody, Timestamp

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

ApiRole = Literal["admin", "standard"]


def _check_email(value: str) -> str:
    value = value.strip()
    if not EMAIL_PATTERN.match(value):
        raise ValueError("must be an email address")
    return value


def _check_password(value: str | None, info: ValidationInfo) -> str | None:
    """Refuse commonly used passwords, and ones close to the user's email or name (the
    fields declared before `password`, when they were sent)."""
    if value is None:
        return None
    known = [str(info.data[key]) for key in ("email", "name") if info.data.get(key)]
    problem = password_problem(value, known)
    if problem:
        raise PydanticCustomError("password_too_easy", "{problem}", {"problem": problem})
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
    _password = field_validator("password")(_check_password)


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

    _password = field_validator("password")(_check_password)
