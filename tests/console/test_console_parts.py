"""The console's pieces that need no browser: times as people read them, chart
bucketing, webhook health, form parsing, where a login may lead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vsense.console.auth import safe_next
from vsense.console.device_live import MAX_POINTS, bucket_seconds, chart_series
from vsense.console.forms import name_values
from vsense.console.render import ago
from vsense.console.webhooks import health
from vsense.payloads.schemas import MetricPoint
from vsense.webhooks.schemas import Attempt, Delivery, DeliveryEvent, DeliveryList

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_last_seen_reads_as_a_person_says_it() -> None:
    assert ago(NOW - timedelta(seconds=42), NOW) == "42 s ago"
    assert ago(NOW - timedelta(minutes=2, seconds=5), NOW) == "2 min ago"
    assert ago(NOW - timedelta(hours=3), NOW) == "3 h ago"
    assert ago(NOW - timedelta(days=9), NOW) == "9 d ago"
    assert ago(None, NOW) == "never"
    assert ago(NOW + timedelta(seconds=3), NOW) == "just now"


def test_a_chart_never_gets_more_points_than_it_has_pixels() -> None:
    for window in (3600, 86400, 30 * 86400):
        for asked in (0, 1, 60, 3600):
            step = bucket_seconds(window, asked)
            assert step >= asked
            assert window / step <= MAX_POINTS
    assert bucket_seconds(3600, 60) == 60  # a fine interval that fits is kept


def test_chart_series_align_markers_on_one_time_axis() -> None:
    def point(name: str, marker: str | None, minute: int, value: float) -> MetricPoint:
        start = NOW + timedelta(minutes=minute)
        return MetricPoint(
            name=name, marker_id=marker, marker_name=marker, start=start,
            avg=value, min=value, max=value, count=1,
        )  # fmt: skip

    charts = chart_series(
        [point("count", "Z-0", 0, 1), point("count", "Z-1", 5, 2), point("in", None, 0, 3)]
    )
    assert [c["name"] for c in charts] == ["count", "in"]
    count = charts[0]
    assert count["labels"] == ["Z-0", "Z-1"]
    assert count["y"] == [[1, None], [None, 2]]
    assert charts[1]["labels"] == ["total"]


def _log(*codes: int | None) -> DeliveryList:
    """One delivery per attempt, newest first, as the service lists them."""
    deliveries = []
    for i, code in enumerate(codes):
        at = NOW - timedelta(minutes=i)
        attempt = Attempt(
            attempted_at=at, status_code=code, duration_ms=5,
            error=None if code else "timeout", response="",
        )  # fmt: skip
        deliveries.append(
            Delivery(
                id=i + 1,
                event=DeliveryEvent(id=f"msg_{i}", type="test", created=at),
                status="succeeded" if code == 200 else "failed",
                attempts=1,
                next_attempt_at=None,
                reclaims=0,
                created=at,
                attempt_log=[attempt],
            )
        )
    return DeliveryList.model_validate(
        {"data": deliveries, "meta": {"current_page": 1, "from": 1, "last_page": 1,
         "per_page": 20, "total": len(deliveries), "to": len(deliveries), "total_pages": 1}}
    )  # fmt: skip


def test_webhook_health_from_its_delivery_log() -> None:
    healthy = health(_log(200, 500, 200))
    assert healthy.last_success == NOW
    assert healthy.failure_rate is not None and round(healthy.failure_rate, 2) == 0.33
    assert not healthy.breaker_open
    failing = health(_log(503, None, 500, 502, 503, 200))
    assert failing.breaker_open
    assert failing.last_success == NOW - timedelta(minutes=5)
    assert health(_log()).failure_rate is None


def test_header_and_parameter_lines() -> None:
    assert name_values("X-Key: a=b\n\nsite=7\n") == [
        {"name": "X-Key", "value": "a=b"},
        {"name": "site", "value": "7"},
    ]


def test_a_login_leads_back_into_the_console_only() -> None:
    assert safe_next("/console/devices/x?y=1") == "/console/devices/x?y=1"
    for elsewhere in ("https://evil.example/", "//evil.example/console/", "/api/v1/me", None):
        assert safe_next(elsewhere) == "/console/"
