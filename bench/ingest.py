"""Benchmark of device ingest (`POST /device/v1/...`) on the real server, next to a ceiling
and a lean same-stack reference measured in the same run.

For each backend (SQLite; PostgreSQL with 1 and 2 workers) it migrates a fresh database,
creates an organization, an admin and a personal access token directly in the database
(`harness.seed`), starts `vsense serve` as a subprocess and onboards devices through
the API (`POST /api/v1/devices`, which returns each device's token once): keepalive
devices in group `site-01`, VCZ payload devices in group `site-02`, all with a short
keepalive interval so that the offline sweep has real deadlines to enforce. It then
seeds a large fleet (`--fleet`, 1,000,000 by default, `harness.seed_fleet`) at the
default 10-minute interval, with 1 % of silent devices whose deadlines fall during (d).
32 keep-alive clients (aiohttp) then post, each request with the token of the next
device in turn:

  (a) `POST /device/v1/keepalive` with a health body            -> keepalives/s
  (b) `POST /device/v1/payloads`, one VCZ message per request     -> messages/s
  (c) `POST /device/v1/payloads`, batches of `--batch` messages   -> messages/s
  (e) (c) again with `--rules` (1,000) active alert rules over the payload devices,
      each device's first batch under them (where one rule in ten fires) sent before
      the window -> messages/s, and its cost against (c) in the same run (target: at
      most 15 %);
      `--rules-pairs` (3) pairs of (c) and (e), alternated, the cost judged on their
      median; the rules are switched through the API and left disabled afterwards
  (d) keepalives for `--sustain` s (the target: 300) with the flush (1 s) and the sweep
      (15 s) running, each from the next device of the large fleet (so every one is a
      device not seen for minutes, as in a real fleet) -> keepalives/s over the window
      and in its worst 10 s; no keeping-alive device may go offline during the window,
      and the sweep must take the silent ones offline (device events in the database).
      With `--fleet 0`, (d) uses the onboarded keepalive devices as before.

Every answer's status is checked (200 for keepalives, 202 and `accepted` = messages sent
for payloads). After (b) and (c), `GET /api/v1/devices/{uuid}/payloads` on a sample of
devices must show exactly the messages the clients had accepted for them.

The ceiling is a bare ASGI app (`ceiling_app` below) that reads the body and answers a
fixed small JSON, served by uvicorn with the same options and loaded by the same clients
with the same bodies, in the same run; `vs ceiling` is req/s of a scenario divided by
req/s of the ceiling with the same body and number of workers. The lean reference
(`ingest_lean.py`: FastAPI, one dependency, the driver's prepared statements, orjson)
does the same device work over the same database and fleet, one uvicorn worker, before
vsense is started; `vs lean` is vsense's req/s over the lean app's in the same scenario.
`CPU µs/req` is the server's CPU time (its processes, /proc) over the run divided by the
requests answered: the figure the machine's other load moves least. `--profile DIR`
records a py-spy profile of the server per scenario (`profile_summary.py` reads them).
MQTT ingest is not measured here.

Run from the repository root:

    .venv/bin/python bench/ingest.py --duration 10 --sustain 300 --markdown docs/benchmarks.md

All traffic goes to 127.0.0.1. The PostgreSQL database (`vsense_ingest` by default) is
dropped and recreated at the start and left in place afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from harness import (
    BACKEND_LABELS,
    BACKENDS,
    DEFAULT_POSTGRES_URL,
    FLEET_GROUP,
    FLEET_PREFIX,
    HOST,
    LOOPBACK_HOSTS,
    REQUEST_TIMEOUT,
    Measurement,
    announce_code_under_test,
    answer_lifespan,
    append_markdown,
    base_env,
    command_line,
    cpu_seconds,
    event_loop_runner,
    fleet_token,
    fleet_uuid,
    free_port,
    group_commit_totals,
    log_problems,
    machine_facts,
    profiled,
    recreate_postgres_database,
    retime_fleet,
    run_command,
    seed,
    seed_fleet,
    served,
    server_env,
    vsense_executable,
)

if TYPE_CHECKING:
    import aiohttp

KEEPALIVE_PATH = "/device/v1/keepalive"
PAYLOADS_PATH = "/device/v1/payloads"
# Groups created by `harness.seed`; they tell the two fleets apart in the API.
KEEPALIVE_GROUP = "site-01"
PAYLOAD_GROUP = "site-02"
HEALTH = {
    "fw_version": "2.4.1",
    "uptime_s": 86_400,
    "temperature_c": 41.5,
    "cpu_load": 0.35,
    "free_disk_mb": 12_000,
    "ip": "10.0.0.7",
    "signal_dbm": -61.0,
}
HEALTH_BODY = orjson.dumps(HEALTH)
SAMPLE_DEVICES = 5
WORST_WINDOW = 10
ONBOARD_CLIENTS = 16
# Seconds after a load before the API is asked: one liveness flush and one count cache TTL.
SETTLE_SECONDS = 2.5

TARGET_SINGLE_RPS = 2_000.0
TARGET_BATCH_MPS = 20_000.0
TARGET_KEEPALIVES = 1_700.0
TARGET_SUSTAIN_SECONDS = 300.0
# Batched ingest with active alert rules may cost at most this share of the throughput
# without them (scenario (e) against (c), same run).
MAX_RULES_COST = 0.15
MQTT_NOTE = "MQTT ingest is not part of this benchmark yet; all device traffic here is HTTP."

KINDS = ("keepalive", "single", "batch")


# --------------------------------------------------------------------------- ceiling

CEILING_ANSWERS = {
    KEEPALIVE_PATH: (200, b'{"commands":[]}'),
    PAYLOADS_PATH: (202, b'{"accepted":1}'),
}
CEILING_DEFAULT = (200, b'{"status":"ok"}')

AsgiMessage = dict[str, Any]


async def ceiling_app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[AsgiMessage]],
    send: Callable[[AsgiMessage], Awaitable[None]],
) -> None:
    """The fastest answer uvicorn can give to a device: the body read, a fixed small JSON."""
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    more_body = True
    while more_body:
        message = await receive()
        more_body = message.get("more_body", False)
    status, body = CEILING_ANSWERS.get(scope["path"], CEILING_DEFAULT)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------- fleet and bodies


@dataclass(frozen=True)
class DeviceSlot:
    uuid: str
    headers: dict[str, str]

    @classmethod
    def of(cls, device_uuid: str, token: str) -> DeviceSlot:
        return cls(
            device_uuid,
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )


@dataclass(frozen=True)
class Fleet:
    keepalive: list[DeviceSlot]
    payload: list[DeviceSlot]


class LargeFleet(Sequence[DeviceSlot]):
    """The seeded fleet of scenario (d) (`harness.seed_fleet`): each device's slot made
    when it is used, so that a million devices cost no memory in the load generator."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.count))]
        return DeviceSlot.of(str(fleet_uuid(index)), fleet_token(index))


