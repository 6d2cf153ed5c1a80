"""The simulator's end-of-run report over MQTT: what the broker acknowledged against what
the server stored, read back through the API."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.environment import BROKER
from tests.live_server import LiveServer, integrator_token, start_server
from vsense.simulator.fleet import FleetStats, run_fleet
from vsense.simulator.readback import read_back


def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, bridge: bool) -> LiveServer:
    # start_server copies os.environ; a share group of its own keeps other servers on
    # this broker from taking the messages.
    if bridge:
        monkeypatch.setenv("VSENSE_MQTT_URL", BROKER)
        monkeypatch.setenv("VSENSE_MQTT_SHARE_GROUP", f"test-{uuid.uuid4().hex[:8]}")
    else:
        monkeypatch.delenv("VSENSE_MQTT_URL", raising=False)
    return start_server(tmp_path)


@pytest.fixture
def bridged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    live = serve(tmp_path, monkeypatch, bridge=True)
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def unbridged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    live = serve(tmp_path, monkeypatch, bridge=False)
    try:
        yield live
    finally:
        live.stop()


def run(server: LiveServer, events: list[str]) -> FleetStats:
    token = integrator_token(server)
    return asyncio.run(
        run_fleet(
            api_addr=server.base_url,
            token=token,
            devices=4,
            types=["VCZ", "VCB"],
            rate=60,
            keepalive_interval=10,
            duration=4,
            mqtt=BROKER,
            on_event=events.append,
        )
    )


@pytest.mark.slow
@pytest.mark.mqtt
def test_a_run_reports_every_published_message_stored(bridged: LiveServer) -> None:
    events: list[str] = []
    stats = run(bridged, events)
    assert stats.messages_accepted > 0
    assert stats.messages_stored == stats.messages_accepted, events
    assert stats.devices_short == 0
    assert f"stored {stats.messages_stored} of {stats.messages_accepted}" in stats.summary()


@pytest.mark.slow
@pytest.mark.mqtt
def test_a_run_reports_messages_the_broker_acknowledged_but_nobody_stored(
    unbridged: LiveServer,
) -> None:
    """No bridge subscribed: the broker acknowledges each message and drops it."""
    events: list[str] = []
    stats = run(unbridged, events)
    assert stats.messages_accepted > 0
    assert stats.messages_stored == 0
    assert stats.devices_short == 4
    assert any("fewer messages than were sent" in event for event in events), events
    assert "(4 devices short)" in stats.summary()


class StoredPayloads:
    """The payload log of the SDK (`sdk.payloads.list`): each device's stored message
    timestamps, counted from `since` as the API does (`timestamp >= since`)."""

    def __init__(self, stamps: dict[str, list[int]]) -> None:
        self.stamps = stamps

    async def list(self, device: str, *, since: datetime, per_page: int) -> Any:
        total = sum(1 for stamp in self.stamps[device] if stamp >= since.timestamp())
        return SimpleNamespace(meta=SimpleNamespace(total=total), data=[])


async def test_a_message_stamped_in_the_runs_first_second_counts_as_stored() -> None:
    """A run that starts at 1000.7 s: a message sent at 1000.9 s is stamped 1000 (the
    timestamps are whole seconds), before the start itself."""
    sdk = SimpleNamespace(payloads=StoredPayloads({"a": [1000, 1001], "b": [1002]}))
    checked = await read_back(
        sdk,  # type: ignore[arg-type]
        {"a": 2, "b": 1},
        since=1000.7,
        concurrency=2,
        log=lambda _line: None,
    )
    assert (checked.published, checked.stored, checked.devices_short) == (3, 3, 0)
