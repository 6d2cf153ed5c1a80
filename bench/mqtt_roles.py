"""The two subscribers `mqtt.py` measures vsense against, each run as a subprocess of its
own (as the server is), so that none shares a Python process with the publishers:

- `lean`: the same stack doing the same work leanly. `--subscribers` aiomqtt
  connections of the share group, manual acknowledgement, a receive maximum of
  `--receive-maximum`; each takes what is ready (up to `--batch`), inserts the raw
  payloads in one transaction (asyncpg `executemany` on PostgreSQL, `executemany` of
  the standard sqlite3 module on SQLite, in a thread) and acknowledges each message after
  the commit.
- `bare`: the broker's ceiling. The same subscribers, connections and loop as `lean`,
  acknowledging each batch as soon as it is taken, storing nothing: what the broker
  delivers to the same subscribers on this machine.

Each prints `ready` once subscribed, then, when no message came for `--idle` seconds
after the first, one JSON line: messages received, the monotonic times of the first
and the last (stored, for `lean`), and the CPU seconds it used since `ready`.

    .venv/bin/python bench/mqtt_roles.py bare --group G --port 1883
    .venv/bin/python bench/mqtt_roles.py lean --group G --database postgresql://...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import time
import uuid
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

TOPICS = ("vsense/+/keepalive", "vsense/+/payloads")
LEAN_TABLE = "bench_lean_messages"


class Tally:
    def __init__(self) -> None:
        self.count = 0
        self.first: float | None = None
        self.last = 0.0
        self.cpu_at_ready = 0.0  # the process's CPU seconds once subscribed

    def ready(self) -> None:
        self.cpu_at_ready = time.process_time()
        print("ready", flush=True)

    def add(self, count: int) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = now
        self.count += count
        self.last = now


async def until_idle(tally: Tally, idle: float) -> None:
    while tally.first is None or time.monotonic() - tally.last < idle:  # noqa: ASYNC110
        await asyncio.sleep(0.1)  # a poll: the tally is bumped per message, not signalled


def client(port: int, identifier: str, receive_maximum: int | None) -> aiomqtt.Client:
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    if receive_maximum:
        properties.ReceiveMaximum = receive_maximum
    return aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier=identifier,
        protocol=aiomqtt.ProtocolVersion.V5,
        properties=properties,
    )


async def subscribe(mqtt: aiomqtt.Client, group: str) -> None:
    for topic in TOPICS:
        await mqtt.subscribe(f"$share/{group}/{topic}", qos=1)


class Store:
    """Raw payloads into one table, one transaction per batch."""

    async def open(self, options: argparse.Namespace) -> None:
        self.sqlite: sqlite3.Connection | None = None
        if options.database.startswith("postgresql"):
            import asyncpg  # type: ignore[import-untyped]

            self.pool = await asyncpg.create_pool(
                options.database, min_size=options.subscribers, max_size=options.subscribers
            )
            await self.pool.execute(
                f"CREATE TABLE IF NOT EXISTS {LEAN_TABLE} "
                "(id bigserial PRIMARY KEY, topic text NOT NULL, body jsonb, "
                "received_at timestamptz NOT NULL DEFAULT now())"
            )
        else:
            self.sqlite = sqlite3.connect(
                options.database, check_same_thread=False, isolation_level=None
            )
            self.sqlite.execute("PRAGMA journal_mode=WAL")
            self.sqlite.execute("PRAGMA synchronous=NORMAL")
            self.sqlite.execute(
                f"CREATE TABLE IF NOT EXISTS {LEAN_TABLE} (id INTEGER PRIMARY KEY, "
                "topic TEXT NOT NULL, body TEXT, received_at TEXT DEFAULT CURRENT_TIMESTAMP)"
            )
            self.lock = asyncio.Lock()

    async def insert(self, rows: list[tuple[str, str]]) -> None:
        if self.sqlite is None:
            async with self.pool.acquire() as connection, connection.transaction():
                await connection.executemany(
                    f"INSERT INTO {LEAN_TABLE} (topic, body) VALUES ($1, $2::jsonb)", rows
                )
            return
        async with self.lock:  # one writer, as SQLite has
            await asyncio.to_thread(self._sqlite_insert, rows)

    def _sqlite_insert(self, rows: list[tuple[str, str]]) -> None:
        assert self.sqlite is not None
        self.sqlite.execute("BEGIN IMMEDIATE")
        self.sqlite.executemany(f"INSERT INTO {LEAN_TABLE} (topic, body) VALUES (?, ?)", rows)
        self.sqlite.execute("COMMIT")

    async def close(self) -> None:
        if self.sqlite is None:
            await self.pool.close()
        else:
            self.sqlite.close()


async def bare(options: argparse.Namespace) -> Tally:
    return await subscribers(options, None)


async def lean(options: argparse.Namespace) -> Tally:
    store = Store()
    await store.open(options)
    try:
        return await subscribers(options, store)
    finally:
        await store.close()


async def subscribers(options: argparse.Namespace, store: Store | None) -> Tally:
    """`--subscribers` connections of the share group, each taking what is ready (up to
    `--batch`), storing it when there is a store, then acknowledging each message."""
    tally = Tally()
    run = uuid.uuid4().hex[:8]
    role = "bare" if store is None else "lean"
    clients = [
        client(options.port, f"bench-{role}-{run}-{n}", options.receive_maximum)
        for n in range(options.subscribers)
    ]

    async def subscriber(mqtt: aiomqtt.Client) -> None:
        queue = mqtt._queue
        async for first in mqtt.messages:
            batch = [first]
            while len(batch) < options.batch:
                try:
                    batch.append(queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            if store is not None:
                await store.insert([(str(m.topic), bytes(m.payload).decode()) for m in batch])  # type: ignore[arg-type]
            for message in batch:
                mqtt._client.ack(message.mid, message.qos)
            tally.add(len(batch))

    try:
        for mqtt in clients:
            await mqtt.__aenter__()
            mqtt._client.manual_ack_set(True)
            await subscribe(mqtt, options.group)
        tally.ready()
        tasks = [asyncio.create_task(subscriber(mqtt)) for mqtt in clients]
        await until_idle(tally, options.idle)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for mqtt in clients:
            await mqtt.__aexit__(None, None, None)
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("role", choices=("bare", "lean"))
    parser.add_argument("--group", required=True)
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--database", default="")
    parser.add_argument("--subscribers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--receive-maximum", type=int, default=1000)
    parser.add_argument("--idle", type=float, default=3.0)
    options = parser.parse_args(argv)
    role: Any = bare if options.role == "bare" else lean
    try:
        import uvloop

        tally = uvloop.run(role(options))
    except ImportError:
        tally = asyncio.run(role(options))
    cpu = time.process_time() - tally.cpu_at_ready
    print(
        json.dumps({"count": tally.count, "first": tally.first, "last": tally.last, "cpu": cpu}),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
