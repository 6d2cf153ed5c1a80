"""Benchmark of webhook delivery (outbox + `vsense worker`) next to a ceiling and a lean
reference, on PostgreSQL (default) or SQLite (`--backend sqlite`).

A receiver (aiohttp.web on uvloop, a subprocess of its own) answers `/ok/{n}` with 200 at
once (or after `--answer-ms`: a receiver across a network) and holds `/hang/{n}` longer
than the webhook timeout; it notes the arrival time (`time.time()`), the `webhook-id`
header and the path of every request. Events are queued as the platform queues them
(`Outbox.emit_many` in a `session_scope` transaction) for one webhook per device; real
`vsense worker` processes deliver them. Scenarios:

  1 throughput  `--events` deliveries pre-queued over the healthy endpoints, then the
                worker starts: deliveries/s first to last arrival, and sustained (the
                middle 80 % of the arrivals); and how long devices' chains stood idle
                between two of their requests (one request of a device at a time)
  2 ceiling     a bare aiohttp client (one ClientSession, keep-alive, 256 in flight, on
                uvloop like the worker and the lean reference) posting the bodies of (1)
                to the same URLs; ratio = (1) / (2), sustained
  3 latency     `--rate` events/s (a transaction every 20 ms) for `--duration` s after
                2 s of warm-up, worker running: event-to-send p50/p99/max, where
                event-to-send = receiver arrival - the event row's `created`
  4 isolation   (3) plus 11 endpoints per 100 healthy (10 % of all endpoints) that
                hang: the healthy endpoints' latency, and its change from (3)

After (1), (3) and (4) the same scenario runs again with the lean reference instead of
the worker (rows 1L, 3L, 4L; `bench/webhooks_lean.py`: one prepared claim statement,
aiohttp sends, batched outcome writes, nothing else), and vsense's figure is printed as
a ratio to it. Run from the repository root (PostgreSQL on 127.0.0.1, trust auth):

    .venv/bin/python bench/webhooks.py --markdown docs/benchmarks.md
    .venv/bin/python bench/webhooks.py --backend sqlite --markdown docs/benchmarks.md

The PostgreSQL database `vsense_bench_webhooks` is recreated at each run and left in
place (SQLite: a file in a temporary folder, removed). Every healthy delivery must arrive
and be `succeeded` in `webhook_deliveries`; the exit code is 1 when one did not, or when
a worker logged an error. Each scenario also reports the CPU of each party (from /proc)
and what PostgreSQL was executing (pg_stat_activity sampled every 10 ms); `--profile`
samples the worker with py-spy during (1) and (3).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from harness import (
    DEFAULT_POSTGRES_URL,
    HOST,
    LOOPBACK_HOSTS,
    REPO_ROOT,
    SERVER_PYTHONPATH_ENV,
    announce_code_under_test,
    append_markdown,
    base_env,
    command_line,
    event_loop_runner,
    free_port,
    log_problems,
    log_tail,
    percentile,
    recreate_postgres_database,
    run_command,
    seed_payload_webhooks,
    stop_process,
    wait_listening,
)

DATABASE = "vsense_bench_webhooks"
SECRET_KEY = "bench-webhooks-secret-key-0123456789abcdef"
TARGET_RATE, TARGET_RATIO, TARGET_P99_MS, TARGET_SHIFT = 2000.0, 0.5, 100.0, 0.10
TICK = 0.02  # seconds between two emitting transactions under offered load
WARMUP = 2.0  # seconds of offered load before the measured window
CEILING_CONCURRENCY = 256
STALL = 30.0  # seconds without a new arrival before the wait gives up
CHAIN_WAIT_MS = 5.0  # idle between two requests of a device counted as a wait for a claim
CLK = os.sysconf("SC_CLK_TCK")
# A ~1 KB payload, like a VCZ message with a few zones.
PAYLOAD = {
    "zones": [
        {"name": f"Zone {n:02d}", "uuid": str(uuid.UUID(int=n)), "count": n * 3, "occupied": True}
        for n in range(10)
    ],
    "total": 135,
}


# --------------------------------------------------------------------------- receiver


def serve(port: int, hang_seconds: float, answer_seconds: float) -> None:
    """The receiver process: notes every request, answers `/ok/` after `answer_seconds`
    (0: at once; more: a receiver across a network), holds `/hang/` (for `hang_seconds`,
    or as long as `POST /_hang/{seconds}` last said)."""
    from aiohttp import web

    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    records: list[tuple[float, str, str]] = []
    ok_ids: set[str] = set()
    holding = [hang_seconds]

    async def ok(request: web.Request) -> web.Response:
        arrived, msg_id = time.time(), request.headers.get("webhook-id", "")
        records.append((arrived, msg_id, request.path))
        ok_ids.add(msg_id)
        await request.read()
        if answer_seconds:
            await asyncio.sleep(answer_seconds)
        return web.Response(text="ok")

    async def hang(request: web.Request) -> web.Response:
        records.append((time.time(), request.headers.get("webhook-id", ""), request.path))
        await request.read()
        await asyncio.sleep(holding[0])
        return web.Response(text="late")

    async def hold(request: web.Request) -> web.Response:
        holding[0] = float(request.match_info["seconds"])
        return web.Response(text="held")

    async def count(_: web.Request) -> web.Response:
        return web.json_response({"ok": len(ok_ids), "requests": len(records)})

    async def dump(_: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(records), content_type="application/json")

    async def reset(_: web.Request) -> web.Response:
        records.clear()
        ok_ids.clear()
        return web.Response(text="reset")

    app = web.Application()
    app.router.add_post("/ok/{n}", ok)
    app.router.add_post("/hang/{n}", hang)
    app.router.add_get("/_count", count)
    app.router.add_get("/_records", dump)
    app.router.add_post("/_reset", reset)
    app.router.add_post("/_hang/{seconds}", hold)
    web.run_app(app, host=HOST, port=port, access_log=None, print=None)


# --------------------------------------------------------------------------- measurements


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of processes (0 for those gone)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLK


def machine_busy() -> float:
    """Busy CPU seconds of the machine since boot, every core (idle and iowait left out)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / CLK


