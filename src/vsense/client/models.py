"""Typed response models. They accept fields a newer server adds (`extra="allow"`) and
keep the JSON they were read from: `model.api_json()` gives it back unchanged."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator
from pydantic_core.core_schema import ValidatorFunctionWrapHandler


class APIModel(BaseModel):
    """Base of every response model."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    _api_json: Any = PrivateAttr(default=None)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_json(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        instance = handler(data)
        if isinstance(data, dict) and isinstance(instance, APIModel):
            instance._api_json = data
        return instance

    def api_json(self) -> Any:
        """The JSON the server sent for this object, as it was (for `--output json`)."""
        if self._api_json is not None:
            return self._api_json
        return self.model_dump(mode="json", by_alias=True)


T = TypeVar("T")


class PageMeta(APIModel):
    """The `meta` block of every list."""

    current_page: int
    from_: int = Field(alias="from")
    last_page: int
    per_page: int
    total: int
    to: int
    total_pages: int


class Page(APIModel, Generic[T]):
    """One page of a list: `data` and `meta` (absent on the few unpaginated lists)."""

    data: list[T]
    meta: PageMeta | None = None

    @property
    def has_next_page(self) -> bool:
        """Whether a page follows this one."""
        return self.meta is not None and self.meta.current_page < self.meta.last_page


class Answer(APIModel, Generic[T]):
    """The answer to a write in the seed's shape: `data`, and `error` (empty on success)."""

    data: T
    error: list[Any] = Field(default_factory=list)


# Accounts


class LoginUser(APIModel):
    type: str = "user"
    name: str
    email: str
    role: list[str]


class Login(APIModel):
    """What login and refresh answer (inside `data`)."""

    user: LoginUser
    token_type: str = "Bearer"
    expires_in: int
    access_token: str
    refresh_token: str


class LoginResponse(APIModel):
    data: Login


class GroupRef(APIModel):
    id: int
    name: str


class OrganizationRef(APIModel):
    id: int
    name: str


class Me(APIModel):
    """The caller: role, organization, groups and effective scopes."""

    id: int
    type: str = "user"
    name: str
    email: str
    role: str
    organization: OrganizationRef
    groups: list[GroupRef] = Field(default_factory=list)
    scopes: list[str] = Field(default_factory=list)
    token_kind: str | None = None


class Token(APIModel):
    """A personal access token (without the token itself)."""

    id: int
    name: str
    prefix: str = ""
    scopes: list[str] = Field(default_factory=list)
    created: datetime | None = None
    expires_at: datetime | None = None
    last_used_at: datetime | None = None


class TokenCreated(Token):
    """A new personal access token; `token` is shown this once."""

    token: str


# Devices


class Device(APIModel):
    """A device. The first seven fields are always present."""

    uuid: str
    name: str
    client_identifier: str
    refreshed: datetime | None
    is_online: int
    geo_city: str
    geo_country: str
    group: str | None = None
    group_id: int | None = None
    app_type: str | None = None
    keepalive_interval: int | None = None
    created: datetime | None = None
    last_seen: datetime | None = None
    status_reason: str | None = None

    @property
    def online(self) -> bool:
        """`is_online` as a boolean."""
        return bool(self.is_online)


class DeviceOnboarded(Device):
    """A new device; `device_token` is shown this once."""

    device_token: str


class DeviceCredentials(APIModel):
    uuid: str
    device_token: str


class DeviceEvent(APIModel):
    """An online/offline transition of a device."""

    id: int
    status: str
    reason: str = ""
    created: datetime | None = None


class MetricBucket(APIModel):
    name: str
    marker_id: str | None = None
    marker_name: str | None = None
    start: datetime
    avg: float
    min: float
    max: float
    count: int


class DeviceMetrics(APIModel):
    """A device's application values bucketed by interval."""

    data: list[MetricBucket]
    meta: dict[str, Any] = Field(default_factory=dict)


class Payload(APIModel):
    """A message a device sent, as stored."""

    id: int
    type: str
    version: int | None = None
    timestamp: datetime
    received_at: datetime | None = None
    payload: Any = None


# Groups and users


class Group(APIModel):
    id: int
    name: str
    keepalive_interval: int | None = None
    device_count: int = 0
    created: datetime | None = None


class User(APIModel):
    id: int
    email: str
    name: str = ""
    role: str
    groups: list[GroupRef] = Field(default_factory=list)
    created: datetime | None = None
    updated: datetime | None = None


# Images


