"""Benchmark of snapshots on the real server: request to ready, and serving a signed link.

For each backend (SQLite; PostgreSQL) it migrates a fresh database, seeds an admin and a
token (`harness.seed`), starts `vsense serve` (1 worker, the local image store) and
onboards `--devices` devices through the API. Each device is a lean simulated sensor in
this process (aiohttp): one keepalive, then a long poll on `GET /device/v1/commands`;
on `capture_image` it uploads a prepared JPEG of `--image-kb` KB as the raw and as the
annotated image at once (zero capture delay: no rendering, no wait; an upload answered
503 because the server sheds load is sent again after its Retry-After, as a device
does, and counted) and reports the result. Then:

  (a) request to ready: one `POST /api/v1/devices/{uuid}/image` per device, all at once;
      for each, the time from sending the request until both signed links answer 200
      with the uploaded bytes (checked as soon as the device's second upload returned,
      then every 10 ms). Also shown: when the device had the command, and when its
      uploads were done. Target: p99 <= 1 s beyond the device's own delay (0 here).
  (b) serving: `--clients` keep-alive clients GET one ready link for `--duration` s;
      the ceiling is a bare static-file endpoint (Starlette `StaticFiles` on uvicorn,
      same options) serving the same file, measured in the same run. Target: >= 50 %.

Then, vsense stopped, the lean reference (`images_lean.py`: one FastAPI app on the same
uvicorn, the driver's prepared statements, orjson, no middleware) serves the same
database with the same onboarded devices and tokens, and (a) runs again against it with
fresh simulated sensors: the same steps over the same SQL tables, with nothing around
them. Its figures are printed beside vsense's, with lean / vsense of the p50 and the p99
of request to ready: a ratio holds on a noisy machine where absolute times do not.
`--no-lean` leaves it out. `--workers N` runs vsense on PostgreSQL as N server processes
(a long poll is woken by a command another process committed as soon as that commit is
heard on the change feed).

Run from the repository root:

    .venv/bin/python bench/images.py --markdown docs/benchmarks.md

All traffic goes to 127.0.0.1. The PostgreSQL database (`vsense_images_bench` by default)
is dropped and recreated at the start and left in place afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import math
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import orjson

from harness import (
    BACKEND_LABELS,
    BACKENDS,
    DEFAULT_POSTGRES_URL,
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
    free_port,
    log_problems,
    machine_facts,
    percentile,
    profiled,
    recreate_postgres_database,
    run_command,
    seed,
    served,
    server_env,
    vsense_executable,
)
from vsense.client.retry_after import parse_retry_after

STATIC_DIR_ENV = "VSENSE_BENCH_STATIC_DIR"
IMAGE_NAME = "snapshot.jpg"
TARGET_P99_S = 1.0
TARGET_RATIO = 0.5
READY_POLL_S = 0.01
UPLOAD_TRIES = 5

LEAN_DATABASE_ENV = "BENCH_LEAN_DATABASE_URL"
LEAN_IMAGE_DIR_ENV = "BENCH_LEAN_IMAGE_DIR"

AsgiMessage = dict[str, Any]


def static_app() -> Callable[..., Awaitable[None]]:
    """The ceiling: a bare static-file endpoint over the folder of the bench image."""
    from starlette.staticfiles import StaticFiles
    from starlette.types import Send

    files = StaticFiles(directory=os.environ[STATIC_DIR_ENV])

    async def app(
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[AsgiMessage]],
        send: Callable[[AsgiMessage], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        if scope["path"] == "/healthz":  # what `served` waits for
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        await files(scope, receive, cast(Send, send))

    return app


def make_jpeg(kilobytes: int) -> bytes:
    """A real JPEG of about `kilobytes` KB (noise compresses badly, so size follows area)."""
    from PIL import Image

    side = 64
    while True:
        noise = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
        buffer = io.BytesIO()
        noise.save(buffer, "JPEG", quality=85)
        if buffer.tell() >= kilobytes * 1024:
            return buffer.getvalue()
        side += 16


# --------------------------------------------------------------------------- devices


@dataclass
class Sensor:
    uuid: str
    headers: dict[str, str]
    got_command: float = 0.0
    uploaded: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    online: asyncio.Event = field(default_factory=asyncio.Event)
    errors: list[str] = field(default_factory=list)
    retries: int = 0  # uploads answered 503 and sent again

    def fresh(self) -> Sensor:
        """The same device (UUID and token) with none of this run's state, for another run."""
        return Sensor(self.uuid, self.headers)