def rates(times: Sequence[float]) -> tuple[float, float]:
    """Deliveries/s first to last arrival, and over the middle 80 % of the arrivals."""
    t = sorted(times)
    if len(t) < 10 or t[-1] <= t[0]:
        return 0.0, 0.0
    lo, hi = len(t) // 10, len(t) * 9 // 10
    return (len(t) - 1) / (t[-1] - t[0]), (hi - lo) / max(t[hi] - t[lo], 1e-9)


@dataclass
class Cpu:
    """CPU seconds spent during a scenario's window, per party."""

    seconds: float = 0.0
    worker: float = 0.0
    postgres: float = 0.0
    receiver: float = 0.0
    bench: float = 0.0
    machine: float = 0.0

    def line(self, deliveries: int) -> str:
        per = 1e6 / max(deliveries, 1)
        share = [
            f"{name} {cpu / self.seconds:.0%} ({cpu * per:,.0f} µs/delivery)"
            for name, cpu in (
                ("worker", self.worker),
                ("PostgreSQL (this database)", self.postgres),
                ("receiver", self.receiver),
                ("bench process", self.bench),
            )
        ]
        rest = self.machine - self.worker - self.postgres - self.receiver - self.bench
        return (
            f"CPU over {self.seconds:.1f} s, in % of one core: {', '.join(share)}; rest of "
            f"the machine (other processes) {rest / self.seconds:.0%}, of {os.cpu_count()} cores"
        )


@dataclass
class Row:
    scenario: str
    count: int = 0
    rate: float = 0.0
    sustained: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    ratio: float | None = None
    target: str = ""
    lost: int = 0
    notes: list[str] = field(default_factory=list)
    cpu: Cpu | None = None
    shift: float | None = None  # (4): the healthy p99's change from its (3)

    def cells(self) -> list[str]:
        lat = self.latencies_ms
        ms = [f"{percentile(lat, q):.1f}" if lat else "-" for q in (0.5, 0.99, 1.0)]
        return [
            self.scenario,
            f"{self.count:,}",
            f"{self.rate:,.0f}",
            f"{self.sustained:,.0f}" if self.sustained else "-",
            *ms,
            f"{self.ratio:.2f}" if self.ratio is not None else "-",
            str(self.lost),
            self.target or "-",
        ]


COLUMNS = ("scenario", "count", "deliv./s", "sustained/s", "p50 ms", "p99 ms", "max ms")
COLUMNS += ("ratio", "lost", "target")
SCENARIOS = ("throughput", "ceiling", "latency", "isolation")
Request = tuple[str, str, bytes]  # url, webhook-id, body


# --------------------------------------------------------------------------- the bench


