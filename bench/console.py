"""Benchmark of the console's pages on PostgreSQL with 100,000 devices, 16 users.

It migrates a fresh database, seeds one organization with 100,000 devices in 20 groups
(`harness.seed`), gives its admin a known password, starts `vsense serve` (one worker,
or `--workers`), logs in through the console's login form, and loads each page with 16
keep-alive clients carrying the session cookie. In the same run:

- the ceiling: a bare ASGI app answering the fleet page's own HTML (captured from the
  server), served by uvicorn with the same options: no framework, no database;
- the lean reference: `GET /api/v1/devices`, the API's device list on the same server
  and data, the same-stack path the fleet page is built on.

The figure is the p95 latency at 16 concurrent users (target: <= 100 ms for the fleet
and the device page); `vs lean` divides a page's p95 by the lean reference's.

    .venv/bin/python bench/console.py --duration 5 --markdown docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import (
    DEFAULT_POSTGRES_URL,
    HOST,
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

TARGET_P95_MS = 100.0
PASSWORD = "bench console password 7"
CEILING_BODY_ENV = "BENCH_CONSOLE_CEILING_BODY"


# --------------------------------------------------------------------------- ceiling

# Read when uvicorn imports this module for the ceiling (the file is written by then).
CEILING_BODY = (
    Path(os.environ[CEILING_BODY_ENV]).read_bytes() if CEILING_BODY_ENV in os.environ else b""
)


async def ceiling_app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[AsgiMessage]],
    send: Callable[[AsgiMessage], Awaitable[None]],
) -> None:
    """A fixed HTML body (the fleet page as the server rendered it), nothing else."""
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    headers = [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", str(len(CEILING_BODY)).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": CEILING_BODY})


# --------------------------------------------------------------------------- load


async def load(
    paths: Iterator[str],
    base_url: str,
    *,
    cookies: dict[str, str],
    headers: dict[str, str],
    clients: int,
    warmup: float,
    measurement: Measurement,
) -> None:
    """`clients` loops on one keep-alive session, each request to the next path."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(
        base_url, connector=connector, timeout=timeout, headers=headers, cookies=cookies
    ) as session:
        measure_from = time.perf_counter() + warmup
        measure_until = measure_from + measurement.seconds

        async def client() -> None:
            while (started := time.perf_counter()) < measure_until:
                error = None
                try:
                    async with session.get(next(paths), allow_redirects=False) as response:
                        body = await response.read()
                        if response.status != 200:
                            error = f"HTTP {response.status}: {body[:200]!r}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    error = f"{type(exc).__name__}: {exc}"
                finished = time.perf_counter()
                if error is not None:
                    measurement.record_error(error)
                elif measure_from <= finished <= measure_until:
                    measurement.latencies_ms.append((finished - started) * 1000)
                    measurement.response_bytes = len(body)

        await asyncio.gather(*(client() for _ in range(clients)))


async def console_login(base_url: str, email: str) -> dict[str, str]:
    """The session cookies of a login through the console's own form."""
    import aiohttp

    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(base_url, cookie_jar=jar) as session:
        async with session.get("/console/login") as response:
            page = await response.text()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        if token is None:
            raise RuntimeError("the login page holds no CSRF token")
        form = {"email": email, "password": PASSWORD, "csrf_token": token[1], "next": ""}
        async with session.post("/console/login", data=form, allow_redirects=False) as response:
            if response.status != 303:
                raise RuntimeError(f"console login answered {response.status}")
        return {c.key: c.value for c in jar if c.key.startswith("vsense_")}


async def set_admin_password(data_dir: Path, database_url: str) -> str:
    """Give the seeded admin a known password (through the users service)."""
    from vsense.config import load_settings
    from vsense.db import create_engine, create_sessionmaker, session_scope
    from vsense.users import repository, service

    email = "admin@bench.example"
    engine = create_engine(load_settings(data_dir=data_dir, database_url=database_url))
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            user = await repository.get_user_by_email(session, email)
            assert user is not None
            await service.set_password(session, user, PASSWORD)
    finally:
        await engine.dispose()
    return email


