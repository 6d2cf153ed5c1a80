"""CPU time per MQTT message in one process: the bridge's batch handler, next to the lean
reference of `mqtt_roles.py`, over the same database, no broker in between.

`bench/mqtt.py` measures the bridge through a broker, where the rate swings with what
the publishers and the broker take of the machine's two cores. This one measures only
what the bridge adds per message: it builds a server process's parts (`Components`,
no background jobs), seeds `--devices` online VCZ devices, then hands the handler
(`MqttBridge.handler`, the one the subscribers share) `--messages` messages in
batches of `--batch`, from `--subscribers` concurrent loops as the subscribers do, the
messages of `bench/mqtt.py`'s load (keepalives and one-message VCZ payloads in turn).
The lean reference inserts the same messages raw, in the same batches, with the
driver (`mqtt_roles.Store`). It reports the process's CPU microseconds per message,
best of `--rounds`; the broker's side (receiving, acknowledging) is in neither.

    .venv/bin/python bench/mqtt_cpu.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench_x
    BENCH_SERVER_PYTHONPATH=<old src> ...   (this script then imports that `vsense`)

The database is dropped and recreated (PostgreSQL) or made in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

SERVER_PYTHONPATH = os.environ.get("BENCH_SERVER_PYTHONPATH")
if SERVER_PYTHONPATH:
    sys.path.insert(0, SERVER_PYTHONPATH)

from harness import migrated_settings, seed  # noqa: E402
from mqtt import device_message, seed_devices  # noqa: E402
from mqtt_roles import Store  # noqa: E402


async def timed(
    handle: Callable[[list[tuple[str, bytes]]], Awaitable[None]],
    messages: Sequence[tuple[str, bytes]],
    batch: int,
    subscribers: int,
) -> float:
    """CPU seconds per message for handling `messages` in batches, `subscribers` at once."""
    batches = [list(messages[i : i + batch]) for i in range(0, len(messages), batch)]
    turn = iter(batches)

    async def subscriber() -> None:
        for one in turn:
            await handle(one)

    cpu = time.process_time()
    await asyncio.gather(*(subscriber() for _ in range(subscribers)))
    return (time.process_time() - cpu) / len(messages)


async def run(options: argparse.Namespace) -> None:
    import vsense
    from vsense.components import Components
    from vsense.gateway.mqtt_batch import Incoming
    from vsense.gateway.service import CommandJson
    from vsense.kit.gc_tuning import tune_for_server

    print(f"vsense from {Path(vsense.__file__).parent}", flush=True)
    url = options.database_url
    async with migrated_settings(
        url, "vsense-mqtt-cpu-", "development", mqtt_url="mqtt://127.0.0.1:1883"
    ) as settings:
        await seed(settings.data_dir, url, 0)
        devices = await seed_devices(settings.data_dir, url, options.devices)
        components = Components.for_server(settings)
        handler = components.mqtt_bridge().handler
        lean = Store()
        lean_url = url.replace("postgresql+asyncpg", "postgresql") if url else ""
        await lean.open(
            argparse.Namespace(
                database=lean_url or str(settings.data_dir / "lean.db"),
                subscribers=options.subscribers,
            )
        )

        async def publish(device: Any, commands: list[CommandJson]) -> None:
            return None  # no command is queued for these devices

        async def vsense_handle(batch: list[tuple[str, bytes]]) -> None:
            await handler.handle([Incoming(topic, raw) for topic, raw in batch], publish)

        async def lean_handle(batch: list[tuple[str, bytes]]) -> None:
            await lean.insert([(topic, raw.decode()) for topic, raw in batch])

        counter = itertools.count()
        results: dict[str, float] = {}
        tune_for_server()
        try:
            for _ in range(options.rounds):
                for name, handle in (("lean", lean_handle), ("vsense", vsense_handle)):
                    messages = [
                        device_message(next(counter), devices) for _ in range(options.messages)
                    ]
                    cpu = await timed(handle, messages, options.batch, options.subscribers)
                    results[name] = min(results.get(name, cpu), cpu)
        finally:
            await lean.close()
            await components.engine.dispose()
    lean_us, vsense_us = results["lean"] * 1e6, results["vsense"] * 1e6
    print(
        f"\nCPU per message, best of {options.rounds} rounds of {options.messages:,} messages, "
        f"batches of {options.batch}, {options.subscribers} at once "
        f"({'PostgreSQL' if url else 'SQLite'}, {options.devices} devices)\n"
        f"  lean {lean_us:,.0f} µs   vsense {vsense_us:,.0f} µs   vs lean {lean_us / vsense_us:.2f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database-url", help="PostgreSQL (dropped and recreated); else SQLite")
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--subscribers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args(argv)
    asyncio.run(run(options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
