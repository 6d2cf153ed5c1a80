"""Benchmark of `GET /api/v1/devices` on the real server, next to a bare-uvicorn ceiling.

For each backend (SQLite, PostgreSQL) it migrates a fresh database, seeds one
organization with 100,000 devices in 20 groups and a personal access token, starts
`vsense serve` as a subprocess and loads it with 32 keep-alive clients (aiohttp). The
ceiling is a bare ASGI app (`ceiling_app` below) answering a fixed 25-device page, served
by uvicorn with the same options, measured in the same run; `ratio` is req/s of a
scenario divided by req/s of the ceiling with the same number of workers.

Run from the repository root:

    .venv/bin/python bench/api_devices.py --duration 10 --markdown docs/benchmarks.md

All traffic goes to 127.0.0.1. The PostgreSQL database (`vsense_bench` by default) is
dropped and recreated at the start and left in place afterwards for EXPLAIN.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from harness import (
    APP_TYPES,
    BACKEND_LABELS,
    BACKENDS,
    DEFAULT_POSTGRES_URL,
    GROUP_COUNT,
    HOST,
    LOOPBACK_HOSTS,
    NAME_PREFIXES,
    PLACES,
    REQUEST_TIMEOUT,
    AsgiMessage,
    Measurement,
    announce_code_under_test,
    answer_lifespan,
    append_markdown,
    base_env,
    command_line,
    event_loop_runner,
    free_port,
    log_problems,
    machine_facts,
    recreate_postgres_database,
    run_command,
    seed,
    served,
    server_env,
    vsense_executable,
)

FILTER_GROUP = "site-07"
TARGET_RPS = 1500.0
TARGET_P99_MS = 50.0


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    path: str


def scenarios(devices: int) -> tuple[Scenario, ...]:
    """(a) first page, (b) filtered first page, (c) newest first, (d) a deep page (3000 of
    4000 at 100,000 devices; three quarters of the way down for smaller seeds)."""
    deep = min(3000, max(1, devices * 3 // 4 // 25))
    return (
        Scenario("a", "first page", "/api/v1/devices"),
        Scenario("b", "group + online", f"/api/v1/devices?group={FILTER_GROUP}&is_online=Online"),
        Scenario("c", "sort=-refreshed", "/api/v1/devices?sort=-refreshed"),
        Scenario("d", f"page {deep}", f"/api/v1/devices?page={deep}&per_page=25"),
    )


# --------------------------------------------------------------------------- ceiling


def _sample_page(count: int = 25) -> bytes:
    """A page shaped like the real answer of `GET /api/v1/devices` (25 devices)."""
    rng = random.Random(7)
    data = []
    for n in range(count):
        city, country = PLACES[n % len(PLACES)]
        data.append(
            {
                "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "name": f"{NAME_PREFIXES[n % len(NAME_PREFIXES)]} {rng.randrange(100_000):05d}",
                "client_identifier": f"VS-{rng.randrange(1_000_000):06d}",
                "refreshed": "2025-01-02T03:04:05Z",
                "is_online": n % 2,
                "geo_city": city,
                "geo_country": country,
                "group": f"site-{1 + n % GROUP_COUNT:02d}",
                "group_id": 1 + n % GROUP_COUNT,
                "app_type": APP_TYPES[n % len(APP_TYPES)],
                "keepalive_interval": None,
                "created": "2024-06-07T08:09:10Z",
                "last_seen": "2025-01-02T03:04:05Z",
                "status_reason": None if n % 2 else "keepalive_missed",
            }
        )
    meta = {
        "current_page": 1,
        "from": 1,
        "last_page": 4000,
        "per_page": count,
        "total": 100_000,
        "to": count,
        "total_pages": 4000,
    }
    return orjson.dumps({"data": data, "meta": meta})


CEILING_BODY = _sample_page()
CEILING_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(CEILING_BODY)).encode()),
]


async def ceiling_app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[AsgiMessage]],
    send: Callable[[AsgiMessage], Awaitable[None]],
) -> None:
    """The fastest answer uvicorn can give: a fixed JSON body, no framework, no database."""
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": CEILING_HEADERS})
    await send({"type": "http.response.body", "body": CEILING_BODY})


# --------------------------------------------------------------------------- results


@dataclass
class BackendReport:
    backend: str
    version: str
    seed_seconds: float
    rows: list[Measurement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- load


async def load(
    url: str,
    headers: dict[str, str],
    *,
    clients: int,
    warmup: float,
    duration: float,
    measurement: Measurement,
) -> None:
    """`clients` loops on one keep-alive session; completions inside the window count."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=headers
    ) as session:
        measure_from = time.perf_counter() + warmup
        measure_until = measure_from + duration

        async def client() -> None:
            while (started := time.perf_counter()) < measure_until:
                error: str | None = None
                size = 0
                try:
                    async with session.get(url) as response:
                        body = await response.read()
                        size = len(body)
                        if response.status != 200:
                            error = f"HTTP {response.status}: {body[:200]!r}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    error = f"{type(exc).__name__}: {exc}"
                finished = time.perf_counter()
                if error is not None:
                    measurement.record_error(error)  # warm-up errors count too
                elif measure_from <= finished <= measure_until:
                    measurement.latencies_ms.append((finished - started) * 1000)
                    measurement.response_bytes = size

        await asyncio.gather(*(client() for _ in range(clients)))


