"""Pure ASGI middleware: request guard (NUL, body size), request metrics, and the
headers every response carries."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vsense.kit.errors import AppError, BadRequest, PayloadTooLarge
from vsense.kit.metrics import Metrics

logger = logging.getLogger("vsense")

# Browsers must take the declared type (an image, JSON) as it is, never guess another
# (an upload sniffed as HTML would run as a page of this origin).
NOSNIFF = (b"x-content-type-options", b"nosniff")


async def send_error(send: Send, error: Any) -> None:
    body = orjson.dumps(error.body())
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        NOSNIFF,
    ]
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestGuardMiddleware:
    """Refuses NUL characters in the URL (400) and bodies over `max_bytes` (413).

    A declared Content-Length is checked before anything is read; a chunked body is
    read up to the limit and replayed to the application.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, larger_limits: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Path prefix -> limit, for the few paths that take bigger bodies (device batches).
        self.larger_limits = larger_limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if b"%00" in scope.get("query_string", b"") or "\x00" in scope["path"]:
            # PostgreSQL cannot hold NUL characters; refuse them alike on every database.
            await send_error(send, BadRequest("NUL characters are not accepted in the URL."))
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        max_bytes = next(
            (
                limit
                for prefix, limit in self.larger_limits.items()
                if scope["path"].startswith(prefix)
            ),
            self.max_bytes,
        )
        too_large = PayloadTooLarge(f"The body must be at most {max_bytes} bytes.")
        declared = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
                break
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                length = max_bytes + 1
            if length > max_bytes:
                await send_error(send, too_large)
                return
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_bytes:
                await send_error(send, too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], template, str(status)).inc()
            self.metrics.latency.labels(template).observe(time.perf_counter() - started)


class NoSniffMiddleware:
    """Adds `X-Content-Type-Options: nosniff` to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if NOSNIFF not in headers:
                    headers.append(NOSNIFF)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_header)


class UnexpectedErrorMiddleware:
    """Answers an unexpected exception with the 500 envelope, without internals, and
    does not raise it further: the framework's outermost handler would re-raise it after
    answering, and the server then closes the client's keep-alive connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception:
            if started:
                raise  # half an answer is out; only closing the connection can say so
            logger.exception("unexpected error")
            await send_error(send, AppError("The server failed to complete the request."))
