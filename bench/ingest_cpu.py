"""CPU time per device request in one process: vsense, the lean reference and the bare
ceiling called over ASGI with the same concurrent requests, no network in between.

On a shared machine requests per second swing with the other load; the CPU time one
process spends per request moves far less. This builds the app (`create_app(settings,
background=False)`: no flush, sweep or dispatcher) over a fresh database, onboards
devices through the API, then for each scenario sends `--requests` requests with
`--concurrency` of them in flight at once (httpx over `ASGITransport`; the group commit
sees them as concurrent) and reports the process's CPU time per request. The client's
own CPU is in every figure alike; `server µs` subtracts the ceiling's (the same client
against an app that answers at once), and `vs lean` divides the lean reference's server
share by vsense's (1.0: as lean as the reference).

    .venv/bin/python bench/ingest_cpu.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench_x
    BENCH_SERVER_PYTHONPATH=<old src> ...   (this script then imports that `vsense`)

The database is dropped and recreated (PostgreSQL) or made in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

SERVER_PYTHONPATH = os.environ.get("BENCH_SERVER_PYTHONPATH")
if SERVER_PYTHONPATH:
    sys.path.insert(0, SERVER_PYTHONPATH)

import httpx  # noqa: E402
import orjson  # noqa: E402

from harness import in_process  # noqa: E402
from ingest import HEALTH_BODY, ceiling_app, rule_body, vcz_message, zone_of  # noqa: E402


async def onboard(client: httpx.AsyncClient, admin: str, count: int) -> list[tuple[str, str]]:
    devices = []
    for n in range(count):
        answer = await client.post(
            "/api/v1/devices",
            json={"name": f"CPU-{n:04d}", "app_type": "VCZ", "keepalive_interval": 600},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert answer.status_code == 201, answer.text
        document = answer.json()
        devices.append((document["uuid"], document["device_token"]))
    return devices


async def add_rules(
    client: httpx.AsyncClient, admin: str, devices: Sequence[tuple[str, str]], count: int
) -> list[int]:
    """`count` alert rules over the devices, as `ingest.py`'s scenario (e) has, disabled
    (`toggle_rules` enables them for the scenario `rules`); their ids."""
    ids = []
    for n in range(count):
        answer = await client.post(
            "/api/v1/alert-rules",
            json={**rule_body(n, devices[n % len(devices)][0]), "enabled": False},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["id"])
    return ids


async def toggle_rules(app: Any, admin: str, ids: Sequence[int], enabled: bool) -> None:
    """Enable or disable the rules through the API (not measured)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for rule in ids:
            answer = await client.put(
                f"/api/v1/alert-rules/{rule}",
                json={"enabled": enabled},
                headers={"Authorization": f"Bearer {admin}"},
            )
            assert answer.status_code == 200, answer.text


def bodies(kind: str, devices: Sequence[tuple[str, str]]) -> list[bytes]:
    now = int(time.time())
    if kind == "keepalive":
        return [HEALTH_BODY] * len(devices)
    if kind == "single":
        return [orjson.dumps(vcz_message(zone_of(d), now)) for d, _ in devices]
    return [
        orjson.dumps([vcz_message(zone_of(d), now - 60 * n) for n in range(100)])
        for d, _ in devices
    ]


PATHS = {"keepalive": "/device/v1/keepalive", "single": "/device/v1/payloads"}
STATUS = {"keepalive": 200, "single": 202, "batch": 202, "rules": 202}
BATCHES = ("batch", "rules")  # kinds whose requests carry 100 messages


