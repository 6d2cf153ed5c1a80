"""The delivery policy and the breaker, on their own: what an attempt's result means for
its delivery and its webhook (no database, no network: they are pure)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from vsense.webhooks import policy
from vsense.webhooks.breaker import Breaker
from vsense.webhooks.domain import DeliveryOutcome, DeliveryStatus, Prepared
from vsense.webhooks.events import PAYLOAD, TEST
from vsense.webhooks.sender import BLOCKED, CONNECT, HTTP_STATUS, SendResult

AT = datetime(2026, 1, 1, tzinfo=UTC)
DEVICE = uuid.UUID(int=7)


def prepared(*, attempts: int = 0, event_type: str = PAYLOAD, webhook_id: int = 1) -> Prepared:
    return Prepared(
        delivery_id=10,
        webhook_id=webhook_id,
        device_uuid=DEVICE,
        attempts=attempts,
        event_type=event_type,
        msg_id="msg_1",
        body=b"{}",
        active=True,
        method="POST",
        url="http://receiver.example/hook",
        params=(),
        headers=(),
        secrets=("whsec_x",),
    )


def answer(code: int | None, *, retry_after: float | None = None) -> SendResult:
    if code is None:
        return SendResult(status_code=None, error=CONNECT, detail="refused")
    error = None if 200 <= code < 300 else HTTP_STATUS
    return SendResult(status_code=code, error=error, detail="", retry_after=retry_after)


def test_a_2xx_succeeds_and_spends_the_attempt() -> None:
    outcome = policy.after_attempt(prepared(), answer(204), AT)
    assert outcome.status == DeliveryStatus.SUCCEEDED
    assert outcome.attempted and outcome.next_attempt_at is None and outcome.status_code == 204


@pytest.mark.parametrize("code", [400, 404, 410, 422])
def test_a_4xx_other_than_408_and_429_is_final(code: int) -> None:
    outcome = policy.after_attempt(prepared(), answer(code), AT)
    assert outcome.status == DeliveryStatus.FAILED and outcome.next_attempt_at is None


def test_a_refused_address_is_final() -> None:
    sent = SendResult(status_code=None, error=BLOCKED, detail="private address")
    outcome = policy.after_attempt(prepared(), sent, AT)
    assert outcome.status == DeliveryStatus.FAILED
    assert outcome.error == "blocked: private address"


def test_a_failed_test_event_is_not_retried() -> None:
    outcome = policy.after_attempt(prepared(event_type=TEST), answer(503), AT)
    assert outcome.status == DeliveryStatus.FAILED


@pytest.mark.parametrize("code", [None, 408, 429, 500, 503])
def test_retryable_failures_follow_the_schedule_with_jitter(code: int | None) -> None:
    for attempts, delay in enumerate(policy.RETRY_DELAYS):
        outcome = policy.after_attempt(prepared(attempts=attempts), answer(code), AT)
        assert outcome.status == DeliveryStatus.PENDING
        assert outcome.next_attempt_at is not None
        waited = (outcome.next_attempt_at - AT).total_seconds()
        assert delay * (1 - policy.JITTER) <= waited <= delay * (1 + policy.JITTER)


def test_retry_after_is_honoured_up_to_its_cap() -> None:
    soon = policy.after_attempt(prepared(), answer(429, retry_after=120), AT)
    late = policy.after_attempt(prepared(), answer(503, retry_after=10**6), AT)
    assert soon.next_attempt_at == AT + timedelta(seconds=120)
    assert late.next_attempt_at == AT + timedelta(seconds=policy.RETRY_AFTER_CAP)


def test_the_last_attempt_failing_makes_the_delivery_dead() -> None:
    last = prepared(attempts=policy.MAX_ATTEMPTS - 1)
    outcome = policy.after_attempt(last, answer(500), AT)
    assert outcome.status == DeliveryStatus.DEAD and outcome.next_attempt_at is None


def test_releases_spend_no_attempt() -> None:
    behind = policy.behind_failure(prepared(), AT)
    skipped = policy.skipped(prepared(), AT)
    assert not behind.attempted and behind.status == DeliveryStatus.PENDING
    assert behind.next_attempt_at == AT + policy.BEHIND_FAILURE_DELAY
    assert not skipped.attempted and skipped.status == DeliveryStatus.FAILED


@pytest.mark.parametrize(
    ("code", "counted"), [(200, False), (404, False), (410, False), (429, True), (502, True)]
)
def test_the_breaker_counts_only_failures_of_the_endpoint(code: int, counted: bool) -> None:
    assert policy.is_endpoint_failure(answer(code)) is counted
    assert policy.is_endpoint_failure(answer(None))


def outcome_of(webhook_id: int, code: int, *, device: uuid.UUID = DEVICE) -> DeliveryOutcome:
    item = prepared(webhook_id=webhook_id)
    outcome = policy.after_attempt(item, answer(code), AT)
    outcome.device_uuid = device
    return outcome


def test_webhook_effects_of_a_batch() -> None:
    other = uuid.UUID(int=8)
    batch = [
        outcome_of(1, 200),
        outcome_of(1, 500, device=other),  # webhook 1 also succeeded: not failing
        outcome_of(2, 503),  # retried: the rest of device's queue to webhook 2 waits
        outcome_of(3, 410),
        policy.behind_failure(prepared(webhook_id=4), AT),  # no attempt: no effect
    ]
    effects = policy.webhook_effects(batch, AT, timedelta(days=5))
    assert effects.waiting == sorted([(1, other), (2, DEVICE)])
    assert effects.wait_until == AT + policy.BEHIND_FAILURE_DELAY
    assert effects.gone == [3]
    assert effects.recovered == [1]
    assert effects.failing == [2, 3]
    assert effects.disable_failing_since == AT - timedelta(days=5)
    assert effects.failing_reason == "every delivery failed for 5 days"


def test_the_breaker_opens_after_consecutive_failures_for_longer_each_time() -> None:
    breaker = Breaker()
    opened = [breaker.record(True, False, AT) for _ in range(5)]
    assert opened == [False, False, False, False, True]
    assert breaker.is_open(AT + timedelta(seconds=29.9))
    assert not breaker.is_open(AT + timedelta(seconds=30))
    assert breaker.record(True, False, AT + timedelta(seconds=31))
    assert breaker.open_seconds == 60.0
    assert not breaker.record(False, False, AT + timedelta(seconds=100))
    assert (breaker.failures, breaker.open_until) == (0, None)
    later = AT + timedelta(seconds=200)
    assert [breaker.record(True, False, later) for _ in range(5)][-1]
    assert breaker.open_seconds == 30.0


def test_the_breaker_opens_on_the_first_timeout() -> None:
    breaker = Breaker()
    assert breaker.record(True, True, AT)
    assert breaker.open_until == AT + timedelta(seconds=30)
    # While open, more timeouts (requests that were already out) do not move it.
    assert not breaker.record(True, True, AT + timedelta(seconds=5))
    assert breaker.open_until == AT + timedelta(seconds=30)
    # The probe after it closes times out again: open twice as long.
    assert breaker.record(True, True, AT + timedelta(seconds=31))
    assert breaker.open_seconds == 60.0