async def onboard(base_url: str, admin: dict[str, str], count: int) -> list[Sensor]:
    import aiohttp

    sensors: list[Sensor] = []
    async with aiohttp.ClientSession(headers=admin) as session:

        async def one(n: int) -> None:
            name = f"CAM-{n:05d}"
            body: dict[str, Any] = {"name": name, "client_identifier": f"BENCH-{name}"}
            body |= {"app_type": "VPM", "keepalive_interval": 600}
            async with session.post(f"{base_url}/api/v1/devices", json=body) as response:
                answer = await response.read()
            if response.status != 201:
                raise RuntimeError(f"onboarding answered {response.status}: {answer[:300]!r}")
            document = orjson.loads(answer)
            token = document["device_token"]
            sensors.append(Sensor(document["uuid"], {"Authorization": f"Bearer {token}"}))

        for start in range(0, count, 16):
            await asyncio.gather(*(one(n) for n in range(start, min(count, start + 16))))
    return sensors


async def run_sensor(session: Any, base_url: str, sensor: Sensor, image: bytes) -> None:
    """A simulated sensor; a failure is recorded as its error, and ends its part of the
    run (its events are set, so that the run does not wait for it forever)."""
    try:
        await _sensor_loop(session, base_url, sensor, image)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        sensor.errors.append(f"sensor {sensor.uuid}: {type(exc).__name__}: {exc}")
        sensor.online.set()
        sensor.done.set()


async def _upload(session: Any, url: str, sensor: Sensor, image: bytes) -> None:
    """One upload, as a device does it: a 503 (the server sheds load) is tried again
    after its Retry-After, up to UPLOAD_TRIES times; the retries are counted."""
    for _ in range(UPLOAD_TRIES):
        headers = {**sensor.headers, "Content-Type": "image/jpeg"}
        async with session.put(url, data=image, headers=headers) as response:
            said = await response.read()
            if response.status == 204:
                return
            if response.status != 503:
                break
            sensor.retries += 1
            wait = parse_retry_after(response.headers.get("Retry-After"), fractions=True)
            await asyncio.sleep(1.0 if wait is None else wait)
    text = said[:160].decode(errors="replace")
    sensor.errors.append(f"upload {url.rsplit('/', 1)[1]}: HTTP {response.status} {text}")


async def _sensor_loop(session: Any, base_url: str, sensor: Sensor, image: bytes) -> None:
    """Keepalive, then long polls; each capture is answered at once."""
    async with session.post(f"{base_url}/device/v1/keepalive", headers=sensor.headers) as r:
        await r.read()
        if r.status != 200:
            raise RuntimeError(f"keepalive answered HTTP {r.status}")
    sensor.online.set()
    while True:
        url = f"{base_url}/device/v1/commands?wait=25"
        async with session.get(url, headers=sensor.headers) as response:
            commands = orjson.loads(await response.read())["commands"]
        for command in commands:
            sensor.got_command = time.perf_counter()
            request_id = command["request_id"]
            for kind in ("raw", "annotated"):
                await _upload(
                    session, f"{base_url}/device/v1/images/{request_id}/{kind}", sensor, image
                )
            sensor.uploaded = time.perf_counter()
            sensor.done.set()
            async with session.post(
                f"{base_url}/device/v1/commands/{command['id']}/result",
                json={"ok": True},
                headers=sensor.headers,
            ) as response:
                await response.read()


# --------------------------------------------------------------------------- (a)


@dataclass
class ReadyResult:
    total_s: list[float] = field(default_factory=list)
    command_s: list[float] = field(default_factory=list)
    uploaded_s: list[float] = field(default_factory=list)
    answered_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ready_link: str = ""
    retries: int = 0  # uploads the server answered 503 (too busy), sent again
    server_cpu_s: float = float("nan")  # CPU the server used during the run
    bench_cpu_s: float = float("nan")  # CPU this process (the devices and the clients) used
    wall_s: float = float("nan")

    def cpu_line(self) -> str:
        share = self.server_cpu_s / self.wall_s if self.wall_s else float("nan")
        bench_share = self.bench_cpu_s / self.wall_s if self.wall_s else float("nan")
        return (
            f"server CPU {self.server_cpu_s:.2f} s over {self.wall_s:.2f} s "
            f"({share:.0%} of one core), load generator {bench_share:.0%}; "
            f"{self.retries} uploads answered 503 and sent again"
        )


