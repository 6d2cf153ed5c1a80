"""The lean reference of the ingest benchmark: the same device work as vsense, written as
plainly as this stack allows, served by the same uvicorn and loaded by the same clients.

One FastAPI app, one dependency (a pooled connection of the driver), the driver's
prepared statements (asyncpg's statement cache; sqlite3's, through aiosqlite), orjson
bodies. Per request it does what vsense does for a device:

- `POST /device/v1/keepalive`: the device by its token hash and whether it has a
  pending command (one prepared query, no transaction); the sign of life is noted in
  memory and written once a second for all devices noted, as vsense's liveness does.
- `POST /device/v1/payloads`: in one transaction, the device by its token hash, the
  messages (one multi-row insert) and their `count` metrics (another), then COMMIT;
  202 once committed.

No validation beyond the shape, no webhooks, no alert rules, no middleware: it is the
figure that the code around the same SQL is measured against, not a second server.
The database (`BENCH_LEAN_DATABASE_URL`: `postgresql://...` or `sqlite:///path`) is the
one vsense migrated and the bench seeded, so the tables, indexes and rows are the same.

    uvicorn ingest_lean:app --app-dir bench
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Request, Response

from lean_sqlite import SqliteConnections

DATABASE_URL = os.environ.get("BENCH_LEAN_DATABASE_URL", "")
POOL_SIZE = int(os.environ.get("BENCH_LEAN_POOL_SIZE", "16"))
FLUSH_SECONDS = 1.0
OFFLINE_AFTER = timedelta(seconds=900)  # 1.5 x the default interval

PG_DEVICE = (
    "SELECT c.device_uuid, EXISTS (SELECT 1 FROM device_commands m WHERE "
    "m.device_uuid = c.device_uuid AND m.taken_at IS NULL) FROM device_credentials c "
    "WHERE c.token_hash = $1"
)
PG_MESSAGES = (
    "INSERT INTO payload_messages (device_uuid, type, version, timestamp, received_at, payload) "
    "SELECT $1, t, 1, to_timestamp(s), $2, p::json FROM unnest($3::text[], $4::bigint[], "
    "$5::text[]) AS u(t, s, p) RETURNING id"
)
PG_METRICS = (
    "INSERT INTO device_metrics (device_uuid, message_id, epoch, name, value, marker_id, "
    "marker_name, received_at) SELECT $1, i, e, 'count', v, z, n, $7 FROM unnest($2::bigint[], "
    "$3::bigint[], $4::float8[], $5::text[], $6::text[]) AS u(i, e, v, z, n)"
)
PG_REFRESH = (
    "UPDATE devices SET last_seen = $2, refreshed = $2, offline_after = $3 "
    "WHERE uuid = ANY($1::uuid[]) AND is_online"
)

SQ_DEVICE = (
    "SELECT c.device_uuid, EXISTS (SELECT 1 FROM device_commands m WHERE "
    "m.device_uuid = c.device_uuid AND m.taken_at IS NULL) FROM device_credentials c "
    "WHERE c.token_hash = ?"
)


def _sqlite_time(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


class Unauthorized(Exception):
    pass


def digest(request: Request) -> str:
    token = request.headers.get("authorization", "").partition(" ")[2]
    if not token.startswith("vsd_"):
        raise Unauthorized
    return hashlib.sha256(token.encode()).hexdigest()


class Store:
    """The database side: one implementation per driver."""

    seen: dict[Any, datetime]

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def connection(self) -> contextlib.AbstractAsyncContextManager[Any]: ...
    async def keepalive(self, connection: Any, token_hash: str) -> bool: ...
    async def payloads(self, connection: Any, token_hash: str, messages: list[Any]) -> int: ...
    async def flush(self, devices: list[Any], now: datetime) -> None: ...


def _rows(messages: list[Any]) -> tuple[list[str], list[int], list[str]]:
    return (
        [m["type"] for m in messages],
        [int(m["timestamp"]) for m in messages],
        [orjson.dumps(m["payload"]).decode() for m in messages],
    )


class Postgres(Store):
    def __init__(self, url: str) -> None:
        self.url = url
        self.seen = {}

    async def start(self) -> None:
        import asyncpg  # type: ignore[import-untyped]

        self.pool = await asyncpg.create_pool(self.url, min_size=POOL_SIZE, max_size=POOL_SIZE)

    async def stop(self) -> None:
        await self.pool.close()

    def connection(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return self.pool.acquire()  # type: ignore[no-any-return]

    async def keepalive(self, connection: Any, token_hash: str) -> bool:
        row = await connection.fetchrow(PG_DEVICE, token_hash)
        if row is None:
            raise Unauthorized
        self.seen[row[0]] = datetime.now(UTC)
        return bool(row[1])

    async def payloads(self, connection: Any, token_hash: str, messages: list[Any]) -> int:
        now = datetime.now(UTC)
        types, stamps, bodies = _rows(messages)
        async with connection.transaction():
            row = await connection.fetchrow(PG_DEVICE, token_hash)
            if row is None:
                raise Unauthorized
            device = row[0]
            ids = [
                r[0]
                for r in await connection.fetch(PG_MESSAGES, device, now, types, stamps, bodies)
            ]
            zones = [m["payload"][0] for m in messages]
            await connection.execute(
                PG_METRICS,
                device,
                ids,
                stamps,
                [float(z["count"]) for z in zones],
                [z["id"] for z in zones],
                [z["name"] for z in zones],
                now,
            )
        return len(ids)

    async def flush(self, devices: list[Any], now: datetime) -> None:
        async with self.pool.acquire() as connection:
            await connection.execute(PG_REFRESH, devices, now, now + OFFLINE_AFTER)


class Sqlite(SqliteConnections, Store):
    """One writer connection (SQLite has one writer at a time) and a few readers."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.seen = {}

    async def keepalive(self, connection: Any, token_hash: str) -> bool:
        async with connection.execute(SQ_DEVICE, (token_hash,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise Unauthorized
        self.seen[row[0]] = datetime.now(UTC)
        return bool(row[1])

    async def payloads(self, connection: Any, token_hash: str, messages: list[Any]) -> int:
        now = _sqlite_time(datetime.now(UTC))
        types, stamps, bodies = _rows(messages)
        async with self.write_lock:
            writer = self.writer
            await writer.execute("BEGIN IMMEDIATE")
            try:
                async with writer.execute(SQ_DEVICE, (token_hash,)) as cursor:
                    row = await cursor.fetchone()
                if row is None:
                    raise Unauthorized
                device = row[0]
                values = ",".join(["(?, ?, 1, ?, ?, ?)"] * len(messages))
                params: list[Any] = []
                for kind, stamp, body in zip(types, stamps, bodies, strict=True):
                    moment = _sqlite_time(datetime.fromtimestamp(stamp, UTC))
                    params += [device, kind, moment, now, body]
                async with writer.execute(
                    "INSERT INTO payload_messages (device_uuid, type, version, timestamp, "
                    f"received_at, payload) VALUES {values} RETURNING id",
                    params,
                ) as cursor:
                    ids = [r[0] for r in await cursor.fetchall()]
                metrics: list[Any] = []
                for message_id, stamp, message in zip(ids, stamps, messages, strict=True):
                    zone = message["payload"][0]
                    metrics += [
                        device,
                        message_id,
                        stamp,
                        float(zone["count"]),
                        zone["id"],
                        zone["name"],
                        now,
                    ]
                await writer.execute(
                    "INSERT INTO device_metrics (device_uuid, message_id, epoch, name, value, "
                    "marker_id, marker_name, received_at) VALUES "
                    + ",".join(["(?, ?, ?, 'count', ?, ?, ?, ?)"] * len(ids)),
                    metrics,
                )
                await writer.execute("COMMIT")
            except BaseException:
                await writer.execute("ROLLBACK")
                raise
        return len(ids)

    async def flush(self, devices: list[Any], now: datetime) -> None:
        moment = _sqlite_time(now)
        deadline = _sqlite_time(now + OFFLINE_AFTER)
        async with self.write_lock:
            for start in range(0, len(devices), 2000):
                chunk = devices[start : start + 2000]
                marks = ",".join("?" * len(chunk))
                await self.writer.execute(
                    f"UPDATE devices SET last_seen = ?, refreshed = ?, offline_after = ? "
                    f"WHERE uuid IN ({marks}) AND is_online",
                    [moment, moment, deadline, *chunk],
                )


def make_store(url: str) -> Store:
    if url.startswith("postgresql"):
        return Postgres(url.replace("postgresql+asyncpg://", "postgresql://"))
    if url.startswith("sqlite:///"):
        return Sqlite(url.removeprefix("sqlite:///"))
    raise SystemExit(f"BENCH_LEAN_DATABASE_URL: postgresql://... or sqlite:///path, not {url!r}")


store = make_store(DATABASE_URL) if DATABASE_URL else None


async def _flush_every_second(active: Store) -> None:
    while True:
        await asyncio.sleep(FLUSH_SECONDS)
        if active.seen:
            batch, active.seen = active.seen, {}
            with contextlib.suppress(Exception):
                await active.flush(list(batch), max(batch.values()))


@contextlib.asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    assert store is not None, "BENCH_LEAN_DATABASE_URL is not set"
    await store.start()
    flusher = asyncio.create_task(_flush_every_second(store))
    try:
        yield
    finally:
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        await store.stop()


app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)


async def pooled_connection() -> AsyncIterator[Any]:
    assert store is not None
    async with store.connection() as connection:
        yield connection


Connection = Annotated[Any, Depends(pooled_connection)]
UNAUTHORIZED = Response(b'{"error":"unauthorized"}', 401, media_type="application/json")


@app.get("/healthz")
async def healthz() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


@app.post("/device/v1/keepalive")
async def keepalive(request: Request, connection: Connection) -> Response:
    assert store is not None
    await request.body()
    try:
        await store.keepalive(connection, digest(request))
    except Unauthorized:
        return UNAUTHORIZED
    return Response(b'{"commands":[]}', media_type="application/json")


@app.post("/device/v1/payloads")
async def payloads(request: Request, connection: Connection) -> Response:
    assert store is not None
    body = orjson.loads(await request.body())
    messages = body if isinstance(body, list) else [body]
    try:
        accepted = await store.payloads(connection, digest(request), messages)
    except Unauthorized:
        return UNAUTHORIZED
    return Response(orjson.dumps({"accepted": accepted}), 202, media_type="application/json")
