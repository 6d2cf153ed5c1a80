"""A fleet of simulated sensors driven from one process.

`run_fleet` enrols the devices through the SDK (onboarding them, or taking over those
a previous run left by rotating their tokens: `enrolment.py`), then drives them all
from a single scheduler: a heap of next-due times, one task per device that is due,
and a semaphore bounding requests in flight. What devices send goes through a
`Transport` (`transport.py`): the device API over HTTP (`http.py`), or an MQTT broker
(`mqtt.py`). Memory stays bounded whatever the server does: the heap holds each
device about once (a command arriving over MQTT may add an early entry, the old one
then being skipped), at most `concurrency` tasks exist, and each device queues at
most `OUTBOX_LIMIT` messages.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from vsense.client import AsyncClient
from vsense.simulator.captures import DEFAULT_CAPTURE_DELAY_S, Capture, take_capture
from vsense.simulator.enrolment import CITIES, Enrolment, enrol_all
from vsense.simulator.http import MAX_ATTEMPTS, MAX_RETRY_AFTER_S, DeviceHttp, HttpTransport
from vsense.simulator.http import problem as _problem
from vsense.simulator.mqtt import Broker, MqttTransport
from vsense.simulator.readback import read_back
from vsense.simulator.scenes import SCENES, Message, Scene, SimClock, make_scene
from vsense.simulator.transport import Command, FleetError, FleetStats, TokenRefused, Transport

MAX_BATCH = 500  # spec/devices.md: a payload request carries at most 500 messages
# Messages a device keeps while the server does not take them; the oldest go first.
# Bounded so that an unreachable server cannot make the simulator grow without end.
OUTBOX_LIMIT = 20
RETRY_LATER_S = 15.0  # wall-clock wait before a device tries again what it gave up on
REBOOT_S = 2.0  # simulated seconds a reboot takes
EVENTS_PER_WINDOW = 20  # on_event lines per EVENT_WINDOW_S before the rest are summed up
EVENT_WINDOW_S = 10.0
SEEN_COMMANDS = 32
MQTT_DEVICES_PER_CONNECTION_SLOTS = 8  # pooled MQTT: one connection per 8 of `concurrency`
USER_AGENT = "vsense-simulator"
# At the end of a timed run, how long the sends in flight may take to be answered: a
# message counts as published once the server or the broker acknowledged it, and one
# cut off while it waits could have arrived without being counted.
IN_FLIGHT_GRACE_S = 10.0


class _EventLog:
    """Passes events on, at most EVENTS_PER_WINDOW per window, so that 10,000 devices
    failing the same way give a readable log rather than a flood."""

    def __init__(self, on_event: Callable[[str], None] | None) -> None:
        self._on_event = on_event
        self._window_start = 0.0
        self._sent = 0
        self._suppressed = 0

    def __call__(self, text: str) -> None:
        if self._on_event is None:
            return
        now = time.monotonic()
        if now - self._window_start >= EVENT_WINDOW_S:
            if self._suppressed:
                self._on_event(f"... and {self._suppressed} more events")
            self._window_start, self._sent, self._suppressed = now, 0, 0
        if self._sent < EVENTS_PER_WINDOW:
            self._sent += 1
            self._on_event(text)
        else:
            self._suppressed += 1


@dataclass(slots=True, eq=False)
class _Device:
    identifier: str
    uuid: str
    token: str
    scene: Scene
    rng: random.Random
    next_keepalive: float
    outbox: deque[Message] = field(default_factory=lambda: deque(maxlen=OUTBOX_LIMIT))
    results: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    seen_commands: deque[str] = field(default_factory=lambda: deque(maxlen=SEEN_COMMANDS))
    captures: list[Capture] = field(default_factory=list)
    rebooting_until: float = 0.0
    retry_at: float = 0.0
    stopped: bool = False
    # When the device is next due as queued in the heap (None while it is served or
    # stopped), and the ticket of its one valid heap entry: others are stale and skipped.
    queued_at: float | None = None
    ticket: int = 0
    accepted: int = 0  # messages the broker or the server acknowledged


class _Scheduler:
    """Runs every device when it is next due, with at most `concurrency` at a time."""

    def __init__(
        self,
        devices: list[_Device],
        transport: Transport,
        http: DeviceHttp,
        *,
        keepalive_every_s: float,
        rate: float,
        concurrency: int,
        capture_delay: float = DEFAULT_CAPTURE_DELAY_S,
    ) -> None:
        self.devices = devices
        self.transport = transport
        self.http = http  # image uploads go over HTTP whatever the transport
        self.stats = http.stats
        self.log = http.log
        self.keepalive_every_s = keepalive_every_s
        self.rate = rate
        self.capture_delay = capture_delay  # wall-clock seconds, whatever the rate
        self._slots = asyncio.Semaphore(concurrency)
        self._heap: list[tuple[float, int, int]] = []
        for position, device in enumerate(devices):
            device.ticket += 1
            device.queued_at = self._next_wake(device)
            self._heap.append((device.queued_at, position, device.ticket))
        heapq.heapify(self._heap)
        self._tasks: set[asyncio.Task[None]] = set()
        self._wakeup = asyncio.Event()
        self._positions = {device.uuid: position for position, device in enumerate(devices)}

    def _queue(self, position: int, wake: float) -> None:
        device = self.devices[position]
        device.ticket += 1
        device.queued_at = wake
        heapq.heappush(self._heap, (wake, position, device.ticket))
        self._wakeup.set()

    def _is_stale(self, entry: tuple[float, int, int]) -> bool:
        _, position, ticket = entry
        device = self.devices[position]
        return device.queued_at is None or device.ticket != ticket

    def wake(self, position: int) -> None:
        """Serve the device as soon as a slot is free (it has something to report)."""
        device = self.devices[position]
        now = time.time()
        if device.queued_at is not None and device.queued_at > now:
            self._queue(position, now)
        # Served right now: its next wake accounts for what it has to report.

    async def run(self, until: float | None = None) -> None:
        """Run until the wall-clock time `until` (then let the sends in flight end, for
        `IN_FLIGHT_GRACE_S` at most), or until cancelled; tasks still in flight are
        cancelled with it."""
        async with self.transport.connect(self._command_arrived):
            await self._loop(until)

    async def _loop(self, until: float | None) -> None:
        try:
            while until is None or time.time() < until:
                now = time.time()
                if self._heap and self._is_stale(self._heap[0]):
                    heapq.heappop(self._heap)
                    continue
                if self._heap and self._heap[0][0] <= now:
                    # Waiting for a slot before popping is the back-pressure: a slow
                    # server slows the loop instead of piling up tasks.
                    await self._slots.acquire()
                    if until is not None and time.time() >= until:
                        self._slots.release()
                        break
                    entry = heapq.heappop(self._heap)  # due: entries only get earlier
                    if self._is_stale(entry):
                        self._slots.release()
                        continue
                    position = entry[1]
                    self.devices[position].queued_at = None
                    task = asyncio.create_task(self._tick(position))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                    continue
                timeout = self._heap[0][0] - now if self._heap else None
                if until is not None:
                    left = until - now
                    timeout = left if timeout is None else min(timeout, left)
                self._wakeup.clear()
                try:
                    async with asyncio.timeout(timeout):
                        await self._wakeup.wait()
                except TimeoutError:
                    pass
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=IN_FLIGHT_GRACE_S)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _next_wake(self, device: _Device) -> float:
        if device.rebooting_until > time.time():
            return device.rebooting_until
        wake = min(device.next_keepalive, device.scene.next_due())
        if device.outbox or device.results:
            wake = min(wake, device.retry_at)
        if device.captures:
            wake = min(wake, min(capture.due for capture in device.captures))
        return wake

    async def _tick(self, position: int) -> None:
        device = self.devices[position]
        try:
            await self._serve(device)
        except TokenRefused as refused:
            self._refused(device, str(refused))
        except Exception as exc:  # one device's surprise must not stop the fleet
            self.stats.errors += 1
            self.log(f"{device.identifier}: {exc!r}")
        finally:
            self._slots.release()
            if not device.stopped:
                self._queue(position, self._next_wake(device))

    async def _serve(self, device: _Device) -> None:
        now = time.time()
        if now < device.rebooting_until:
            return
        if now >= device.next_keepalive:
            device.next_keepalive += self.keepalive_every_s
            if device.next_keepalive <= now:  # fell behind: do not send a burst to catch up
                device.next_keepalive = now + self.keepalive_every_s
            await self._keepalive(device, now)
        # A rebooting device is silent; it reports its commands once it is back.
        if device.stopped or time.time() < device.rebooting_until:
            return
        if device.captures:
            await self._capture_due(device)
        if device.results:
            await self._report_results(device)
        if now >= device.scene.next_due() and (sent := device.scene.step(now, device.rng)):
            if len(device.outbox) == OUTBOX_LIMIT:
                self.stats.messages_dropped += 1  # the deque drops the oldest
            device.outbox.append(sent)
        if device.outbox and not device.stopped:
            await self._send_payloads(device)

    def _refused(self, device: _Device, problem: str) -> None:
        # The token was rotated (another run with the same prefix?) or the device
        # deleted: retrying would only repeat the error, so the device stops.
        device.stopped = True
        self.stats.errors += 1
        self.log(f"{device.identifier}: token refused ({problem}); device stopped")

    def _command_arrived(self, device_uuid: str, command: Command) -> None:
        """A command that arrived on its own (over MQTT), not in an answer."""
        position = self._positions.get(device_uuid)
        if position is None:
            return
        device = self.devices[position]
        now = time.time()
        # A rebooting device is offline: the server sends the command again later.
        if device.stopped or now < device.rebooting_until:
            return
        self._take_command(device, command, now)
        if device.results or device.captures:
            self.wake(position)

    async def _keepalive(self, device: _Device, now: float) -> None:
        health = device.scene.health(now, device.rng)
        commands = await self.transport.keepalive(device, health)
        if commands is None:
            return  # counted and logged by the transport
        self.stats.keepalives_sent += 1
        for command in commands:
            self._take_command(device, command, now)

    def _take_command(self, device: _Device, command: dict[str, Any], now: float) -> None:
        command_id = str(command["id"])
        # A command comes again until its result arrives (a reboot delays it): once is enough.
        if command_id in device.seen_commands:
            return
        device.seen_commands.append(command_id)
        if command.get("type") == "reboot":
            device.rebooting_until = now + REBOOT_S / self.rate
            device.scene.reboot(device.rebooting_until)
            result: dict[str, Any] = {"ok": True}
        elif command.get("type") == "capture_image":
            request_id = command.get("request_id")
            if isinstance(request_id, str) and request_id:
                # Answered once the images are uploaded, `capture_delay` seconds from now.
                device.captures.append(Capture(now + self.capture_delay, command_id, request_id))
                return
            result = {"ok": False, "error": "a capture_image command needs a request_id"}
        else:
            result = {"ok": True}
        device.results.append((command_id, result))

    async def _capture_due(self, device: _Device) -> None:
        """Take the captures that are due: render, upload both images, queue the result."""
        now = time.time()
        due = [capture for capture in device.captures if capture.due <= now]
        device.captures = [capture for capture in device.captures if capture.due > now]
        for capture in due:
            result = await take_capture(
                self.http.send,
                _problem,
                identifier=device.identifier,
                token=device.token,
                scene=device.scene,
                request_id=capture.request_id,
                now=now,
            )
            if result["ok"]:
                self.stats.captures_uploaded += 1
            else:  # reported to the server as the command's failure
                self.log(f"{device.identifier}: capture {capture.request_id}: {result['error']}")
            device.results.append((capture.command_id, result))

    async def _report_results(self, device: _Device) -> None:
        results, device.results = device.results, []
        for command_id, result in results:
            # Not delivered: counted by the transport; the command expires on the server.
            if await self.transport.report_result(device, command_id, result):
                self.stats.commands_handled += 1

    async def _send_payloads(self, device: _Device) -> None:
        batch = [device.outbox.popleft() for _ in range(min(MAX_BATCH, len(device.outbox)))]
        accepted = await self.transport.send_payloads(device, batch)
        if accepted is None:
            self._keep_for_later(device, batch)  # counted and logged by the transport
        else:
            self.stats.messages_accepted += accepted
            device.accepted += accepted
            device.retry_at = time.time()  # more may wait in the outbox

    def _keep_for_later(self, device: _Device, batch: list[Message]) -> None:
        """Put a batch that was not delivered back in front (newest first out of room)."""
        room = max(0, OUTBOX_LIMIT - len(device.outbox))
        kept = batch[len(batch) - room :] if room else []
        self.stats.messages_dropped += len(batch) - len(kept)
        device.outbox.extendleft(reversed(kept))
        device.retry_at = time.time() + RETRY_LATER_S


async def run_fleet(
    *,
    api_addr: str,
    token: str,
    devices: int,
    types: list[str],
    rate: float = 1.0,
    keepalive_interval: int = 60,
    duration: float | None = None,
    name_prefix: str = "sim",
    concurrency: int = 64,
    on_event: Callable[[str], None] | None = None,
    stats: FleetStats | None = None,
    mqtt: str | None = None,
    per_device_connections: bool = False,
    capture_delay: float = DEFAULT_CAPTURE_DELAY_S,
) -> FleetStats:
    """Onboard `devices` simulated sensors and drive them over the device API.

    `token` is an integrator bearer token allowed to onboard devices. Devices are
    named `{name_prefix}/{index:05d}` (client identifier); those already on the server
    are reused with new tokens, the rest onboarded, with types assigned round-robin
    over `types`. `rate` speeds up simulated time (60: a minute per second): the day
    curves, keepalives (every `keepalive_interval / rate` s) and periods follow it,
    while message timestamps stay wall-clock. `concurrency` bounds both the
    connection pool and the requests in flight. Runs for `duration` seconds after
    onboarding (then the sends in flight are answered before the run ends), or until
    cancelled when None. Pass `stats` to watch the counters
    while it runs; `on_event` receives problems, one line each (rate-limited).

    Enrolment goes through the SDK. With `mqtt` (a broker URL, `mqtt://host:1883` or
    `mqtts://host`), devices publish keepalives, payloads and command results to the broker
    and take commands from their commands topic. They share `concurrency // 8`
    connections (at least one) that do not authenticate as the devices: a production
    broker authenticates each device (user name = device UUID, password = its token),
    so pooled runs target brokers that allow it, like a local Mosquitto with anonymous
    access (the URL may carry a user name and password for the whole pool).
    `per_device_connections` opens one connection per device with its own credentials
    instead, as real devices do: heavier, but accepted by an authenticating broker.
    Over MQTT a batch counts as accepted once the broker acknowledged it.

    A `capture_image` command is answered `capture_delay` wall-clock seconds after it
    arrived: the device renders its scene (raw and annotated), uploads both images over
    HTTP and reports the command's result.
    """
    unknown = sorted(set(types) - set(SCENES))
    if not types or unknown:
        raise ValueError(f"types must be among {', '.join(SCENES)}; got {types!r}")
    if devices < 0 or rate <= 0 or keepalive_interval < 10 or concurrency < 1:
        raise ValueError("devices >= 0, rate > 0, keepalive_interval >= 10, concurrency >= 1")
    if capture_delay < 0:
        raise ValueError("capture_delay >= 0")
    broker = Broker.parse(mqtt) if mqtt is not None else None
    stats = stats if stats is not None else FleetStats()
    log = _EventLog(on_event)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with _client(api_addr, limits) as client:
        sdk = AsyncClient(
            base_url=api_addr,
            token=token,
            http_client=client,
            max_retries=MAX_ATTEMPTS - 1,
            max_retry_after=MAX_RETRY_AFTER_S,
            headers={"User-Agent": USER_AGENT},
        )
        enrolled = await enrol_all(
            sdk,
            devices=devices,
            types=types,
            keepalive_interval=keepalive_interval,
            name_prefix=name_prefix,
            concurrency=concurrency,
            stats=stats,
            log=log,
        )
        log(f"{stats.devices_onboarded} devices onboarded, {stats.devices_reused} reused")
        start = time.time()
        clock = SimClock(wall_origin=start, sim_origin=start, rate=rate)
        keepalive_every_s = keepalive_interval / rate
        fleet = [
            _device(enrolment, name_prefix, start, clock, keepalive_every_s)
            for enrolment in enrolled
        ]
        http = DeviceHttp(client, stats, log)
        transport: Transport
        if broker is None:
            transport = HttpTransport(http)
        else:
            transport = MqttTransport(
                broker,
                [(device.uuid, device.token) for device in fleet],
                stats=stats,
                log=log,
                pool_size=max(1, concurrency // MQTT_DEVICES_PER_CONNECTION_SLOTS),
                per_device=per_device_connections,
            )
        scheduler = _Scheduler(
            fleet,
            transport,
            http,
            keepalive_every_s=keepalive_every_s,
            rate=rate,
            concurrency=concurrency,
            capture_delay=capture_delay,
        )
        await scheduler.run(None if duration is None else start + duration)
        if fleet:
            try:
                checked = await read_back(
                    sdk,
                    {device.uuid: device.accepted for device in fleet},
                    since=start,
                    concurrency=concurrency,
                    log=log,
                )
            except Exception as exc:  # a token without devices:read, the server away
                log(f"could not read back what the server stored: {exc}")
                return stats
            stats.messages_stored = checked.stored
            stats.devices_short = checked.devices_short
            if checked.missing:
                log(f"server has fewer messages than were sent: {checked.summary()}")
    return stats


def _client(api_addr: str, limits: httpx.Limits) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=api_addr.rstrip("/"),
        limits=limits,
        timeout=httpx.Timeout(30.0, connect=10.0, pool=None),  # waiting for the pool is normal
        headers={"User-Agent": USER_AGENT},
    )


def _device(
    enrolment: Enrolment, name_prefix: str, start: float, clock: SimClock, keepalive_every_s: float
) -> _Device:
    identifier = f"{name_prefix}/{enrolment.index:05d}"
    # Seeded by identifier: the same device behaves the same way in every run.
    rng = random.Random(identifier)
    _, country, utc_offset_s = CITIES[enrolment.index % len(CITIES)]
    # Random first times, so that a big fleet does not send in lockstep. The scene's
    # first message comes within a simulated minute (one period).
    first_keepalive = start + rng.uniform(0, keepalive_every_s)
    scene_start = start + rng.uniform(0, 60 / clock.rate)
    scene = make_scene(
        enrolment.app_type,
        rng,
        now=scene_start,
        clock=clock,
        utc_offset_s=utc_offset_s,
        country=country,
    )
    return _Device(identifier, enrolment.uuid, enrolment.token, scene, rng, first_keepalive)


__all__ = ["FleetError", "FleetStats", "run_fleet"]
