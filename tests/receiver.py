"""A real HTTP webhook receiver for tests: records every request, answers as told."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Received:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass
class Receiver:
    """Answers each path with the next of its scripted answers (then the last one again):
    a status, or ("hang", seconds), or (status, {headers})."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    answers: dict[str, list[object]] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def at(self, path: str) -> str:
        return f"{self.url}{path}"

    def on(self, path: str, *answers: object) -> str:
        self.answers[path] = list(answers) or [200]
        return self.at(path)

    def to(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.received.append(
            Received(
                method=request.method,
                path=request.path,
                query=list(request.query.items()),
                headers={k.lower(): v for k, v in request.headers.items()},
                body=await request.read(),
            )
        )
        self.arrived.set()
        script = self.answers.get(request.path, [200])
        answer = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(answer, tuple) and answer[0] == "hang":
            await asyncio.sleep(float(answer[1]))  # type: ignore[arg-type]
            return web.Response(status=200, text="late")
        if isinstance(answer, tuple):
            status, headers = answer
            return web.Response(status=int(status), headers=headers, text="scripted")  # type: ignore[arg-type]
        return web.Response(status=int(answer), text=f"answer {answer}")  # type: ignore[call-overload]

    async def wait_for(self, count: int, seconds: float = 10.0) -> None:
        async with asyncio.timeout(seconds):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()


@asynccontextmanager
async def running_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    receiver.url = f"http://127.0.0.1:{port}"
    try:
        yield receiver
    finally:
        await runner.cleanup()
