"""Pure ASGI middleware: request guard (NUL, body size), the bound on requests in
flight, request metrics, and the headers every response carries."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vsense.kit.errors import AppError, BadRequest, PayloadTooLarge, ServiceUnavailable
from vsense.kit.metrics import Metrics

logger = logging.getLogger("vsense")

# Browsers must take the declared type (an image, JSON) as it is, never guess another
# (an upload sniffed as HTML would run as a page of this origin).
NOSNIFF = (b"x-content-type-options", b"nosniff")


async def send_error(send: Send, error: AppError) -> None:
    """Answer with `error` in the envelope, its headers (Retry-After, ...) included."""
    body = orjson.dumps(error.body())
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        NOSNIFF,
    ]
    headers += [(name.lower().encode(), value.encode()) for name, value in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    """Raised into the application when it reads past the limit; it stops reading."""


class RequestGuardMiddleware:
    """Refuses NUL characters in the URL (400) and bodies over `max_bytes` (413).

    A declared Content-Length is checked before anything is read; a chunked body is
    counted as the application reads it, and the read that goes past the limit ends the
    request with 413. Nothing is buffered here: a request the application refuses
    before reading (a device without a valid token) costs none of its body.
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
        await self._limited(scope, receive, send, max_bytes, too_large)

    async def _limited(
        self, scope: Scope, receive: Receive, send: Send, max_bytes: int, too_large: AppError
    ) -> None:
        size = 0
        overflowed = False
        started = False

        async def counting_receive() -> Message:
            nonlocal size, overflowed
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > max_bytes:
                    overflowed = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if overflowed:
                return  # whatever the application makes of the aborted read: ours is 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _BodyTooLarge:
            pass
        except Exception:
            if not overflowed:
                raise
        if overflowed and not started:
            await send_error(send, too_large)


class InFlightLimitMiddleware:
    """At most `limit` requests in this process at once; the next ones are answered 503
    with Retry-After at once, before anything of their body is read, rather than queued
    (a queue would hold their connections and memory as well). `exempt` requests (long
    polls, which wait by design, and the health and metrics endpoints) are not counted.
    """

    def __init__(self, app: ASGIApp, limit: int, exempt: Callable[[Scope], bool]) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.exempt(scope):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await send_error(
                send,
                ServiceUnavailable(
                    "The server has too many requests in progress; retry in 1 s.", retry_after=1
                ),
            )
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


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