async def preflight(url: str, headers: dict[str, str]) -> str:
    """One request, checked: 200 with a non-empty `data` list. Returns a short summary."""
    import aiohttp

    async with aiohttp.ClientSession(headers=headers) as session, session.get(url) as response:
        body = await response.read()
    if response.status != 200:
        raise RuntimeError(f"{url} answered {response.status}: {body[:300]!r}")
    document = orjson.loads(body)
    rows = len(document.get("data", []))
    if rows == 0:
        raise RuntimeError(f"{url} answered an empty page: {body[:300]!r}")
    return f"{rows} rows of total {document['meta']['total']}, {len(body)} bytes"


# --------------------------------------------------------------------------- runs


@dataclass
class Options:
    backends: list[str]
    duration: float
    warmup: float
    clients: int
    devices: int
    postgres_url: str
    postgres_database: str
    postgres_workers: list[int]
    server_env: dict[str, str]
    markdown: Path | None
    reuse: bool = False


async def measure(
    base_url: str,
    headers: dict[str, str],
    options: Options,
    *,
    server: str,
    workers: int,
    scenario: str,
    path: str,
) -> Measurement:
    measurement = Measurement(server, workers, scenario, options.duration)
    await load(
        base_url + path,
        headers,
        clients=options.clients,
        warmup=options.warmup,
        duration=options.duration,
        measurement=measurement,
    )
    return measurement


async def run_ceiling(
    options: Options, headers: dict[str, str], workers: int, work_dir: Path
) -> Measurement:
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "api_devices:ceiling_app", "--app-dir", "bench",
        "--host", HOST, "--port", str(port), "--workers", str(workers),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    log_path = work_dir / f"ceiling-{workers}w.log"
    async with served(command, base_env({}), port, log_path) as base_url:
        print(f"  ceiling x{workers}: {len(CEILING_BODY)} bytes fixed body", flush=True)
        result = await measure(
            base_url,
            headers,
            options,
            server="ceiling",
            workers=workers,
            scenario=f"fixed JSON page ({len(CEILING_BODY) / 1024:.1f} KB)",
            path="/api/v1/devices",
        )
    print(f"    {result.rps:,.0f} req/s, p99 {result.percentile(0.99):.1f} ms", flush=True)
    return result


async def new_bench_token(database_url: str) -> str:
    """A new personal access token of the seeded admin, for a database seeded before."""
    import asyncpg  # type: ignore[import-untyped]

    from vsense.accounts.scopes import ALL_SCOPES
    from vsense.accounts.service import PERSONAL_PREFIX
    from vsense.kit.crypto import new_token, token_digest

    token = new_token(PERSONAL_PREFIX)
    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await connection.execute(
            "INSERT INTO personal_access_tokens (user_id, name, token_hash, prefix, scopes, "
            "created) SELECT id, 'bench', $1, $2, $3, now() FROM users "
            "WHERE email = 'admin@bench.example'",
            token_digest(token),
            token[:8],
            orjson.dumps(list(ALL_SCOPES)).decode(),
        )
    finally:
        await connection.close()
    return token