@dataclass
class Bench:
    options: argparse.Namespace
    work: Path
    database_url: str
    state: Any  # vsense.components.Components
    http: aiohttp.ClientSession
    receiver: asyncio.subprocess.Process
    port: int
    healthy: list[tuple[uuid.UUID, int]] = field(default_factory=list)  # (device, webhook)
    hanging: list[tuple[uuid.UUID, int]] = field(default_factory=list)
    worker_logs: list[Path] = field(default_factory=list)

    @property
    def sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def receiver_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    async def seed(self, healthy: int, hanging: int) -> None:
        """One organization, a device per endpoint and a payload webhook per device."""
        from sqlalchemy import insert

        from vsense.db import session_scope
        from vsense.models import Organization

        async with session_scope(self.state.sessionmaker) as session:
            org = await session.scalar(
                insert(Organization).values(name="Bench").returning(Organization.id)
            )
            assert org is not None
            for kind, count, into in (
                ("ok", healthy, self.healthy),
                ("hang", hanging, self.hanging),
            ):
                urls = [f"{self.receiver_url}/{kind}/{n}" for n in range(count)]
                into.extend(await seed_payload_webhooks(session, org, urls, kind))

    async def emit(self, devices: Sequence[uuid.UUID]) -> None:
        """Queue one payload event per device in one transaction, as the gateway does."""
        from vsense.db import session_scope
        from vsense.webhooks.events import payload_body

        now = int(time.time())
        items = [(d, "payload", payload_body(d, "VCZ", now, PAYLOAD, 1)) for d in devices]
        async with session_scope(self.state.sessionmaker) as session:
            await self.state.outbox.emit_many(session, items)

    async def sql(self, statement: str, *, autocommit: bool = False) -> list[Any]:
        from sqlalchemy import text

        async with self.state.engine.connect() as connection:
            if autocommit:
                connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            result = await connection.execute(text(statement))
            rows = list(result.all()) if result.returns_rows else []
            await connection.commit()
            return rows

    async def clear(self) -> None:
        """Empty the queue tables (vacuumed and analyzed: autovacuum may be off here) and
        close the breakers."""
        for table in ("webhook_attempts", "webhook_deliveries", "webhook_events"):
            await self.sql(f"DELETE FROM {table}")
        # Each scenario starts with every endpoint healthy, breakers closed.
        await self.sql(
            "UPDATE webhooks SET failing_since = NULL, status = 1, breaker_failures = 0, "
            "breaker_open_until = NULL, breaker_open_seconds = 0"
        )
        if self.sqlite:
            await self.sql("ANALYZE")
        else:
            await self.sql(
                "VACUUM ANALYZE webhook_attempts, webhook_deliveries, webhook_events, webhooks",
                autocommit=True,
            )
        async with self.http.post(f"{self.receiver_url}/_reset") as response:
            response.raise_for_status()

    async def hold_hanging(self, seconds: float) -> None:
        """How long the hanging endpoints hold a request from now on (0: they answer)."""
        async with self.http.post(f"{self.receiver_url}/_hang/{seconds:g}") as response:
            response.raise_for_status()

    async def arrivals(self) -> int:
        """Distinct deliveries that reached the healthy endpoints so far."""
        async with self.http.get(f"{self.receiver_url}/_count") as response:
            return int((await response.json())["ok"])

    async def records(self) -> list[tuple[float, str, str]]:
        async with self.http.get(f"{self.receiver_url}/_records") as response:
            return [tuple(r) for r in orjson.loads(await response.read())]  # type: ignore[misc]

    async def wait_for(self, expected: int) -> float:
        """Until `expected` distinct healthy deliveries arrived, or none came for STALL s;
        returns the time of the last progress."""
        seen, progress = -1, time.time()
        while True:
            ok = await self.arrivals()
            if ok != seen:
                seen, progress = ok, time.time()
            if ok >= expected or time.time() - progress > STALL:
                return progress
            await asyncio.sleep(0.05)

    async def outcome_counts(self) -> Counter[tuple[str, str]]:
        """(healthy|hanging, status) -> deliveries, once no healthy one is leased or due."""
        healthy = {w for _, w in self.healthy}
        deadline = time.monotonic() + STALL
        while True:
            rows = await self.sql(
                "SELECT webhook_id, status, count(*) FROM webhook_deliveries GROUP BY 1, 2"
            )
            counts: Counter[tuple[str, str]] = Counter()
            for webhook, status, count in rows:
                counts["healthy" if webhook in healthy else "hanging", status] += count
            if counts["healthy", "pending"] == 0 or time.monotonic() > deadline:
                return counts
            await asyncio.sleep(0.1)

    async def postgres_pids(self) -> list[int]:
        if self.sqlite:
            return []  # in the worker's process
        rows = await self.sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
        return [int(pid) for (pid,) in rows]

    @contextlib.asynccontextmanager
    async def workers(self, lean: bool = False) -> AsyncIterator[list[asyncio.subprocess.Process]]:
        """`vsense worker` processes (or, `lean`, as many lean claimers), ready when each
        has said so; stopped afterwards."""
        env = base_env(
            {
                "VSENSE_DATABASE_URL": self.database_url,
                "VSENSE_DATA_DIR": str(self.work / "data"),
                "VSENSE_ENVIRONMENT": "test",
                "VSENSE_SECRET_KEY": SECRET_KEY,
                "VSENSE_WEBHOOK_ALLOW_PRIVATE": "1",
                "VSENSE_WEBHOOK_TIMEOUT": f"{self.options.timeout:g}",
                "PYTHONUNBUFFERED": "1",
            }
        )
        processes: list[asyncio.subprocess.Process] = []
        logs: list[Path] = []
        command = ("-m", "vsense.cli", "worker")
        if lean:
            command = (str(LEAN), lean_url(self.database_url), f"{self.options.timeout:g}")
        try:
            for _ in range(self.options.workers):  # started together, so they start together
                logs.append(self.work / f"worker-{len(self.worker_logs)}.log")
                self.worker_logs.append(logs[-1])
                with logs[-1].open("ab") as log:
                    processes.append(
                        await asyncio.create_subprocess_exec(
                            sys.executable,
                            *command,
                            env=env,
                            cwd=REPO_ROOT,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                        )
                    )
            ready = zip(processes, logs, strict=True)
            await asyncio.gather(*(self._ready(p, log) for p, log in ready))
            yield processes
        finally:
            await asyncio.gather(*(stop_process(p) for p in processes))

    @staticmethod
    async def _ready(process: asyncio.subprocess.Process, log_path: Path) -> None:
        deadline = time.monotonic() + 60
        while not any(log_says(log_path, said) for said in READY):
            if process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start:\n{log_tail(log_path)}")
            await asyncio.sleep(0.05)

    async def cpu_snapshot(self, workers: Sequence[int]) -> tuple[float, ...]:
        pg = await self.postgres_pids()
        busy = machine_busy()
        return (
            time.time(),
            cpu_seconds(workers),
            cpu_seconds(pg),
            cpu_seconds([self.receiver.pid]),
            time.process_time(),
            busy,
        )

    @staticmethod
    def cpu_between(start: tuple[float, ...], end: tuple[float, ...], seconds: float) -> Cpu:
        d = [b - a for a, b in zip(start, end, strict=True)]
        # PostgreSQL backends opened during the window count whole: few, and short-lived.
        return Cpu(seconds, d[1], max(d[2], 0.0), d[3], d[4], d[5])


LEAN = Path(__file__).with_name("webhooks_lean.py")
READY = (b"vsense worker delivering", b"lean claimer delivering")


def lean_url(database_url: str) -> str:
    """The lean claimer's database: a libpq DSN, or `sqlite:///path`."""
    from sqlalchemy.engine.url import make_url

    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return f"sqlite:///{url.database}"
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


STATEMENTS = (  # what a statement is, by how it starts
    ("SELECT pg_advisory_xact_lock", "claim lock"),
    ("UPDATE webhook_deliveries SET reclaims", "claim"),
    ("SELECT webhook_events", "prepare"),
    ("SELECT webhooks", "prepare"),
    ("UPDATE webhook_deliveries SET status", "outcome write (deliveries)"),
    ("INSERT INTO webhook_attempts", "outcome write (attempts)"),
    ("WITH outcomes AS", "outcome write (deliveries and attempts)"),
    ("UPDATE webhooks", "outcome write (webhook health)"),
    ("INSERT INTO webhook_", "emit"),
    ("SELECT pg_notify", "emit"),
    ("SELECT min(webhook_deliveries.next_attempt_at)", "next due"),
    ("COMMIT", "commit"),
    ("BEGIN", "begin"),
)


async def sample_statements(bench: Bench, stop: asyncio.Event) -> Counter[str]:
    """What the database is executing for this benchmark, every 10 ms until `stop`."""
    from sqlalchemy import text

    seen: Counter[str] = Counter()
    query = text(
        "SELECT query, wait_event_type FROM pg_stat_activity WHERE datname = current_database()"
        " AND state = 'active' AND pid <> pg_backend_pid()"
    )
    async with bench.state.engine.connect() as connection:
        # Autocommit: pg_stat_activity is a snapshot per transaction.
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        while not stop.is_set():
            seen["samples"] += 1
            for statement, waiting in await connection.execute(query):
                kind = next((k for p, k in STATEMENTS if statement.startswith(p)), None)
                kind = kind or "other: " + " ".join(statement.split())[:40]
                seen[f"{kind} (waiting: {waiting})" if waiting else kind] += 1
            await asyncio.sleep(0.01)
    return seen


def statement_line(seen: Counter[str]) -> str:
    samples = seen.pop("samples", 0) or 1
    shares = ", ".join(f"{kind} {count / samples:.0%}" for kind, count in seen.most_common(8))
    return f"PostgreSQL executing, share of {samples} samples (10 ms apart): {shares or 'nothing'}"


