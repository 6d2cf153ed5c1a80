"""CPU of one webhook claim in the process, on an empty queue: the fixed cost that every
wake-up of a dispatcher pays (one per NOTIFY and per outcome batch at low load).

    .venv/bin/python bench/webhook_claim_cost.py                      # SQLite, a temporary file
    .venv/bin/python bench/webhook_claim_cost.py postgresql+asyncpg://postgres@127.0.0.1:5432/DB

The database is made afresh and migrated first (PostgreSQL: the named database is
dropped and created again).
Prints the best and every round of 5 x 100 claims, each in its own write transaction as
the dispatcher runs it, after 20 to warm up.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import timedelta

from harness import migrated_components
from vsense.db import session_scope
from vsense.kit.time import utcnow
from vsense.webhooks import queue_repository


async def main(url: str) -> None:
    async with migrated_components(url or None, "vsense-claim-cost-") as state:

        async def once() -> None:
            async with session_scope(state.database.sessionmaker) as session:
                await queue_repository.claim(
                    session, utcnow(), timedelta(seconds=60), 200, per_webhook=16, per_device=8
                )

        for _ in range(20):
            await once()
        rounds = []
        for _ in range(5):
            started = time.process_time()
            for _ in range(100):
                await once()
            rounds.append((time.process_time() - started) / 100 * 1e6)
    print(
        f"{url or 'sqlite'}: empty claim, CPU per call (its transaction included): "
        f"best {min(rounds):,.0f} µs, rounds {[round(r) for r in rounds]}"
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else ""))