async def run_lean(
    options: Options,
    headers: dict[str, str],
    workers: int,
    database_url: str,
    work_dir: Path,
    backend: str,
) -> list[Measurement]:
    """The lean reference (`lean_devices.py`) on the same database, every scenario."""
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "lean_devices:app", "--app-dir", "bench",
        "--host", HOST, "--port", str(port), "--workers", str(workers),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    env = base_env({"BENCH_LEAN_DATABASE_URL": database_url})
    log_path = work_dir / f"{backend}-lean-{workers}w.log"
    results = []
    async with served(command, env, port, log_path) as base_url:
        for scenario in scenarios(options.devices):
            label = f"{scenario.key} {scenario.title}"
            summary = await preflight(base_url + scenario.path, headers)
            print(f"  lean x{workers} {label}: {summary}", flush=True)
            result = await measure(
                base_url, headers, options, server="lean", workers=workers,
                scenario=label, path=scenario.path,
            )  # fmt: skip
            results.append(result)
            print(
                f"    {result.rps:,.0f} req/s, p99 {result.percentile(0.99):.1f} ms, "
                f"{result.errors} errors",
                flush=True,
            )
    return results


async def run_backend(
    backend: str, options: Options, work_dir: Path, ceilings: dict[int, Measurement]
) -> BackendReport:
    data_dir = work_dir / backend
    data_dir.mkdir()
    database_url: str | None = None
    version = f"SQLite {sqlite3.sqlite_version}"
    workers_list = [1]
    if backend == "postgresql":
        database_url = f"{options.postgres_url.rstrip('/')}/{options.postgres_database}"
        version = "PostgreSQL"
        workers_list = options.postgres_workers
    env = server_env(data_dir, database_url, options.server_env)
    print(
        f"\n{BACKEND_LABELS[backend]}: migrating and seeding {options.devices:,} devices",
        flush=True,
    )
    started = time.perf_counter()
    if backend == "postgresql" and options.reuse:
        token = await new_bench_token(database_url)
    else:
        if backend == "postgresql":
            version = "PostgreSQL " + await recreate_postgres_database(database_url)
        await run_command(
            [vsense_executable(), "db", "upgrade"], env, work_dir / f"{backend}-db.log"
        )
        token = await seed(data_dir, database_url, options.devices)
    report = BackendReport(backend, version, time.perf_counter() - started)
    print(f"  ready in {report.seed_seconds:.1f} s", flush=True)
    headers = {"Authorization": f"Bearer {token}"}
    lean_url = database_url or f"sqlite:///{data_dir / 'vsense.db'}"
    for workers in workers_list:
        report.rows.append(ceilings[workers])
        report.rows += await run_lean(options, headers, workers, lean_url, work_dir, backend)
        port = free_port()
        command = [
            vsense_executable(), "serve", "--host", HOST, "--port", str(port),
            "--workers", str(workers), "--log-level", "warning",
        ]  # fmt: skip
        log_path = work_dir / f"{backend}-{workers}w.log"
        async with served(command, env, port, log_path) as base_url:
            for scenario in scenarios(options.devices):
                label = f"{scenario.key} {scenario.title}"
                try:
                    summary = await preflight(base_url + scenario.path, headers)
                except Exception as exc:
                    failed = Measurement("vsense", workers, label, options.duration)
                    failed.record_error(f"preflight: {exc}")
                    report.rows.append(failed)
                    print(f"  vsense x{workers} {label}: PREFLIGHT FAILED {exc}", flush=True)
                    continue
                print(f"  vsense x{workers} {label}: {summary}", flush=True)
                result = await measure(
                    base_url,
                    headers,
                    options,
                    server="vsense",
                    workers=workers,
                    scenario=label,
                    path=scenario.path,
                )
                report.rows.append(result)
                print(
                    f"    {result.rps:,.0f} req/s, p99 {result.percentile(0.99):.1f} ms, "
                    f"{result.errors} errors",
                    flush=True,
                )
        problems = log_problems(log_path)
        if problems:
            report.notes.append(
                f"server log ({workers} worker(s)) has {len(problems)} error lines, "
                f"first: {problems[0][:200]}"
            )
    return report