def zone_of(device_uuid: str) -> str:
    """A device's one counting zone: a real UUID string, stable per device."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"vsense-bench-zone/{device_uuid}"))


def vcz_message(zone: str, timestamp: int) -> dict[str, Any]:
    return {
        "type": "VCZ",
        "timestamp": timestamp,
        "payload": [
            {
                "id": zone,
                "name": "Z-0",
                "count": 3,
                "by_class": {"person": 3},
                "period_start": timestamp - 60,
                "period_end": timestamp,
            }
        ],
    }


def payload_bodies(devices: Sequence[DeviceSlot], batch: int) -> list[bytes]:
    """One body per device: a single message (batch 0) or a list of `batch` messages,
    one minute apart, ending now."""
    now = int(time.time())
    bodies = []
    for device in devices:
        zone = zone_of(device.uuid)
        if batch == 0:
            bodies.append(orjson.dumps(vcz_message(zone, now)))
        else:
            bodies.append(orjson.dumps([vcz_message(zone, now - 60 * n) for n in range(batch)]))
    return bodies


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Workload:
    kind: str  # keepalive, single or batch: which ceiling it is compared with
    path: str
    status: int
    messages: int  # per request; 1 for a keepalive

    def bodies(self, devices: Sequence[DeviceSlot]) -> list[bytes]:
        if self.kind == "keepalive":
            return [HEALTH_BODY] * len(devices)
        return payload_bodies(devices, 0 if self.kind == "single" else self.messages)


def workloads(batch: int) -> dict[str, Workload]:
    return {
        "keepalive": Workload("keepalive", KEEPALIVE_PATH, 200, 1),
        "single": Workload("single", PAYLOADS_PATH, 202, 1),
        "batch": Workload("batch", PAYLOADS_PATH, 202, batch),
    }


def ceiling_title(kind: str, batch: int) -> str:
    return {
        "keepalive": "fixed JSON, keepalive body",
        "single": "fixed JSON, 1-message body",
        "batch": f"fixed JSON, {batch}-message body",
    }[kind]


# --------------------------------------------------------------------------- results


@dataclass
class Row:
    measurement: Measurement
    kind: str
    messages: int
    worst_window: float | None = None
    check: str = "-"
    check_failed: bool = False

    @property
    def per_second(self) -> float:
        """Messages (or keepalives) per second."""
        return self.measurement.rps * self.messages


@dataclass
class IngestReport:
    backend: str
    version: str
    setup_seconds: float = 0.0
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # The lean reference's row of each scenario, by its letter (a, b, c, d).
    lean: dict[str, Row] = field(default_factory=dict)
    # (d)'s windows, per run: its label and `timeline_rows`.
    timelines: list[tuple[str, list[list[str]]]] = field(default_factory=list)


# --------------------------------------------------------------------------- load


def _answer_error(workload: Workload, body: bytes) -> tuple[str | None, int]:
    """What is wrong with a real server's answer, and how many messages it accepted."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return f"not JSON: {body[:200]!r}", 0
    if workload.kind == "keepalive":
        if not isinstance(document.get("commands"), list):
            return f"no `commands` list: {body[:200]!r}", 0
        return None, 0
    accepted = document.get("accepted")
    if accepted != workload.messages:
        return f"accepted {accepted!r} of {workload.messages}: {body[:200]!r}", 0
    return None, workload.messages


async def post_load(
    url: str,
    workload: Workload,
    devices: Sequence[DeviceSlot],
    *,
    clients: int,
    warmup: float,
    duration: float,
    measurement: Measurement,
    check_answers: bool,
    completions: list[float] | None = None,
    server_pid: int | None = None,
) -> Counter[int]:
    """`clients` loops on one keep-alive session, each request with the next device's token
    and body. Returns messages accepted per device index (warm-up included). With
    `server_pid`, the server's CPU time over the run goes into the measurement."""
    import aiohttp

    bodies = workload.bodies(devices)
    accepted: Counter[int] = Counter()
    turn = itertools.count()
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    cpu_before = cpu_seconds(server_pid) if server_pid else math.nan
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        measure_from = time.perf_counter() + warmup
        measure_until = measure_from + duration

        async def client() -> None:
            while (started := time.perf_counter()) < measure_until:
                index = next(turn) % len(devices)
                error: str | None = None
                try:
                    async with session.post(
                        url, data=bodies[index], headers=devices[index].headers
                    ) as response:
                        body = await response.read()
                        if response.status != workload.status:
                            error = f"HTTP {response.status}: {body[:200]!r}"
                        elif check_answers:
                            error, count = _answer_error(workload, body)
                            accepted[index] += count
                except (aiohttp.ClientError, TimeoutError) as exc:
                    error = f"{type(exc).__name__}: {exc}"
                finished = time.perf_counter()
                measurement.answered += 1
                if error is not None:
                    measurement.record_error(error)  # warm-up errors count too
                elif measure_from <= finished <= measure_until:
                    measurement.latencies_ms.append((finished - started) * 1000)
                    if completions is not None:
                        completions.append(finished - measure_from)

        await asyncio.gather(*(client() for _ in range(clients)))
    if server_pid:
        measurement.server_cpu = cpu_seconds(server_pid) - cpu_before
    return accepted


def per_second(completions: Sequence[float], seconds: int) -> list[int]:
    """Completions (offsets from the start of the measured window) in each whole second."""
    bins = [0] * seconds
    for offset in completions:
        second = int(offset)
        if 0 <= second < seconds:
            bins[second] += 1
    return bins


def worst_window(completions: Sequence[float], duration: float, window: int) -> float:
    """The lowest rate over `window` consecutive whole seconds of the measured window."""
    seconds = int(duration)
    if seconds < window:
        return len(completions) / duration if duration else math.nan
    bins = per_second(completions, seconds)
    running = sum(bins[:window])
    lowest = running
    for second in range(window, seconds):
        running += bins[second] - bins[second - window]
        lowest = min(lowest, running)
    return lowest / window


@dataclass(frozen=True, slots=True)
class Tick:
    """One look at the machine during (d): cumulative counters at a wall-clock time."""

    wall: float
    server_cpu: float  # CPU seconds of the server's processes
    cpu: tuple[float, float, float]  # the machine's busy, iowait and steal seconds (all cores)
    checkpoint_buffers: int | None  # buffers PostgreSQL's checkpoints have written


def machine_cpu() -> tuple[float, float, float]:
    """Seconds the machine's cores have been busy, waiting for I/O and stolen by the host,
    since boot (`/proc/stat`)."""
    ticks = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, iowait, irq, softirq, steal = (
        int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + irq + softirq) / ticks, iowait / ticks, steal / ticks


