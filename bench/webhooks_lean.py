"""The lean same-stack reference of the webhook benchmark: a minimal claimer.

What vsense's dispatcher does, with nothing around it: claim a batch of due deliveries
with one prepared statement (`FOR UPDATE SKIP LOCKED`, the event body and the URL
returned by the same statement), sign and POST each with one aiohttp `ClientSession`
(at most `IN_FLIGHT` at once, the webhook timeout on each), and write the outcomes back
in batches (one `UPDATE ... FROM unnest(...)` for the deliveries, one `INSERT ... SELECT
FROM unnest(...)` for the attempts). It wakes on the dispatcher's NOTIFY channel, and
looks every second otherwise. No retry schedule, no ordering per device, no
per-endpoint cap, no breaker: the figure of what this stack does when the code is lean.

PostgreSQL through asyncpg; SQLite through the standard `sqlite3` module on one thread
(what `aiosqlite` does under SQLAlchemy), looking at the queue every `SQLITE_POLL` s.

    .venv/bin/python bench/webhooks_lean.py postgresql://postgres@127.0.0.1/db 5
    .venv/bin/python bench/webhooks_lean.py sqlite:///path/to/vsense.db 5

It prints `lean claimer delivering` once ready, and runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import signal
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg  # type: ignore[import-untyped]

from harness import event_loop_runner

BATCH = 200
IN_FLIGHT = 256
LEASE = 60  # seconds
SQLITE_POLL = 0.05
CHANNEL = "vsense_webhooks"

PG_CLAIM = """
WITH c AS (
    SELECT id FROM webhook_deliveries
    WHERE status = 'pending' AND next_attempt_at <= now()
      AND (lease_until IS NULL OR lease_until < now())
    ORDER BY next_attempt_at, id LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_deliveries AS d SET lease_until = now() + interval '60 seconds'
FROM c, webhook_events AS e, webhooks AS w
WHERE d.id = c.id AND e.id = d.event_id AND w.id = d.webhook_id
RETURNING d.id, w.url, w.secret, e.msg_id, e.body
"""
PG_DELIVERIES = """
UPDATE webhook_deliveries AS d SET status = v.status, attempts = d.attempts + 1,
    lease_until = NULL, next_attempt_at = NULL, last_attempt_at = v.at, last_status_code = v.code
FROM unnest($1::bigint[], $2::varchar[], $3::timestamptz[], $4::int[]) AS v(id, status, at, code)
WHERE d.id = v.id
"""
PG_ATTEMPTS = """
INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, duration_ms, response_head)
SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::int[], $4::float8[], $5::text[])
"""
SQLITE_CLAIM = """
UPDATE webhook_deliveries SET lease_until = ?
WHERE id IN (
    SELECT id FROM webhook_deliveries
    WHERE status = 'pending' AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?)
    ORDER BY next_attempt_at, id LIMIT ?
)
RETURNING id, event_id, webhook_id
"""
SQLITE_DELIVERIES = """
UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, lease_until = NULL,
    next_attempt_at = NULL, last_attempt_at = ?, last_status_code = ? WHERE id = ?
"""
SQLITE_ATTEMPTS = """
INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, duration_ms, response_head)
VALUES (?, ?, ?, ?, ?)
"""

Claimed = tuple[int, str, str, str, str]  # delivery, url, secret, msg_id, body
Outcome = tuple[int, str, datetime, int | None, float, str]


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


class Lean:
    """Claim, send, write back; `claim` and `write` are the database's."""

    def __init__(
        self,
        claim: Callable[[int], Awaitable[list[Claimed]]],
        write: Callable[[list[Outcome]], Awaitable[None]],
        timeout: float,
    ) -> None:
        self.claim, self.write = claim, write
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.wakeup = asyncio.Event()
        self.room = asyncio.Event()
        self.in_flight = 0
        self.results: list[Outcome] = []
        self.ready = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self, http: aiohttp.ClientSession, poll: float) -> None:
        writer = asyncio.create_task(self.write_loop())
        try:
            while True:
                room = min(BATCH, IN_FLIGHT - self.in_flight)
                if room <= 0:
                    self.room.clear()
                    await self.room.wait()
                    continue
                claimed = await self.claim(room)
                for item in claimed:
                    self.in_flight += 1
                    task = asyncio.create_task(self.send(http, item))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
                if not claimed:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(poll):
                            await self.wakeup.wait()
                    self.wakeup.clear()
        finally:
            writer.cancel()

    async def send(self, http: aiohttp.ClientSession, item: Claimed) -> None:
        delivery, url, secret, msg_id, text = item
        body = text.encode()
        now = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(now),
            "webhook-signature": sign(secret, msg_id, now, body),
        }
        at, started = datetime.now(UTC), time.perf_counter()
        code: int | None = None
        head = ""
        try:
            async with http.post(
                url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False
            ) as response:
                head = (await response.content.read(2048)).decode("utf-8", "replace")
                code = response.status
        except (aiohttp.ClientError, OSError):
            pass
        status = "succeeded" if code is not None and 200 <= code < 300 else "failed"
        self.results.append((delivery, status, at, code, time.perf_counter() - started, head))
        self.in_flight -= 1
        self.room.set()
        self.ready.set()

    async def write_loop(self) -> None:
        while True:
            await self.ready.wait()
            self.ready.clear()
            await asyncio.sleep(0.005)
            batch, self.results = self.results, []
            if batch:  # taken by the write before
                await self.write(batch)
                self.wakeup.set()