@contextlib.asynccontextmanager
async def sampling(bench: Bench, row: Row) -> AsyncIterator[None]:
    if bench.sqlite:  # no server to sample
        yield
        return
    stop = asyncio.Event()
    task = asyncio.create_task(sample_statements(bench, stop))
    try:
        yield
    finally:
        stop.set()
        row.notes.append(statement_line(await task))


def log_says(path: Path, text: bytes) -> bool:
    return text in path.read_bytes()


def latencies(
    records: Sequence[tuple[float, str, str]], created: dict[str, float], since: float
) -> tuple[list[float], int]:
    """Event-to-send ms of each healthy delivery's first arrival (events created after
    `since`), and how many healthy requests were repeats."""
    first: dict[str, float] = {}
    repeats = 0
    for arrived, msg_id, path in records:
        if path.startswith("/ok/"):
            if msg_id in first:
                repeats += 1
            first[msg_id] = min(arrived, first.get(msg_id, arrived))
    ms = [(t - created[m]) * 1000 for m, t in first.items() if created.get(m, -1.0) >= since]
    return ms, repeats


async def event_times(bench: Bench) -> dict[str, float]:
    from sqlalchemy import select

    from vsense.models import WebhookEvent

    async with bench.state.engine.connect() as connection:  # typed: aware datetimes
        rows = await connection.execute(select(WebhookEvent.msg_id, WebhookEvent.created))
        return {msg_id: created.timestamp() for msg_id, created in rows}


async def chain_idle(bench: Bench) -> str:
    """How long a device's chain stood idle between the end of one request and the start
    of the next (per-device order: one request of a device at a time), from the attempts
    written: time the dispatcher lost waiting for claims, not spent sending."""
    from sqlalchemy import select

    from vsense.models import WebhookAttempt, WebhookDelivery

    statement = select(
        WebhookDelivery.device_uuid, WebhookAttempt.attempted_at, WebhookAttempt.duration_ms
    ).join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
    chains: dict[Any, list[tuple[float, float]]] = {}
    async with bench.state.engine.connect() as connection:  # typed: aware datetimes
        for device, at, duration in await connection.execute(statement):
            chains.setdefault(device, []).append((at.timestamp(), duration))
    gaps: list[float] = []
    busy = 0.0  # ms sending, of the requests in `gaps`
    for attempts in chains.values():
        attempts.sort()
        for (start, duration), (following, _) in itertools.pairwise(attempts):
            gaps.append(max((following - start) * 1000 - duration, 0.0))
            busy += duration
    if not gaps:
        return "no chain of two requests or more"
    idle = sum(gaps)
    waits = sum(1 for gap in gaps if gap > CHAIN_WAIT_MS)
    return (
        f"devices' chains: {len(gaps):,} requests followed by another of their device; idle "
        f"{idle / len(gaps):.1f} ms between them on average against {busy / len(gaps):.1f}"
        f" ms sending ({idle / (idle + busy):.0%} of the chains' time idle); "
        f"{waits:,} waits over {CHAIN_WAIT_MS:g} ms"
    )


def check_outcomes(row: Row, counts: Counter[tuple[str, str]], expected: int, arrived: int) -> None:
    succeeded = counts["healthy", "succeeded"]
    row.lost = max(expected - arrived, expected - succeeded, 0)
    other = {s: c for (k, s), c in counts.items() if k == "healthy" and s != "succeeded"}
    row.notes.append(
        f"{arrived:,} of {expected:,} healthy deliveries arrived; {succeeded:,} `succeeded` in "
        f"webhook_deliveries" + (f", others: {other}" if other else "")
    )


# --------------------------------------------------------------------------- scenarios


async def throughput(
    bench: Bench, folded: Path | None, lean: bool = False
) -> tuple[Row, list[Request]]:
    count = bench.options.events
    devices = [d for d, _ in bench.healthy]
    await bench.clear()
    queued = time.perf_counter()
    for start in range(0, count, 500):
        await bench.emit([devices[n % len(devices)] for n in range(start, min(start + 500, count))])
    queued = time.perf_counter() - queued
    await bench.sql("ANALYZE" if bench.sqlite else "ANALYZE webhook_deliveries, webhook_events")
    name = "1L lean reference" if lean else "1 throughput"
    row = Row(f"{name}: drain {count:,} pre-queued", count)
    async with bench.workers(lean) as workers:
        pids = [w.pid for w in workers]
        spy = await start_profile(pids[0], folded) if folded else None
        before = await bench.cpu_snapshot(pids)
        async with sampling(bench, row):
            last = await bench.wait_for(count)
        after = await bench.cpu_snapshot(pids)
        if spy is not None:
            await stop_profile(spy, folded)
        counts = await bench.outcome_counts()
    records = await bench.records()
    ok_times = [t for t, _, path in records if path.startswith("/ok/")]
    row.rate, row.sustained = rates(ok_times)
    if not lean:  # the lean reference keeps no order per device
        row.notes.append(await chain_idle(bench))
    row.cpu = bench.cpu_between(before, after, last - before[0])
    _, repeats = latencies(records, {}, 1.0)
    check_outcomes(row, counts, count, len({m for _, m, p in records if p.startswith("/ok/")}))
    row.target = f">= {TARGET_RATE:,.0f}/s: {'met' if row.sustained >= TARGET_RATE else 'MISSED'}"
    row.notes.append(
        f"queued in {queued:.1f} s ({count / queued:,.0f} deliveries/s through emit_many, 500 per "
        f"transaction); first arrival {min(ok_times) - before[0]:.2f} s after the worker was "
        f"ready; {repeats} repeated requests"
    )
    bodies = await bench.sql(
        "SELECT w.url, e.msg_id, e.body FROM webhook_deliveries d JOIN webhook_events e"
        " ON e.id = d.event_id JOIN webhooks w ON w.id = d.webhook_id ORDER BY d.id"
    )
    return row, [(url, msg_id, body.encode()) for url, msg_id, body in bodies]


