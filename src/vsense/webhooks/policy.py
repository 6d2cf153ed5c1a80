"""The delivery policy of spec/delivery.md: what an attempt's result means for its
delivery and for its webhook. Pure functions: no I/O, no clock (the caller passes
the time), so each rule reads, and can be tested, on its own.

For a delivery: which answers succeed, which are retried and when (the retry schedule,
`Retry-After`), which are final, when it is dead, and when it is released without an
attempt. For a webhook: which failures its breaker counts, when a device's queue waits
behind a failure, and when the webhook is disabled (410 Gone, or failing for
`webhook_disable_after`).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from vsense.webhooks.domain import DeliveryOutcome, DeliveryStatus, Prepared
from vsense.webhooks.events import TEST
from vsense.webhooks.sender import BLOCKED, SendResult

# Delays after the 1st, 2nd, ... failed attempt: 8 attempts over about 27 h.
RETRY_DELAYS = (5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
JITTER = 0.2
RETRY_AFTER_CAP = 3600
RETRYABLE_STATUS = frozenset({408, 429})
GONE = 410
BEHIND_FAILURE_DELAY = timedelta(seconds=5)  # the rest of a device's queue after a failure
AFTER_INTERNAL_ERROR = timedelta(seconds=5)  # a delivery whose attempt raised
GONE_REASON = "the endpoint answered 410 Gone"


def _delay(attempts_made: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(max(retry_after, 1.0), RETRY_AFTER_CAP)
    base = RETRY_DELAYS[attempts_made - 1]
    return base * random.uniform(1 - JITTER, 1 + JITTER)


def after_attempt(prepared: Prepared, sent: SendResult, at: datetime) -> DeliveryOutcome:
    """What an answer means for the delivery: done, retried later, failed, or dead."""
    attempts_made = prepared.attempts + 1
    code = sent.status_code
    retry_at: datetime | None = None
    if sent.ok:
        status = DeliveryStatus.SUCCEEDED
    elif prepared.event_type == TEST:
        status = DeliveryStatus.FAILED  # a test is one attempt, reported to whoever asked
    elif sent.error == BLOCKED or (
        code is not None and 400 <= code < 500 and code not in RETRYABLE_STATUS
    ):
        status = DeliveryStatus.FAILED  # 4xx but 408/429 (410 also disables), or refused
    elif attempts_made >= MAX_ATTEMPTS:
        status = DeliveryStatus.DEAD
    else:
        status = DeliveryStatus.PENDING
        retry_at = at + timedelta(seconds=_delay(attempts_made, sent.retry_after))
    return DeliveryOutcome(
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


def released(prepared: Prepared, until: datetime, at: datetime, reason: str) -> DeliveryOutcome:
    """Released without a request (breaker open, behind a failure, dispatcher stopping):
    due again at `until`, no attempt spent."""
    return DeliveryOutcome(
        delivery_id=prepared.delivery_id,
        webhook_id=prepared.webhook_id,
        device_uuid=prepared.device_uuid,
        status=DeliveryStatus.PENDING,
        attempted=False,
        next_attempt_at=until,
        attempted_at=at,
        error=reason,
    )


def behind_failure(prepared: Prepared, now: datetime) -> DeliveryOutcome:
    """A delivery after a failed one of its device in the same claim: released for a few
    seconds (a failing endpoint is not asked again at once; nothing waits for long)."""
    return released(prepared, now + BEHIND_FAILURE_DELAY, now, "behind a failure")


def after_internal_error(prepared: Prepared, now: datetime) -> DeliveryOutcome:
    """A delivery whose attempt raised inside the dispatcher: released for a few seconds."""
    return released(prepared, now + AFTER_INTERNAL_ERROR, now, "internal")


def skipped(prepared: Prepared, at: datetime) -> DeliveryOutcome:
    """A delivery to a disabled webhook: failed without a request; redeliverable."""
    return DeliveryOutcome(
        delivery_id=prepared.delivery_id,
        webhook_id=prepared.webhook_id,
        device_uuid=prepared.device_uuid,
        status=DeliveryStatus.FAILED,
        attempted=False,
        next_attempt_at=None,
        attempted_at=at,
        error="webhook disabled",
    )


def is_endpoint_failure(sent: SendResult) -> bool:
    """Failures that say the endpoint is unwell (the breaker counts these)."""
    if sent.ok:
        return False
    code = sent.status_code
    return code is None or code >= 500 or code in RETRYABLE_STATUS


@dataclass(frozen=True, slots=True)
class WebhookEffects:
    """What a batch of outcomes changes beyond its deliveries."""

    waiting: list[tuple[int, uuid.UUID]]  # (webhook, device) queues that wait until...
    wait_until: datetime
    gone: list[int]  # webhooks to disable: they answered 410 Gone
    recovered: list[int]  # webhooks whose run of failures ends
    failing: list[int]  # webhooks that failed and did not succeed in this batch
    disable_failing_since: datetime  # a failing webhook failing since then is disabled
    failing_reason: str


def webhook_effects(
    outcomes: Sequence[DeliveryOutcome], now: datetime, disable_after: timedelta
) -> WebhookEffects:
    """The webhook-level consequences of a batch of outcomes: the device of a delivery
    that will be retried has the rest of its queue wait `BEHIND_FAILURE_DELAY` (the
    endpoint is not asked again at once; they then go ahead of the retry); 410 disables;
    a success ends a webhook's run of failures, and a webhook failing without a success
    for `disable_after` is disabled."""
    pending, succeeded_status = DeliveryStatus.PENDING, DeliveryStatus.SUCCEEDED
    retried: set[tuple[int, uuid.UUID]] = set()
    gone: set[int] = set()
    succeeded: set[int] = set()
    failed: set[int] = set()
    for o in outcomes:
        if not o.attempted:
            continue
        if o.status == succeeded_status:
            succeeded.add(o.webhook_id)
            continue
        failed.add(o.webhook_id)
        if o.status == pending:
            retried.add((o.webhook_id, o.device_uuid))
        if o.status_code == GONE:
            gone.add(o.webhook_id)
    return WebhookEffects(
        waiting=sorted(retried),
        wait_until=now + BEHIND_FAILURE_DELAY,
        gone=sorted(gone),
        recovered=sorted(succeeded),
        failing=sorted(failed - succeeded),
        disable_failing_since=now - disable_after,
        failing_reason=f"every delivery failed for {disable_after.total_seconds() / 86400:g} days",
    )