async def postgres(dsn: str, seconds: float, started: Callable[[], None]) -> None:
    async def setup(connection: Any) -> None:
        await connection.execute("SET synchronous_commit = off")

    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=2, init=setup)
    listener = await asyncpg.connect(dsn)

    async def claim(limit: int) -> list[Claimed]:
        async with pool.acquire() as connection:
            return [tuple(row) for row in await connection.fetch(PG_CLAIM, limit)]

    async def write(batch: list[Outcome]) -> None:
        columns = list(zip(*batch, strict=True))
        async with pool.acquire() as connection, connection.transaction():
            await connection.execute(PG_DELIVERIES, columns[0], columns[1], columns[2], columns[3])
            await connection.execute(
                PG_ATTEMPTS, columns[0], columns[2], columns[3], columns[4], columns[5]
            )

    lean = Lean(claim, write, seconds)
    await listener.add_listener(CHANNEL, lambda *_: lean.wakeup.set())
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=IN_FLIGHT)) as http:
        started()
        await lean.run(http, 1.0)


def _stamp(moment: datetime) -> str:
    # SQLAlchemy's SQLite datetime storage: naive UTC, ISO with a space.
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


async def sqlite(path: str, seconds: float, started: Callable[[], None]) -> None:
    thread = ThreadPoolExecutor(1)
    loop = asyncio.get_running_loop()
    connection = await loop.run_in_executor(
        thread, lambda: sqlite3.connect(path, check_same_thread=False, timeout=30)
    )
    await loop.run_in_executor(thread, connection.execute, "PRAGMA journal_mode=WAL")

    def claim_now(limit: int) -> list[Claimed]:
        now = datetime.now(UTC)
        with connection:
            rows = connection.execute(
                SQLITE_CLAIM,
                (_stamp(now + timedelta(seconds=LEASE)), _stamp(now), _stamp(now), limit),
            ).fetchall()
        if not rows:
            return []
        events = {r[1] for r in rows}
        webhooks = {r[2] for r in rows}
        marks = lambda items: ",".join("?" * len(items))  # noqa: E731
        bodies = dict(
            (i, (m, b))
            for i, m, b in connection.execute(
                f"SELECT id, msg_id, body FROM webhook_events WHERE id IN ({marks(events)})",
                tuple(events),
            )
        )
        targets = dict(
            (i, (u, s))
            for i, u, s in connection.execute(
                f"SELECT id, url, secret FROM webhooks WHERE id IN ({marks(webhooks)})",
                tuple(webhooks),
            )
        )
        return [(r[0], *targets[r[2]], *bodies[r[1]]) for r in rows]

    def write_now(batch: list[Outcome]) -> None:
        with connection:
            connection.executemany(
                SQLITE_DELIVERIES, [(s, _stamp(at), code, d) for d, s, at, code, _, _ in batch]
            )
            connection.executemany(
                SQLITE_ATTEMPTS,
                [(d, _stamp(at), code, ms, head) for d, _, at, code, ms, head in batch],
            )

    async def claim(limit: int) -> list[Claimed]:
        return await loop.run_in_executor(thread, claim_now, limit)

    async def write(batch: list[Outcome]) -> None:
        await loop.run_in_executor(thread, write_now, batch)

    lean = Lean(claim, write, seconds)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=IN_FLIGHT)) as http:
        started()
        await lean.run(http, SQLITE_POLL)


async def main(url: str, seconds: float) -> None:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)

    def started() -> None:
        print("lean claimer delivering", flush=True)

    with contextlib.suppress(asyncio.CancelledError):
        if url.startswith("sqlite:///"):
            await sqlite(url.removeprefix("sqlite:///"), seconds, started)
        else:
            await postgres(url, seconds, started)


if __name__ == "__main__":
    event_loop_runner(main(sys.argv[1], float(sys.argv[2])))  # uvloop, as `vsense worker`
