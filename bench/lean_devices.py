"""The lean reference of the device-list benchmark: the same answer with the same stack,
written as briefly as the stack allows.

A FastAPI app with one route and one dependency (the bearer checked against the
personal access tokens, each verified token kept in a dict), one statement for the
page with its group's name and, at most once a second per filter (vsense's default
`count_cache_ttl`), one for the filtered total, run through the driver itself
(asyncpg's prepared statements on PostgreSQL, aiosqlite on SQLite), and orjson for the
body. It answers `GET /api/v1/devices` with the same `data` and `meta` as vsense for
the parameters the benchmark uses (`group` by name, `is_online`, `sort` by name or
`-refreshed`, `page`, `per_page`) and does nothing else: no visibility by role, no
validation of odd values, no middleware.

`api_devices.py` serves it with uvicorn (`--app-dir bench lean_devices:app`), the
database named by `BENCH_LEAN_DATABASE_URL` (a SQLAlchemy URL, as vsense's).
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, HTTPException, Request, Response

DATABASE_URL_ENV = "BENCH_LEAN_DATABASE_URL"
POOL_SIZE = int(os.environ.get("BENCH_LEAN_POOL_SIZE", "32"))  # as vsense's default
COUNT_TTL = 1.0  # vsense's default `count_cache_ttl`

COLUMNS = (
    "d.uuid, d.name, d.client_identifier, d.refreshed, d.is_online, d.geo_city, "
    "d.geo_country, g.name, d.group_id, d.app_type, d.keepalive_interval, d.created, "
    "d.last_seen, d.status_reason"
)
FIELDS = (
    "uuid", "name", "client_identifier", "refreshed", "is_online", "geo_city",
    "geo_country", "group", "group_id", "app_type", "keepalive_interval", "created",
    "last_seen", "status_reason",
)  # fmt: skip
ORDERS = {
    "name": "d.name, d.uuid",
    "-refreshed": "d.refreshed DESC NULLS LAST, d.uuid DESC",
}
OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_OMIT_MICROSECONDS


def page_sql(*, group: bool, online: bool, order: str, mark: str) -> tuple[str, str]:
    """The statements of the page (with its group names) and of its total. Parameters are
    numbered (`$1` on PostgreSQL, `?1` on SQLite): organization, [group], [online], then
    limit and offset for the page."""
    numbers = iter(range(2, 10))
    where = ["organization_id = {m}1"]
    if group:
        where.append(
            "group_id = (SELECT id FROM groups WHERE organization_id = {m}1 "
            f"AND name = {{m}}{next(numbers)})"
        )
    if online:
        where.append(f"is_online = {{m}}{next(numbers)}")
    condition = " AND ".join(where).format(m=mark)
    limit, offset = f"{mark}{next(numbers)}", f"{mark}{next(numbers)}"
    page = (
        f"SELECT {COLUMNS} "
        f"FROM (SELECT uuid FROM devices WHERE {condition} "
        f"ORDER BY {ORDERS[order].replace('d.', '')} LIMIT {limit} OFFSET {offset}) AS page "
        "JOIN devices d ON d.uuid = page.uuid LEFT JOIN groups g ON g.id = d.group_id "
        f"ORDER BY {ORDERS[order]}"
    )
    return page, f"SELECT count(*) FROM devices WHERE {condition}"


class Store:
    """The database, through its driver: a pool of connections and the token check."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.postgres = url.startswith("postgresql")
        self.pool: Any = None
        self.sqlite: list[Any] = []
        self.tokens: dict[str, int] = {}
        self.counts: dict[tuple[Any, ...], tuple[float, int]] = {}

    async def open(self) -> None:
        if self.postgres:
            import asyncpg  # type: ignore[import-untyped]

            self.pool = await asyncpg.create_pool(
                self.url.replace("postgresql+asyncpg://", "postgresql://"),
                min_size=POOL_SIZE,
                max_size=POOL_SIZE,
            )
        else:
            import asyncio

            import aiosqlite

            path = self.url.split("///", 1)[1]
            self.pool = asyncio.Queue()
            for _ in range(4):
                connection = await aiosqlite.connect(path)
                await connection.execute("PRAGMA busy_timeout = 5000")
                self.sqlite.append(connection)
                self.pool.put_nowait(connection)

    async def close(self) -> None:
        if self.postgres:
            await self.pool.close()
        for connection in self.sqlite:
            await connection.close()

    async def fetch(self, sql: str, *arguments: Any) -> list[Any]:
        if self.postgres:
            async with self.pool.acquire() as connection:
                return list(await connection.fetch(sql, *arguments))
        connection = await self.pool.get()
        try:
            async with connection.execute(sql, arguments) as cursor:
                return list(await cursor.fetchall())
        finally:
            self.pool.put_nowait(connection)

    async def total(self, statement: str, arguments: list[Any]) -> int:
        """The filter's count, kept for `COUNT_TTL` seconds as vsense keeps its own."""
        key = (statement, *arguments)
        found = self.counts.get(key)
        if found is not None and time.monotonic() - found[0] < COUNT_TTL:
            return found[1]
        rows = await self.fetch(statement, *arguments)
        self.counts[key] = (time.monotonic(), int(rows[0][0]))
        return self.counts[key][1]

    async def organization_of(self, bearer: str) -> int | None:
        digest = hashlib.sha256(bearer.encode()).hexdigest()
        found = self.tokens.get(digest)
        if found is not None:
            return found
        mark = "$1" if self.postgres else "?1"
        rows = await self.fetch(
            "SELECT u.organization_id FROM personal_access_tokens t "
            f"JOIN users u ON u.id = t.user_id WHERE t.token_hash = {mark}",
            digest,
        )
        if not rows:
            return None
        self.tokens[digest] = int(rows[0][0])
        return self.tokens[digest]


