"""The SQLite connections of the lean reference servers (`ingest_lean.py`,
`images_lean.py`): one writer (SQLite has one writer at a time; take `write_lock`
around its use) and a few readers, opened with vsense's pragmas."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000")
READERS = 4


class SqliteConnections:
    def __init__(self, path: str, *, foreign_keys: bool = False) -> None:
        self.path = path
        self.pragmas = (*PRAGMAS, "foreign_keys=ON") if foreign_keys else PRAGMAS

    async def _open(self) -> Any:
        import aiosqlite

        connection = await aiosqlite.connect(self.path, isolation_level=None, timeout=30)
        for pragma in self.pragmas:
            await connection.execute(f"PRAGMA {pragma}")
        return connection

    async def start(self) -> None:
        self.writer = await self._open()
        self.write_lock = asyncio.Lock()
        self.readers: asyncio.Queue[Any] = asyncio.Queue()
        for _ in range(READERS):
            self.readers.put_nowait(await self._open())

    async def stop(self) -> None:
        await self.writer.close()
        while not self.readers.empty():
            await self.readers.get_nowait().close()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """A reader, for the length of the block."""
        reader = await self.readers.get()
        try:
            yield reader
        finally:
            self.readers.put_nowait(reader)