async def get_json(base_url: str, path: str, headers: dict[str, str]) -> Any:
    import aiohttp

    async with (
        aiohttp.ClientSession(base_url, headers=headers) as session,
        session.get(path) as response,
    ):
        return await response.json()


async def fetch(base_url: str, path: str, cookies: dict[str, str]) -> bytes:
    import aiohttp

    async with (
        aiohttp.ClientSession(base_url, cookies=cookies) as session,
        session.get(path, allow_redirects=False) as response,
    ):
        body = await response.read()
        if response.status != 200:
            raise RuntimeError(f"{path} answered {response.status}: {body[:300]!r}")
        return body


# --------------------------------------------------------------------------- run


@dataclass
class Options:
    devices: int
    duration: float
    warmup: float
    clients: int
    postgres_url: str
    database: str
    markdown: Path | None
    workers: int = 1


async def run(options: Options, work_dir: Path) -> tuple[str, list[Measurement], list[str]]:
    data_dir = work_dir / "data"
    data_dir.mkdir()
    database_url = f"{options.postgres_url.rstrip('/')}/{options.database}"
    version = "PostgreSQL " + await recreate_postgres_database(database_url)
    env = server_env(data_dir, database_url, {})
    print(f"{version}: migrating and seeding {options.devices:,} devices", flush=True)
    await run_command([vsense_executable(), "db", "upgrade"], env, work_dir / "db.log")
    token = await seed(data_dir, database_url, options.devices)
    email = await set_admin_password(data_dir, database_url)
    rows: list[Measurement] = []
    notes: list[str] = []
    port = free_port()
    command = [
        vsense_executable(), "serve", "--host", HOST, "--port", str(port),
        "--workers", str(options.workers), "--log-level", "warning",
    ]  # fmt: skip
    log_path = work_dir / "vsense.log"
    api = {"Authorization": f"Bearer {token}"}
    async with served(command, env, port, log_path) as base_url:
        cookies = await console_login(base_url, email)
        listed = await get_json(base_url, "/api/v1/devices?per_page=100&sort=-refreshed", api)
        devices = [d["uuid"] for d in listed["data"]]
        groups = await get_json(base_url, "/api/v1/groups?per_page=1", api)
        group = groups["data"][0]["id"]
        fleet_html = await fetch(base_url, "/console/", cookies)
        ceiling_file = work_dir / "fleet.html"
        ceiling_file.write_bytes(fleet_html)
        scenarios: list[tuple[str, Iterator[str], dict[str, str], dict[str, str]]] = [
            ("lean: API device list, first page", itertools.repeat("/api/v1/devices"), {}, api),
            ("fleet page", itertools.repeat("/console/"), cookies, {}),
            (
                "fleet page, group + online, newest first",
                itertools.repeat(f"/console/?group={group}&status=online&sort=-refreshed"),
                cookies,
                {},
            ),
            ("fleet poll (counts + table)", itertools.repeat("/console/fleet/table"), cookies, {}),
            (
                "device page (100 devices in turn)",
                itertools.cycle(f"/console/devices/{d}" for d in devices),
                cookies,
                {},
            ),
            (
                "device activity fragment (history, webhooks, alerts)",
                itertools.cycle(f"/console/devices/{d}/activity" for d in devices),
                cookies,
                {},
            ),
        ]
        for label, paths, jar, headers in scenarios:
            measurement = Measurement("vsense", 1, label, options.duration)
            await load(
                paths,
                base_url,
                cookies=jar,
                headers=headers,
                clients=options.clients,
                warmup=options.warmup,
                measurement=measurement,
            )
            rows.append(measurement)
            print(f"  {label}: {summary(measurement)}", flush=True)
    problems = log_problems(log_path)
    if problems:
        notes.append(f"server log has {len(problems)} error lines, first: {problems[0][:200]}")
    ceiling_port = free_port()
    ceiling_command = [
        sys.executable, "-m", "uvicorn", "console:ceiling_app", "--app-dir", "bench",
        "--host", HOST, "--port", str(ceiling_port), "--workers", str(options.workers),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    ceiling_env = base_env({CEILING_BODY_ENV: str(ceiling_file)})
    async with served(
        ceiling_command, ceiling_env, ceiling_port, work_dir / "ceiling.log"
    ) as ceiling_url:
        ceiling = Measurement("ceiling", 1, "fixed fleet page HTML", options.duration)
        await load(
            itertools.repeat("/console/"),
            ceiling_url,
            cookies={},
            headers={},
            clients=options.clients,
            warmup=options.warmup,
            measurement=ceiling,
        )
        print(f"  ceiling: {summary(ceiling)}", flush=True)
    return version, [ceiling, *rows], notes


def summary(m: Measurement) -> str:
    return (
        f"{m.rps:,.0f} req/s, p50 {m.percentile(0.5):.1f} ms, p95 {m.percentile(0.95):.1f} ms, "
        f"{m.errors} errors{f' (first: {m.first_error})' if m.first_error else ''}"
    )


COLUMNS = ("server", "page", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "KB", "vs lean")


def table(rows: list[Measurement]) -> list[list[str]]:
    lean = next(m for m in rows if m.scenario.startswith("lean"))
    lean_p95 = lean.percentile(0.95)
    out = []
    for m in rows:
        p95 = m.percentile(0.95)
        ratio = p95 / lean_p95 if lean_p95 else math.nan
        out.append(
            [
                m.server,
                m.scenario,
                f"{m.rps:,.0f}",
                f"{m.percentile(0.5):.1f}",
                f"{p95:.1f}",
                f"{m.percentile(0.99):.1f}",
                str(m.errors),
                f"{m.response_bytes / 1024:.1f}",
                f"{ratio:.2f}",
            ]
        )
    return out


def verdicts(rows: list[Measurement]) -> list[str]:
    lines = []
    for m in rows:
        if m.scenario.startswith(("fleet page", "device page")):
            p95 = m.percentile(0.95)
            met = p95 <= TARGET_P95_MS and m.errors == 0
            lines.append(
                f"Target p95 <= {TARGET_P95_MS:.0f} ms, {m.scenario}: {p95:.1f} ms -> "
                f"{'MET' if met else 'MISSED'}"
            )
    return lines


def report(version: str, rows: list[Measurement], notes: list[str], options: Options) -> None:
    title = (
        f"{version}: {options.devices:,} devices, {options.clients} concurrent users, "
        f"{options.duration:g} s per page after {options.warmup:g} s warm-up, "
        f"{options.workers} worker{'s' if options.workers > 1 else ''}"
    )
    cells = [list(COLUMNS), *table(rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    print(f"\n== {title}")
    for row in cells:
        print(
            "  ".join(
                c.ljust(w) if i < 2 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    for line in [*verdicts(rows), *notes]:
        print(line)
    if options.markdown is None:
        return
    lines = [
        f"## Console pages, {time.strftime('%Y-%m-%d')}",
        "",
        f"`{command_line()}` on {machine_facts()}.",
        "",
        f"{title}. The ceiling serves the fleet page's own HTML from a bare ASGI app; the "
        "lean reference is the API's device list on the same server and data. `vs lean` "
        "is a page's p95 over the lean reference's p95.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
        *("| " + " | ".join(r) + " |" for r in table(rows)),
        "",
        *(f"- {line}" for line in [*verdicts(rows), *notes]),
        "",
    ]
    append_markdown(options.markdown, lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--database", default="bench_console_100k")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes (the ceiling's too)"
    )
    args = parser.parse_args()
    options = Options(
        args.devices,
        args.duration,
        args.warmup,
        args.clients,
        args.postgres_url,
        args.database,
        args.markdown,
        args.workers,
    )
    announce_code_under_test()
    with tempfile.TemporaryDirectory(prefix="vsense-console-bench-") as work:
        version, rows, notes = event_loop_runner(run(options, Path(work)))
    report(version, rows, notes, options)


if __name__ == "__main__":
    main()