async def ceiling(bench: Bench, requests: list[Request]) -> Row:
    """The bodies of (1), POSTed by a bare aiohttp client as fast as it goes."""
    await bench.clear()
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/plain, */*"}
    errors = 0
    work = iter(requests)
    connector = aiohttp.TCPConnector(limit=CEILING_CONCURRENCY)

    async def client(http: aiohttp.ClientSession) -> None:
        nonlocal errors
        for url, msg_id, body in work:
            try:
                async with http.post(
                    url, data=body, headers={**headers, "webhook-id": msg_id}
                ) as response:
                    await response.read()
                    errors += response.status != 200
            except aiohttp.ClientError:
                errors += 1

    async with aiohttp.ClientSession(connector=connector) as http:
        started = await bench.cpu_snapshot([])
        await asyncio.gather(*(client(http) for _ in range(CEILING_CONCURRENCY)))
        ended = await bench.cpu_snapshot([])
    records = await bench.records()
    row = Row(f"2 ceiling: bare aiohttp client, {CEILING_CONCURRENCY} in flight", len(requests))
    row.rate, row.sustained = rates([t for t, _, _ in records])
    row.lost = len(requests) - len({m for _, m, _ in records}) + errors
    row.cpu = bench.cpu_between(started, ended, ended[0] - started[0])
    row.notes.append(f"{len(records):,} requests arrived, {errors} errors")
    return row


async def pace(
    bench: Bench, targets: list[uuid.UUID], rate: float, seconds: float
) -> tuple[int, int, int, float]:
    """Emit `rate` events/s round-robin over `targets`, a transaction every TICK s on the
    clock (up to 16 at once, so a slow commit does not lower the offered load). Returns
    events, late ticks, ticks and seconds taken."""
    slots = asyncio.Semaphore(16)
    tasks: set[asyncio.Task[None]] = set()
    sent, behind, ticks = 0, 0, round(seconds / TICK)

    async def emit(devices: list[uuid.UUID]) -> None:
        try:
            await bench.emit(devices)
        finally:
            slots.release()

    start = time.perf_counter()
    for tick in range(1, ticks + 1):
        delay = start + tick * TICK - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            behind += 1
        due = round(rate * tick * TICK) - sent
        batch = [targets[(sent + n) % len(targets)] for n in range(due)]
        sent += due
        await slots.acquire()
        task = asyncio.create_task(emit(batch))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    return sent, behind, ticks, time.perf_counter() - start


async def offered_load(
    bench: Bench,
    hanging: bool,
    baseline: Row | None,
    folded: Path | None,
    *,
    lean: bool = False,
    pair: int = 1,
    control: bool = False,
) -> Row:
    """`--rate` events/s to the healthy endpoints (and as many per endpoint to the hanging
    ones) for WARMUP + `--duration` s; latency of the events after the warm-up. `pair`
    numbers the (3)/(4) pair of a run of several (`--pairs`). `control`: (4) with the
    "hanging" endpoints answering at once, the same load with nothing hanging (4c)."""
    options = bench.options
    targets = [d for d, _ in bench.healthy] + ([d for d, _ in bench.hanging] if hanging else [])
    name = ("4" if hanging else "3") + ("L lean" if lean else "") + ("c" if control else "")
    name += (" control" if control else " isolation") if hanging else " latency"
    name += f", pair {pair}" if options.pairs > 1 else ""
    row = Row(f"{name}: {options.rate:,.0f} events/s, {options.duration:g} s")
    await bench.clear()
    await bench.hold_hanging(0 if control else options.timeout + 5)
    async with bench.workers(lean) as workers, sampling(bench, row):
        pids = [w.pid for w in workers]
        spy = await start_profile(pids[0], folded) if folded else None
        measured_from = time.time() + WARMUP
        load = asyncio.create_task(
            pace(
                bench,
                targets,
                options.rate * len(targets) / len(bench.healthy),
                WARMUP + options.duration,
            )
        )
        await asyncio.sleep(WARMUP)
        before = await bench.cpu_snapshot(pids)
        sent, behind, ticks, emitted_for = await load
        expected = sum(1 for n in range(sent) if n % len(targets) < len(bench.healthy))
        last = await bench.wait_for(expected)
        after = await bench.cpu_snapshot(pids)
        if spy is not None:
            await stop_profile(spy, folded)
        counts = await bench.outcome_counts()
    records, created = await bench.records(), await event_times(bench)
    ms, repeats = latencies(records, created, measured_from)
    row.count, row.latencies_ms = len(ms), ms
    measured = [t for t, m, p in records if p.startswith("/ok/") and created[m] >= measured_from]
    if len(measured) > 1:
        row.rate = len(measured) / (max(measured) - min(measured))
    row.cpu = bench.cpu_between(before, after, last - before[0])
    check_outcomes(row, counts, expected, len({m for _, m, p in records if p.startswith("/ok/")}))
    row.notes.append(
        f"offered {sent / emitted_for:,.0f} events/s in all ({sent:,} events, "
        f"{behind} of {ticks} ticks late); {repeats} repeated requests to healthy endpoints"
    )
    p99 = percentile(ms, 0.99)
    if saturated(row, options.rate):
        row.notes.append(
            f"saturated: {row.rate:,.0f} deliveries/s for {options.rate:,.0f} events/s offered "
            "to the healthy endpoints, so the queue grew for the whole window"
        )
    if not hanging:
        if not lean:
            verdict = "met" if p99 <= TARGET_P99_MS else "MISSED"
            row.target = f"p99 <= {TARGET_P99_MS:g} ms: {verdict}"
        return row
    hang_requests = sum(1 for _, _, p in records if p.startswith("/hang/"))
    stuck = {s: c for (k, s), c in counts.items() if k == "hanging"}
    row.notes.append(
        f"{len(bench.hanging)} {'answering' if control else 'hanging'} endpoints (of "
        f"{len(targets)}) got "
        f"{sent - expected:,} events: {hang_requests} requests reached them; their deliveries "
        f"at the end: {stuck}"
    )
    if baseline is not None and baseline.latencies_ms:
        shift = row.shift = p99 / percentile(baseline.latencies_ms, 0.99) - 1
        p50_shift = percentile(ms, 0.5) / percentile(baseline.latencies_ms, 0.5) - 1
        verdict = "met" if shift < TARGET_SHIFT else "MISSED"
        if saturated(baseline, options.rate):  # both p99s then measure a growing backlog
            verdict = "not measurable, (3) is saturated"
        against = "(3L)" if lean else "(3)"
        row.target = f"p99 {shift:+.0%} vs {against} (p50 {p50_shift:+.0%})"
        row.target += ": reference" if lean or control else f": {verdict}"
    return row


def saturated(row: Row, offered: float) -> bool:
    """The dispatcher delivered clearly less than was offered: the queue grew."""
    return row.rate < 0.9 * offered


# --------------------------------------------------------------------------- profile


def py_spy() -> str:
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.is_file() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("--profile needs py-spy (beside the interpreter or on PATH)")
    return found


async def start_profile(pid: int, out: Path) -> asyncio.subprocess.Process:
    """py-spy sampling a worker (its own CPU; no pause of the worker) until stopped."""
    PROFILED[out] = time.time()
    return await asyncio.create_subprocess_exec(
        *(py_spy(), "record", "--pid", str(pid), "--format", "raw", "--rate", "100"),
        *("--nonblocking", "--nolineno", "--output", str(out)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def stop_profile(process: asyncio.subprocess.Process, out: Path) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    await process.wait()
    PROFILED[out] = time.time() - PROFILED[out]


PROFILED: dict[Path, float] = {}  # py-spy output -> seconds recorded
PACKAGES = ("sqlalchemy", "asyncpg", "aiohttp", "yarl", "multidict", "asyncio", "standardwebhooks")


def profile_lines(folded: Path, top: int = 12) -> list[str]:
    """Where the worker's busy samples went: own time by package, and the vsense functions
    by inclusive share (SQLAlchemy's greenlets detach stacks: their share is a floor)."""
    if not folded.is_file():
        return ["(py-spy wrote nothing)"]
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if f.endswith(")") and "(" in f]
        if not frames or not count.isdigit():
            continue
        total += int(count)
        where = frames[-1].rsplit("(", 1)[1]
        packages[
            next((n for n in PACKAGES if n in where), "vsense" if "vsense/" in where else "other")
        ] += int(count)
        for frame in set(frames):
            if "vsense/webhooks/" in frame or "vsense/db" in frame:
                inclusive[frame] += int(count)
    seconds = PROFILED.get(folded, 0.0) or 1.0
    head = f"py-spy on the worker: {total} busy samples at 100 Hz in {seconds:.1f} s"
    own = ", ".join(f"{name} {c / total:.0%}" for name, c in packages.most_common())
    lines = [f"{head} ({total / 100 / seconds:.0%} of a core)", f"  own time by package: {own}"]
    lines += [f"  {c / total:6.1%}  {frame}" for frame, c in inclusive.most_common(top)]
    return lines


# --------------------------------------------------------------------------- report


def table(rows: Sequence[Row]) -> list[str]:
    lines = ["| " + " | ".join(COLUMNS) + " |"]
    lines.append("|---|" + "---:|" * (len(COLUMNS) - 2) + "---|")
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return lines


def details(rows: Sequence[Row]) -> list[str]:
    out = []
    for row in rows:
        label = row.scenario.split(":")[0]
        out += [f"({label}) {note}" for note in row.notes]
        if row.cpu is not None:
            out.append(f"({label}) {row.cpu.line(row.count)}")
    return out


def code_stamp() -> str:
    """Which dispatcher was measured (the sources may change between runs)."""
    files = sorted((REPO_ROOT / "src" / "vsense" / "webhooks").glob("*.py"))
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:12]
    newest = datetime.fromtimestamp(max(f.stat().st_mtime for f in files), UTC)
    return f"sha256 {digest} of src/vsense/webhooks/*.py (last changed {newest:%Y-%m-%d %H:%M} UTC)"


def setup_lines(options: argparse.Namespace, version: str, hanging: int, code: str) -> list[str]:
    return [
        f"Command: `{command_line()}`",
        f"Code: {code}",
        f"Machine: {os.cpu_count()} CPUs (nproc), shared by {version}, the "
        f"worker{'s' if options.workers > 1 else ''}, the receiver and the load generator "
        "(and whatever else runs on it)",
        f"Setup: {options.endpoints} healthy endpoints (a device and a payload webhook each), "
        f"~1 KB bodies; {options.workers} `vsense worker` process(es), default settings but "
        f"`VSENSE_WEBHOOK_TIMEOUT={options.timeout:g}` (hanging endpoints time out after "
        f"{options.timeout:g} s instead of 10 s, to keep the run short); receiver: one "
        "aiohttp.web process on uvloop, answering the healthy endpoints "
        + (f"after {options.answer_ms:g} ms" if options.answer_ms else "at once"),
        f"(3)/(4): {options.rate:,.0f} events/s to the healthy endpoints, one transaction "
        f"every {TICK * 1000:.0f} ms, {WARMUP:g} s warm-up then {options.duration:g} s measured; "
        f"event-to-send = receiver arrival - `webhook_events.created`; (4) adds {hanging} "
        f"hanging endpoints ({hanging / (hanging + options.endpoints):.0%} of all) with as "
        "many events each",
        "sustained = deliveries/s over the middle 80 % of the arrivals; ratio = sustained "
        "(1) / sustained (2); the bench process (emitter, ceiling client), the worker and the "
        "lean reference run on uvloop",
    ]


def target_lines(rows: dict[str, Row]) -> list[str]:
    lines = []
    if "throughput" in rows:
        drain = rows["throughput"]
        lines.append(
            f"Target throughput >= {TARGET_RATE:,.0f} deliveries/s sustained: "
            f"{drain.sustained:,.0f}/s -> {'met' if drain.sustained >= TARGET_RATE else 'MISSED'}"
        )
    if "ceiling" in rows:
        ratio, bare = rows["throughput"].ratio or 0.0, rows["ceiling"].sustained
        lines.append(
            f"Target >= {TARGET_RATIO:.0%} of the ceiling: {ratio:.0%} of {bare:,.0f}/s "
            f"-> {'met' if ratio >= TARGET_RATIO else 'MISSED'}"
        )
    if "latency" in rows:
        p99 = percentile(rows["latency"].latencies_ms, 0.99)
        lines.append(
            f"Target p99 <= {TARGET_P99_MS:g} ms at {rows['latency'].scenario.split(': ')[1]}: "
            f"{p99:.1f} ms -> {'met' if p99 <= TARGET_P99_MS else 'MISSED'}"
        )
    if "isolation" in rows and "latency" in rows:
        lines.append(f"Target isolation, healthy p99 moves < 10 %: {rows['isolation'].target}")
        lines += pairs_line(rows)
    lines += lean_lines(rows)
    return lines


def pair_key(kind: str, pair: int) -> str:
    """The key of a (3), (4) or (4c) row: `latency`, `isolation`, `control` for the first
    pair (the keys of a run without `--pairs`), numbered from the second on."""
    return kind if pair == 1 else f"{kind} {pair}"


def pairs_line(rows: dict[str, Row]) -> list[str]:
    """With several (3)/(4) pairs, the latency and isolation verdicts over all of them:
    one run's p99 moves with a single stall of the machine, their median does not."""
    lines = []

    def shifts_of(kind: str) -> list[float]:
        return [
            row.shift
            for key, row in rows.items()
            if key.startswith(kind) and "lean" not in key and row.shift is not None
        ]

    latencies = [
        percentile(row.latencies_ms, 0.99)
        for key, row in rows.items()
        if key.startswith("latency") and "lean" not in key and row.latencies_ms
    ]
    if len(latencies) > 1:
        median = statistics.median(latencies)
        each = ", ".join(f"{p99:.1f}" for p99 in latencies)
        verdict = "met" if median <= TARGET_P99_MS else "MISSED"
        lines.append(
            f"Target p99 <= {TARGET_P99_MS:g} ms over the {len(latencies)} runs of (3): "
            f"{each} ms; median {median:.1f} ms -> {verdict}"
        )
    shifts, controls = shifts_of("isolation"), shifts_of("control")  # (4), (4c) vs (3)
    if len(shifts) > 1:
        median = statistics.median(shifts)
        each = ", ".join(f"{shift:+.0%}" for shift in shifts)
        verdict = "met" if median < TARGET_SHIFT else "MISSED"
        lines.append(
            f"Target isolation over {len(shifts)} pairs (3)/(4), alternated: healthy p99 moved "
            f"{each}; median {median:+.0%} -> {verdict}"
        )
    if controls:
        each = ", ".join(f"{shift:+.0%}" for shift in controls)
        lines.append(
            f"Control (4c), the same load with nothing hanging: healthy p99 moved {each} vs "
            f"(3); median {statistics.median(controls):+.0%}"
        )
        # What hanging itself costs: (4) against (4c) of the same pair, the same load.
        costs = []
        for pair in itertools.count(1):
            hung = rows.get(pair_key("isolation", pair))
            control = rows.get(pair_key("control", pair))
            if hung is None or control is None:
                break
            if hung.latencies_ms and control.latencies_ms:
                p99 = percentile(control.latencies_ms, 0.99)
                costs.append(percentile(hung.latencies_ms, 0.99) / p99 - 1)
        if costs:
            each = ", ".join(f"{cost:+.0%}" for cost in costs)
            lines.append(
                f"Hanging against answering, the same load, (4) vs (4c) of each pair: healthy "
                f"p99 {each}; median {statistics.median(costs):+.0%}"
            )
    return lines


def lean_lines(rows: dict[str, Row]) -> list[str]:
    """vsense against the lean reference of the same run."""
    lines = []
    if "throughput" in rows and "throughput-lean" in rows:
        ours, lean = rows["throughput"].sustained, rows["throughput-lean"].sustained
        lines.append(
            f"Drain against the lean reference: {ours:,.0f} / {lean:,.0f} deliveries/s "
            f"sustained = {ours / lean if lean else 0:.2f}"
        )
    for key in ("latency", "isolation"):
        if key in rows and f"{key}-lean" in rows:
            ours_ms, lean_ms = rows[key].latencies_ms, rows[f"{key}-lean"].latencies_ms
            if ours_ms and lean_ms:
                ours_p99, lean_p99 = percentile(ours_ms, 0.99), percentile(lean_ms, 0.99)
                lines.append(
                    f"{key.capitalize()} against the lean reference: p99 {ours_p99:.1f} / "
                    f"{lean_p99:.1f} ms = {ours_p99 / lean_p99:.2f} (p50 "
                    f"{percentile(ours_ms, 0.5):.1f} / {percentile(lean_ms, 0.5):.1f} ms)"
                )
    return lines


def write_markdown(path: Path, rows: dict[str, Row], setup: list[str], profile: list[str]) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [f"## Webhook delivery, {stamp}", "", *(f"- {line}" for line in setup), ""]
    out += [*table(list(rows.values())), ""]
    out += [f"- {line}" for line in [*target_lines(rows), *details(list(rows.values()))]]
    if profile:
        out += ["", "```", *profile, "```"]
    append_markdown(path, [*out, ""])


# --------------------------------------------------------------------------- main


async def run(options: argparse.Namespace) -> int:
    from sqlalchemy.engine.url import make_url

    from vsense.components import Components
    from vsense.config import load_settings
    from vsense.migrate import upgrade_async

    work = Path(tempfile.mkdtemp(prefix="vsense-bench-webhooks-"))
    if options.backend == "sqlite":
        (work / "data").mkdir()
        database_url = f"sqlite+aiosqlite:///{work / 'data' / 'vsense.db'}"
        version = f"SQLite {sqlite3.sqlite_version}"
    else:
        url = make_url(options.postgres_url).set(database=options.postgres_database)
        database_url = url.render_as_string(hide_password=False)
        version = "PostgreSQL " + await recreate_postgres_database(database_url)
    settings = load_settings(
        database_url=database_url,
        data_dir=work / "data",
        environment="test",
        secret_key=SECRET_KEY,
        webhook_allow_private=True,
    )
    if os.environ.get(SERVER_PYTHONPATH_ENV):
        # The workers run another commit's code: it migrates the database to its own head.
        migrate_env = base_env(
            {"VSENSE_DATABASE_URL": database_url, "VSENSE_DATA_DIR": str(work / "data")}
        )
        migrate = (sys.executable, "-m", "vsense.cli", "db", "upgrade")
        await run_command(migrate, migrate_env, work / "migrate.log")
    else:
        await upgrade_async(settings)
    state = Components.for_server(settings)
    port = free_port()
    receiver = await asyncio.create_subprocess_exec(
        *(sys.executable, __file__, "--serve", str(port), "--hang", f"{options.timeout + 5:g}"),
        *("--answer-ms", f"{options.answer_ms:g}"),
        start_new_session=True,
    )
    hanging = round(options.endpoints / 9)  # 10 % of all endpoints
    code = code_stamp()
    rows: dict[str, Row] = {}
    profile: list[str] = []
    try:
        async with aiohttp.ClientSession() as http:
            bench = Bench(options, work, database_url, state, http, receiver, port)
            await wait_listening(port, receiver)
            await bench.seed(options.endpoints, hanging)
            print(f"{version}; {options.workers} worker(s); receiver on {port}")
            wanted = options.scenarios
            folded = work / "throughput.folded" if options.profile else None
            spied = work / "latency.folded" if options.profile else None
            lean = options.lean
            if "throughput" in wanted:
                rows["throughput"], bodies = await throughput(bench, folded)
                show(rows["throughput"])
                if lean:
                    rows["throughput-lean"], _ = await throughput(bench, None, lean=True)
                    show(rows["throughput-lean"])
                if "ceiling" in wanted:
                    rows["ceiling"] = await ceiling(bench, bodies)
                    show(rows["ceiling"])
                    bare = rows["ceiling"]
                    for key in ("throughput", "throughput-lean"):
                        if key in rows:
                            drain = rows[key]
                            drain.ratio = drain.sustained / bare.sustained if bare.sustained else 0
                    bare.ratio = 1.0
            if "latency" in wanted:
                rows["latency"] = await offered_load(bench, False, None, spied)
                show(rows["latency"])
                if lean:
                    rows["latency-lean"] = await offered_load(bench, False, None, None, lean=True)
                    show(rows["latency-lean"])
            if "isolation" in wanted:
                rows["isolation"] = await offered_load(bench, True, rows.get("latency"), None)
                show(rows["isolation"])
                if lean:
                    rows["isolation-lean"] = await offered_load(
                        bench, True, rows.get("latency-lean"), None, lean=True
                    )
                    show(rows["isolation-lean"])
            if {"latency", "isolation"} <= set(wanted):
                for pair in range(1, options.pairs + 1):
                    if pair > 1:
                        latency = rows[pair_key("latency", pair)] = await offered_load(
                            bench, False, None, None, pair=pair
                        )
                        show(latency)
                        hung = rows[pair_key("isolation", pair)] = await offered_load(
                            bench, True, latency, None, pair=pair
                        )
                        show(hung)
                    if options.control:
                        control = rows[pair_key("control", pair)] = await offered_load(
                            bench,
                            True,
                            rows[pair_key("latency", pair)],
                            None,
                            pair=pair,
                            control=True,
                        )
                        show(control)
            for label, path, key in (("(1)", folded, "throughput"), ("(3)", spied, "latency")):
                if path is not None and key in rows:
                    profile += [f"{label} " + line for line in profile_lines(path)]
            problems = [p for log in bench.worker_logs for p in log_problems(log)]
    finally:
        await stop_process(receiver)
        await state.engine.dispose()
        shutil.rmtree(work, ignore_errors=True)
    setup = setup_lines(options, version, hanging, code)
    print("\n" + "\n".join(table(list(rows.values()))))
    print("\n".join(["", *target_lines(rows), *details(list(rows.values())), *profile]))
    if problems:
        print("worker log problems:\n" + "\n".join(problems[:20]))
    if options.markdown:
        write_markdown(options.markdown, rows, setup, profile)
        print(f"\nappended to {options.markdown}")
    return 1 if problems or any(row.lost for row in rows.values()) else 0


def show(row: Row) -> None:
    print(" | ".join(row.cells()), flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--hang", type=float, default=10.0, help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, default=20_000, help="deliveries of (1) and (2)")
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s of (3) and (4)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured, (3)/(4)")
    parser.add_argument("--endpoints", type=int, default=100, help="healthy endpoints")
    parser.add_argument("--workers", type=int, default=1, help="`vsense worker` processes")
    parser.add_argument("--timeout", type=float, default=5.0, help="VSENSE_WEBHOOK_TIMEOUT")
    parser.add_argument(
        "--answer-ms",
        type=float,
        default=0.0,
        help="the healthy endpoints answer after this long (a receiver across a network)",
    )
    parser.add_argument(
        "--scenarios",
        type=lambda value: value.split(","),
        default=list(SCENARIOS),
        help="comma-separated, of " + ",".join(SCENARIOS) + " (ceiling needs throughput)",
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=1,
        help="(3) and (4) run this many times, alternated; isolation judged on the median",
    )
    parser.add_argument(
        "--control",
        action="store_true",
        help="after each (4), (4c): the same load with the hanging endpoints answering at once",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the worker in (1), (3)")
    parser.add_argument(
        "--no-lean",
        dest="lean",
        action="store_false",
        help="leave out the lean reference (bench/webhooks_lean.py) after each scenario",
    )
    parser.add_argument(
        "--backend",
        choices=("postgresql", "sqlite"),
        default="postgresql",
        help="the database (sqlite: a file in a temporary folder)",
    )
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL, help="server, no database")
    parser.add_argument("--postgres-database", default=DATABASE, help="recreated at each run")
    parser.add_argument("--markdown", type=Path, help="append the results to this file")
    options = parser.parse_args(argv)
    from sqlalchemy.engine.url import make_url

    if options.serve is None and make_url(options.postgres_url).host not in LOOPBACK_HOSTS:
        parser.error("--postgres-url must point to 127.0.0.1")
    if set(options.scenarios) - set(SCENARIOS):
        parser.error(f"--scenarios takes {','.join(SCENARIOS)}")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    if options.serve is not None:
        serve(options.serve, options.hang, options.answer_ms / 1000)
        return 0
    announce_code_under_test()
    return event_loop_runner(guarded(options))  # the ceiling on uvloop, as `vsense worker`


async def guarded(options: argparse.Namespace) -> int:
    """`run`, stopped by SIGTERM as by Ctrl-C: its `finally` blocks stop every process."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await run(options)
    except asyncio.CancelledError:
        print("stopped; workers and receiver were stopped", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
