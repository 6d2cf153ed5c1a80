"""API shapes of webhooks and their delivery log. Field names are the seed's."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, Field, field_validator, model_validator

from vsense.kit.schemas import ListMeta, RequestBody, Timestamp
from vsense.kit.text import header_name_problem, header_value_problem
from vsense.webhooks.events import KEEPALIVE, events_of

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
    actions: str = Field(description="As given; the events it names are in `events`")
    events: list[str] = Field(description="The events this webhook receives")
    method: Method
    data: WebhookData
    created: Timestamp
    updated: Timestamp
    disabled_reason: str | None
    breaker_open_until: Timestamp | None = Field(
        None,
        description="While the endpoint's circuit breaker is open, when its deliveries may "
        "be tried again; null when it is closed",
    )


class WebhookCreated(Webhook):
    secret: str = Field(description="The signing secret (`whsec_...`), shown once.")


class WebhookList(BaseModel):
    data: list[Webhook]


class WebhookAnswer(BaseModel):
    """The answer to an update: the seed's `error` key beside the webhook."""

    data: Webhook
    error: list[dict[str, Any]] = Field(default_factory=list)


class WebhookCreatedAnswer(BaseModel):
    """The answer to an add: the seed's `error` key beside the webhook and its secret."""

    data: WebhookCreated
    error: list[dict[str, Any]] = Field(default_factory=list)


class _WebhookFields(RequestBody):
    device_uuid: str | None = Field(
        None, description="The device, here or in the query (they must agree)."
    )
    active: bool | None = Field(
        None, description="The seed's on/off switch: the same as `status` 1 (true) or 0 (false)."
    )
    status: Literal[0, 1] | None = None

    @model_validator(mode="after")
    def _active_is_status(self) -> Self:
        if self.active is not None:
            status: Literal[0, 1] = 1 if self.active else 0
            if "status" in self.model_fields_set and self.status not in (None, status):
                raise ValueError("`active` and `status` disagree; send one of them")
            self.status = status
        return self


class WebhookUpdate(_WebhookFields):
    """Any webhook fields; only these change. `active` (true/false) is `status` (1/0)."""

    url: str | None = Field(None, min_length=1, max_length=2048)
    webhook_type: WebhookType | None = None
    actions: str | None = Field(None, max_length=200)
    method: Method | None = None
    data: WebhookData | None = None


class WebhookCreate(_WebhookFields):
    """A new webhook: `url` is required, the rest has defaults. `method` defaults to
    GET when the webhook's events are keepalives only, else POST."""

    url: str = Field(min_length=1, max_length=2048)
    webhook_type: WebhookType = "payload"
    actions: str = Field("", max_length=200)
    method: Method | None = None
    data: WebhookData = Field(default_factory=WebhookData)


def default_method(webhook_type: str, actions: str) -> Method:
    """GET for keepalives only (the vendor's keepalive format), POST otherwise."""
    return "GET" if events_of(webhook_type, actions) == (KEEPALIVE,) else "POST"


def check_method(method: str, webhook_type: str, actions: str) -> None:
    """GET carries no body: only keepalive events can be sent that way."""
    if method == "GET" and any(e != KEEPALIVE for e in events_of(webhook_type, actions)):
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
