"""The lean reference of the snapshot benchmark: the request-to-ready path of vsense,
written as plainly as this stack allows, served by the same uvicorn and used by the same
simulated sensors.

One FastAPI app, one dependency (a pooled connection of the driver), the driver's
prepared statements (asyncpg's statement cache on PostgreSQL; on SQLite, sqlite3's
through aiosqlite, one writer connection and a few readers), orjson bodies, no
middleware. The routes have vsense's paths, methods and answers, as far as the
benchmark uses them:

- `POST /api/v1/devices/{uuid}/image`: the caller by the hash of its personal access
  token (verified once, then kept in a dict), the device in the caller's organization
  and online (one read), then in one transaction the `capture_image` command and the
  pending `image_requests` row; once committed, the device's long poll is woken (an
  asyncio event per device: the lean server is one process). Answered with two links
  of this server, signed with an HMAC of the request, the kind and the expiry.
- `GET /device/v1/commands?wait=N`: the device by the hash of its token (kept in a
  dict too), its pending commands taken (`UPDATE ... SET taken_at ... RETURNING`; on
  SQLite only after a read on a reader found some, so that waiting devices do not
  queue for the writer), else a wait on the device's event, at most N s, and again.
- `POST /device/v1/keepalive`: the device by its token; a device that was offline is
  set online. No commands are handed out here: the benchmark's sensors keep alive
  once, before any command exists.
- `PUT /device/v1/images/{request_id}/{kind}`: the bytes written to a file named by the
  request, the kind and their SHA-256 (so that no row ever names a file that another
  device wrote), then one `UPDATE` records the kind's type, hash and size, and makes
  the request ready when the other kind is there; 204.
- `POST /device/v1/commands/{id}/result`: the command marked completed (a failure
  fails its snapshot request); 204.
- `GET /images/{token}/{name}`: the signature and expiry checked, the row read: 202
  while that kind is not uploaded, then the file (200, its media type).

No validation beyond the shape (the media type is told from the first bytes, not by
decoding the image), no webhooks, no reuse of a pending request (a second request for
a device with one pending is 409), no expiry sweep: it is the figure that the code
around the same SQL is measured against, not a second server. The database
(`BENCH_LEAN_DATABASE_URL`: `postgresql://...` or `sqlite:///path`) is the one vsense
migrated and the benchmark seeded, with the same devices and tokens; the images go to
the folder `BENCH_LEAN_IMAGE_DIR`.

    uvicorn images_lean:app --app-dir bench
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, Protocol

import orjson
from fastapi import Depends, FastAPI, Request, Response

from lean_sqlite import SqliteConnections

DATABASE_URL = os.environ.get("BENCH_LEAN_DATABASE_URL", "")
IMAGE_DIR = Path(os.environ.get("BENCH_LEAN_IMAGE_DIR", "lean-images"))
POOL_SIZE = int(os.environ.get("BENCH_LEAN_POOL_SIZE", "32"))  # vsense's default
LINK_KEY = os.urandom(32)  # one process: its links need not outlive it

# vsense's defaults: command_ttl, image_link_ttl, image_capture_timeout.
COMMAND_TTL = timedelta(minutes=5)
LINK_TTL = timedelta(minutes=30)
CAPTURE_TIMEOUT = timedelta(minutes=2)
OFFLINE_AFTER = timedelta(seconds=900)  # 1.5 x the default keepalive interval
MAX_WAIT = 55.0
TAKE_AT_ONCE = 20
KINDS = ("raw", "annotated")
CAPTURE = "capture_image"
SCOPE = "images:request"


def statements(mark: str, lock: str) -> dict[str, str]:
    """The SQL of both databases: `mark` numbers the parameters (`$` or `?`), `lock` is
    what the take of commands locks its rows with (PostgreSQL) or nothing."""
    m = [f"{mark}{n}" for n in range(10)]
    found = {
        "caller": (
            "SELECT u.organization_id, t.scopes FROM personal_access_tokens t "
            f"JOIN users u ON u.id = t.user_id WHERE t.token_hash = {m[1]}"
        ),
        "device": (
            "SELECT d.uuid, d.is_online FROM device_credentials c "
            f"JOIN devices d ON d.uuid = c.device_uuid WHERE c.token_hash = {m[1]}"
        ),
        "visible": (
            f"SELECT is_online FROM devices WHERE uuid = {m[1]} AND organization_id = {m[2]}"
        ),
        "online": (
            f"UPDATE devices SET is_online = {m[2]}, status_reason = NULL, last_seen = {m[3]}, "
            f"refreshed = {m[3]}, offline_after = {m[4]} WHERE uuid = {m[1]}"
        ),
        "command": (
            "INSERT INTO device_commands (id, device_uuid, type, arguments, created, expires_at) "
            f"VALUES ({m[1]}, {m[2]}, '{CAPTURE}', {m[3]}, {m[4]}, {m[5]})"
        ),
        "request": (
            "INSERT INTO image_requests (id, device_uuid, command_id, status, created, "
            f"expires_at, capture_deadline, base_url) VALUES ({m[1]}, {m[2]}, {m[3]}, "
            f"'pending', {m[4]}, {m[5]}, {m[6]}, {m[7]})"
        ),
        "pending": (
            f"SELECT 1 FROM device_commands WHERE device_uuid = {m[1]} AND taken_at IS NULL "
            f"AND expires_at > {m[2]} LIMIT 1"
        ),
        "take": (
            f"UPDATE device_commands SET taken_at = {m[2]} WHERE id IN (SELECT id FROM "
            f"device_commands WHERE device_uuid = {m[1]} AND taken_at IS NULL AND expires_at "
            f"> {m[2]} ORDER BY created LIMIT {TAKE_AT_ONCE}{lock}) "
            "RETURNING id, type, arguments, created"
        ),
        "complete": (
            f"UPDATE device_commands SET completed_at = {m[3]}, ok = {m[4]}, error = {m[5]} "
            f"WHERE id = {m[1]} AND device_uuid = {m[2]} RETURNING type"
        ),
        "failed": (
            f"UPDATE image_requests SET status = 'failed', error = {m[2]} "
            f"WHERE command_id = {m[1]} AND status = 'pending'"
        ),
    }
    for kind, other in (KINDS, KINDS[::-1]):
        found[f"upload {kind}"] = (
            f"UPDATE image_requests SET {kind}_type = {m[3]}, {kind}_sha256 = {m[4]}, "
            f"{kind}_size = {m[5]}, "
            f"status = CASE WHEN {other}_sha256 IS NULL THEN status ELSE 'ready' END, "
            f"ready_at = CASE WHEN {other}_sha256 IS NULL THEN ready_at ELSE {m[6]} END "
            f"WHERE id = {m[1]} AND device_uuid = {m[2]} AND status = 'pending' "
            f"AND capture_deadline > {m[6]} RETURNING status"
        )
        found[f"link {kind}"] = (
            f"SELECT status, {kind}_type, {kind}_sha256 FROM image_requests WHERE id = {m[1]}"
        )
    return found


class Unauthorized(Exception):
    pass


class Store(Protocol):
    """The database side, one implementation per driver. Parameters and rows are the
    driver's own; `key` and `moment` turn a UUID and a time into the driver's form."""

    sql: dict[str, str]

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def connection(self) -> contextlib.AbstractAsyncContextManager[Any]: ...
    def key(self, value: uuid.UUID) -> Any: ...
    def moment(self, value: datetime) -> Any: ...
    def when(self, value: Any) -> datetime: ...
    async def fetch(self, connection: Any, name: str, *arguments: Any) -> list[Any]: ...
    async def write(self, connection: Any, name: str, *arguments: Any) -> list[Any]: ...
    async def create(self, connection: Any, command: list[Any], request: list[Any]) -> bool: ...
    async def take(self, device: uuid.UUID, now: datetime) -> list[Any]: ...


class Postgres:
    def __init__(self, url: str) -> None:
        self.url = url
        self.sql = statements("$", " FOR UPDATE SKIP LOCKED")

    async def start(self) -> None:
        import asyncpg  # type: ignore[import-untyped]

        self.unique_violation = asyncpg.UniqueViolationError
        self.pool = await asyncpg.create_pool(self.url, min_size=POOL_SIZE, max_size=POOL_SIZE)

    async def stop(self) -> None:
        await self.pool.close()

    def connection(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return self.pool.acquire()  # type: ignore[no-any-return]

    def key(self, value: uuid.UUID) -> Any:
        return value

    def moment(self, value: datetime) -> Any:
        return value

    def when(self, value: Any) -> datetime:
        return value  # type: ignore[no-any-return]

    async def fetch(self, connection: Any, name: str, *arguments: Any) -> list[Any]:
        return list(await connection.fetch(self.sql[name], *arguments))

    async def write(self, connection: Any, name: str, *arguments: Any) -> list[Any]:
        return list(await connection.fetch(self.sql[name], *arguments))

    async def create(self, connection: Any, command: list[Any], request: list[Any]) -> bool:
        try:
            async with connection.transaction():
                await connection.execute(self.sql["command"], *command)
                await connection.execute(self.sql["request"], *request)
        except self.unique_violation:
            return False  # a request of the device is pending
        return True

    async def take(self, device: uuid.UUID, now: datetime) -> list[Any]:
        async with self.pool.acquire() as connection:
            return list(await connection.fetch(self.sql["take"], device, now))


class Sqlite(SqliteConnections):
    """One writer connection (SQLite has one writer at a time) and a few readers, with
    vsense's pragmas. A route's pooled connection is a reader; its writes go through the
    writer, one at a time."""

    def __init__(self, path: str) -> None:
        super().__init__(path, foreign_keys=True)
        self.sql = statements("?", "")

    def key(self, value: uuid.UUID) -> Any:
        return value.hex  # SQLAlchemy's Uuid on SQLite: 32 hex digits

    def moment(self, value: datetime) -> Any:
        # SQLAlchemy's datetime on SQLite: naive UTC text, microseconds always written.
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def when(self, value: Any) -> datetime:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)

    async def fetch(self, connection: Any, name: str, *arguments: Any) -> list[Any]:
        async with connection.execute(self.sql[name], arguments) as cursor:
            return list(await cursor.fetchall())

    async def write(self, connection: Any, name: str, *arguments: Any) -> list[Any]:
        async with self.write_lock, self.writer.execute(self.sql[name], arguments) as cursor:
            return list(await cursor.fetchall())

    async def create(self, connection: Any, command: list[Any], request: list[Any]) -> bool:
        import sqlite3

        async with self.write_lock:
            writer = self.writer
            await writer.execute("BEGIN IMMEDIATE")
            try:
                await writer.execute(self.sql["command"], command)
                await writer.execute(self.sql["request"], request)
            except sqlite3.IntegrityError:
                await writer.execute("ROLLBACK")
                return False  # a request of the device is pending
            except BaseException:
                await writer.execute("ROLLBACK")
                raise
            await writer.execute("COMMIT")
        return True

    async def take(self, device: uuid.UUID, now: datetime) -> list[Any]:
        key, moment = device.hex, self.moment(now)
        async with self.connection() as reader:
            if not await self.fetch(reader, "pending", key, moment):
                return []
        return await self.write(None, "take", key, moment)


def make_store(url: str) -> Store:
    if url.startswith("postgresql"):
        return Postgres(url.replace("postgresql+asyncpg://", "postgresql://"))
    if url.startswith("sqlite:///"):
        return Sqlite(url.removeprefix("sqlite:///"))
    raise SystemExit(f"BENCH_LEAN_DATABASE_URL: postgresql://... or sqlite:///path, not {url!r}")


store = make_store(DATABASE_URL) if DATABASE_URL else None

# Verified tokens (vsense keeps them for `auth_cache_ttl` too): the caller's
# organization by the hash of its token; a device's UUID by the hash of its token.
callers: dict[str, int] = {}
devices: dict[str, uuid.UUID] = {}
# The long polls waiting, by device: set once a command of the device is committed.
wakeups: dict[uuid.UUID, asyncio.Event] = {}
stopping = asyncio.Event()  # the process is asked to stop: the long polls answer now


def stop_polls() -> None:
    stopping.set()
    for event in wakeups.values():
        event.set()


def on_stop_signal() -> None:
    """Wake the long polls on SIGTERM, then let uvicorn's handler stop it: uvicorn waits
    for the open requests before the lifespan's shutdown, as vsense's long polls do."""
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous):
        return

    def chained(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(stop_polls)
        previous(signum, frame)

    signal.signal(signal.SIGTERM, chained)


@contextlib.asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    assert store is not None, "BENCH_LEAN_DATABASE_URL is not set"
    await asyncio.to_thread(IMAGE_DIR.mkdir, parents=True, exist_ok=True)
    await store.start()
    on_stop_signal()
    try:
        yield
    finally:
        await store.stop()


app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)


async def pooled_connection() -> AsyncIterator[Any]:
    assert store is not None
    async with store.connection() as connection:
        yield connection


Connection = Annotated[Any, Depends(pooled_connection)]


def answer(status: int, body: Any = None) -> Response:
    if body is None:
        return Response(status_code=status)
    return Response(orjson.dumps(body), status, media_type="application/json")


def error(status: int, message: str) -> Response:
    return answer(status, {"error": message})


def token_hash(request: Request, prefix: str) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.startswith(prefix):
        raise Unauthorized
    return hashlib.sha256(token.encode()).hexdigest()


async def caller(connection: Any, request: Request) -> int:
    """The caller's organization, from its personal access token (`vst_`)."""
    assert store is not None
    digest = token_hash(request, "vst_")
    found = callers.get(digest)
    if found is None:
        rows = await store.fetch(connection, "caller", digest)
        scopes = rows[0][1] if rows else "[]"
        if not rows or SCOPE not in orjson.loads(scopes):
            raise Unauthorized
        found = callers[digest] = int(rows[0][0])
    return found