async def sample_timeline(
    server_pid: int, postgres_dsn: str | None, ticks: list[Tick], every: float = 1.0
) -> None:
    """Append a `Tick` every `every` s until cancelled: what else the machine and the
    database did while (d) ran, to set beside each window's keepalives."""
    import asyncpg  # type: ignore[import-untyped]

    connection = await asyncpg.connect(postgres_dsn) if postgres_dsn else None
    try:
        while True:
            buffers = (
                await connection.fetchval("SELECT buffers_checkpoint FROM pg_stat_bgwriter")
                if connection is not None
                else None
            )
            ticks.append(Tick(time.time(), cpu_seconds(server_pid), machine_cpu(), buffers))
            await asyncio.sleep(every)
    finally:
        if connection is not None:
            await connection.close()


TIMELINE_COLUMNS = (
    "from s",
    "keepalives/s",
    "server CPU % of a core",
    "machine busy % (all cores)",
    "iowait %",
    "steal %",
    "silent swept",
    "checkpoint buffers written",
)


def timeline_rows(
    completions: Sequence[float],
    ticks: Sequence[Tick],
    measured_from: float,
    duration: float,
    swept: Sequence[float] = (),
) -> list[list[str]]:
    """(d) cut into `WORST_WINDOW`-s windows from `measured_from` (wall clock): each
    one's keepalives/s beside what the server, the machine and PostgreSQL's checkpoints
    did in it, and the silent devices the sweep marked offline (`swept`: wall times)."""
    cores = os.cpu_count() or 1
    bins = per_second(completions, int(duration))

    def at(moment: float) -> Tick:
        return min(ticks, key=lambda tick: abs(tick.wall - moment))

    rows: list[list[str]] = []
    for start in range(0, int(duration) - WORST_WINDOW + 1, WORST_WINDOW):
        end = start + WORST_WINDOW
        first, last = at(measured_from + start), at(measured_from + end)
        seconds = last.wall - first.wall
        if seconds <= 0:
            continue
        busy, iowait, steal = (
            100 * (after - before) / (seconds * cores)
            for before, after in zip(first.cpu, last.cpu, strict=True)
        )
        buffers = (
            "-"
            if first.checkpoint_buffers is None or last.checkpoint_buffers is None
            else f"{last.checkpoint_buffers - first.checkpoint_buffers:,}"
        )
        rows.append(
            [
                f"{start}",
                f"{sum(bins[start:end]) / WORST_WINDOW:,.0f}",
                f"{100 * (last.server_cpu - first.server_cpu) / seconds:.0f}",
                f"{busy:.0f}",
                f"{iowait:.0f}",
                f"{steal:.0f}",
                f"{sum(measured_from + start <= t < measured_from + end for t in swept):,}",
                buffers,
            ]
        )
    return rows


@contextlib.asynccontextmanager
async def timeline(server_pid: int, database: tuple[Path, str | None]) -> AsyncIterator[list[Tick]]:
    """`sample_timeline` of the server (and of PostgreSQL, if that is the database) while
    the block runs."""
    dsn = lean_database_url(database) if database[1] else None
    ticks: list[Tick] = []
    task = asyncio.create_task(sample_timeline(server_pid, dsn, ticks, every=0.5))
    try:
        yield ticks
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass(frozen=True, slots=True)
class Sustained:
    """A run of (d): its row (with its worst 10 s), when each keepalive was answered, and
    the machine meanwhile."""

    row: Row
    completions: list[float]
    ticks: list[Tick]
    measured_from: float  # wall clock

    def windows(self, swept: Sequence[float] = ()) -> list[list[str]]:
        return timeline_rows(
            self.completions, self.ticks, self.measured_from, self.row.measurement.seconds, swept
        )


async def sustained_load(
    url: str,
    devices: Sequence[DeviceSlot],
    options: Options,
    measurement: Measurement,
    server_pid: int,
    database: tuple[Path, str | None],
) -> Sustained:
    """(d)'s keepalives for the measurement's seconds, with their `timeline`, against
    vsense or the lean reference alike."""
    completions: list[float] = []
    measured_from = time.time() + options.warmup
    async with timeline(server_pid, database) as ticks:
        await post_load(
            url + KEEPALIVE_PATH,
            workloads(options.batch)["keepalive"],
            devices,
            clients=options.clients,
            warmup=options.warmup,
            duration=measurement.seconds,
            measurement=measurement,
            check_answers=True,
            completions=completions,
            server_pid=server_pid,
        )
    row = Row(measurement, "keepalive", 1)
    row.worst_window = worst_window(completions, measurement.seconds, WORST_WINDOW)
    return Sustained(row, completions, ticks, measured_from)


async def prime(
    base_url: str,
    devices: Sequence[DeviceSlot],
    clients: int,
    workload: Workload | None = None,
) -> list[str]:
    """One request per device before a measured run. By default a keepalive, so that
    every device is online (a device coming back is written at once, with an event;
    that is not the steady state); or one of `workload`'s. Returns the errors."""
    import aiohttp

    workload = workload or workloads(1)["keepalive"]
    errors: list[str] = []
    turn = iter(zip(devices, workload.bodies(devices), strict=True))
    async with aiohttp.ClientSession() as session:

        async def client() -> None:
            for device, body in turn:
                async with session.post(
                    base_url + workload.path, data=body, headers=device.headers
                ) as response:
                    answer = await response.read()
                    if response.status != workload.status:
                        errors.append(f"HTTP {response.status}: {answer[:200]!r}")

        await asyncio.gather(*(client() for _ in range(clients)))
    return errors


