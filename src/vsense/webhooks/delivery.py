"""One attempt of one delivery: the request it makes, and what its answer means.

The rules of spec/delivery.md live here: the wire format of each event (query, headers,
body), which answers succeed, which are retried and when, which are final.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import orjson

from vsense import __version__
from vsense.models import Webhook
from vsense.webhooks import queue
from vsense.webhooks.events import KEEPALIVE, TEST
from vsense.webhooks.schemas import RESERVED_HEADERS
from vsense.webhooks.signing import signed_headers

if TYPE_CHECKING:
    from vsense.webhooks.sender import Outcome as SendOutcome

# Delays after the 1st, 2nd, ... failed attempt: 8 attempts over about 27 h.
RETRY_DELAYS = (5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
JITTER = 0.2
RETRY_AFTER_CAP = 3600
RETRYABLE_STATUS = frozenset({408, 429})
USER_AGENT = f"vsense-webhooks/{__version__}"


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
        cls, claimed: queue.Claimed, event: queue.EventBody, webhook: Webhook, now: datetime
    ) -> Prepared:
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
            active=webhook.status == 1,
            method=webhook.method,
            url=webhook.url,
            params=tuple((p["name"], p["value"]) for p in webhook.params or []),
            headers=tuple((h["name"], h["value"]) for h in webhook.headers or []),
            secrets=tuple(secrets),
        )


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


def build_request(prepared: Prepared, timestamp: int) -> Request:
    """The HTTP request of an attempt, signed at `timestamp` (UNIX seconds)."""
    pairs: list[tuple[str, str]] = []
    own_params = list(prepared.params)
    if prepared.event_type == KEEPALIVE:
        platform = orjson.loads(prepared.body)
        pairs = [("source", str(platform["source"])), ("id", str(platform["id"]))]
        # The webhook's params follow the platform's and never replace them.
        own_params = [(k, v) for k, v in own_params if k not in ("source", "id")]
    pairs += own_params
    url = prepared.url
    if pairs:
        url += ("&" if "?" in url else "?") + urlencode(pairs)
    body = b"" if prepared.method == "GET" else prepared.body
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/plain, */*",
        "User-Agent": USER_AGENT,
    }
    for name, value in prepared.headers:
        if name.lower() not in RESERVED_HEADERS:
            headers[name] = value
    headers.update(signed_headers(prepared.secrets, prepared.msg_id, timestamp, body))
    return Request(prepared.method, url, headers, body)


def _delay(attempts_made: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(max(retry_after, 1.0), RETRY_AFTER_CAP)
    base = RETRY_DELAYS[attempts_made - 1]
    return base * random.uniform(1 - JITTER, 1 + JITTER)


def judge(prepared: Prepared, sent: SendOutcome, at: datetime) -> queue.Outcome:
    """What an answer means for the delivery: done, retried later, failed, or dead."""
    attempts_made = prepared.attempts + 1
    code = sent.status_code
    retry_at: datetime | None = None
    if sent.ok:
        status = "succeeded"
    elif prepared.event_type == TEST:
        status = "failed"  # a test is one attempt, reported to whoever asked for it
    elif sent.error == "blocked" or (
        code is not None and 400 <= code < 500 and code not in RETRYABLE_STATUS
    ):
        status = "failed"  # 4xx other than 408/429 (410 also disables), or a refused address
    elif attempts_made >= MAX_ATTEMPTS:
        status = "dead"
    else:
        status = "pending"
        retry_at = at + timedelta(seconds=_delay(attempts_made, sent.retry_after))
    return queue.Outcome(
        delivery_id=prepared.delivery_id,
        webhook_id=prepared.webhook_id,
        device_uuid=prepared.device_uuid,
        status=status,
        attempted=True,
        next_attempt_at=retry_at,
        attempted_at=at,
        status_code=code,
        duration_ms=sent.duration_ms,
        error=f"{sent.error}: {sent.detail}" if sent.error and sent.detail else sent.error,
        response_head=sent.response_head,
    )


def deferred(prepared: Prepared, until: datetime, at: datetime, reason: str) -> queue.Outcome:
    """Released without a request (the endpoint's breaker is open): no attempt spent."""
    return queue.Outcome(
        delivery_id=prepared.delivery_id,
        webhook_id=prepared.webhook_id,
        device_uuid=prepared.device_uuid,
        status="pending",
        attempted=False,
        next_attempt_at=until,
        attempted_at=at,
        error=reason,
    )


def skipped(prepared: Prepared, at: datetime) -> queue.Outcome:
    """A delivery to a disabled webhook: failed without a request; redeliverable."""
    return queue.Outcome(
        delivery_id=prepared.delivery_id,
        webhook_id=prepared.webhook_id,
        device_uuid=prepared.device_uuid,
        status="failed",
        attempted=False,
        next_attempt_at=None,
        attempted_at=at,
        error="webhook disabled",
    )


def is_endpoint_failure(sent: SendOutcome) -> bool:
    """Failures that say the endpoint is unwell (the breaker counts these)."""
    if sent.ok:
        return False
    code = sent.status_code
    return code is None or code >= 500 or code in RETRYABLE_STATUS
