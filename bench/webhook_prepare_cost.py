"""CPU of preparing a claim's deliveries in the process: reading the events and the
webhooks that their attempts need (`dispatcher.prepare`), for claims of 50 to 200
deliveries over 100 webhooks. Every claimed delivery pays it once, before its request.

    .venv/bin/python bench/webhook_prepare_cost.py                      # SQLite, a temporary file
    .venv/bin/python bench/webhook_prepare_cost.py postgresql+asyncpg://postgres@127.0.0.1:5432/DB

The database is made afresh and migrated first (PostgreSQL: the named database is
dropped and created again), then 2,000 events are queued to 100 webhooks. Prints the
best and every round of 5 x 50 prepares, each in its own transaction as the dispatcher
runs it, after 10 to warm up.
On PostgreSQL the lean reference reads the same columns of the same rows with asyncpg
alone (one prepared statement per table, `= ANY($1)`), and the ratio lean / vsense is
printed; `BENCH_SERVER_PYTHONPATH` is not used: run older code with `PYTHONPATH`.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import insert

from harness import migrated_components, seed_payload_webhooks
from vsense.db import session_scope
from vsense.kit.json_text import json_text
from vsense.kit.time import utcnow
from vsense.models import Organization
from vsense.webhooks import dispatcher, queue_repository
from vsense.webhooks.domain import Claimed, NewEvent
from vsense.webhooks.events import payload_body

WEBHOOKS = 100
EVENTS = 2000
SIZES = [50 + (n * 37) % 151 for n in range(50)]  # claims of 50 to 200 deliveries
LEAN_EVENTS = "SELECT id, msg_id, type, body FROM webhook_events WHERE id = ANY($1)"
LEAN_WEBHOOKS = (
    "SELECT id, status, method, url, params, headers, secret, previous_secret,"
    " previous_secret_until FROM webhooks WHERE id = ANY($1)"
)


async def seed(state: Any) -> list[Claimed]:
    """100 devices with a webhook each, and 2,000 payload events queued to them."""
    now = utcnow()
    async with session_scope(state.database.sessionmaker) as session:
        org = await session.scalar(
            insert(Organization).values(name="Bench").returning(Organization.id)
        )
        assert org is not None
        urls = [f"http://127.0.0.1:9/{n}" for n in range(WEBHOOKS)]
        targets = await seed_payload_webhooks(session, org, urls, "d")
        events = []
        for n in range(EVENTS):
            device, webhook = targets[n % WEBHOOKS]
            body = payload_body(device, "VCZ", int(now.timestamp()), {"count": n}, 1)
            events.append(
                NewEvent(
                    org, device, "payload", f"msg_{uuid.uuid4().hex}", json_text(body), [webhook]
                )
            )
        ids = await queue_repository.enqueue(session, events, now, now + timedelta(hours=1))
        return await queue_repository.leased(session, ids)


async def rounds_of(
    once: Callable[[Sequence[Claimed]], Awaitable[None]], claimed: list[Claimed]
) -> list[float]:
    """CPU µs per prepare, per round of len(SIZES) claims."""

    def claim(n: int) -> list[Claimed]:
        start = (n * 200) % (len(claimed) - 200)
        return claimed[start : start + SIZES[n % len(SIZES)]]

    for n in range(10):
        await once(claim(n))
    rounds = []
    for _ in range(5):
        started = time.process_time()
        for n in range(len(SIZES)):
            await once(claim(n))
        rounds.append((time.process_time() - started) / len(SIZES) * 1e6)
    return rounds


async def main(url: str) -> None:
    async with migrated_components(url or None, "vsense-prepare-cost-") as state:
        claimed = await seed(state)

        async def vsense(batch: Sequence[Claimed]) -> None:
            async with session_scope(state.database.sessionmaker) as session:
                await dispatcher.prepare(session, batch, utcnow())

        mine = await rounds_of(vsense, claimed)
    lean: list[float] = []
    if url.startswith("postgresql"):
        connection = await asyncpg.connect(url.replace("+asyncpg", ""))
        events = await connection.prepare(LEAN_EVENTS)
        webhooks = await connection.prepare(LEAN_WEBHOOKS)

        async def bare(batch: Sequence[Claimed]) -> None:
            async with connection.transaction():
                await events.fetch(sorted({c.event_id for c in batch}))
                await webhooks.fetch(sorted({c.webhook_id for c in batch}))

        lean = await rounds_of(bare, claimed)
        await connection.close()
    mean = sum(SIZES) / len(SIZES)
    print(
        f"{url or 'sqlite'}: prepare of a claim ({mean:.0f} deliveries on average), CPU per "
        f"call (its transaction included): vsense best {min(mine):,.0f} µs, rounds "
        f"{[round(r) for r in mine]}"
    )
    if lean:
        print(
            f"lean (asyncpg alone) best {min(lean):,.0f} µs, rounds {[round(r) for r in lean]}; "
            f"lean / vsense {min(lean) / min(mine):.2f}"
        )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else ""))
