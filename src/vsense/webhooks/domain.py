"""The delivery engine's own types: statuses, and what moves between the queue, the
dispatcher and the delivery policy. No SQL and no I/O here.

A `DeliveryOutcome` is what became of one claimed delivery (the dispatcher's decision,
written back by the queue repository); a `SendResult` (`webhooks/sender.py`) is what
one HTTP request gave, before any decision.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import NamedTuple


class DeliveryStatus(StrEnum):
    """Where a delivery stands; the stored and published values."""

    PENDING = "pending"  # due now or later (a retry, a deferral)
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # final: refused by the receiver, or not sent (webhook disabled)
    DEAD = "dead"  # final: every attempt of the retry schedule failed


class WebhookStatus(IntEnum):
    """Whether a webhook receives deliveries; the stored and published values."""

    INACTIVE = 0
    ACTIVE = 1


@dataclass(frozen=True, slots=True)
class Target:
    """An active webhook of a device, as the outbox needs it."""

    webhook_id: int
    organization_id: int
    webhook_type: str
    actions: str


@dataclass(slots=True)
class NewEvent:
    """An event to store, with the webhooks that get a delivery of it."""

    organization_id: int
    device_uuid: uuid.UUID
    type: str
    msg_id: str
    body: str
    webhook_ids: list[int]


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery leased by a claim."""

    delivery_id: int
    event_id: int
    webhook_id: int
    device_uuid: uuid.UUID
    attempts: int  # attempts made before this one


class EventBody(NamedTuple):
    """What an attempt needs of its event (plain rows: the hot path loads no ORM objects)."""

    id: int
    msg_id: str
    type: str
    body: str


class Destination(NamedTuple):
    """What an attempt needs of its webhook: where and how to send, and the secrets
    that sign (plain rows, like `EventBody`)."""

    id: int
    status: int
    method: str
    url: str
    params: list[dict[str, str]] | None
    headers: list[dict[str, str]] | None
    secret: str
    previous_secret: str | None
    previous_secret_until: datetime | None


@dataclass(frozen=True, slots=True)
class Prepared:
    """Everything one attempt needs, detached from the database session."""

    delivery_id: int
    webhook_id: int
    device_uuid: uuid.UUID
    attempts: int  # made before this one
    event_type: str
    msg_id: str
    body: bytes
    active: bool
    method: str
    url: str
    params: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...]
    secrets: tuple[str, ...]

    @classmethod
    def of(
        cls, claimed: Claimed, event: EventBody, webhook: Destination, now: datetime
    ) -> Prepared:
        """An attempt of a claimed delivery; a rotated-out secret signs until its end."""
        secrets = [webhook.secret]
        if webhook.previous_secret and (
            webhook.previous_secret_until is None or webhook.previous_secret_until > now
        ):
            secrets.append(webhook.previous_secret)
        return cls(
            delivery_id=claimed.delivery_id,
            webhook_id=webhook.id,
            device_uuid=claimed.device_uuid,
            attempts=claimed.attempts,
            event_type=event.type,
            msg_id=event.msg_id,
            body=event.body.encode(),
            active=webhook.status == WebhookStatus.ACTIVE,
            method=webhook.method,
            url=webhook.url,
            params=tuple((p["name"], p["value"]) for p in webhook.params or []),
            headers=tuple((h["name"], h["value"]) for h in webhook.headers or []),
            secrets=tuple(secrets),
        )


@dataclass(slots=True)
class DeliveryOutcome:
    """What became of one claimed delivery: its next state, and the attempt to log."""

    delivery_id: int
    webhook_id: int
    device_uuid: uuid.UUID
    status: DeliveryStatus  # pending: retried or released for later
    attempted: bool  # False: released without a request (deferred, or webhook disabled)
    next_attempt_at: datetime | None
    attempted_at: datetime
    status_code: int | None = None
    duration_ms: float = 0.0
    error: str | None = None
    response_head: str = ""
