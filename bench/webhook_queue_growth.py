"""The delivery queue's statements as its tables grow from empty (PostgreSQL).

A queue starts empty, and its tables swing to a large backlog in seconds. PostgreSQL
switches a prepared statement to a generic plan after five executions; a generic plan
made while the tables were small stays in use until their statistics are gathered
again, which may be never where autovacuum is off (as on the machines these
benchmarks run on). This bench shows what that costs the dispatcher's outcome writes,
and what planning them for each call (`queue_repository.outcomes_transaction`) buys.

    .venv/bin/python bench/webhook_queue_growth.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench_queue_growth

Each mode runs on a fresh database (dropped and recreated), migrated, with 100 devices
and a webhook each, its tables vacuumed and analyzed while empty (as after a fresh
install, or the webhook bench's clearing). Then, cycle after cycle, as the platform and
the dispatcher do it: 100 events queued (`Outbox.emit_many`, one transaction), claimed
(`queue_repository.claim`, one transaction) and their outcomes written as sent with
success (`queue_repository.record_outcomes`, one transaction); no HTTP. Printed per
round of cycles: the deliveries in the table, and the wall time of an emit, a claim and
an outcome write (the database is on this machine: its CPU is most of it).

Modes: `per call` writes the outcomes in `outcomes_transaction`, as the dispatcher
does; `generic plans` with `synchronous_commit` off only, as it did before. The claims
run as the dispatcher runs them (generic plans allowed) in both.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import httpx

from harness import in_process
from ingest_cpu import onboard

BASE = "http://bench"
DEVICES = 100


async def fleet(app: Any, admin: str) -> list[uuid.UUID]:
    """100 devices (as `ingest_cpu.py` onboards them), a payload webhook each (never
    called: no outcome here is sent)."""
    headers = {"Authorization": f"Bearer {admin}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        devices = [uuid.UUID(device) for device, _ in await onboard(client, admin, DEVICES)]
        for n, device in enumerate(devices):
            hooked = await client.post(
                "/api/v1/webhooks",
                params={"device_uuid": str(device)},
                json={"url": f"https://receiver.example/{n}", "webhook_type": "payload"},
                headers=headers,
            )
            assert hooked.status_code == 201, hooked.text
    return devices


async def run_mode(
    url: str, mode: str, rounds: int, cycles: int
) -> list[tuple[int, float, float, float]]:
    from sqlalchemy import text

    from vsense.components import Components
    from vsense.db import session_scope
    from vsense.kit.time import utcnow
    from vsense.webhooks import queue_repository
    from vsense.webhooks.domain import DeliveryOutcome, DeliveryStatus

    async with in_process(url, 4, "vsense-queue-growth-") as bench:
        devices = await fleet(bench.app, bench.admin)
        state = Components.for_server(bench.settings)
        async with state.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(
                text("VACUUM ANALYZE webhook_events, webhook_deliveries, webhook_attempts")
            )

        async def settings(session: Any) -> None:
            if mode == "per call":
                await queue_repository.outcomes_transaction(session)
            else:
                # As the outcome write was set before it asked for plans made per call.
                await session.execute(text("SELECT set_config('synchronous_commit', 'off', true)"))

        async def timed(work: Awaitable[Any]) -> tuple[Any, float]:
            started = time.perf_counter()
            result = await work
            return result, (time.perf_counter() - started) * 1000

        lease = state.settings.webhook_timeout * 2

        async def claim() -> Any:
            async with session_scope(state.database.sessionmaker) as session:
                return await queue_repository.claim(
                    session, utcnow(), lease, 200, per_webhook=16, per_device=8
                )

        async def write(outcomes: list[Any]) -> None:
            async with session_scope(state.database.sessionmaker) as session:
                await settings(session)
                await queue_repository.record_outcomes(session, outcomes)

        body = {"payload": "x" * 200}

        async def emit() -> None:
            async with session_scope(state.database.sessionmaker) as session:
                await state.outbox.emit_many(
                    session, [(device, "payload", body) for device in devices]
                )

        results = []
        for _ in range(rounds):
            emits, claims, writes = [], [], []
            for _ in range(cycles):
                _, spent = await timed(emit())
                emits.append(spent)
                claimed, spent = await timed(claim())
                claims.append(spent)
                now = utcnow()
                outcomes = [
                    DeliveryOutcome(
                        c.delivery_id,
                        c.webhook_id,
                        c.device_uuid,
                        DeliveryStatus.SUCCEEDED,
                        True,
                        None,
                        now,
                        200,
                        12.5,
                    )
                    for c in claimed
                ]

                _, spent = await timed(write(outcomes))
                writes.append(spent)
            async with session_scope(state.database.sessionmaker) as session:
                rows = await session.scalar(text("SELECT count(*) FROM webhook_deliveries"))
            medians = (statistics.median(m) for m in (emits, claims, writes))
            results.append((int(rows or 0), *medians))
        await state.engine.dispose()
    return results


async def main(options: argparse.Namespace) -> None:
    modes = {}
    for mode in ("per call", "generic plans"):
        modes[mode] = await run_mode(options.database_url, mode, options.rounds, options.cycles)
    print(
        f"\nThe delivery queue from empty: {options.rounds} rounds of {options.cycles} cycles "
        f"(100 events queued, claimed, outcomes written), median ms per emit (the outbox's "
        "transaction, in the first mode) / claim / outcome write"
    )
    print(
        "| deliveries in the table | emit | claim, per call | write, per call "
        "| claim, generic plans | write, generic plans |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for (rows, emit, claim, write), (_, _, gclaim, gwrite) in zip(
        modes["per call"], modes["generic plans"], strict=True
    ):
        cells = (emit, claim, write, gclaim, gwrite)
        print(f"| {rows:,} | " + " | ".join(f"{ms:.1f}" for ms in cells) + " |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/bench_queue_growth",
        help="PostgreSQL (dropped and recreated)",
    )
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--cycles", type=int, default=50)
    asyncio.run(main(parser.parse_args()))