async def measured(pid: int, run: Awaitable[ReadyResult]) -> ReadyResult:
    """The result of a request-to-ready run, with the CPU its server used meanwhile."""
    cpu_before, wall_before = cpu_seconds(pid), time.perf_counter()
    own_before = time.process_time()
    result = await run
    result.server_cpu_s = cpu_seconds(pid) - cpu_before
    result.bench_cpu_s = time.process_time() - own_before
    result.wall_s = time.perf_counter() - wall_before
    return result


async def request_to_ready(
    base_url: str, admin: dict[str, str], sensors: list[Sensor], image: bytes
) -> ReadyResult:
    import aiohttp

    result = ReadyResult()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        devices = [
            asyncio.create_task(run_sensor(session, base_url, sensor, image)) for sensor in sensors
        ]
        await asyncio.gather(*(sensor.online.wait() for sensor in sensors))
        await asyncio.sleep(1.0)  # and in its long poll

        async def ask(sensor: Sensor) -> None:
            started = time.perf_counter()
            async with session.post(
                f"{base_url}/api/v1/devices/{sensor.uuid}/image", headers=admin
            ) as response:
                body = await response.read()
            answered = time.perf_counter()
            if response.status != 200:
                result.errors.append(f"request: HTTP {response.status} {body[:200]!r}")
                return
            links = orjson.loads(body)["data"]
            try:
                await asyncio.wait_for(sensor.done.wait(), 120)
            except TimeoutError:
                result.errors.append(f"{sensor.uuid}: no upload within 120 s")
                return
            if sensor.errors:
                return  # counted with the sensors' errors below
            while True:
                statuses = []
                for link in links:
                    async with session.get(link) as served_link:
                        content = await served_link.read()
                    ok = served_link.status == 200 and content == image
                    statuses.append(ok)
                if all(statuses):
                    break
                await asyncio.sleep(READY_POLL_S)
            ready = time.perf_counter()
            result.total_s.append(ready - started)
            result.answered_s.append(answered - started)
            result.command_s.append(sensor.got_command - started)
            result.uploaded_s.append(sensor.uploaded - started)
            result.ready_link = links[0]

        try:
            await asyncio.gather(*(ask(sensor) for sensor in sensors))
        finally:
            for task in devices:
                task.cancel()
            await asyncio.gather(*devices, return_exceptions=True)
    result.errors += [error for sensor in sensors for error in sensor.errors]
    result.retries = sum(sensor.retries for sensor in sensors)
    return result


# --------------------------------------------------------------------------- (b)


async def get_load(
    url: str, expected: bytes, measurement: Measurement, *, clients: int, warmup: float
) -> None:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        measure_from = time.perf_counter() + warmup
        measure_until = measure_from + measurement.seconds

        async def client() -> None:
            while (started := time.perf_counter()) < measure_until:
                error = None
                try:
                    async with session.get(url) as response:
                        body = await response.read()
                    if response.status != 200 or body != expected:
                        error = f"HTTP {response.status}, {len(body)} bytes"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    error = f"{type(exc).__name__}: {exc}"
                finished = time.perf_counter()
                if error is not None:
                    measurement.record_error(error)
                elif measure_from <= finished <= measure_until:
                    measurement.latencies_ms.append((finished - started) * 1000)
                    measurement.response_bytes = len(body)

        await asyncio.gather(*(client() for _ in range(clients)))


async def run_ceiling(options: Options, static_dir: Path, image: bytes) -> Measurement:
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "images:static_app", "--factory", "--app-dir", "bench",
        "--host", HOST, "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    env = base_env({STATIC_DIR_ENV: str(static_dir)})
    measurement = Measurement("ceiling", 1, "static file (StaticFiles)", options.duration)
    async with served(command, env, port, static_dir.parent / "ceiling.log") as url:
        await get_load(
            f"{url}/{IMAGE_NAME}",
            image,
            measurement,
            clients=options.clients,
            warmup=options.warmup,
        )
    return measurement


# --------------------------------------------------------------------------- runs


@dataclass
class Options:
    backends: list[str]
    devices: int
    image_kb: int
    duration: float
    warmup: float
    clients: int
    postgres_url: str
    postgres_database: str
    markdown: Path | None
    profile: Path | None = None
    lean: bool = True
    workers: int = 1  # of vsense on PostgreSQL (SQLite serves one process)


