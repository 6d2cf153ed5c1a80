"""CPU time per `GET /api/v1/devices` request in one process: vsense next to the lean
reference (`lean_devices.py`), called straight over ASGI on a database seeded by
`api_devices.py` (`--reuse-database` keeps it).

On a machine shared with other work, requests per second move by 2x from one run to
the next; the CPU time a request costs its own process moves far less, so this is the
figure to compare before and after a change to the request path. The database server's
own work is not counted (it runs in its own process, and is the same for both apps).

    .venv/bin/python bench/api_devices_cpu.py --database-url \\
        postgresql+asyncpg://postgres@127.0.0.1:5432/bench_reads_api --token vst_...

With `--profile FILE` it also writes a cProfile of the vsense requests (for `pstats`).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness import event_loop_runner

POOL_SIZE = 8  # connections of each app: enough for 8 requests at a time

SCENARIOS = {
    "a": ("first page", ""),
    "b": ("group + online", "group=site-07&is_online=Online"),
    "c": ("sort=-refreshed", "sort=-refreshed"),
    "d": ("page 3000", "page=3000&per_page=25"),
}


class Lifespan:
    """Runs an ASGI app's lifespan (start-up, then shutdown) around a block."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.started = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Lifespan:
        async def send(message: dict[str, Any]) -> None:
            if message["type"].startswith("lifespan.startup"):
                self.started.set()

        self.task = asyncio.create_task(
            self.app({"type": "lifespan", "asgi": {"version": "3.0"}}, self.queue.get, send)
        )
        await self.queue.put({"type": "lifespan.startup"})
        await self.started.wait()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.queue.put({"type": "lifespan.shutdown"})
        if self.task is not None:
            await self.task


async def call(app: Any, query: str, token: str) -> tuple[int, bytes]:
    """One GET over ASGI; the status and the body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/v1/devices",
        "raw_path": b"/api/v1/devices",
        "query_string": query.encode(),
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"authorization", f"Bearer {token}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def cpu_per_request(
    app: Any, query: str, token: str, rounds: int, per_round: int, concurrency: int
) -> float:
    """Best of `rounds`: CPU µs per request, `concurrency` requests at a time."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(per_round // concurrency):
            results = await asyncio.gather(*(call(app, query, token) for _ in range(concurrency)))
            for status, body in results:
                if status != 200:
                    raise RuntimeError(f"{query!r} answered {status}: {body[:200]!r}")
        best = min(best, (time.process_time() - started) / per_round * 1e6)
    return best


def vsense_app(database_url: str, data_dir: Path) -> Any:
    from vsense.app import create_app
    from vsense.config import load_settings

    settings = load_settings(
        database_url=database_url,
        data_dir=data_dir,
        environment="development",
        database_pool_size=POOL_SIZE,
    )
    return create_app(settings, background=False)


def lean_app(database_url: str) -> Any:
    os.environ["BENCH_LEAN_DATABASE_URL"] = database_url
    os.environ["BENCH_LEAN_POOL_SIZE"] = str(POOL_SIZE)
    import lean_devices

    return lean_devices.app


async def run(options: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="vsense-cpu-") as data:
        apps: dict[str, Any] = {
            "lean": lean_app(options.database_url),
            "vsense": vsense_app(options.database_url, Path(data)),
        }
        async with Lifespan(apps["lean"]), Lifespan(apps["vsense"]):
            for app in apps.values():  # warm: caches, prepared statements, pools
                for _, query in SCENARIOS.values():
                    for _ in range(3):
                        await call(app, query, options.token)
            print(f"CPU µs per request, best of {options.rounds} rounds of {options.requests}, "
                  f"{options.concurrency} at a time")  # fmt: skip
            print(f"{'scenario':<22} {'lean':>8} {'vsense':>8} {'lean/vsense':>12}")
            for key in options.scenarios:
                title, query = SCENARIOS[key]
                figures = {}
                for round_robin in range(2):  # lean, vsense, lean, vsense: best of each
                    for name, app in apps.items():
                        value = await cpu_per_request(
                            app,
                            query,
                            options.token,
                            options.rounds,
                            options.requests,
                            options.concurrency,
                        )
                        figures[name] = min(figures.get(name, value), value)
                    del round_robin
                print(
                    f"{key} {title:<20} {figures['lean']:>8.0f} {figures['vsense']:>8.0f} "
                    f"{figures['lean'] / figures['vsense']:>12.2f}"
                )
            if options.profile:
                _, query = SCENARIOS[options.scenarios[0]]
                profiler = cProfile.Profile()
                profiler.enable()
                await cpu_per_request(apps["vsense"], query, options.token, 1, 400, 8)
                profiler.disable()
                profiler.dump_stats(options.profile)
                print(f"profile of {options.scenarios[0]} written to {options.profile}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--token", required=True, help="a personal token of the seeded admin")
    parser.add_argument("--scenarios", default="abcd")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200, help="requests per round")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--profile", type=Path, help="write a cProfile of vsense here")
    options = parser.parse_args(argv)
    runner: Callable[[Any], Any] = event_loop_runner
    runner(run(options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
