"""One scrape shows the whole server: `vsense serve --workers 2` on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tests.environment import fresh_postgres_database
from tests.live_server import start_server

pytestmark = [pytest.mark.slow, pytest.mark.live, pytest.mark.postgres]
READY = 'vsense_http_requests_total{method="GET",route="/readyz",status="200"}'


def scraped(base_url: str, line_start: str) -> float:
    for line in httpx.get(f"{base_url}/metrics", timeout=30).text.splitlines():
        if line.startswith(f"{line_start} "):
            return float(line.split()[1])
    return 0.0


async def test_one_scrape_counts_the_requests_of_every_server_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = await fresh_postgres_database(f"metrics_{uuid.uuid4().hex[:6]}")
    folder = tmp_path / "metrics"
    folder.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    server = start_server(tmp_path / "data", url, "--workers", "2")
    try:
        asked = 0
        # A new connection each time: the two processes take turns accepting them.
        while asked < 200 and len(list(folder.glob("counter_*.db"))) < 2:
            answer = await asyncio.to_thread(httpx.get, f"{server.base_url}/readyz")
            assert answer.status_code == 200
            asked += 1
        assert len(list(folder.glob("counter_*.db"))) == 2  # both processes counted some
        # Whichever process answers the scrape, it counts every process's requests.
        for _ in range(4):
            assert scraped(server.base_url, READY) == asked
    finally:
        server.stop()
        target = make_url(url)
        engine = create_async_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
        async with engine.connect() as connection:
            await connection.execute(
                text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
            )
        await engine.dispose()