async def api_get(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(url) as response:
        body = await response.read()
    if response.status != 200:
        raise RuntimeError(f"GET {url} answered {response.status}: {body[:300]!r}")
    document: dict[str, Any] = orjson.loads(body)
    return document


async def total_of(session: aiohttp.ClientSession, url: str) -> int:
    return int((await api_get(session, url))["meta"]["total"])


async def stored_totals(
    session: aiohttp.ClientSession, base_url: str, devices: Sequence[DeviceSlot]
) -> list[int]:
    return [
        await total_of(session, f"{base_url}/api/v1/devices/{device.uuid}/payloads?per_page=1")
        for device in devices
    ]


def sample_indexes(count: int) -> list[int]:
    """A spread of device indexes: first, quarters, last."""
    return sorted(
        {min(count - 1, count * n // (SAMPLE_DEVICES - 1)) for n in range(SAMPLE_DEVICES)}
    )


# --------------------------------------------------------------------------- set-up


async def onboard(base_url: str, admin: dict[str, str], options: Options) -> Fleet:
    """Devices onboarded through the API; each answer carries the device token, once."""
    import aiohttp

    plan = [("KA", KEEPALIVE_GROUP, n) for n in range(options.keepalive_devices)] + [
        ("PL", PAYLOAD_GROUP, n) for n in range(options.payload_devices)
    ]
    slots: dict[tuple[str, int], DeviceSlot] = {}
    turn = iter(plan)
    async with aiohttp.ClientSession(headers=admin) as session:

        async def client() -> None:
            for prefix, group, n in turn:
                body = {
                    "name": f"{prefix}-{n:05d}",
                    "client_identifier": f"BENCH-{prefix}-{n:05d}",
                    "group": group,
                    "app_type": "VCZ",
                    "keepalive_interval": options.keepalive_interval,
                }
                async with session.post(f"{base_url}/api/v1/devices", json=body) as response:
                    answer = await response.read()
                if response.status != 201:
                    raise RuntimeError(f"onboarding answered {response.status}: {answer[:300]!r}")
                document = orjson.loads(answer)
                slots[(prefix, n)] = DeviceSlot.of(document["uuid"], document["device_token"])

        await asyncio.gather(*(client() for _ in range(ONBOARD_CLIENTS)))
    return Fleet(
        keepalive=[slots[("KA", n)] for n in range(options.keepalive_devices)],
        payload=[slots[("PL", n)] for n in range(options.payload_devices)],
    )


async def analyze(data_dir: Path, database_url: str | None) -> str | None:
    """What autovacuum does soon after the devices arrive (PostgreSQL only). Returns the
    server's `autovacuum` setting: when off, the liveness writes leave dead rows behind
    for the whole run, which a production server would clean up."""
    from sqlalchemy import text

    from vsense.config import load_settings
    from vsense.db import create_engine

    engine = create_engine(load_settings(data_dir=data_dir, database_url=database_url))
    try:
        if engine.dialect.name != "postgresql":
            return None
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.exec_driver_sql("VACUUM ANALYZE")
            return str(await autocommit.scalar(text("SHOW autovacuum")))
    finally:
        await engine.dispose()


async def offline_events_since(
    data_dir: Path, database_url: str | None, group: str, since: datetime, prefix: str = ""
) -> list[float]:
    """Offline transitions of a group's devices since a time (the sweep's work): when
    each was recorded (wall clock, seconds)."""
    from sqlalchemy import select

    from vsense.config import load_settings
    from vsense.db import create_engine
    from vsense.models import Device, DeviceEvent, Group

    engine = create_engine(load_settings(data_dir=data_dir, database_url=database_url))
    try:
        async with engine.connect() as connection:
            created = await connection.scalars(
                select(DeviceEvent.created)
                .join(Device, Device.uuid == DeviceEvent.device_uuid)
                .join(Group, Group.id == Device.group_id)
                .where(
                    Group.name == group,
                    DeviceEvent.status == "offline",
                    DeviceEvent.created >= since,
                    Device.name.startswith(prefix),
                )
            )
            return [moment.timestamp() for moment in created]
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------- runs


@dataclass
class Options:
    backends: list[str]
    duration: float
    warmup: float
    sustain: float
    clients: int
    keepalive_devices: int
    payload_devices: int
    batch: int
    keepalive_interval: int
    postgres_url: str
    postgres_database: str
    postgres_workers: list[int]
    server_env: dict[str, str]
    rules: int
    markdown: Path | None
    rules_pairs: int = 1
    fleet: int = 0
    silent: int = 0
    lean: bool = True
    profile: Path | None = None


@dataclass(frozen=True)
class ServerProfile:
    """Where py-spy writes the server's profile of each scenario (`--profile DIR`)."""

    pid: int
    folder: Path | None
    prefix: str

    def of(self, label: str) -> Any:
        output = None
        if self.folder is not None:
            output = self.folder / f"{self.prefix}-{label.split(' ')[0]}.txt"
        return profiled(self.pid, output)


async def run_ceiling(options: Options, workers: int, work_dir: Path) -> dict[str, Row]:
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "ingest:ceiling_app", "--app-dir", "bench",
        "--host", HOST, "--port", str(port), "--workers", str(workers),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    sizes = {"keepalive": options.keepalive_devices, "single": options.payload_devices}
    rows: dict[str, Row] = {}
    pids: list[int] = []
    log_path = work_dir / f"ceiling-{workers}w.log"
    async with served(command, base_env({}), port, log_path, pids) as url:
        for kind, workload in workloads(options.batch).items():
            fake = [
                DeviceSlot.of(str(uuid.uuid4()), "vsd_ceiling")
                for _ in range(sizes.get(kind, options.payload_devices))
            ]
            title = ceiling_title(kind, options.batch)
            measurement = Measurement("ceiling", workers, title, options.duration)
            await post_load(
                url + workload.path,
                workload,
                fake,
                clients=options.clients,
                warmup=options.warmup,
                duration=options.duration,
                measurement=measurement,
                check_answers=False,
                server_pid=pids[0],
            )
            rows[kind] = Row(measurement, kind, workload.messages)
            print(
                f"  ceiling x{workers} {title}: {measurement.rps:,.0f} req/s, "
                f"p99 {measurement.percentile(0.99):.1f} ms, {measurement.errors} errors",
                flush=True,
            )
    return rows


def print_row(row: Row) -> None:
    m = row.measurement
    extra = f", worst {WORST_WINDOW} s {row.worst_window:,.0f}/s" if row.worst_window else ""
    print(
        f"    {m.rps:,.0f} req/s, {row.per_second:,.0f} msg/s{extra}, "
        f"p50 {m.percentile(0.5):.1f} ms, p99 {m.percentile(0.99):.1f} ms, "
        f"{m.errors} errors; check: {row.check}",
        flush=True,
    )


async def payload_scenario(
    label: str,
    workload: Workload,
    base_url: str,
    admin_session: aiohttp.ClientSession,
    devices: Sequence[DeviceSlot],
    options: Options,
    workers: int,
    report: IngestReport,
    profile: ServerProfile | None = None,
) -> Row:
    """A payload run, then: did the sampled devices store exactly what was accepted?"""
    sample = sample_indexes(len(devices))
    sampled = [devices[i] for i in sample]
    before = await stored_totals(admin_session, base_url, sampled)
    groups_before = await group_commit_totals(admin_session, base_url)
    measurement = Measurement("vsense", workers, label, options.duration)
    print(f"  vsense x{workers} {label}", flush=True)
    async with profile.of(label) if profile else contextlib.nullcontext():
        accepted = await post_load(
            base_url + workload.path,
            workload,
            devices,
            clients=options.clients,
            warmup=options.warmup,
            duration=options.duration,
            measurement=measurement,
            check_answers=True,
            server_pid=profile.pid if profile else None,
        )
    after = await stored_totals(admin_session, base_url, sampled)
    groups_after = await group_commit_totals(admin_session, base_url)
    row = Row(measurement, workload.kind, workload.messages)
    mismatches = [
        f"{devices[i].uuid}: accepted {accepted[i]}, stored {b - a}"
        for i, a, b in zip(sample, before, after, strict=True)
        if b - a != accepted[i]
    ]
    row.check = f"stored {len(sample) - len(mismatches)}/{len(sample)}"
    row.check_failed = bool(mismatches)
    report.notes.append(
        f"x{workers} {label}: {sum(accepted.values()):,} messages accepted in all "
        f"(warm-up included); GET .../payloads meta.total on {len(sample)} devices "
        + ("matches the messages accepted for each" if not mismatches else "; ".join(mismatches))
    )
    units, groups = (b - a for a, b in zip(groups_before, groups_after, strict=True))
    if groups:
        report.notes.append(
            f"x{workers} {label}: {units:,.0f} device writes in {groups:,.0f} group "
            f"transactions, {units / groups:.1f} per group (warm-up included; "
            "vsense_group_commit_size)"
        )
    print_row(row)
    return row


async def run_scenarios(
    base_url: str,
    admin: dict[str, str],
    fleet: Fleet,
    options: Options,
    workers: int,
    report: IngestReport,
    database: tuple[Path, str | None],
    profile: ServerProfile,
) -> None:
    import aiohttp

    kinds = workloads(options.batch)
    async with aiohttp.ClientSession(headers=admin) as admin_session:
        # (a) keepalives
        errors = await prime(base_url, fleet.keepalive, options.clients)
        label = "a keepalive"
        print(f"  vsense x{workers} {label}", flush=True)
        measurement = Measurement("vsense", workers, label, options.duration)
        async with profile.of(label):
            await post_load(
                base_url + KEEPALIVE_PATH,
                kinds["keepalive"],
                fleet.keepalive,
                clients=options.clients,
                warmup=options.warmup,
                duration=options.duration,
                measurement=measurement,
                check_answers=True,
                server_pid=profile.pid,
            )
        row = Row(measurement, "keepalive", 1)
        report.rows.append(row)
        print_row(row)

        # (b) and (c) payloads
        report.rows.append(
            await payload_scenario(
                "b 1 message/request",
                kinds["single"],
                base_url,
                admin_session,
                fleet.payload,
                options,
                workers,
                report,
                profile,
            )
        )
        report.rows.append(
            await payload_scenario(
                f"c {options.batch} messages/request",
                kinds["batch"],
                base_url,
                admin_session,
                fleet.payload,
                options,
                workers,
                report,
                profile,
            )
        )

        # (e) the batches of (c) again, with alert rules over the fleet
        if options.rules:
            await rules_scenario(base_url, admin_session, fleet, options, workers, report, profile)

        # (d) sustained keepalives, flush and sweep running
        errors += await prime(base_url, fleet.keepalive, options.clients)
        if errors:
            report.notes.append(
                f"x{workers} priming keepalives: {len(errors)} errors, first: {errors[0]}"
            )
        if not options.sustain:
            return
        label = f"d keepalive {options.sustain:g} s"
        print(f"  vsense x{workers} {label}", flush=True)
        if options.fleet:
            await retime_fleet(
                *database, options.fleet, options.silent, options.warmup + options.sustain
            )
        started = datetime.now(UTC)
        measurement = Measurement("vsense", workers, label, options.sustain)
        async with profile.of(label):
            run = await sustained_load(
                base_url,
                sustain_devices(options, fleet),
                options,
                measurement,
                profile.pid,
                database,
            )
        row = run.row
        await asyncio.sleep(SETTLE_SECONDS)
        if options.fleet:
            flapped = len(await offline_events_since(*database, FLEET_GROUP, started, FLEET_PREFIX))
            swept = await offline_events_since(*database, FLEET_GROUP, started, "SILENT")
            row.check = f"flapped {flapped}, swept {len(swept):,}"
            row.check_failed = flapped > 0
            report.notes.append(
                f"x{workers} {label}: {options.fleet:,} seeded devices (interval 600 s), each "
                f"keepalive from the next one in turn ({len(run.completions):,} in the window); "
                f"{flapped} offline transitions of keeping-alive devices; the sweep marked "
                f"{len(swept):,} of {options.silent:,} silent devices offline during it"
            )
            report.timelines.append((f"vsense x{workers} {label}", run.windows(swept)))
            report.rows.append(row)
            print_row(row)
            return
        devices_url = f"{base_url}/api/v1/devices?per_page=1"
        online = await total_of(
            admin_session, f"{devices_url}&group={KEEPALIVE_GROUP}&is_online=Online"
        )
        flapped = len(await offline_events_since(*database, KEEPALIVE_GROUP, started))
        silent_offline = await total_of(
            admin_session, f"{devices_url}&group={PAYLOAD_GROUP}&is_online=Offline"
        )
        expected = len(fleet.keepalive)
        row.check = f"online {online}/{expected}"
        row.check_failed = online != expected or flapped > 0
        report.notes.append(
            f"x{workers} {label}: {online:,} of {expected:,} keepalive devices online after the "
            f"window (is_online=Online meta.total); {flapped} offline transitions of keepalive "
            f"devices during it (device events); the sweep marked {silent_offline:,} of "
            f"{len(fleet.payload):,} silent payload devices offline (interval "
            f"{options.keepalive_interval} s, offline after "
            f"{1.5 * options.keepalive_interval:g} s)"
        )
        report.rows.append(row)
        print_row(row)


def rule_body(n: int, device: str) -> dict[str, Any]:
    """The bench's `n`th alert rule, on `device`: nine in ten GREATER_THAN the bench's
    count of 3 by far (they never fire), one in ten LESS_THAN 5 (it fires at the first
    message and stays firing)."""
    below = n % 10 == 9
    return {
        "name": f"bench rule {n}",
        "device_uuid": device,
        "metric": "count",
        "reference_marker": "Z-0",
        "rule": "LESS_THAN" if below else "GREATER_THAN",
        "trigger_value": 5 if below else 1000,
        "clearing_value": 10 if below else 900,
    }


async def add_rules(
    session: aiohttp.ClientSession, base_url: str, devices: Sequence[DeviceSlot], count: int
) -> list[int]:
    """`count` rules (`rule_body`) over the payload devices, through the API, once per
    database (a later run finds them); the ids of all of them."""
    ids = await rule_ids(session, base_url)
    for n in range(len(ids), count):
        body = rule_body(n, devices[n % len(devices)].uuid)
        async with session.post(f"{base_url}/api/v1/alert-rules", json=body) as response:
            if response.status != 201:
                raise RuntimeError(f"rule answered {response.status}: {await response.text()}")
            ids.append(int((await response.json())["id"]))
    return ids


async def rules_scenario(
    base_url: str,
    admin_session: aiohttp.ClientSession,
    fleet: Fleet,
    options: Options,
    workers: int,
    report: IngestReport,
    profile: ServerProfile,
) -> None:
    """(e): the batches of (c) with the alert rules enabled, against the (c) just before.
    With `--rules-pairs N`, N pairs: each later pair runs (c) again with the rules
    disabled, then (e); the cost is judged on the pairs' median (one pair moves with
    the machine's other load). The rules are left disabled, for what runs next."""
    ids = await add_rules(admin_session, base_url, fleet.payload, options.rules)
    batches = workloads(options.batch)["batch"]
    pairs = options.rules_pairs

    async def measured(label: str) -> Row:
        row = await payload_scenario(
            label, batches, base_url, admin_session, fleet.payload, options, workers, report,
            profile,
        )  # fmt: skip
        report.rows.append(row)
        return row

    without = report.rows[-1]
    costs: list[float] = []
    failed = False
    for pair in range(1, pairs + 1):
        suffix = f", pair {pair}" if pairs > 1 else ""
        if pair > 1:
            await set_rules_enabled(admin_session, base_url, ids, False)
            without = await measured(f"c {options.batch} messages/request{suffix}")
        await set_rules_enabled(admin_session, base_url, ids, True)
        # Switching the rules takes long enough for the sweep to mark the payload
        # devices offline; (c) found them online, and so must (e).
        primed = await prime(base_url, fleet.payload, options.clients)
        # One batch per device before the window: the rules that fire at a device's
        # first batch (one in ten) do so here, once, as they would once in a fleet's
        # life; the window measures rules standing still, as (c) measures storing.
        primed += await prime(base_url, fleet.payload, options.clients, batches)
        if primed:
            report.notes.append(f"x{workers} priming payload devices: {primed[0]}")
        with_rules = await measured(
            f"e {options.batch} messages/request, {options.rules:,} rules{suffix}"
        )
        failed = failed or with_rules.check_failed
        costs.append(1 - with_rules.per_second / without.per_second if without.per_second else 0)
    await set_rules_enabled(admin_session, base_url, ids, False)
    cost = statistics.median(costs)
    met = cost <= MAX_RULES_COST and not failed
    each = ", ".join(f"{c:.1%}" for c in costs)
    over = f"median of {pairs} pairs ({each})" if pairs > 1 else "in the same run"
    report.notes.append(
        f"x{workers} alert rules: (e) with {options.rules:,} active rules against (c) without, "
        f"messages/s: cost {cost:.1%}, {over} (target <= {MAX_RULES_COST:.0%}) -> "
        f"{'MET' if met else 'MISSED'}"
    )


async def rule_ids(session: aiohttp.ClientSession, base_url: str) -> list[int]:
    """The ids of every alert rule of the bench's organization."""
    ids: list[int] = []
    page = 1
    while True:
        document = await api_get(session, f"{base_url}/api/v1/alert-rules?per_page=100&page={page}")
        ids += [rule["id"] for rule in document["data"]]
        if not document["data"] or len(ids) >= int(document["meta"]["total"]):
            return ids
        page += 1


async def set_rules_enabled(
    session: aiohttp.ClientSession, base_url: str, ids: Sequence[int], enabled: bool
) -> None:
    """Enable or disable the rules through the API, 32 requests at a time."""
    gate = asyncio.Semaphore(32)

    async def one(rule: int) -> None:
        async with gate:
            url = f"{base_url}/api/v1/alert-rules/{rule}"
            async with session.put(url, json={"enabled": enabled}) as response:
                if response.status != 200:
                    raise RuntimeError(f"rule answered {response.status}: {await response.text()}")

    await asyncio.gather(*(one(rule) for rule in ids))


async def run_backend(
    backend: str, options: Options, work_dir: Path, ceilings: dict[int, dict[str, Row]]
) -> IngestReport:
    data_dir = work_dir / backend
    data_dir.mkdir()
    database_url: str | None = None
    version = f"SQLite {sqlite3.sqlite_version}"
    workers_list = [1]
    if backend == "postgresql":
        database_url = f"{options.postgres_url.rstrip('/')}/{options.postgres_database}"
        version = "PostgreSQL " + await recreate_postgres_database(database_url)
        workers_list = options.postgres_workers
    env = server_env(data_dir, database_url, options.server_env)
    print(f"\n{BACKEND_LABELS[backend]}: migrating, seeding an admin", flush=True)
    started = time.perf_counter()
    await run_command([vsense_executable(), "db", "upgrade"], env, work_dir / f"{backend}-db.log")
    token = await seed(data_dir, database_url, 0)
    admin = {"Authorization": f"Bearer {token}"}
    report = IngestReport(backend, version)
    port = free_port()
    command = [
        vsense_executable(), "serve", "--host", HOST, "--port", str(port),
        "--workers", "1", "--log-level", "warning",
    ]  # fmt: skip
    async with served(command, env, port, work_dir / f"{backend}-onboard.log") as base_url:
        fleet = await onboard(base_url, admin, options)
    if options.fleet:
        await seed_fleet(data_dir, database_url, options.fleet, options.silent)
    autovacuum = await analyze(data_dir, database_url)
    if autovacuum is not None:
        report.notes.append(
            f"PostgreSQL autovacuum: {autovacuum} (VACUUM ANALYZE ran once after seeding)"
        )
    report.setup_seconds = time.perf_counter() - started
    print(
        f"  onboarded {len(fleet.keepalive):,} + {len(fleet.payload):,} devices through the "
        f"API, seeded {options.fleet:,} + {options.silent:,} fleet devices; ready in "
        f"{report.setup_seconds:.1f} s",
        flush=True,
    )
    database = (data_dir, database_url)
    if options.lean:
        await run_lean(options, fleet, work_dir, report, database)
    for workers in workers_list:
        port = free_port()
        command = [
            vsense_executable(), "serve", "--host", HOST, "--port", str(port),
            "--workers", str(workers), "--log-level", "warning",
        ]  # fmt: skip
        log_path = work_dir / f"{backend}-{workers}w.log"
        pids: list[int] = []
        async with served(command, env, port, log_path, pids) as base_url:
            report.rows += [ceilings[workers][kind] for kind in KINDS]
            profile = ServerProfile(pids[0], options.profile, f"{backend}-{workers}w")
            await run_scenarios(base_url, admin, fleet, options, workers, report, database, profile)
        problems = log_problems(log_path)
        if problems:
            report.notes.append(
                f"server log ({workers} worker(s)) has {len(problems)} error lines, "
                f"first: {problems[0][:200]}"
            )
    return report


def lean_database_url(database: tuple[Path, str | None]) -> str:
    """The database as its driver takes it (the lean reference's, and the timeline's)."""
    data_dir, database_url = database
    if database_url:
        return database_url.replace("postgresql+asyncpg://", "postgresql://")
    from vsense.config import load_settings

    return load_settings(data_dir=data_dir).resolved_database_url.replace(
        "sqlite+aiosqlite:///", "sqlite:///"
    )


async def run_lean(
    options: Options,
    fleet: Fleet,
    work_dir: Path,
    report: IngestReport,
    database: tuple[Path, str | None],
) -> None:
    """The lean reference (`ingest_lean.py`) over the same database, fleet, bodies and
    clients, one uvicorn worker: a, b, c and d as vsense runs them."""
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "ingest_lean:app", "--app-dir", "bench",
        "--host", HOST, "--port", str(port), "--workers", "1",
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    env = base_env({"BENCH_LEAN_DATABASE_URL": lean_database_url(database)})
    kinds = workloads(options.batch)
    plan: list[tuple[str, Workload, Sequence[DeviceSlot], float]] = [
        ("a keepalive", kinds["keepalive"], fleet.keepalive, options.duration),
        ("b 1 message/request", kinds["single"], fleet.payload, options.duration),
        (f"c {options.batch} messages/request", kinds["batch"], fleet.payload, options.duration),
    ]
    if options.sustain:
        plan.append(
            (
                f"d keepalive {options.sustain:g} s",
                kinds["keepalive"],
                sustain_devices(options, fleet),
                options.sustain,
            )
        )
    log_path = work_dir / "lean.log"
    pids: list[int] = []
    async with served(command, env, port, log_path, pids) as base_url:
        await prime(base_url, fleet.keepalive, options.clients)
        for label, workload, devices, duration in plan:
            print(f"  lean x1 {label}", flush=True)
            measurement = Measurement("lean", 1, label, duration)
            if label.startswith("d "):
                run = await sustained_load(
                    base_url, devices, options, measurement, pids[0], database
                )
                row = run.row
                report.timelines.append((f"lean x1 {label}", run.windows()))
            else:
                await post_load(
                    base_url + workload.path,
                    workload,
                    devices,
                    clients=options.clients,
                    warmup=options.warmup,
                    duration=duration,
                    measurement=measurement,
                    check_answers=True,
                    server_pid=pids[0],
                )
                row = Row(measurement, workload.kind, workload.messages)
            report.lean[label[0]] = row
            report.rows.append(row)
            print_row(row)
    problems = log_problems(log_path)
    if problems:
        report.notes.append(f"lean log has {len(problems)} error lines, first: {problems[0][:200]}")


def sustain_devices(options: Options, fleet: Fleet) -> Sequence[DeviceSlot]:
    """Scenario (d)'s devices: the large seeded fleet, else the onboarded keepalive ones."""
    return LargeFleet(options.fleet) if options.fleet else fleet.keepalive


# --------------------------------------------------------------------------- output

COLUMNS = (
    "server",
    "scenario",
    "req/s",
    "msg/s",
    f"worst {WORST_WINDOW} s",
    "p50 ms",
    "p99 ms",
    "errors",
    "CPU µs/req",
    "vs ceiling",
    "lean req/s",
    "vs lean",
    "check",
)
LEFT_COLUMNS = {0, 1, 12}


def table_rows(report: IngestReport, ceilings: dict[int, dict[str, Row]]) -> list[list[str]]:
    rows = []
    for row in report.rows:
        m = row.measurement
        ceiling = ceilings.get(m.workers, {}).get(row.kind)
        ratio = m.rps / ceiling.measurement.rps if ceiling and ceiling.measurement.rps else math.nan
        lean = report.lean.get(m.scenario[:1]) if m.server == "vsense" else None
        lean_rps = lean.measurement.rps if lean else math.nan
        rows.append(
            [
                f"{m.server} x{m.workers}",
                m.scenario,
                f"{m.rps:,.0f}",
                f"{row.per_second:,.0f}",
                "-" if row.worst_window is None else f"{row.worst_window:,.0f}",
                f"{m.percentile(0.50):.1f}",
                f"{m.percentile(0.99):.1f}",
                str(m.errors),
                f"{m.cpu_per_request_us:,.0f}",
                f"{ratio:.2f}",
                "-" if lean is None else f"{lean_rps:,.0f}",
                "-" if lean is None else f"{m.rps / lean_rps:.2f}" if lean_rps else "nan",
                row.check,
            ]
        )
    return rows


def target_lines(report: IngestReport, options: Options) -> list[str]:
    if report.backend != "postgresql":
        return []
    lines = []
    for row in report.rows:
        m = row.measurement
        if m.server != "vsense":
            continue
        clean = m.errors == 0 and not row.check_failed
        if m.scenario.startswith("b "):
            met = m.rps >= TARGET_SINGLE_RPS and clean
            lines.append(
                f"Target (b, PostgreSQL): >= {TARGET_SINGLE_RPS:,.0f} single-message requests/s; "
                f"{m.workers} worker(s): {m.rps:,.0f} -> {'MET' if met else 'MISSED'}"
            )
        elif m.scenario.startswith("c "):
            met = row.per_second >= TARGET_BATCH_MPS and clean
            pair = m.scenario.partition(", ")[2]  # "pair 2" when (c) ran again beside (e)
            lines.append(
                f"Target (c, PostgreSQL): >= {TARGET_BATCH_MPS:,.0f} messages/s in batches; "
                f"{m.workers} worker(s){', ' + pair if pair else ''}: {row.per_second:,.0f} "
                f"-> {'MET' if met else 'MISSED'}"
            )
        elif m.scenario.startswith("d ") and row.worst_window is not None:
            met = min(m.rps, row.worst_window) >= TARGET_KEEPALIVES and clean
            short = (
                f" (window {options.sustain:g} s, shorter than the target's "
                f"{TARGET_SUSTAIN_SECONDS:g} s: indicative)"
                if options.sustain < TARGET_SUSTAIN_SECONDS
                else ""
            )
            lines.append(
                f"Target (d, PostgreSQL): >= {TARGET_KEEPALIVES:,.0f} keepalives/s sustained "
                f"with the sweep running, in every {WORST_WINDOW} s window; {m.workers} "
                f"worker(s): {m.rps:,.0f}/s, worst {row.worst_window:,.0f}/s -> "
                f"{'MET' if met else 'MISSED'}{short}"
            )
    return lines


def error_lines(report: IngestReport) -> list[str]:
    return [
        f"ERRORS {r.measurement.server} x{r.measurement.workers} {r.measurement.scenario}: "
        f"{r.measurement.errors}, first: {r.measurement.first_error}"
        for r in report.rows
        if r.measurement.errors
    ] + [
        f"CHECK FAILED {r.measurement.server} x{r.measurement.workers} "
        f"{r.measurement.scenario}: {r.check}"
        for r in report.rows
        if r.check_failed
    ]


def heading(report: IngestReport, options: Options) -> str:
    return (
        f"{report.version}: {options.keepalive_devices:,} keepalive + "
        f"{options.payload_devices:,} payload devices, {options.clients} clients, "
        f"{options.duration:g} s per scenario ((d): {options.sustain:g} s) after "
        f"{options.warmup:g} s warm-up (set up in {report.setup_seconds:.0f} s)"
    )


def print_report(
    report: IngestReport, ceilings: dict[int, dict[str, Row]], options: Options
) -> None:
    rows = [list(COLUMNS), *table_rows(report, ceilings)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    print(f"\n== {heading(report, options)}")
    for index, row in enumerate(rows):
        cells = [
            cell.ljust(width) if column in LEFT_COLUMNS else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))
    for line in [*target_lines(report, options), *error_lines(report), *report.notes]:
        print(line)
    for label, rows in report.timelines:
        print(f"\n{label}, per {WORST_WINDOW} s:")
        widths = [len(column) for column in TIMELINE_COLUMNS]
        for row in [list(TIMELINE_COLUMNS), *rows]:
            print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))


def write_markdown(
    path: Path,
    reports: Sequence[IngestReport],
    ceilings: dict[int, dict[str, Row]],
    options: Options,
) -> None:
    out: list[str] = []
    if not path.exists() or not path.read_text().strip():
        out += ["# Benchmarks", ""]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    out += [
        f"## Device ingest (POST /device/v1), {stamp}",
        "",
        f"- Command: `{command_line()}`",
        f"- Machine: {machine_facts()}",
        f"- Load: {options.clients} clients (aiohttp, keep-alive), each request with the device "
        f"token of the next device in turn; {options.duration:g} s per scenario, (d) "
        f"{options.sustain:g} s, after {options.warmup:g} s warm-up. msg/s = req/s x messages "
        "per request (keepalives for (a) and (d)); vs ceiling = req/s / req/s of the ceiling "
        "with the same body and workers; the ceiling is a bare ASGI app reading the body and "
        "answering a fixed small JSON (`bench/ingest.py:ceiling_app`); vs lean = req/s / req/s "
        "of the lean reference (`bench/ingest_lean.py`) in the same scenario; CPU µs/req = "
        "the server's CPU time over the run / requests answered.",
        f"- Fleet: {options.keepalive_devices:,} keepalive devices and "
        f"{options.payload_devices:,} VCZ payload devices, onboarded through "
        f"`POST /api/v1/devices`, keepalive interval {options.keepalive_interval} s (offline "
        f"after {1.5 * options.keepalive_interval:g} s without a sign of life); server "
        "defaults: liveness flush every 1 s, sweep every 15 s.",
        "- Checks: every status (200 keepalive, 202 payloads, `accepted` = messages sent); "
        "after (b) and (c) `GET /api/v1/devices/{uuid}/payloads` meta.total on "
        f"{SAMPLE_DEVICES} devices equals what they had accepted; after (d) every keepalive "
        "device is online and none went offline during the window.",
        f"- {MQTT_NOTE}",
        "",
    ]
    for report in reports:
        out += [f"### {heading(report, options)}", ""]
        out.append("| " + " | ".join(COLUMNS) + " |")
        out.append(
            "|"
            + "|".join("---" if i in LEFT_COLUMNS else "---:" for i in range(len(COLUMNS)))
            + "|"
        )
        out += ["| " + " | ".join(row) + " |" for row in table_rows(report, ceilings)]
        extra = [*target_lines(report, options), *error_lines(report), *report.notes]
        if extra:
            out += ["", *(f"- {line}" for line in extra)]
        for label, rows in report.timelines:
            out += ["", f"{label}, per {WORST_WINDOW} s:", ""]
            out.append("| " + " | ".join(TIMELINE_COLUMNS) + " |")
            out.append("|" + "---:|" * len(TIMELINE_COLUMNS))
            out += ["| " + " | ".join(row) + " |" for row in rows]
        out.append("")
    append_markdown(path, out)


async def run(options: Options) -> list[IngestReport]:
    import shutil

    work_dir = Path(tempfile.mkdtemp(prefix="vsense-ingest-"))
    try:
        ceiling_workers = sorted(
            {1, *(options.postgres_workers if "postgresql" in options.backends else [])}
        )
        print(f"Ceiling (bare ASGI app on uvicorn), {options.clients} clients", flush=True)
        ceilings = {
            workers: await run_ceiling(options, workers, work_dir) for workers in ceiling_workers
        }
        reports = []
        for backend in options.backends:
            reports.append(await run_backend(backend, options, work_dir, ceilings))
        for report in reports:
            print_report(report, ceilings, options)
        print(f"\n{MQTT_NOTE}")
        if options.markdown:
            write_markdown(options.markdown, reports, ceilings, options)
            print(f"appended to {options.markdown}")
        return reports
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


# --------------------------------------------------------------------------- CLI


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per run")
    parser.add_argument(
        "--sustain", type=float, default=60.0, help="seconds of scenario (d); the target is 300"
    )
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--keepalive-devices", type=int, default=2000)
    parser.add_argument("--payload-devices", type=int, default=200)
    parser.add_argument("--batch", type=int, default=100, help="messages per request in (c)")
    parser.add_argument(
        "--keepalive-interval",
        type=int,
        default=10,
        help="seconds, of every bench device (offline after 1.5 times it)",
    )
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL, help="server, no database")
    parser.add_argument("--postgres-database", default="vsense_ingest")
    parser.add_argument("--postgres-workers", default="1,2", help="worker counts to run")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment of the server, e.g. VSENSE_SWEEP_INTERVAL=5 (repeatable)",
    )
    parser.add_argument(
        "--rules", type=int, default=1000, help="alert rules of scenario (e); 0 leaves it out"
    )
    parser.add_argument(
        "--rules-pairs",
        type=int,
        default=3,
        help="(c) and (e) this many times, alternated; the rules' cost judged on the median",
    )
    parser.add_argument(
        "--fleet",
        type=int,
        default=1_000_000,
        help="devices seeded for (d), each keepalive from the next one (0: the onboarded ones)",
    )
    parser.add_argument(
        "--silent",
        type=int,
        default=None,
        help="silent fleet devices whose deadlines fall during (d) (default: 1 %% of --fleet)",
    )
    parser.add_argument("--no-lean", action="store_true", help="leave out the lean reference")
    parser.add_argument(
        "--profile",
        type=Path,
        help="folder for py-spy profiles of the server, one per scenario (collapsed stacks)",
    )
    parser.add_argument("--markdown", type=Path, help="append the results to this file")
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown or not backends:
        parser.error(f"--backends takes {', '.join(BACKENDS)}; got {args.backends!r}")
    if args.keepalive_devices < 1 or args.payload_devices < 1:
        parser.error("--keepalive-devices and --payload-devices must be at least 1")
    if not 1 <= args.batch <= 500:
        parser.error("--batch must be between 1 and 500 (the gateway's limit)")
    if args.keepalive_interval < 10:
        parser.error("--keepalive-interval must be at least 10 (the API's minimum)")
    from sqlalchemy.engine.url import make_url

    if make_url(args.postgres_url).host not in LOOPBACK_HOSTS:
        parser.error("--postgres-url must point to 127.0.0.1")
    env = dict(item.split("=", 1) for item in args.server_env if "=" in item)
    return Options(
        backends=backends,
        duration=args.duration,
        warmup=args.warmup,
        sustain=args.sustain,
        clients=args.clients,
        keepalive_devices=args.keepalive_devices,
        payload_devices=args.payload_devices,
        batch=args.batch,
        keepalive_interval=args.keepalive_interval,
        postgres_url=args.postgres_url,
        postgres_database=args.postgres_database,
        postgres_workers=[int(w) for w in args.postgres_workers.split(",")],
        server_env=env,
        rules=args.rules,
        rules_pairs=args.rules_pairs,
        markdown=args.markdown,
        fleet=args.fleet,
        silent=args.fleet // 100 if args.silent is None else args.silent,
        lean=not args.no_lean,
        profile=args.profile,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    announce_code_under_test()
    with contextlib.suppress(KeyboardInterrupt):
        reports = event_loop_runner(run(options))
        failed = any(r.measurement.errors or r.check_failed for rep in reports for r in rep.rows)
        return 1 if failed else 0
    return 130


if __name__ == "__main__":
    sys.exit(main())