class ImageRequestMeta(APIModel):
    request_id: str
    status: str
    expires_at: datetime | None = None


class ImageRequest(APIModel):
    """A snapshot request: two signed links (raw, annotated) and its status."""

    data: list[str]
    meta: ImageRequestMeta

    @property
    def request_id(self) -> str:
        return self.meta.request_id

    @property
    def status(self) -> str:
        return self.meta.status

    @property
    def raw_url(self) -> str:
        """The signed link of the raw image."""
        return self.data[0]

    @property
    def annotated_url(self) -> str:
        """The signed link of the annotated image."""
        return self.data[1]


class ImageRequestSummary(APIModel):
    """A recent snapshot request of a device, as listed: `status` is `pending`, `ready`,
    `failed` or `expired`; `links` ([raw, annotated]) are empty once expired."""

    request_id: str
    status: str
    created: datetime | None = None
    expires_at: datetime | None = None
    ready_at: datetime | None = None
    error: str | None = None
    links: list[str] = Field(default_factory=list)


class Image(APIModel):
    """A downloaded image."""

    url: str
    content_type: str
    content: bytes


class CapturedImages(APIModel):
    """Both images of a completed snapshot request."""

    request_id: str
    raw: Image
    annotated: Image


# Webhooks


class NameValue(APIModel):
    name: str
    value: str


class WebhookData(APIModel):
    headers: list[NameValue] = Field(default_factory=list)
    params: list[NameValue] = Field(default_factory=list)


class Webhook(APIModel):
    """A webhook: where and how the platform calls an integrator's endpoint."""

    id: int
    device_uuid: str | None = None
    url: str
    webhook_type: str
    status: int
    actions: str = ""
    events: list[str] = Field(default_factory=list)
    method: str = "POST"
    data: WebhookData = Field(default_factory=WebhookData)
    created: datetime | None = None
    updated: datetime | None = None
    disabled_reason: str | None = None
    breaker_open_until: datetime | None = None  # while the shared breaker holds it


class WebhookCreated(Webhook):
    """A new webhook; `secret` (the signing secret) is shown this once."""

    secret: str


class DeliveryAttempt(APIModel):
    """One try of a delivery."""

    attempted_at: datetime | None = None
    status_code: int | None = None
    duration_ms: float | None = None
    error: str | None = None
    response: str = Field("", description="The first 2 KB of the response body")


class DeliveryEvent(APIModel):
    """The event of a delivery; `id` is the `webhook-id` header receivers deduplicate on."""

    id: str
    type: str
    created: datetime | None = None


class Delivery(APIModel):
    """One event sent (or to be sent) to one webhook, with its attempts."""

    id: int
    event: DeliveryEvent
    status: str
    attempts: int = 0
    next_attempt_at: datetime | None = None
    created: datetime | None = None
    attempt_log: list[DeliveryAttempt] = Field(default_factory=list)


class WebhookTestResult(APIModel):
    """The outcome of a test call."""

    delivery_id: int | None = None
    status: str
    status_code: int | None = None
    duration_ms: float | None = None
    error: str | None = None
    response: str = ""


class Queued(APIModel):
    """What a redelivery or a replay queued."""

    queued: int
    delivery_ids: list[int] = Field(default_factory=list)


# Alerts


class AlertRule(APIModel):
    """A rule: its scope (a device, a group or an app type), what it watches, its kind."""

    id: int
    name: str
    device_uuid: str | None = None
    group: str | None = None
    group_id: int | None = None
    app_type: str | None = None
    metric: str | None = None
    reference_marker: str | None = None
    rule: str
    trigger_value: float | None = None
    clearing_value: float | None = None
    for_s: int | None = None
    clear_for_s: int | None = None
    severity: str = "warning"
    enabled: bool = True
    created: datetime | None = None
    updated: datetime | None = None


class Alert(APIModel):
    """One alert episode: its FIRING and, once it ended, its CLEARING."""

    uuid: str
    state: str
    rule_id: int
    rule_name: str = ""
    rule_summary: dict[str, Any] = Field(default_factory=dict)
    severity: str = ""
    device_uuid: str
    app_type: str | None = None
    metric: str | None = None
    reference_marker: dict[str, Any] | None = None
    fired_at: datetime
    fired_state: str = ""
    fired_value: float | None = None
    clearing_uuid: str | None = None
    cleared_at: datetime | None = None
    cleared_state: str | None = None
    cleared_value: float | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    ack_note: str | None = None
