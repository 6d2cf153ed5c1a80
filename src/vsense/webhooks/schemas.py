"""API shapes of webhooks and their delivery log. Field names are the seed's."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from vsense.kit.schemas import ListMeta, RequestBody, Timestamp
from vsense.kit.text import header_name_problem, header_value_problem
from vsense.webhooks.events import ACTIONS, KEEPALIVE, parse_actions

# Headers a webhook's own list may not set (the platform's, and the signature's).
RESERVED_HEADERS = frozenset(
    {"host", "content-length", "webhook-id", "webhook-timestamp", "webhook-signature"}
)


class NameValue(BaseModel):
    name: str = Field(min_length=1, max_length=256)
    value: str = Field(max_length=4096)


class HeaderValue(NameValue):
    @field_validator("name")
    @classmethod
    def _token(cls, name: str) -> str:
        if problem := header_name_problem(name):
            raise ValueError(problem)
        if name.lower() in RESERVED_HEADERS:
            raise ValueError(f"the platform sets `{name}` itself")
        return name

    @field_validator("value")
    @classmethod
    def _sendable(cls, value: str) -> str:
        if problem := header_value_problem(value):
            raise ValueError(problem)
        return value


class WebhookData(BaseModel):
    headers: list[HeaderValue] = Field(default_factory=list, max_length=50)
    params: list[NameValue] = Field(default_factory=list, max_length=50)


WebhookType = Literal["payload", "keepalive", "alert"]
Method = Literal["POST", "GET"]


class Webhook(BaseModel):
    id: int
    device_uuid: str
    url: str
    webhook_type: WebhookType
    status: Literal[0, 1] = Field(description="1 active, 0 inactive")
    actions: str = Field(description="Comma-separated events; empty means `webhook_type`")
    method: Method
    data: WebhookData
    created: Timestamp
    updated: Timestamp
    disabled_reason: str | None


class WebhookCreated(Webhook):
    secret: str = Field(description="The signing secret (`whsec_...`), shown once.")


class WebhookList(BaseModel):
    data: list[Webhook]


def _check_actions(actions: str | None) -> str | None:
    if actions is None:
        return None
    wanted = parse_actions(actions)
    unknown = [a for a in wanted if a not in ACTIONS]
    if unknown:
        raise ValueError(f"unknown actions {unknown}; choose from {', '.join(ACTIONS)}")
    return ",".join(dict.fromkeys(wanted))


class WebhookUpdate(RequestBody):
    """Any webhook fields; only these change."""

    url: str | None = Field(None, min_length=1, max_length=2048)
    webhook_type: WebhookType | None = None
    status: Literal[0, 1] | None = None
    actions: str | None = Field(None, max_length=200)
    method: Method | None = None
    data: WebhookData | None = None

    @field_validator("actions")
    @classmethod
    def _known_actions(cls, value: str | None) -> str | None:
        return _check_actions(value)


class WebhookCreate(RequestBody):
    """A new webhook: `url` is required, the rest has defaults."""

    url: str = Field(min_length=1, max_length=2048)
    webhook_type: WebhookType = "payload"
    status: Literal[0, 1] = 1
    actions: str = Field("", max_length=200)
    method: Method = "POST"
    data: WebhookData = Field(default_factory=WebhookData)

    @field_validator("actions")
    @classmethod
    def _known_actions(cls, value: str) -> str:
        return _check_actions(value) or ""


def check_method(method: str, webhook_type: str, actions: str) -> None:
    """GET carries no body: only keepalive events can be sent that way."""
    events = parse_actions(actions) or [webhook_type]
    if method == "GET" and any(e != KEEPALIVE for e in events):
        raise ValueError("`GET` is allowed for keepalive events only")


class Attempt(BaseModel):
    attempted_at: Timestamp
    status_code: int | None
    duration_ms: float
    error: str | None
    response: str = Field(description="The first 2 KB of the response body")


class DeliveryEvent(BaseModel):
    id: str = Field(description="`webhook-id` of the event")
    type: str
    created: Timestamp


class Delivery(BaseModel):
    id: int
    event: DeliveryEvent
    status: Literal["pending", "succeeded", "failed", "dead"]
    attempts: int
    next_attempt_at: Timestamp | None
    reclaims: int = Field(description="Times a vanished worker's lease ran out (possible dups)")
    created: Timestamp
    attempt_log: list[Attempt]


class DeliveryList(BaseModel):
    data: list[Delivery]
    meta: ListMeta


class TestResult(BaseModel):
    delivery_id: int
    status: str
    status_code: int | None
    duration_ms: float
    error: str | None
    response: str


class Replay(RequestBody):
    since: str = Field(description="ISO 8601 time or UNIX seconds")
    until: str | None = Field(None, description="ISO 8601 time or UNIX seconds; default now")


class Queued(BaseModel):
    queued: int
    delivery_ids: list[int]
