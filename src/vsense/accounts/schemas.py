"""API shapes of login, the caller and personal access tokens."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vsense.accounts.scopes import ALL_SCOPES
from vsense.kit.schemas import Instant, RequestBody, Timestamp

Scope = Literal[ALL_SCOPES]  # type: ignore[valid-type]


class LoginRequest(RequestBody):
    email: str = Field(max_length=254)
    password: str = Field(max_length=1024)


class RefreshRequest(RequestBody):
    refresh_token: str = Field(max_length=256)


class LoginUser(BaseModel):
    type: Literal["user"] = "user"
    name: str
    email: str
    role: list[str]


class TokenPair(BaseModel):
    user: LoginUser
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    access_token: str
    refresh_token: str


class LoginResponse(BaseModel):
    data: TokenPair


class GroupRef(BaseModel):
    id: int
    name: str


class OrganizationRef(BaseModel):
    id: int
    name: str


class Me(BaseModel):
    id: int
    type: Literal["user"] = "user"
    name: str
    email: str
    role: str
    organization: OrganizationRef
    groups: list[GroupRef]
    scopes: list[str]
    token_kind: Literal["access", "personal"]


class Token(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str
    scopes: list[str]
    created: Timestamp
    expires_at: Timestamp | None
    last_used_at: Timestamp | None


class TokenCreate(RequestBody):
    name: str = Field(min_length=1, max_length=120)
    scopes: list[Scope] = Field(min_length=1)
    expires_at: Instant | None = None


class TokenCreated(Token):
    token: str = Field(description="The token itself, shown once; only its hash is stored.")
