"""CPU time per snapshot in one process: vsense and the lean reference called over ASGI
with the same concurrent snapshots, no network in between.

`images.py` times request to ready through real HTTP, where the figure swings with the
machine's other load. What a snapshot costs the server's process moves far less: this
builds the app (`create_app(settings, background=False)`, its lifespan run) over a fresh
database, onboards `--devices` devices through the API and keeps each alive once. Then,
for each server and round, every device is in its long poll on `GET /device/v1/commands`
while one `POST /api/v1/devices/{uuid}/image` per device is sent at once; each device
uploads a prepared JPEG as the raw and the annotated image, reports its result, and both
signed links are read until they serve the bytes (the steps of `images.py` (a), the
same for both servers). The process's CPU time divided by the snapshots is the figure;
`vs lean` divides the lean reference's by vsense's (1.0: as lean as the reference). The
client's own CPU is in both alike.

    .venv/bin/python bench/images_cpu.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench_x
    .venv/bin/python bench/images_cpu.py                      (SQLite)
    .venv/bin/python bench/images_cpu.py --profile out.prof   (cProfile of vsense's rounds)
    BENCH_SERVER_PYTHONPATH=<old src> ...   (this script then imports that `vsense`)

The database is dropped and recreated (PostgreSQL) or made in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import os
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

SERVER_PYTHONPATH = os.environ.get("BENCH_SERVER_PYTHONPATH")
if SERVER_PYTHONPATH:
    sys.path.insert(0, SERVER_PYTHONPATH)

import httpx  # noqa: E402
import orjson  # noqa: E402

from harness import in_process  # noqa: E402
from images import make_jpeg  # noqa: E402

BASE = "http://bench"


async def onboard(client: httpx.AsyncClient, admin: str, count: int) -> list[tuple[str, str]]:
    devices = []
    for n in range(count):
        answer = await client.post(
            "/api/v1/devices",
            json={"name": f"CAM-{n:04d}", "app_type": "VPM", "keepalive_interval": 600},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert answer.status_code == 201, answer.text
        document = answer.json()
        device = (document["uuid"], document["device_token"])
        alive = await client.post(
            "/device/v1/keepalive", headers={"Authorization": f"Bearer {device[1]}"}
        )
        assert alive.status_code == 200, alive.text
        devices.append(device)
    return devices


async def snapshots(app: Any, admin: str, devices: Sequence[tuple[str, str]], image: bytes) -> None:
    """One snapshot of every device at once, each to both links serving the bytes."""
    transport = httpx.ASGITransport(app=app)
    admin_headers = {"Authorization": f"Bearer {admin}"}
    async with httpx.AsyncClient(transport=transport, base_url=BASE, timeout=60) as client:
        polling = [asyncio.Event() for _ in devices]

        async def device(n: int, token: str) -> None:
            headers = {"Authorization": f"Bearer {token}"}
            polling[n].set()
            answer = await client.get("/device/v1/commands?wait=25", headers=headers)
            assert answer.status_code == 200, answer.text
            (command,) = orjson.loads(answer.content)["commands"]
            upload_headers = {**headers, "Content-Type": "image/jpeg"}
            for kind in ("raw", "annotated"):
                url = f"/device/v1/images/{command['request_id']}/{kind}"
                uploaded = await client.put(url, content=image, headers=upload_headers)
                assert uploaded.status_code == 204, uploaded.text
            result = await client.post(
                f"/device/v1/commands/{command['id']}/result", json={"ok": True}, headers=headers
            )
            assert result.status_code in (200, 204), result.text

        async def ask(n: int, uuid: str) -> None:
            answer = await client.post(f"/api/v1/devices/{uuid}/image", headers=admin_headers)
            assert answer.status_code == 200, answer.text
            await waiting[n]
            for link in orjson.loads(answer.content)["data"]:
                while True:
                    served = await client.get(link)
                    if served.status_code == 200 and served.content == image:
                        break
                    assert served.status_code == 202, served.text
                    await asyncio.sleep(0.01)

        waiting = [asyncio.ensure_future(device(n, token)) for n, (_, token) in enumerate(devices)]
        await asyncio.gather(*(event.wait() for event in polling))
        await asyncio.sleep(0.2)  # every device in its long poll
        await asyncio.gather(*(ask(n, uuid) for n, (uuid, _) in enumerate(devices)))


async def run(options: argparse.Namespace) -> None:
    import vsense
    from vsense.kit.gc_tuning import tune_for_server

    print(f"vsense from {Path(vsense.__file__).parent}", flush=True)
    url = options.database_url
    image = make_jpeg(options.image_kb)
    cpu: dict[str, float] = {}
    profile = cProfile.Profile() if options.profile else None
    async with contextlib.AsyncExitStack() as stack:
        built = await stack.enter_async_context(in_process(url, options.pool, "vsense-images-cpu-"))
        app, admin = built.app, built.admin
        await stack.enter_async_context(app.router.lifespan_context(app))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            devices = await onboard(client, admin, options.devices)
        apps: dict[str, Any] = {"vsense": app}
        if not options.no_lean:
            lean = lean_app(built.driver_url, built.data_dir / "lean-images")
            apps["lean"] = await stack.enter_async_context(lean)
        for target in apps.values():
            await snapshots(target, admin, devices, image)  # warm: caches, statements
        tune_for_server()  # as `vsense serve` does once the application is built
        for _ in range(options.rounds):
            for name, target in apps.items():
                gc.collect()  # the garbage of the last round is not this one's
                if profile is not None and name == "vsense":
                    profile.enable()
                started = time.process_time()
                await snapshots(target, admin, devices, image)
                spent = (time.process_time() - started) / len(devices)
                if profile is not None and name == "vsense":
                    profile.disable()
                cpu[name] = min(cpu.get(name, spent), spent)
                if options.verbose:
                    print(f"  {name} {spent * 1e3:,.2f} ms", flush=True)
    if profile is not None:
        profile.dump_stats(options.profile)
    print(
        f"\nCPU per snapshot, best of {options.rounds} rounds of {options.devices} snapshots "
        f"at once, {options.image_kb} KB images ({'PostgreSQL' if url else 'SQLite'})"
    )
    line = f"vsense {cpu['vsense'] * 1e3:,.2f} ms"
    if "lean" in cpu:
        line += f"   lean {cpu['lean'] * 1e3:,.2f} ms   vs lean {cpu['lean'] / cpu['vsense']:.2f}"
    print(line)


@contextlib.asynccontextmanager
async def lean_app(lean_url: str, image_dir: Path) -> AsyncIterator[Any]:
    """The lean reference (`images_lean.py`) over the same database, running."""
    os.environ["BENCH_LEAN_DATABASE_URL"] = lean_url
    os.environ["BENCH_LEAN_IMAGE_DIR"] = str(image_dir)
    import images_lean

    images_lean.IMAGE_DIR = image_dir
    images_lean.store = images_lean.make_store(lean_url)
    async with images_lean.lifespan(images_lean.app):
        yield images_lean.app


def main(argv: Sequence[str] | None = None) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database-url", help="PostgreSQL (dropped and recreated); else SQLite")
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--image-kb", type=int, default=200)
    parser.add_argument("--pool", type=int, default=32, help="vsense's database pool")
    parser.add_argument("--no-lean", action="store_true", help="leave out the lean reference")
    parser.add_argument("--verbose", action="store_true", help="print every round's figure")
    parser.add_argument("--profile", help="write a cProfile of vsense's rounds here")
    options = parser.parse_args(argv)
    asyncio.run(run(options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
