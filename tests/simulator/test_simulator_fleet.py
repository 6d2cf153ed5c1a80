"""The simulated fleet against FakePlatform: a small HTTP server of the test's own.

The simulator is a client of the platform like any other, so the platform is outside
its system: FakePlatform stands in for it on 127.0.0.1 with the endpoints of
spec/api.md and spec/devices.md that the simulator uses, answering as they say and
recording what it was sent.
"""

from __future__ import annotations

import json
import math
import re
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import typer
from typer.testing import CliRunner

from vsense.simulator.command import api_base_url, simulate_command
from vsense.simulator.fleet import FleetError, FleetStats, run_fleet

ADMIN_TOKEN = "vst_test_admin"
HEALTH_FIELDS = {"fw_version", "uptime_s", "temperature_c", "cpu_load", "free_disk_mb", "ip"} | {
    "signal_dbm"
}


@dataclass
class FakeDevice:
    uuid: str
    name: str
    client_identifier: str
    app_type: str | None
    body: dict[str, Any]
    commands: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Keepalive:
    device_uuid: str
    at: float
    health: dict[str, Any]


class FakePlatform:
    """The device endpoints of a vsense server, held in memory and recording requests."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.devices: dict[str, FakeDevice] = {}
        self.device_tokens: dict[str, str] = {}  # token -> device uuid
        self.queued: dict[str, list[dict[str, Any]]] = {}  # client identifier -> commands
        self.keepalives: list[Keepalive] = []
        self.messages: list[tuple[str, dict[str, Any]]] = []  # (device uuid, message)
        self.results: dict[str, dict[str, Any]] = {}
        self.images: dict[tuple[str, str], tuple[str, bytes]] = {}  # (request, kind) -> upload
        self.calls: Counter[str] = Counter()
        self.refused: Counter[int] = Counter()
        self.answer_429: int = 0  # the next this many keepalives are rate limited
        self.throttled_at: list[float] = []
        self.refuse_payloads = False
        self.answer_delay = 0.0  # seconds each device request waits, once recorded
        handler = type("Handler", (_Handler,), {"platform": self})
        self.server = _Server(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def add_device(self, client_identifier: str, app_type: str | None = "VPM") -> FakeDevice:
        """A device onboarded before the run (by an earlier run, say)."""
        device_uuid = str(uuid.uuid4())
        device = FakeDevice(device_uuid, client_identifier, client_identifier, app_type, {})
        self.devices[device_uuid] = device
        self.device_tokens[f"vsd_{uuid.uuid4().hex}"] = device_uuid
        return device

    def by_identifier(self, client_identifier: str) -> FakeDevice:
        return next(d for d in self.devices.values() if d.client_identifier == client_identifier)

    def token_of(self, device_uuid: str) -> str:
        return next(token for token, owner in self.device_tokens.items() if owner == device_uuid)

    # Routes: each returns (status, body or None, extra headers).

    def route(
        self, method: str, path: str, query: dict[str, str], token: str, body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        self.calls[f"{method} {re.sub(r'/[0-9a-f-]{36}/', '/{uuid}/', path)}"] += 1
        if path.startswith("/api/v1/"):
            if token != ADMIN_TOKEN:
                return _error(401, "Give a valid token")
            if method == "GET" and path == "/api/v1/devices":
                return self.list_devices(query)
            if method == "POST" and path == "/api/v1/devices":
                return self.onboard(body)
            if method == "POST" and (
                match := re.fullmatch(r"/api/v1/devices/(.+)/credentials", path)
            ):
                return self.rotate(match[1])
            return _error(404, "No such resource")
        device_uuid = self.device_tokens.get(token)
        if device_uuid is None:
            self.refused[401] += 1
            return _error(401, "Give a valid device token")
        if method == "POST" and path == "/device/v1/keepalive":
            return self.keepalive(device_uuid, body)
        if method == "POST" and path == "/device/v1/payloads":
            return self.payloads(device_uuid, body)
        if method == "POST" and (match := re.fullmatch(r"/device/v1/commands/(.+)/result", path)):
            return self.result(device_uuid, match[1], body)
        if method == "PUT" and (match := re.fullmatch(r"/device/v1/images/(.+)/(.+)", path)):
            self.images[(match[1], match[2])] = body
            return 204, None, {}
        return _error(404, "No such resource")

    def list_devices(self, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        search = query.get("search", "").lower()
        per_page = min(int(query.get("per_page", 25)), 500)
        page = int(query.get("page", 1))
        found = sorted(
            (
                d
                for d in self.devices.values()
                if search in d.name.lower() or search in d.client_identifier.lower()
            ),
            key=lambda d: (d.name, d.uuid),
        )
        shown = found[(page - 1) * per_page : page * per_page]
        data = [self.describe(d) for d in shown]
        last_page = max(1, math.ceil(len(found) / per_page))
        first = (page - 1) * per_page + 1 if shown else 0
        meta = {
            "current_page": page,
            "from": first,
            "last_page": last_page,
            "per_page": per_page,
            "total": len(found),
            "to": first + len(shown) - 1 if shown else 0,
            "total_pages": last_page,
        }
        return 200, {"data": data, "meta": meta}, {}

    def describe(self, device: FakeDevice) -> dict[str, Any]:
        """A device object as spec/api.md shows it."""
        return {
            "uuid": device.uuid,
            "name": device.name,
            "client_identifier": device.client_identifier,
            "refreshed": None,
            "is_online": 0,
            "geo_city": device.body.get("geo_city", ""),
            "geo_country": device.body.get("geo_country", ""),
            "app_type": device.app_type,
        }

    def onboard(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        device = FakeDevice(
            str(uuid.uuid4()), body["name"], body["client_identifier"], body["app_type"], body
        )
        self.devices[device.uuid] = device
        device.commands = self.queued.pop(device.client_identifier, [])
        token = f"vsd_{uuid.uuid4().hex}"
        self.device_tokens[token] = device.uuid
        answer = self.describe(device) | {"device_token": token}  # the device, and its token
        return 201, answer, {}

    def rotate(self, device_uuid: str) -> tuple[int, Any, dict[str, str]]:
        if device_uuid not in self.devices:
            return _error(404, "No such device")
        for old in [t for t, owner in self.device_tokens.items() if owner == device_uuid]:
            del self.device_tokens[old]
        token = f"vsd_{uuid.uuid4().hex}"
        self.device_tokens[token] = device_uuid
        return 201, {"uuid": device_uuid, "device_token": token}, {}

    def keepalive(self, device_uuid: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        if self.answer_429 > 0:
            self.answer_429 -= 1
            self.throttled_at.append(time.monotonic())
            status, error, _ = _error(429, "Slow down")
            return status, error, {"Retry-After": "1"}
        self.keepalives.append(Keepalive(device_uuid, time.monotonic(), body))
        return 200, {"commands": list(self.devices[device_uuid].commands)}, {}

    def payloads(self, device_uuid: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        messages = body if isinstance(body, list) else [body]
        if self.refuse_payloads or len(messages) > 500:
            errors = [{"field": f"{i}.payload", "message": "refused"} for i in range(len(messages))]
            return 422, {"httpError": 422, "code": 4022, "message": "Invalid", "error": errors}, {}
        self.messages.extend((device_uuid, message) for message in messages)
        return 202, {"accepted": len(messages)}, {}

    def result(
        self, device_uuid: str, command_id: str, body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        device = self.devices[device_uuid]
        if not any(command["id"] == command_id for command in device.commands):
            return _error(404, "No such command")
        device.commands = [c for c in device.commands if c["id"] != command_id]
        self.results[command_id] = body
        return 204, None, {}


def _error(status: int, message: str) -> tuple[int, Any, dict[str, str]]:
    return status, {"httpError": status, "code": status * 10, "message": message, "error": []}, {}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the fleet opens its whole pool at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A fleet that stops closes its connections mid-keep-alive; that is no error.
        if not isinstance(sys.exception(), ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    platform: FakePlatform
    protocol_version = "HTTP/1.1"  # keep-alive, as the simulator's connection pool expects
    disable_nagle_algorithm = True  # headers and body go out in two writes

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        self._answer()

    def _answer(self) -> None:
        parts = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if len(raw) < length:  # the fleet stopped halfway through sending
            self.close_connection = True
            return
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        with self.platform.lock:
            # Image uploads: (content type, bytes); everything else is JSON.
            if self.command == "PUT":
                body = (self.headers.get("Content-Type") or "", raw)
            else:
                body = json.loads(raw) if raw else None
            status, body, headers = self.platform.route(
                self.command, parts.path, query, token, body
            )
        if parts.path.startswith("/device/"):
            time.sleep(self.platform.answer_delay)
        content = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if content:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # thousands of requests: the test reads the records instead


@pytest.fixture
def platform() -> Iterator[FakePlatform]:
    fake = FakePlatform()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()
    fake.thread.join(timeout=5)


async def fleet(platform: FakePlatform, **options: Any) -> tuple[FleetStats, list[str]]:
    """Run a fleet against `platform` for `duration` seconds after onboarding; the
    requests in flight then are answered before it stops, so `stats` counts what the
    platform recorded."""
    events: list[str] = []
    settings: dict[str, Any] = {"devices": 4, "types": ["VPM", "VYD", "VCZ", "VCB", "VCW"]}
    settings |= {"rate": 60.0, "keepalive_interval": 60, "duration": 1.5} | options
    stats = await run_fleet(
        api_addr=platform.url, token=ADMIN_TOKEN, on_event=events.append, **settings
    )
    return stats, events


async def test_onboards_every_device_with_round_robin_types(platform: FakePlatform) -> None:
    stats, _ = await fleet(platform, devices=7, types=["VPM", "VCZ"], keepalive_interval=120)

    assert stats.devices_onboarded == 7
    assert stats.devices_reused == 0
    bodies = sorted(
        (d.body for d in platform.devices.values()), key=lambda b: b["client_identifier"]
    )
    assert [b["client_identifier"] for b in bodies] == [f"sim/{i:05d}" for i in range(7)]
    assert [b["app_type"] for b in bodies] == ["VPM", "VCZ"] * 3 + ["VPM"]
    assert all(b["keepalive_interval"] == 120 for b in bodies)
    assert all(b["name"].startswith(f"{b['app_type']} {i:05d}") for i, b in enumerate(bodies))
    assert all(b["geo_city"] and b["geo_country"] for b in bodies)


async def test_reuses_existing_devices_by_rotating_their_tokens(platform: FakePlatform) -> None:
    # 510 devices of an earlier run: more than a page of 500.
    earlier = [platform.add_device(f"sim/{i:05d}", app_type="VCW") for i in range(510)]
    old_tokens = {device.uuid: platform.token_of(device.uuid) for device in earlier}
    stranger = platform.add_device("notsim/00001")

    stats, _ = await fleet(platform, devices=512, duration=2.5)

    assert stats.devices_reused == 510
    assert stats.devices_onboarded == 2
    assert platform.calls["GET /api/v1/devices"] == 2
    assert platform.calls["POST /api/v1/devices/{uuid}/credentials"] == 510
    assert len(platform.devices) == 510 + 2 + 1
    assert all(platform.token_of(d.uuid) != old_tokens[d.uuid] for d in earlier)
    assert platform.token_of(stranger.uuid)  # not touched: its identifier is not ours
    # A reused device keeps its type, so its payloads still match it.
    reused_messages = [m for owner, m in platform.messages if owner in old_tokens]
    assert reused_messages
    assert all(m["type"] == "VCW" for m in reused_messages)


async def test_keepalives_carry_each_device_token_and_health(platform: FakePlatform) -> None:
    stats, _ = await fleet(platform, devices=5, duration=2.5)

    assert 0 < stats.keepalives_sent == len(platform.keepalives)
    assert platform.refused[401] == 0
    assert {k.device_uuid for k in platform.keepalives} == set(platform.devices)
    assert all(set(k.health) == HEALTH_FIELDS for k in platform.keepalives)


async def test_sends_payload_batches_of_each_device_type(platform: FakePlatform) -> None:
    # rate 120: a period is half a second, so every type reports within the run.
    stats, _ = await fleet(platform, devices=5, rate=120.0, duration=2.5)

    assert stats.errors == 0
    assert 0 < stats.messages_accepted == len(platform.messages)
    for device in platform.devices.values():
        sent = [m for owner, m in platform.messages if owner == device.uuid]
        assert sent
        assert all(m["type"] == device.app_type and m["payload"] for m in sent)


async def test_a_timed_run_counts_the_requests_answered_after_its_end(
    platform: FakePlatform,
) -> None:
    """Answers slower than the run is long: each request is still in flight when the
    time is up, and counts once answered, as the platform recorded it."""
    platform.answer_delay = 1.0
    stats, _ = await fleet(platform, devices=3, types=["VCZ"], rate=120.0, duration=0.5)

    assert stats.errors == 0
    assert 0 < stats.keepalives_sent == len(platform.keepalives)
    assert stats.messages_accepted == len(platform.messages)


async def test_reboot_and_capture_commands_get_results(platform: FakePlatform) -> None:
    platform.queued["sim/00000"] = [{"id": "c-reboot", "type": "reboot"}]
    platform.queued["sim/00001"] = [
        {"id": "c-capture", "type": "capture_image", "request_id": "r-1", "created": 1}
    ]

    stats, _ = await fleet(platform, devices=2, duration=3.0, capture_delay=0.5)

    assert platform.results == {"c-reboot": {"ok": True}, "c-capture": {"ok": True}}
    assert stats.commands_handled == 2
    assert stats.captures_uploaded == 1
    raw_type, raw = platform.images[("r-1", "raw")]
    annotated_type, annotated = platform.images[("r-1", "annotated")]
    assert (raw_type, raw[:3]) == ("image/jpeg", b"\xff\xd8\xff")
    assert (annotated_type, annotated[:8]) == ("image/png", b"\x89PNG\r\n\x1a\n")
    rebooted = platform.by_identifier("sim/00000").uuid
    uptimes = [k.health["uptime_s"] for k in platform.keepalives if k.device_uuid == rebooted]
    assert uptimes[0] > 3600  # found running
    assert len(uptimes) > 1
    assert uptimes[-1] < 10  # back from the reboot


async def test_refused_payloads_count_as_errors_and_are_reported(platform: FakePlatform) -> None:
    platform.refuse_payloads = True

    # Each device's first message comes within a simulated minute of the start (1 s at
    # rate 60; sim/00000's at 0.99 s): the run lasts long enough for both.
    stats, events = await fleet(platform, devices=2, types=["VPM"], duration=2.0)

    assert stats.errors >= 2
    assert stats.messages_accepted == 0
    assert any("payloads refused" in event and "422" in event for event in events)


async def test_rate_limited_requests_wait_for_retry_after(platform: FakePlatform) -> None:
    platform.answer_429 = 1

    stats, _ = await fleet(platform, devices=1, types=["VCZ"], duration=3.0)

    assert stats.retries == 1
    assert stats.errors == 0
    (throttled,) = platform.throttled_at
    assert platform.keepalives[0].at - throttled >= 1.0


async def test_a_refused_admin_token_stops_the_fleet(platform: FakePlatform) -> None:
    with pytest.raises(FleetError, match="cannot list devices: HTTP 401"):
        await run_fleet(api_addr=platform.url, token="vst_wrong", devices=1, types=["VPM"])


@pytest.mark.slow
async def test_two_thousand_devices_run_without_errors(platform: FakePlatform) -> None:
    # FakePlatform runs a thread per connection in this process, so it and the fleet
    # share one interpreter lock: a small pool goes faster here than the default 64.
    # Throughput is for bench/, not for assertions; this checks that nothing breaks.
    stats, events = await fleet(platform, devices=2_000, rate=10.0, duration=3.0, concurrency=16)

    assert stats.devices_onboarded == 2_000
    assert stats.errors == 0, events[:5]
    assert platform.refused[401] == 0
    assert 0 < stats.keepalives_sent <= len(platform.keepalives) <= stats.keepalives_sent + 16
    assert 0 < stats.messages_accepted <= len(platform.messages)
    assert {k.device_uuid for k in platform.keepalives} <= set(platform.devices)


def test_api_address_without_a_scheme_means_https() -> None:
    assert api_base_url("api.example.com") == "https://api.example.com"
    assert api_base_url("http://127.0.0.1:8000/") == "http://127.0.0.1:8000"
    assert api_base_url("localhost:8000") == "https://localhost:8000"


def command_app() -> typer.Typer:
    app = typer.Typer()
    app.command()(simulate_command)
    return app


def test_the_command_runs_a_fleet_with_the_token_from_the_environment(
    platform: FakePlatform,
) -> None:
    arguments = ["--api-addr", platform.url, "--devices", "3", "--rate", "60", "--duration", "1"]
    result = CliRunner().invoke(command_app(), arguments, env={"VSENSE_TOKEN": ADMIN_TOKEN})
    assert result.exit_code == 0, result.output
    assert "done: devices 3 new + 0 reused" in result.output
    assert len(platform.devices) == 3