# --------------------------------------------------------------------------- output

COLUMNS = (
    "server", "scenario", "req/s", "p50 ms", "p99 ms", "errors", "resp KB",
    "/ ceiling", "/ lean",
)  # fmt: skip
TARGET_LEAN_RATIO = 0.65
TARGET_DEEP_RATIO = 0.5


def _lean_of(report: BackendReport, m: Measurement) -> Measurement | None:
    return next(
        (
            other
            for other in report.rows
            if (other.server, other.workers, other.scenario) == ("lean", m.workers, m.scenario)
        ),
        None,
    )


def _ratio(numerator: Measurement, denominator: Measurement | None) -> float:
    return numerator.rps / denominator.rps if denominator and denominator.rps else math.nan


def table_rows(report: BackendReport, ceilings: dict[int, Measurement]) -> list[list[str]]:
    rows = []
    for m in report.rows:
        lean = _lean_of(report, m) if m.server == "vsense" else None
        rows.append(
            [
                f"{m.server} x{m.workers}",
                m.scenario,
                f"{m.rps:,.0f}",
                f"{m.percentile(0.50):.1f}",
                f"{m.percentile(0.99):.1f}",
                str(m.errors),
                f"{m.response_bytes / 1024:.1f}",
                f"{_ratio(m, ceilings.get(m.workers)):.2f}",
                f"{_ratio(m, lean):.2f}" if lean else "",
            ]
        )
    return rows


def target_lines(report: BackendReport) -> list[str]:
    """Scenario (b) against the absolute target (PostgreSQL) and the lean reference
    (both backends), and the deep page (d) against the first page (a)."""
    lines = []
    for m in report.rows:
        if m.server != "vsense":
            continue
        if m.scenario.startswith("b "):
            p99 = m.percentile(0.99)
            lean_ratio = _ratio(m, _lean_of(report, m))
            checks = [f"/ lean {lean_ratio:.2f} >= {TARGET_LEAN_RATIO}"]
            met = lean_ratio >= TARGET_LEAN_RATIO and m.errors == 0
            if report.backend == "postgresql":
                checks.insert(0, f">= {TARGET_RPS:,.0f} req/s and p99 <= {TARGET_P99_MS:.0f} ms")
                met = met and m.rps >= TARGET_RPS and p99 <= TARGET_P99_MS
            lines.append(
                f"Target (b, {BACKEND_LABELS[report.backend]}, {m.workers} worker(s)): "
                f"{' and '.join(checks)}; {m.rps:,.0f} req/s, p99 {p99:.1f} ms "
                f"-> {'MET' if met else 'MISSED'}"
            )
        if m.scenario.startswith("d "):
            first = next(
                (
                    o
                    for o in report.rows
                    if (o.server, o.workers, o.scenario[:2]) == ("vsense", m.workers, "a ")
                ),
                None,
            )
            ratio = _ratio(m, first)
            lines.append(
                f"Target (d, {BACKEND_LABELS[report.backend]}, {m.workers} worker(s)): deep page "
                f">= {TARGET_DEEP_RATIO} of the first page's rate; {ratio:.2f} "
                f"-> {'MET' if ratio >= TARGET_DEEP_RATIO else 'MISSED'}"
            )
    return lines


def error_lines(report: BackendReport) -> list[str]:
    return [
        f"ERRORS {m.server} x{m.workers} {m.scenario}: {m.errors}, first: {m.first_error}"
        for m in report.rows
        if m.errors
    ]


def heading(report: BackendReport, options: Options) -> str:
    return (
        f"{report.version}: {options.devices:,} devices, {options.clients} clients, "
        f"{options.duration:g} s per scenario after {options.warmup:g} s warm-up "
        f"(seeded in {report.seed_seconds:.0f} s)"
    )


def print_report(report: BackendReport, ceilings: dict[int, Measurement], options: Options) -> None:
    rows = [list(COLUMNS), *table_rows(report, ceilings)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    print(f"\n== {heading(report, options)}")
    for index, row in enumerate(rows):
        cells = [
            cell.ljust(width) if column < 2 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells))
        if index == 0:
            print("  ".join("-" * width for width in widths))
    for line in [*target_lines(report), *error_lines(report), *report.notes]:
        print(line)


