"""The Prometheus metrics of a server, in a registry of their own.

One process keeps them in memory. Several (`vsense serve --workers N`) use the client's
multiprocess mode: `PROMETHEUS_MULTIPROC_DIR` names a folder where each process writes
its values to files of its own (`vsense serve` makes one when it starts several
processes and none is set), and a scrape of any process adds up every process's files
(`exposition`), so one scrape shows the whole server. Counters and histograms are
summed (a dead process's counts stay, as counters must); the gauges say how they
combine (`livesum`: the long polls of the live processes; `livemin`: the MQTT bridges
are connected only when every live process's is).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The folder of the multiprocess mode, when it is on."""
    return os.environ.get(MULTIPROCESS_DIR) or None


class Metrics:
    """The server's Prometheus metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess = multiprocess_dir() is not None
        self.requests = Counter(
            "vsense_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "vsense_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.mqtt_messages = Counter(
            "vsense_mqtt_messages",
            "Messages the MQTT bridge received, by outcome (accepted, unknown_device, "
            "bad_topic, invalid; retried: left unacknowledged for the broker to resend; "
            "failed: dropped after repeated failures).",
            ["outcome"],
            registry=self.registry,
        )
        self.long_polls = Gauge(
            "vsense_device_long_polls",
            "Long polls (GET /device/v1/commands) waiting for commands now.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.mqtt_bridge_failures = Counter(
            "vsense_mqtt_bridge_failures",
            "Times the MQTT bridge left its broker to come back, by reason (broker, "
            "database: unavailable, error: anything else).",
            ["reason"],
            registry=self.registry,
        )
        self.mqtt_bridge_connected = Gauge(
            "vsense_mqtt_bridge_connected",
            "1 while the MQTT bridge is connected and subscribed, else 0 (with several "
            "processes: 1 while every process's is).",
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        self.mqtt_batch_size = Histogram(
            "vsense_mqtt_batch_size",
            "Messages the MQTT bridge handled in one transaction.",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=self.registry,
        )
        self.group_commit_size = Histogram(
            "vsense_group_commit_size",
            "Units of work (device requests' writes) that shared one group transaction; "
            "the mean is the requests per BEGIN and COMMIT.",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        self.mqtt_broker_dropped = Gauge(
            "vsense_mqtt_broker_dropped_messages",
            "Messages the MQTT broker says it dropped since it started (its "
            "$SYS/broker/publish/messages/dropped, for all its clients): any rise means "
            "messages a device was told were delivered were lost, usually a subscriber's "
            "queue that filled. -1 until the broker reports it.",
            registry=self.registry,
        )
        self.mqtt_broker_dropped.set(-1)
        self.payloads_dropped = Counter(
            "vsense_payload_messages_dropped",
            "Device messages dropped after acceptance, by type and reason (rate_limited: a "
            "VPM device sent more than one message per 30 s).",
            ["type", "reason"],
            registry=self.registry,
        )
        self.webhook_deliveries = Counter(
            "vsense_webhook_deliveries",
            "Webhook delivery attempts by outcome (succeeded, pending: retried later, failed, "
            "dead), and deliveries released without an attempt (deferred).",
            ["outcome"],
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        """The text a scrape gets: this process's metrics, or every process's in the
        multiprocess mode."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def process_ended(self) -> None:
        """Drop this process's live gauges from the multiprocess folder (its counters
        stay: what it counted happened)."""
        if self.multiprocess:
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
