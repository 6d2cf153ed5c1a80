"""Benchmark of device ingest over MQTT: the bridge of `vsense serve`, next to the
broker's own rate and a lean subscriber of the same stack, through the same broker.

For each backend (SQLite, PostgreSQL) it migrates a fresh database, seeds an
organization and `--devices` online VCZ devices directly in the database, then runs three
scenarios, each with a share group of its own, in the same run and with the same load:

  ceiling  `mqtt_roles.py bare`: the lean reference's subscribers, acknowledging what
           they take at once and storing nothing: what the broker delivers to them on
           this machine;
  lean     `mqtt_roles.py lean`: aiomqtt subscribers (`--lean-subscribers`) that
           insert the raw payloads in batches with the database's own driver and
           acknowledge each message after its commit: what this stack can do leanly;
  vsense   `vsense serve` with its MQTT bridge (`--server-env` passes settings).

The load: `--publishers` aiomqtt connections publish QoS 1 for `--duration` s, each
with `--window` publications awaiting their PUBACK at any time, alternately a keepalive
(a health body) and a one-message VCZ payload, for the devices in turn. `published` is
what the broker acknowledged (PUBACK: the devices were told it was delivered).
`stored` is what the subscriber committed (vsense: `vsense_mqtt_messages_total{outcome=
"accepted"}`, and the payload rows are counted in the database), counted until nothing
more arrives for 30 s; msg/s = stored / (time of the last stored - start of the load).
`lost` = published - stored; the broker's own `$SYS/broker/publish/messages/dropped`
(for all its clients) is read before and after each scenario (Mosquitto publishes it
every `sys_interval`, 10 s by default). ratio = vsense msg/s / lean msg/s.
CPU µs/msg: the subscriber process's CPU time (user + system) from the start of the
load to its last stored message, per stored message (vsense's includes answering the
benchmark's reads of /metrics, ten a second); it holds when the machine's speed does
not, as the subscribers share two cores with the broker and the publishers. The notes
give vsense's mean batch (`vsense_mqtt_batch_size`) and how many batches shared each
group transaction (`vsense_group_commit_size`).

Targets (printed after each backend's table): on PostgreSQL, >= 5,000 messages/s stored
by one server process; on SQLite, which has no absolute target, >= 0.5 of the lean
reference of the same run (the ratio the PostgreSQL target asks of a lean reference
near 10,000 msg/s on these machines). Messages lost under this overload are the
broker's drops of a subscriber's full queue (its defaults here, not the README's
production settings); the target line says whether the broker counted every one.

Run from the repository root (the PostgreSQL database `bench_mqtt_pg` is recreated):

    .venv/bin/python bench/mqtt.py --duration 5 --markdown docs/benchmarks.md

`BENCH_SERVER_PYTHONPATH=<other checkout>/src` measures another commit's server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson

from harness import (
    BACKEND_LABELS,
    DEFAULT_POSTGRES_URL,
    HOST,
    REPO_ROOT,
    announce_code_under_test,
    append_markdown,
    command_line,
    cpu_seconds,
    event_loop_runner,
    free_port,
    group_commit_totals,
    log_problems,
    machine_facts,
    metric,
    recreate_postgres_database,
    run_command,
    seed,
    served,
    server_env,
    vsense_executable,
)

HEALTH = orjson.dumps({"fw_version": "2.4.1", "uptime_s": 86_400, "cpu_load": 0.35})
DRAIN_IDLE_S = 30.0  # the machine may be busy: a batch can take many seconds
SYS_BRANCH = "$SYS/broker/publish/messages/+"
SYS_DROPPED = "$SYS/broker/publish/messages/dropped"
SYS_WAIT_S = 12.0  # one Mosquitto sys_interval (10 s by default; 1 s on its own) and a margin
ROLES = str(Path(__file__).resolve().parent / "mqtt_roles.py")


@dataclass
class Row:
    backend: str
    scenario: str
    published: int = 0
    publish_seconds: float = 0.0
    stored: int = 0
    seconds: float = 0.0
    payloads_published: int = 0
    payload_rows: int | None = None
    broker_dropped: int | None = None
    cpu_seconds: float | None = None  # the subscriber's process, from the load to the last stored
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.stored / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_message(self) -> float | None:
        """The subscriber's CPU microseconds per stored message."""
        if self.cpu_seconds is None or not self.stored:
            return None
        return self.cpu_seconds / self.stored * 1e6

    @property
    def publish_rate(self) -> float:
        return self.published / self.publish_seconds if self.publish_seconds else 0.0