@dataclass
class Report:
    backend: str
    version: str
    workers: int
    ready: ReadyResult
    serving: Measurement
    lean: ReadyResult | None = None  # (a) against the lean reference
    notes: list[str] = field(default_factory=list)


async def run_backend(backend: str, options: Options, work_dir: Path, image: bytes) -> Report:
    data_dir = work_dir / backend
    data_dir.mkdir()
    database_url: str | None = None
    version = f"SQLite {sqlite3.sqlite_version}"
    if backend == "postgresql":
        database_url = f"{options.postgres_url.rstrip('/')}/{options.postgres_database}"
        version = "PostgreSQL " + await recreate_postgres_database(database_url)
    env = server_env(data_dir, database_url, {})
    print(f"\n{BACKEND_LABELS[backend]}: migrating, seeding an admin", flush=True)
    await run_command([vsense_executable(), "db", "upgrade"], env, work_dir / f"{backend}-db.log")
    admin = {"Authorization": f"Bearer {await seed(data_dir, database_url, 0)}"}
    port = free_port()
    workers = options.workers if backend == "postgresql" else 1
    command = [
        vsense_executable(), "serve", "--host", HOST, "--port", str(port),
        "--log-level", "warning", "--workers", str(workers),
    ]  # fmt: skip
    log_path = work_dir / f"{backend}.log"
    pids: list[int] = []
    async with served(command, env, port, log_path, pids) as base_url:
        # One more device than (a) uses, for (b): measured first, since the long polls of
        # (a) keep the server busy until their `wait` is over, even once their clients are
        # gone (and a poll left open would take a command meant for a later client).
        sensors = await onboard(base_url, admin, options.devices + 1)
        first = await request_to_ready(base_url, admin, sensors[-1:], image)
        serving = Measurement("vsense", 1, "signed link (local store)", options.duration)
        if first.ready_link:
            print(f"  onboarded {len(sensors)} devices; (b) serving a ready link", flush=True)
            await get_load(
                first.ready_link, image, serving, clients=options.clients, warmup=options.warmup
            )
            print(f"    {serving.rps:,.0f} req/s, p99 {serving.percentile(0.99):.1f} ms")
        print("  (a) request to ready", flush=True)
        output = options.profile / f"{backend}-request-to-ready.txt" if options.profile else None
        async with profiled(pids[0], output):
            ready = await measured(pids[0], request_to_ready(base_url, admin, sensors[:-1], image))
        ready.errors += first.errors
        print_ready(ready)
    report = Report(backend, version, workers, ready, serving)
    problems = log_problems(log_path)
    if problems:
        report.notes.append(f"server log has {len(problems)} error lines: {problems[0][:200]}")
    if options.lean:
        # vsense is stopped (its open long polls would keep its process busy): the lean
        # server alone serves the same database, devices and tokens.
        left = await expire_leftovers(data_dir, database_url)
        if left:
            report.notes.append(
                f"vsense's run left {left} pending requests or untaken commands; "
                "they were expired before the lean run"
            )
        lean_env = base_env(
            {
                LEAN_DATABASE_ENV: lean_database_url(data_dir, database_url),
                LEAN_IMAGE_DIR_ENV: str(data_dir / "lean-images"),
            }
        )
        lean_log = work_dir / f"{backend}-lean.log"
        port = free_port()
        lean_pids: list[int] = []
        async with served(lean_command(port), lean_env, port, lean_log, lean_pids) as base_url:
            print("  (a) request to ready, lean reference", flush=True)
            fresh = [sensor.fresh() for sensor in sensors[:-1]]
            report.lean = await measured(
                lean_pids[0], request_to_ready(base_url, admin, fresh, image)
            )
            print_ready(report.lean)
            print_ratio(ready, report.lean)
        problems = log_problems(lean_log)
        if problems:
            report.notes.append(f"lean log has {len(problems)} error lines: {problems[0][:200]}")
    return report