async def load(
    app: Any, kind: str, devices: Sequence[tuple[str, str]], requests: int, concurrency: int
) -> tuple[float, float]:
    """CPU seconds and wall seconds per request for `requests` requests."""
    transport = httpx.ASGITransport(app=app)
    path = PATHS.get(kind, "/device/v1/payloads")
    payloads = bodies(kind, devices)
    headers = [
        {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        for _, token in devices
    ]
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        turn = itertools.count()

        async def worker(total: int) -> None:
            for _ in range(total):
                index = next(turn) % len(devices)
                answer = await client.post(path, content=payloads[index], headers=headers[index])
                if answer.status_code != STATUS[kind]:
                    raise RuntimeError(f"{kind}: {answer.status_code} {answer.text[:200]}")

        await asyncio.gather(
            *(worker(max(1, requests // 10 // concurrency)) for _ in range(concurrency))
        )
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
        done = requests // concurrency * concurrency
        return (time.process_time() - cpu) / done, (time.perf_counter() - wall) / done


async def run(options: argparse.Namespace) -> None:
    import vsense
    from vsense.kit.gc_tuning import tune_for_server

    print(f"vsense from {Path(vsense.__file__).parent}", flush=True)
    url = options.database_url
    results: dict[tuple[str, str], tuple[float, float]] = {}
    async with contextlib.AsyncExitStack() as stack:
        built = await stack.enter_async_context(in_process(url, options.pool, "vsense-cpu-"))
        transport = httpx.ASGITransport(app=built.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            devices = await onboard(client, built.admin, options.devices)
            rules = await add_rules(client, built.admin, devices, options.rules)
        apps: dict[str, Callable[..., Any]] = {"ceiling": ceiling_app}
        if not options.no_lean:
            apps["lean"] = await stack.enter_async_context(lean_app(built.driver_url, options.pool))
        apps["vsense"] = built.app
        tune_for_server()  # the collector as `vsense serve` tunes it (the lean app shares it)
        for _ in range(options.rounds):
            for kind in options.scenarios:
                requests = options.requests // (10 if kind in BATCHES else 1)
                if kind == "rules":
                    await toggle_rules(built.app, built.admin, rules, True)
                    # One batch per device first: the rules that fire do so here, and the
                    # measured requests are the steady state that (e) measures.
                    await load(built.app, kind, devices, len(devices), 1)
                for name, target in apps.items():
                    if kind == "rules" and name == "lean":
                        continue  # the lean reference has no alert rules
                    cpu, wall = await load(target, kind, devices, requests, options.concurrency)
                    best = results.get((name, kind))
                    if best is None or cpu < best[0]:
                        results[(name, kind)] = (cpu, wall)
                if kind == "rules":
                    await toggle_rules(built.app, built.admin, rules, False)
    print(
        f"\nCPU per request, best of {options.rounds} rounds of {options.requests} requests, "
        f"{options.concurrency} in flight ({'PostgreSQL' if url else 'SQLite'})"
    )
    print(f"{'scenario':<10} {'ceiling µs':>10} {'lean µs':>9} {'vsense µs':>10} "
          f"{'lean server µs':>14} {'vsense server µs':>16} {'vs lean':>8}")  # fmt: skip
    for kind in options.scenarios:
        ceiling = results[("ceiling", kind)][0] * 1e6
        mine = results[("vsense", kind)][0] * 1e6
        if ("lean", kind) in results:
            lean = results[("lean", kind)][0] * 1e6
            lean_cells = (
                f"{lean:>9,.0f}",
                f"{lean - ceiling:>14,.0f}",
                f"{(lean - ceiling) / (mine - ceiling):>8.2f}",
            )
        else:
            lean_cells = (f"{'-':>9}", f"{'-':>14}", f"{'-':>8}")
        print(
            f"{kind:<10} {ceiling:>10,.0f} {lean_cells[0]} {mine:>10,.0f} {lean_cells[1]} "
            f"{mine - ceiling:>16,.0f} {lean_cells[2]}"
        )
    if ("vsense", "rules") in results and ("vsense", "batch") in results:
        without = results[("vsense", "batch")][0] - results[("ceiling", "batch")][0]
        enabled = results[("vsense", "rules")][0] - results[("ceiling", "rules")][0]
        print(
            f"\nalert rules: {options.rules:,} enabled cost {(enabled - without) * 1e6:,.0f} µs "
            f"of server CPU per batch request, {1 - without / enabled:.1%} of it (ingest.py's "
            f"(e) against (c); target <= 15 %)"
        )


@contextlib.asynccontextmanager
async def lean_app(lean_url: str, pool: int) -> AsyncIterator[Any]:
    """The lean reference (`ingest_lean.py`) over the same database, running."""
    os.environ["BENCH_LEAN_DATABASE_URL"] = lean_url
    os.environ["BENCH_LEAN_POOL_SIZE"] = str(pool)
    import ingest_lean

    ingest_lean.store = ingest_lean.make_store(lean_url)
    async with ingest_lean.lifespan(ingest_lean.app):
        yield ingest_lean.app


def main(argv: Sequence[str] | None = None) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database-url", help="PostgreSQL (dropped and recreated); else SQLite")
    parser.add_argument("--devices", type=int, default=64)
    parser.add_argument("--requests", type=int, default=640)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--scenarios",
        type=lambda text: text.split(","),
        default=["keepalive", "single", "batch"],
        help="comma-separated, of keepalive,single,batch,rules (one alone to profile it)",
    )
    parser.add_argument(
        "--rules",
        type=int,
        default=0,
        help="alert rules over the devices (those of ingest.py's scenario e), enabled only "
        "for the scenario `rules` (batches), which is then added to the scenarios",
    )
    parser.add_argument(
        "--pool", type=int, default=8, help="connections of vsense and of the lean app each"
    )
    parser.add_argument(
        "--no-lean",
        action="store_true",
        help="leave out the lean reference (an older vsense's schema may not suit it)",
    )
    options = parser.parse_args(argv)
    if options.rules and "rules" not in options.scenarios:
        options.scenarios.append("rules")
    if "rules" in options.scenarios and not options.rules:
        parser.error("the scenario `rules` needs --rules N")
    asyncio.run(run(options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