# --------------------------------------------------------------------------- broker


class DropWatch:
    """The broker's count of dropped messages, as it publishes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.value: int | None = None
        self.reports = 0
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        import aiomqtt

        async with aiomqtt.Client(HOST, self.port) as client:
            await client.subscribe(SYS_BRANCH)
            async for message in client.messages:
                if str(message.topic) == SYS_DROPPED:
                    self.value = int(bytes(message.payload).decode())  # type: ignore[arg-type]
                elif self.value is None:
                    self.value = 0  # reported only once above zero
                self.reports += 1
                self.changed.set()

    async def next_report(self) -> int | None:
        """The value of the broker's next report (None if none comes in SYS_WAIT_S)."""
        self.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.changed.wait(), SYS_WAIT_S)
            return self.value
        return None


def device_message(n: int, devices: Sequence[str]) -> tuple[str, bytes]:
    """The load's `n`th message (topic, body): keepalives and one-message VCZ payloads in
    turn, for the devices in turn (a payload's timestamp steps back a second each round,
    so that no two are alike)."""
    device = devices[(n // 2) % len(devices)]
    if n % 2:
        return f"vsense/{device}/keepalive", HEALTH
    now = int(time.time())
    body = orjson.dumps(
        {
            "type": "VCZ",
            "timestamp": now - (n // (2 * len(devices))) % 86_400,
            "payload": [
                {
                    "id": str(uuid.uuid5(uuid.NAMESPACE_URL, device)),
                    "name": "Z-0",
                    "count": 3,
                    "by_class": {"person": 3},
                    "period_start": now - 60,
                    "period_end": now,
                }
            ],
        }
    )
    return f"vsense/{device}/payloads", body


async def publish_load(
    port: int, devices: Sequence[str], options: Options
) -> tuple[int, int, float, float]:
    """(published, payloads published, load start, seconds publishing): QoS 1, each
    counted once the broker acknowledged it."""
    import aiomqtt

    published = 0
    payloads = 0
    stop_at = 0.0
    turn = iter(range(1 << 62))

    async def window(client: aiomqtt.Client) -> None:
        nonlocal published, payloads
        while time.monotonic() < stop_at:
            n = next(turn)
            await client.publish(*device_message(n, devices), qos=1)
            published += 1
            payloads += n % 2 == 0

    run = uuid.uuid4().hex[:8]
    clients = [
        aiomqtt.Client(
            HOST, port, identifier=f"bench-pub-{run}-{i}", protocol=aiomqtt.ProtocolVersion.V5
        )
        for i in range(options.publishers)
    ]
    async with contextlib.AsyncExitStack() as stack:
        for client in clients:
            client.pending_calls_threshold = 1 << 30
            await stack.enter_async_context(client)
        start = time.monotonic()
        stop_at = start + options.duration
        await asyncio.gather(*(window(client) for client in clients for _ in range(options.window)))
        seconds = time.monotonic() - start
    return published, payloads, start, seconds


# --------------------------------------------------------------------------- scenarios


@contextlib.asynccontextmanager
async def role_process(
    arguments: list[str], log_path: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, ROLES, *arguments,
        cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE, stderr=log_path.open("ab"),
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        if line.strip() != b"ready":
            raise RuntimeError(f"{arguments[0]} subscriber did not start: {line!r}")
        yield process
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


async def role_scenario(name: str, arguments: list[str], context: Context, options: Options) -> Row:
    row = Row(context.backend, name)
    before = context.drops.value
    async with role_process(arguments, context.work_dir / f"{name}.log") as process:
        published, payloads, start, seconds = await publish_load(
            options.port, context.devices, options
        )
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 120)
        await process.wait()
    result = json.loads(line)
    row.published, row.payloads_published, row.publish_seconds = published, payloads, seconds
    row.stored = result["count"]
    row.seconds = (result["last"] - start) if result["first"] else 0.0
    row.cpu_seconds = result["cpu"]
    after = await context.drops.next_report()
    if before is not None and after is not None:
        row.broker_dropped = after - before
    return row


async def vsense_scenario(context: Context, options: Options) -> Row:
    import aiohttp

    row = Row(context.backend, "vsense")
    group = f"bench-{uuid.uuid4().hex[:8]}"
    env = server_env(
        context.data_dir,
        context.database_url,
        {
            "VSENSE_MQTT_URL": f"mqtt://{HOST}:{options.port}",
            "VSENSE_MQTT_SHARE_GROUP": group,
            **options.server_env,
        },
    )
    port = free_port()
    command = [
        vsense_executable(), "serve", "--host", HOST, "--port", str(port),
        "--log-level", "warning", "--workers", str(options.workers),
    ]  # fmt: skip
    log_path = context.work_dir / f"{context.backend}-serve.log"
    before = context.drops.value
    payload_rows_before = await payload_rows(context)
    pids: list[int] = []
    async with (
        served(command, env, port, log_path, pids) as base_url,
        aiohttp.ClientSession() as http,
    ):
        deadline = time.monotonic() + 30
        while True:  # the bridge is subscribed
            async with http.get(f"{base_url}/readyz") as response:
                if response.status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the MQTT bridge did not connect")
            await asyncio.sleep(0.2)
        accepted = 'outcome="accepted"'
        cpu_before = cpu_seconds(pids[0])
        published, payloads, start, seconds = await publish_load(
            options.port, context.devices, options
        )
        stored, last, cpu_last = 0.0, time.monotonic(), cpu_before
        while time.monotonic() - last < DRAIN_IDLE_S:
            now = await metric(http, base_url, "vsense_mqtt_messages_total", accepted)
            if now != stored:
                stored, last, cpu_last = now, time.monotonic(), cpu_seconds(pids[0])
            if stored >= published:
                break
            await asyncio.sleep(0.1)
        outcomes = {}
        for outcome in ("invalid", "unknown_device", "failed", "retried"):
            value = await metric(
                http, base_url, "vsense_mqtt_messages_total", f'outcome="{outcome}"'
            )
            if value:
                outcomes[outcome] = int(value)
        if outcomes:
            row.notes.append(f"vsense {context.backend} other outcomes: {outcomes}")
        messages = await metric(http, base_url, "vsense_mqtt_batch_size_sum")
        batches = await metric(http, base_url, "vsense_mqtt_batch_size_count")
        units, groups = await group_commit_totals(http, base_url)
        if batches:
            grouped = f", {units / groups:.1f} batches per transaction" if groups else ""
            row.notes.append(
                f"vsense {context.backend}: {messages:,.0f} messages in {batches:,.0f} bridge "
                f"batches, {messages / batches:.1f} per batch{grouped}"
            )
    row.published, row.payloads_published, row.publish_seconds = published, payloads, seconds
    row.stored = int(stored)
    row.seconds = last - start
    row.cpu_seconds = cpu_last - cpu_before
    row.payload_rows = await payload_rows(context) - payload_rows_before
    after = await context.drops.next_report()
    if before is not None and after is not None:
        row.broker_dropped = after - before
    problems = log_problems(log_path)
    if problems:
        row.notes.append(f"server log: {len(problems)} error lines, first: {problems[0][:200]}")
    return row


# --------------------------------------------------------------------------- set-up


@dataclass
class Context:
    backend: str
    work_dir: Path
    data_dir: Path
    database_url: str | None
    devices: list[str]
    drops: DropWatch
    version: str = ""


async def payload_rows(context: Context) -> int:
    from sqlalchemy import text

    from vsense.config import load_settings
    from vsense.db import create_engine

    engine = create_engine(
        load_settings(data_dir=context.data_dir, database_url=context.database_url)
    )
    try:
        async with engine.connect() as connection:
            return int(await connection.scalar(text("SELECT count(*) FROM payload_messages")))
    finally:
        await engine.dispose()


async def seed_devices(data_dir: Path, database_url: str | None, count: int) -> list[str]:
    """`count` online VCZ devices of the seeded organization, written directly."""
    from sqlalchemy import MetaData, Table, insert, select

    from vsense.config import load_settings
    from vsense.db import create_engine
    from vsense.models import Device, Organization

    # Only the columns every version of the schema has, so that an older server's
    # database (BENCH_SERVER_PYTHONPATH) takes them too.
    wanted = (
        "uuid", "organization_id", "name", "client_identifier", "geo_city", "geo_country",
        "app_type", "is_online", "refreshed", "last_seen", "created", "updated",
    )  # fmt: skip
    table = Table("devices", MetaData(), *(Device.__table__.c[n]._copy() for n in wanted))
    engine = create_engine(load_settings(data_dir=data_dir, database_url=database_url))
    now = datetime.now(UTC)
    uuids = [uuid.uuid4() for _ in range(count)]
    try:
        async with engine.begin() as connection:
            organization = (await connection.execute(select(Organization.id))).scalar_one()
            await connection.execute(
                insert(table),
                [
                    {
                        "uuid": device,
                        "organization_id": organization,
                        "name": f"MQTT {n:05d}",
                        "client_identifier": f"MQTT-{n:05d}",
                        "geo_city": "",
                        "geo_country": "",
                        "app_type": "VCZ",
                        "is_online": True,
                        "refreshed": now,
                        "last_seen": now,
                        "created": now,
                        "updated": now,
                    }
                    for n, device in enumerate(uuids)
                ],
            )
    finally:
        await engine.dispose()
    return [str(device) for device in uuids]


async def run_backend(
    backend: str, options: Options, work_dir: Path, drops: DropWatch
) -> tuple[list[Row], str]:
    data_dir = work_dir / backend
    data_dir.mkdir()
    database_url: str | None = None
    version = f"SQLite {sqlite3.sqlite_version}"
    lean_database = str(data_dir / "lean.db")
    if backend == "postgresql":
        database_url = f"{options.postgres_url.rstrip('/')}/{options.postgres_database}"
        version = "PostgreSQL " + await recreate_postgres_database(database_url)
        lean_database = database_url.replace("postgresql+asyncpg", "postgresql")
    env = server_env(data_dir, database_url, options.server_env)
    print(f"\n{BACKEND_LABELS[backend]}: migrating, seeding {options.devices} devices", flush=True)
    await run_command([vsense_executable(), "db", "upgrade"], env, work_dir / f"{backend}-db.log")
    await seed(data_dir, database_url, 0)
    devices = await seed_devices(data_dir, database_url, options.devices)
    context = Context(backend, work_dir, data_dir, database_url, devices, drops, version)
    rows = []
    common = [
        *("--port", str(options.port), "--idle", str(DRAIN_IDLE_S)),
        *("--subscribers", str(options.lean_subscribers), "--batch", str(options.lean_batch)),
    ]
    references = (
        ("ceiling", ["bare", "--group", f"bench-{uuid.uuid4().hex[:8]}", *common]),
        (
            "lean",
            [
                *("lean", "--group", f"bench-{uuid.uuid4().hex[:8]}", *common),
                *("--database", lean_database),
            ],
        ),
    )
    for name, arguments in references if options.references else ():
        rows.append(await role_scenario(name, arguments, context, options))
        print_row(rows[-1])
    rows.append(await vsense_scenario(context, options))
    print_row(rows[-1])
    return rows, version


# --------------------------------------------------------------------------- output


def print_row(row: Row) -> None:
    print(
        f"  {row.scenario:8} published {row.published:>8,} ({row.publish_rate:,.0f}/s)  "
        f"stored {row.stored:>8,} ({row.rate:,.0f} msg/s)  lost {row.published - row.stored:,}"
        f"  broker dropped {row.broker_dropped if row.broker_dropped is not None else '?'}"
        f"  CPU {cpu_text(row)} µs/msg",
        flush=True,
    )


def cpu_text(row: Row) -> str:
    value = row.cpu_per_message
    return "—" if value is None else f"{value:,.0f}"


COLUMNS = (
    "scenario", "published", "published/s", "stored", "stored msg/s", "lost",
    "broker dropped", "payload rows", "CPU µs/msg", "of ceiling", "of lean",
)  # fmt: skip


def table(rows: Sequence[Row]) -> list[str]:
    by_name = {row.scenario: row for row in rows}
    ceiling = by_name["ceiling"].rate if "ceiling" in by_name else 0.0
    lean = by_name["lean"].rate if "lean" in by_name else 0.0
    out = ["| " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * (len(COLUMNS) - 1)]
    for row in rows:
        rows_text = (
            f"{row.payload_rows:,} of {row.payloads_published:,}"
            if row.payload_rows is not None
            else "—"
        )
        out.append(
            "| "
            + " | ".join(
                [
                    row.scenario,
                    f"{row.published:,}",
                    f"{row.publish_rate:,.0f}",
                    f"{row.stored:,}",
                    f"{row.rate:,.0f}",
                    f"{row.published - row.stored:,}",
                    "?" if row.broker_dropped is None else f"{row.broker_dropped:,}",
                    rows_text,
                    cpu_text(row),
                    f"{row.rate / ceiling:.2f}" if ceiling else "—",
                    f"{row.rate / lean:.2f}" if lean else "—",
                ]
            )
            + " |"
        )
    return out


TARGET_PG_RATE = 5_000.0  # messages/s stored, PostgreSQL, one server process
TARGET_SQLITE_LEAN_RATIO = 0.5  # SQLite: of the lean reference's rate in the same run


def target_lines(rows: Sequence[Row]) -> list[str]:
    """vsense's row against its backend's target, and whether the broker counted each
    message lost (a drop made visible, not a silent loss)."""
    by_name = {row.scenario: row for row in rows}
    mine = by_name.get("vsense")
    if mine is None:
        return []
    lost = mine.published - mine.stored
    label = BACKEND_LABELS[mine.backend]
    if mine.backend == "postgresql":
        goal = f">= {TARGET_PG_RATE:,.0f} msg/s stored"
        figure = f"{mine.rate:,.0f} msg/s"
        met = mine.rate >= TARGET_PG_RATE
    elif "lean" in by_name and by_name["lean"].rate:
        ratio = mine.rate / by_name["lean"].rate
        goal = f">= {TARGET_SQLITE_LEAN_RATIO} of the lean reference"
        figure = f"{mine.rate:,.0f} msg/s, {ratio:.2f} of lean"
        met = ratio >= TARGET_SQLITE_LEAN_RATIO
    else:
        return [f"Target ({label}): needs the lean reference of the same run (no --no-references)"]
    counted = (
        "the broker's count unknown"
        if mine.broker_dropped is None
        else f"{mine.broker_dropped:,} counted dropped by the broker"
    )
    return [
        f"Target ({label}): {goal}; {figure} -> {'MET' if met else 'MISSED'} "
        f"(lost {lost:,}, {counted})"
    ]


def report_lines(results: Sequence[tuple[str, list[Row]]], options: Options) -> list[str]:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        f"## Device ingest over MQTT, {stamp}",
        "",
        f"- Command: `{command_line()}`",
        f"- Machine: {machine_facts()}; {options.broker}",
        f"- Load: {options.publishers} publishers x {options.window} QoS 1 publications in "
        f"flight, {options.duration:g} s, keepalives and one-message VCZ payloads in turn "
        f"over {options.devices:,} devices; {options.workers} server process(es); settings: "
        f"{' '.join(f'{k}={v}' for k, v in options.server_env.items()) or 'defaults'}.",
        "",
    ]
    for version, rows in results:
        out += [f"### {version}", "", *table(rows), ""]
        notes = [*target_lines(rows), *(note for row in rows for note in row.notes)]
        out += [f"- {note}" for note in notes]
        if notes:
            out.append("")
    return out


# --------------------------------------------------------------------------- main


@dataclass
class Options:
    backends: list[str]
    duration: float
    devices: int
    publishers: int
    window: int
    port: int
    lean_subscribers: int
    lean_batch: int
    references: bool
    workers: int
    postgres_url: str
    postgres_database: str
    broker: str
    server_env: dict[str, str]
    markdown: Path | None


# A broker of the benchmark's own: Mosquitto's defaults (a new user's: 1,000 messages
# queued per client, 20 in flight unless the client asks for more), but its `$SYS`
# counters every second, and nobody else's traffic on it.
OWN_BROKER_CONFIG = """\
listener {port} 127.0.0.1
allow_anonymous true
persistence false
sys_interval 1
log_dest file {log}
"""


@contextlib.asynccontextmanager
async def own_broker(work_dir: Path) -> AsyncIterator[int]:
    port = free_port()
    config = work_dir / "mosquitto.conf"
    config.write_text(OWN_BROKER_CONFIG.format(port=port, log=work_dir / "mosquitto.log"))
    process = await asyncio.create_subprocess_exec(
        "mosquitto", "-c", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                _, writer = await asyncio.open_connection(HOST, port)
            except OSError:
                if time.monotonic() > deadline or process.returncode is not None:
                    raise RuntimeError("mosquitto did not start") from None
                await asyncio.sleep(0.1)
                continue
            writer.close()
            break
        yield port
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


async def run(options: Options) -> list[tuple[str, list[Row]]]:
    announce_code_under_test()
    results = []
    with tempfile.TemporaryDirectory(prefix="vsense-bench-mqtt-") as work:
        async with contextlib.AsyncExitStack() as stack:
            if options.port == 0:
                options.port = await stack.enter_async_context(own_broker(Path(work)))
                print(f"own mosquitto on 127.0.0.1:{options.port}", flush=True)
            drops = DropWatch(options.port)
            drops.task = asyncio.create_task(drops.run())
            try:
                for backend in options.backends:
                    rows, version = await run_backend(backend, options, Path(work), drops)
                    results.append((version, rows))
            finally:
                drops.task.cancel()
                await asyncio.gather(drops.task, return_exceptions=True)
    return results


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--window", type=int, default=64, help="publications in flight each")
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="a running broker on 127.0.0.1 (e.g. 1883); 0: start a Mosquitto of its own",
    )
    parser.add_argument("--lean-subscribers", type=int, default=4)
    parser.add_argument("--lean-batch", type=int, default=200)
    parser.add_argument(
        "--no-references",
        action="store_true",
        help="vsense alone, no ceiling or lean (to compare server settings run by run)",
    )
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--postgres-database", default="bench_mqtt_pg")
    parser.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes (PostgreSQL only), each a bridge"
    )
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)
    return Options(
        backends=[b.strip() for b in args.backends.split(",") if b.strip()],
        duration=args.duration,
        devices=args.devices,
        publishers=args.publishers,
        window=args.window,
        port=args.port,
        lean_subscribers=args.lean_subscribers,
        lean_batch=args.lean_batch,
        references=not args.no_references,
        workers=args.workers,
        postgres_url=args.postgres_url,
        postgres_database=args.postgres_database,
        broker=(
            f"Mosquitto on 127.0.0.1:{args.port}"
            if args.port
            else "a Mosquitto of the benchmark's own (its defaults; `$SYS` every second)"
        ),
        server_env=dict(item.split("=", 1) for item in args.server_env),
        markdown=args.markdown,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    results = event_loop_runner(run(options))
    lines = report_lines(results, options)
    print("\n" + "\n".join(lines))
    if options.markdown:
        append_markdown(options.markdown, lines)
    lost = sum(row.published - row.stored for _, rows in results for row in rows)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