async def expire_leftovers(data_dir: Path, database_url: str | None) -> int:
    """Expire what vsense's run left unfinished (a request whose upload it refused, a
    command no device took), as its sweep would after the capture timeout and the
    command TTL, so that the lean run asks each device anew; how many rows."""
    from sqlalchemy import update

    from vsense.config import load_settings
    from vsense.db import create_engine
    from vsense.kit.time import utcnow
    from vsense.models import DeviceCommand, ImageRequest
    from vsense.models.images import FAILED, PENDING

    engine = create_engine(load_settings(data_dir=data_dir, database_url=database_url))
    now = utcnow()
    try:
        async with engine.begin() as connection:
            requests: Any = await connection.execute(
                update(ImageRequest)
                .where(ImageRequest.status == PENDING)
                .values(status=FAILED, error="timeout")
            )
            commands: Any = await connection.execute(
                update(DeviceCommand)
                .where(DeviceCommand.taken_at.is_(None), DeviceCommand.expires_at > now)
                .values(expires_at=now)
            )
    finally:
        await engine.dispose()
    return int(requests.rowcount or 0) + int(commands.rowcount or 0)


def lean_command(port: int) -> list[str]:
    """The lean reference on uvicorn, as vsense is served: one worker, no access log."""
    return [
        sys.executable, "-m", "uvicorn", "images_lean:app", "--app-dir", "bench",
        "--host", HOST, "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip


def lean_database_url(data_dir: Path, database_url: str | None) -> str:
    """The database vsense uses, as the lean reference's driver takes it."""
    if database_url:
        return database_url.replace("postgresql+asyncpg://", "postgresql://")
    from vsense.config import load_settings

    return load_settings(data_dir=data_dir).resolved_database_url.replace(
        "sqlite+aiosqlite:///", "sqlite:///"
    )


def lean_ratio(lean: Sequence[float], vsense: Sequence[float], q: float) -> float:
    """lean / vsense of the `q` quantile (below 1: the lean reference is faster)."""
    theirs = percentile(vsense, q)
    return percentile(lean, q) / theirs if theirs else math.nan


def print_ratio(ready: ReadyResult, lean: ReadyResult) -> None:
    p50 = lean_ratio(lean.total_s, ready.total_s, 0.5)
    p99 = lean_ratio(lean.total_s, ready.total_s, 0.99)
    print(f"    lean / vsense, both links serve 200: p50 {p50:.2f}   p99 {p99:.2f}", flush=True)


def print_ready(ready: ReadyResult) -> None:
    for label, values in (
        ("request answered", ready.answered_s),
        ("device had the command", ready.command_s),
        ("device's uploads done", ready.uploaded_s),
        ("both links serve 200", ready.total_s),
    ):
        print(
            f"    {label:24} p50 {percentile(values, 0.5) * 1000:7.0f} ms   "
            f"p99 {percentile(values, 0.99) * 1000:7.0f} ms",
            flush=True,
        )
    print(f"    {ready.cpu_line()}", flush=True)
    if ready.errors:
        print(f"    {len(ready.errors)} errors, first: {ready.errors[0]}", flush=True)


def markdown(reports: list[Report], ceiling: Measurement, options: Options) -> list[str]:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    kb = ceiling.response_bytes / 1024
    lines = [
        f"## Snapshots ({when})",
        "",
        f"`{command_line()}` — {machine_facts()}.",
        "",
        f"(a) {options.devices} snapshot requests at once across {options.devices} lean "
        "simulated devices (long poll, zero capture delay, a prepared "
        f"{options.image_kb} KB JPEG uploaded as both images); time from sending the request "
        "until both signed links serve 200 with the bytes:",
        "",
        "| backend | server | answered p50/p99 ms | command p50/p99 ms | uploaded p50/p99 ms "
        "| ready p50 ms | ready p99 ms | errors | target p99 <= 1 s | lean / vsense ready "
        "p50 / p99 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]

    def pair(values: Sequence[float]) -> str:
        return f"{percentile(values, 0.5) * 1000:,.0f} / {percentile(values, 0.99) * 1000:,.0f}"

    def row(version: str, server: str, r: ReadyResult, verdict: str, versus: str) -> str:
        return (
            f"| {version} | {server} | {pair(r.answered_s)} | {pair(r.command_s)} "
            f"| {pair(r.uploaded_s)} | {percentile(r.total_s, 0.5) * 1000:,.0f} "
            f"| {percentile(r.total_s, 0.99) * 1000:,.0f} | {len(r.errors)} | {verdict} "
            f"| {versus} |"
        )

    for report in reports:
        r = report.ready
        met = percentile(r.total_s, 0.99) <= TARGET_P99_S
        server = "vsense" if report.workers == 1 else f"vsense x{report.workers} workers"
        lines.append(row(report.version, server, r, "met" if met else "missed", ""))
        if report.lean is not None:
            versus = (
                f"{lean_ratio(report.lean.total_s, r.total_s, 0.5):.2f} / "
                f"{lean_ratio(report.lean.total_s, r.total_s, 0.99):.2f}"
            )
            lines.append(row(report.version, "lean", report.lean, "", versus))
    if any(report.lean is not None for report in reports):
        lines += [
            "",
            "lean: the reference of the same path (`bench/images_lean.py`: FastAPI, the "
            "driver's prepared statements, orjson, no middleware) over the same database, "
            "devices and tokens, run after vsense was stopped; lean / vsense below 1 means "
            "the lean reference was faster.",
        ]
    lines += [
        "",
        f"(b) serving a ready {kb:.0f} KB image, {options.clients} keep-alive clients, "
        f"{options.duration:g} s after {options.warmup:g} s warm-up:",
        "",
        "| server | scenario | req/s | MB/s | p50 ms | p99 ms | errors | ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [("ceiling", ceiling)] + [(r.version, r.serving) for r in reports]
    for label, m in rows:
        ratio = m.rps / ceiling.rps if ceiling.rps else float("nan")
        lines.append(
            f"| {label} | {m.scenario} | {m.rps:,.0f} | {m.rps * m.response_bytes / 1e6:,.0f} "
            f"| {m.percentile(0.5):.1f} | {m.percentile(0.99):.1f} | {m.errors} | {ratio:.2f} |"
        )
    for report in reports:
        lines.append(f"- {report.version}: (a) vsense {report.ready.cpu_line()}")
        if report.lean is not None:
            lines.append(f"- {report.version}: (a) lean {report.lean.cpu_line()}")
        lines += [f"- {report.version}: {note}" for note in report.notes]
    return [*lines, ""]


async def run(options: Options) -> list[Report]:
    work_dir = Path(tempfile.mkdtemp(prefix="vsense-bench-images-"))
    image = make_jpeg(options.image_kb)
    static_dir = work_dir / "static"
    static_dir.mkdir()
    (static_dir / IMAGE_NAME).write_bytes(image)
    print(f"Ceiling: static file of {len(image) / 1024:.0f} KB, {options.clients} clients")
    ceiling = await run_ceiling(options, static_dir, image)
    print(f"  {ceiling.rps:,.0f} req/s, p99 {ceiling.percentile(0.99):.1f} ms", flush=True)
    reports = [await run_backend(b, options, work_dir, image) for b in options.backends]
    lines = markdown(reports, ceiling, options)
    print("\n" + "\n".join(lines))
    if options.markdown:
        append_markdown(options.markdown, lines)
        print(f"appended to {options.markdown}")
    return reports


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated")
    parser.add_argument("--devices", type=int, default=200, help="devices and requests in (a)")
    parser.add_argument("--image-kb", type=int, default=200, help="size of the image")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured in (b)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up in (b)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients in (b)")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL, help="server, no database")
    parser.add_argument("--postgres-database", default="vsense_images_bench")
    parser.add_argument("--markdown", type=Path, help="append the results to this file")
    parser.add_argument(
        "--profile", type=Path, help="py-spy the server during (a), into this folder"
    )
    parser.add_argument("--no-lean", action="store_true", help="leave out the lean reference")
    parser.add_argument(
        "--workers", type=int, default=1, help="vsense's server processes on PostgreSQL"
    )
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not backends or set(backends) - set(BACKENDS):
        parser.error(f"--backends takes {', '.join(BACKENDS)}; got {args.backends!r}")
    from sqlalchemy.engine.url import make_url

    if make_url(args.postgres_url).host not in LOOPBACK_HOSTS:
        parser.error("--postgres-url must point to 127.0.0.1")
    return Options(
        backends=backends,
        devices=max(1, args.devices),
        image_kb=max(1, args.image_kb),
        duration=args.duration,
        warmup=args.warmup,
        clients=max(1, args.clients),
        postgres_url=args.postgres_url,
        postgres_database=args.postgres_database,
        markdown=args.markdown,
        profile=args.profile,
        lean=not args.no_lean,
        workers=max(1, args.workers),
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    announce_code_under_test()
    with contextlib.suppress(KeyboardInterrupt):
        reports = event_loop_runner(run(options))
        failed = any(
            r.ready.errors or r.serving.errors or (r.lean is not None and r.lean.errors)
            for r in reports
        )
        return 1 if failed else 0
    return 130


if __name__ == "__main__":
    sys.exit(main())