def write_markdown(
    path: Path, reports: Sequence[BackendReport], ceilings: dict[int, Measurement], options: Options
) -> None:
    out: list[str] = []
    if not path.exists() or not path.read_text().strip():
        out += [
            "# Benchmarks",
            "",
            "Measured with `bench/api_devices.py`: the real server (`vsense serve`) on a seeded "
            "database, loaded by 32 keep-alive clients on the same machine, next to a bare "
            "uvicorn app with a fixed body (the ceiling, measured in the same run).",
            "",
        ]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    out += [
        f"## GET /api/v1/devices, {stamp}",
        "",
        f"- Command: `{command_line()}`",
        f"- Machine: {machine_facts()}",
        f"- Load: {options.clients} clients (aiohttp, keep-alive), {options.duration:g} s per "
        f"scenario after {options.warmup:g} s warm-up; `/ ceiling` and `/ lean` = req/s over the "
        "ceiling's and over the lean reference's (same scenario) with the same number of workers",
        "",
    ]
    for report in reports:
        out += [f"### {heading(report, options)}", ""]
        out.append("| " + " | ".join(COLUMNS) + " |")
        out.append("|" + "|".join("---" if i < 2 else "---:" for i in range(len(COLUMNS))) + "|")
        out += ["| " + " | ".join(row) + " |" for row in table_rows(report, ceilings)]
        extra = [*target_lines(report), *error_lines(report), *report.notes]
        if extra:
            out += ["", *(f"- {line}" for line in extra)]
        out.append("")
    append_markdown(path, out)


async def run(options: Options) -> list[BackendReport]:
    work_dir = Path(tempfile.mkdtemp(prefix="vsense-bench-"))
    try:
        ceiling_workers = sorted(
            {1, *(options.postgres_workers if "postgresql" in options.backends else [])}
        )
        print(f"Ceiling (bare ASGI app on uvicorn), {options.clients} clients", flush=True)
        ceilings = {
            workers: await run_ceiling(options, {"Authorization": "Bearer x"}, workers, work_dir)
            for workers in ceiling_workers
        }
        reports = []
        for backend in options.backends:
            reports.append(await run_backend(backend, options, work_dir, ceilings))
        for report in reports:
            print_report(report, ceilings, options)
        if options.markdown:
            write_markdown(options.markdown, reports, ceilings, options)
            print(f"\nappended to {options.markdown}")
        if "postgresql" in options.backends:
            print(f"(database {options.postgres_database} left in place for EXPLAIN)")
        return reports
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


# --------------------------------------------------------------------------- CLI


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per run")
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--devices", type=int, default=100_000, help="devices to seed")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL, help="server, no database")
    parser.add_argument("--postgres-database", default="vsense_bench")
    parser.add_argument("--postgres-workers", default="1,2", help="worker counts to run")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment of the server, e.g. VSENSE_COUNT_CACHE_TTL=60 (repeatable)",
    )
    parser.add_argument("--markdown", type=Path, help="append the results to this file")
    parser.add_argument(
        "--reuse-database",
        action="store_true",
        help="PostgreSQL: keep the database seeded by an earlier run (a new token only)",
    )
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown or not backends:
        parser.error(f"--backends takes {', '.join(BACKENDS)}; got {args.backends!r}")
    from sqlalchemy.engine.url import make_url

    if make_url(args.postgres_url).host not in LOOPBACK_HOSTS:
        parser.error("--postgres-url must point to 127.0.0.1")
    env = dict(item.split("=", 1) for item in args.server_env if "=" in item)
    return Options(
        backends=backends,
        duration=args.duration,
        warmup=args.warmup,
        clients=args.clients,
        devices=args.devices,
        postgres_url=args.postgres_url,
        postgres_database=args.postgres_database,
        postgres_workers=[int(w) for w in args.postgres_workers.split(",")],
        server_env=env,
        markdown=args.markdown,
        reuse=args.reuse_database,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    announce_code_under_test()
    reports = event_loop_runner(run(options))
    return 1 if any(m.errors for r in reports for m in r.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