async def device_of(connection: Any, request: Request) -> uuid.UUID:
    """The device of a device token (`vsd_`); a device that was offline is set online."""
    assert store is not None
    digest = token_hash(request, "vsd_")
    found = devices.get(digest)
    if found is None:
        rows = await store.fetch(connection, "device", digest)
        if not rows:
            raise Unauthorized
        found = uuid.UUID(str(rows[0][0]))
        if not rows[0][1]:
            now = datetime.now(UTC)
            moment, deadline = store.moment(now), store.moment(now + OFFLINE_AFTER)
            await store.write(connection, "online", store.key(found), True, moment, deadline)
        devices[digest] = found
    return found


def sign(request_id: uuid.UUID, kind: str, expires: int) -> str:
    mac = hmac.new(LINK_KEY, f"{request_id}:{kind}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def link(base: str, request_id: uuid.UUID, kind: str, expires: int) -> str:
    return f"{base}/images/{expires}.{sign(request_id, kind, expires)}/{request_id}_{kind}"


def image_path(request_id: uuid.UUID, kind: str, sha256: str) -> Path:
    return IMAGE_DIR / f"{request_id}_{kind}_{sha256}"


def media_type_of(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    return None


def _write_file(path: Path, data: bytes) -> None:
    path.write_bytes(data)


@app.get("/healthz")
async def healthz() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


@app.post("/api/v1/devices/{device_uuid}/image")
async def request_image(device_uuid: str, request: Request, connection: Connection) -> Response:
    assert store is not None
    try:
        organization = await caller(connection, request)
        device = uuid.UUID(device_uuid)
    except Unauthorized:
        return error(401, "unauthorized")
    except ValueError:
        return error(404, "no such device")
    rows = await store.fetch(connection, "visible", store.key(device), organization)
    if not rows:
        return error(404, "no such device")
    if not rows[0][0]:
        return error(409, "the device is offline")
    now = datetime.now(UTC)
    request_id, command_id = uuid.uuid4(), uuid.uuid4()
    base = str(request.base_url).rstrip("/")
    arguments = orjson.dumps({"request_id": str(request_id)}).decode()
    expires_at = now + LINK_TTL
    command = [store.key(command_id), store.key(device), arguments, store.moment(now)]
    command.append(store.moment(now + COMMAND_TTL))
    image = [store.key(request_id), store.key(device), store.key(command_id)]
    image += [store.moment(m) for m in (now, expires_at, now + CAPTURE_TIMEOUT)] + [base]
    if not await store.create(connection, command, image):
        return error(409, "a snapshot of the device is pending")
    waiting = wakeups.get(device)
    if waiting is not None:
        waiting.set()
    expires = int(expires_at.timestamp())
    meta = {
        "request_id": str(request_id),
        "status": "pending",
        "expires_at": datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return answer(200, {"data": [link(base, request_id, k, expires) for k in KINDS], "meta": meta})


@app.post("/device/v1/keepalive")
async def keepalive(request: Request, connection: Connection) -> Response:
    await request.body()
    try:
        await device_of(connection, request)
    except Unauthorized:
        return error(401, "unauthorized")
    return Response(b'{"commands":[]}', media_type="application/json")


@app.get("/device/v1/commands")
async def commands(request: Request, wait: float = 25) -> Response:
    """The long poll: it holds no connection while it waits."""
    assert store is not None
    try:
        async with store.connection() as connection:
            device = await device_of(connection, request)
    except Unauthorized:
        return error(401, "unauthorized")
    deadline = time.monotonic() + min(max(wait, 0.0), MAX_WAIT)
    event = wakeups.setdefault(device, asyncio.Event())
    while True:
        event.clear()  # a command committed from here on wakes the wait below
        taken = await store.take(device, datetime.now(UTC))
        if taken:
            found = [
                {
                    **orjson.loads(arguments),
                    "id": str(uuid.UUID(str(key))),
                    "type": kind,
                    "created": int(store.when(created).timestamp()),
                }
                for key, kind, arguments, created in sorted(taken, key=lambda row: row[3])
            ]
            return answer(200, {"commands": found})
        remaining = deadline - time.monotonic()
        if remaining <= 0 or stopping.is_set():
            return answer(200, {"commands": []})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), remaining)


@app.put("/device/v1/images/{request_id}/{kind}")
async def upload(request_id: str, kind: str, request: Request, connection: Connection) -> Response:
    assert store is not None
    try:
        device = await device_of(connection, request)
        parsed = uuid.UUID(request_id)
    except Unauthorized:
        return error(401, "unauthorized")
    except ValueError:
        return error(404, "no such image request")
    if kind not in KINDS:
        return error(404, "no such image kind")
    data = await request.body()
    media_type = media_type_of(data)
    if media_type is None:
        return error(422, "not a JPEG or PNG image")
    sha256 = hashlib.sha256(data).hexdigest()
    # Written before it is recorded: a row never names a file that is not whole.
    await asyncio.to_thread(_write_file, image_path(parsed, kind, sha256), data)
    now = store.moment(datetime.now(UTC))
    key, owner = store.key(parsed), store.key(device)
    rows = await store.write(connection, f"upload {kind}", key, owner, media_type, sha256,
                             len(data), now)  # fmt: skip
    if not rows:
        return error(409, "no pending image request of this device")
    return answer(204)


@app.post("/device/v1/commands/{command_id}/result")
async def command_result(command_id: str, request: Request, connection: Connection) -> Response:
    assert store is not None
    try:
        device = await device_of(connection, request)
        parsed = uuid.UUID(command_id)
        body = orjson.loads(await request.body())
        ok, message = bool(body["ok"]), body.get("error")
    except Unauthorized:
        return error(401, "unauthorized")
    except (ValueError, KeyError, TypeError):
        return error(422, "expected {ok, error}")
    now = store.moment(datetime.now(UTC))
    key = store.key(parsed)
    rows = await store.write(connection, "complete", key, store.key(device), now, ok, message)
    if not rows:
        return error(404, "no such command for this device")
    if not ok and rows[0][0] == CAPTURE:
        await store.write(connection, "failed", key, (message or "failed")[:500])
    return answer(204)


@app.get("/images/{token}/{name}")
async def image_link(token: str, name: str, connection: Connection) -> Response:
    assert store is not None
    expires_text, _, signature = token.partition(".")
    request_text, _, kind = name.rpartition("_")
    try:
        request_id, expires = uuid.UUID(request_text), int(expires_text)
    except ValueError:
        return error(403, "forged link")
    if kind not in KINDS or not hmac.compare_digest(
        sign(request_id, kind, expires).encode(), signature.encode()
    ):
        return error(403, "forged link")
    if expires <= time.time():
        return error(403, "expired link")
    rows = await store.fetch(connection, f"link {kind}", store.key(request_id))
    if not rows:
        return error(404, "no such image")
    status, media_type, sha256 = rows[0]
    if status == "failed":
        return answer(504, {"status": "failed"})
    if sha256 is None:
        return answer(202, {"status": "pending"})
    try:
        data = await asyncio.to_thread(image_path(request_id, kind, sha256).read_bytes)
    except FileNotFoundError:
        return error(404, "the image is no longer stored")
    return Response(data, media_type=media_type, headers={"ETag": f'"{sha256}"'})
