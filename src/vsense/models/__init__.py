"""ORM models, one file per table family, all re-exported here."""

from vsense.models.accounts import Group, Organization, User, user_groups
from vsense.models.alerts import Alert, AlertRule, AlertState
from vsense.models.base import Base
from vsense.models.devices import Device, DeviceCredential
from vsense.models.gateway import DeviceCommand, DeviceEvent, DeviceMetric, PayloadMessage
from vsense.models.images import ImageRequest
from vsense.models.portal import PortalLink
from vsense.models.throttles import ThrottleCounter
from vsense.models.tokens import PersonalAccessToken, RefreshToken, RefreshTokenFamily
from vsense.models.webhooks import Webhook, WebhookAttempt, WebhookDelivery, WebhookEvent

__all__ = [
    "Alert",
    "AlertRule",
    "AlertState",
    "Base",
    "Device",
    "DeviceCommand",
    "DeviceCredential",
    "DeviceEvent",
    "DeviceMetric",
    "Group",
    "ImageRequest",
    "Organization",
    "PayloadMessage",
    "PersonalAccessToken",
    "PortalLink",
    "RefreshToken",
    "RefreshTokenFamily",
    "ThrottleCounter",
    "User",
    "Webhook",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEvent",
    "user_groups",
]