store = Store(os.environ.get(DATABASE_URL_ENV, "sqlite:///vsense.db"))


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    await store.open()
    try:
        yield
    finally:
        await store.close()


app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/healthz")
async def healthz() -> Response:
    """What the benchmark's runner waits for before it loads the app."""
    return Response(b"ok")


async def organization(request: Request) -> int:
    """The one dependency: the bearer's organization, or 401."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    found = await store.organization_of(token) if scheme.lower() == "bearer" else None
    if found is None:
        raise HTTPException(401)
    return found


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value).replace(tzinfo=UTC)  # SQLite keeps text


@app.get("/api/v1/devices")
async def devices(
    organization_id: Annotated[int, Depends(organization)],
    group: str | None = None,
    is_online: str | None = None,
    sort: str = "name",
    page: int = 1,
    per_page: int = 25,
) -> Response:
    online = None if is_online is None else is_online.lower() in ("online", "1", "true")
    arguments: list[Any] = [organization_id]
    if group is not None:
        arguments.append(group)
    if online is not None:
        arguments.append(online)
    offset = (page - 1) * per_page
    page_statement, count_statement = page_sql(
        group=group is not None,
        online=online is not None,
        order=sort,
        mark="$" if store.postgres else "?",
    )
    rows = await store.fetch(page_statement, *arguments, per_page, offset)
    total = await store.total(count_statement, arguments)
    data = []
    for row in rows:
        item = dict(zip(FIELDS, row, strict=True))
        item["uuid"] = str(item["uuid"] if store.postgres else uuid.UUID(item["uuid"]))
        item["is_online"] = 1 if item["is_online"] else 0
        if not store.postgres:
            for key in ("refreshed", "created", "last_seen"):
                item[key] = _time(item[key])
        data.append(item)
    pages = max(1, -(-total // per_page))
    meta = {
        "current_page": page,
        "from": offset + 1 if rows else 0,
        "last_page": pages,
        "per_page": per_page,
        "total": total,
        "to": offset + len(rows) if rows else 0,
        "total_pages": pages,
    }
    return Response(orjson.dumps({"data": data, "meta": meta}, option=OPTIONS),
                    media_type="application/json")  # fmt: skip
