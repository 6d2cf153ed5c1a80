"""The HTTP client of webhook deliveries: one per process, never raising for the network.

aiohttp rather than httpx: it sent 17-18 times the requests per second of httpx at
concurrency 64 and 256, whose connection pool walks every connection on each request
(bench/http_clients.py, docs/benchmarks.md). One `ClientSession` and one keep-alive
pool serve every delivery; the address policy is applied before any connection is
made (IP literals here, names in `GuardedResolver`).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType

import aiohttp
from yarl import URL

from vsense.client.retry_after import parse_retry_after
from vsense.webhooks.ssrf import AddressPolicy, BlockedAddress, GuardedResolver, parse_ip_literal

# Error classes of a `SendResult`, for retry decisions and delivery logs.
DNS = "dns"
CONNECT = "connect"
TLS = "tls"
TIMEOUT = "timeout"
BLOCKED = "blocked"
REDIRECT = "redirect"
HTTP_STATUS = "http_status"
PROTOCOL = "protocol"  # the receiver answered something that is not valid HTTP
INVALID_REQUEST = "invalid_request"  # the URL or a header cannot be sent at all

HEAD_BYTES = 2048
_CACHE_ENTRIES = 10_000

# Headers that frame the message or govern the connection belong to the client: a
# value configured by an integrator could desynchronise a keep-alive connection that
# later carries other deliveries. `Expect: 100-continue` would stall on most receivers.
_CLIENT_OWNED = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SendResult:
    """What one request gave: a status, or an error class and why; never an exception.
    What it means for the delivery is decided by `policy.after_attempt`."""

    status_code: int | None
    error: str | None
    response_head: str = ""
    duration_ms: float = 0.0
    retry_after: float | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        """The receiver answered 2xx."""
        return self.status_code is not None and 200 <= self.status_code < 300


async def _read_head(content: aiohttp.StreamReader) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < HEAD_BYTES:
        chunk = await content.read(HEAD_BYTES - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _classify(error: BaseException) -> tuple[str, str]:
    """The error class and a short message for an exception raised by a request."""
    message = str(error) or type(error).__name__
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        if isinstance(error.os_error, BlockedAddress):
            return BLOCKED, error.os_error.reason
        return DNS, message
    if isinstance(error, TimeoutError):  # before OSError: TimeoutError is one
        return TIMEOUT, message if str(error) else "no answer within the timeout"
    if isinstance(error, aiohttp.ClientSSLError | ssl.SSLError):
        return TLS, message
    if isinstance(error, aiohttp.ClientResponseError | aiohttp.ClientPayloadError):
        return PROTOCOL, message
    if isinstance(error, aiohttp.InvalidURL | ValueError):
        return INVALID_REQUEST, message
    return CONNECT, message


class Sender:
    """Sends webhook requests through one shared keep-alive `aiohttp.ClientSession`.

    `limit` caps connections in the process, `limit_per_host` per (host, port, TLS),
    the spec's per-endpoint concurrency. Use `async with Sender(...)` or
    `start()`/`close()` inside the event loop that sends.
    """

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        user_agent: str,
        limit: int = 1000,
        limit_per_host: int = 8,
    ) -> None:
        self.policy = policy
        self.user_agent = user_agent
        self.limit = limit
        self.limit_per_host = limit_per_host
        self._session: aiohttp.ClientSession | None = None
        # Per-host and per-timeout work repeats for every delivery to an endpoint;
        # both caches stay small (one entry per endpoint host and configured timeout).
        self._literal_refusals: dict[str, str | None] = {}
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    async def start(self) -> None:
        """Open the connection pool; idempotent."""
        if self._session is not None:
            return
        connector = aiohttp.TCPConnector(
            limit=self.limit,
            limit_per_host=self.limit_per_host,
            resolver=GuardedResolver(self.policy),
            # Idle connections go before common server idle timeouts (Node: 5 s), so a
            # delivery is rarely written to a connection the receiver is closing.
            keepalive_timeout=4.0,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": self.user_agent},
            # Compressed answers would make the stored response head unreadable.
            skip_auto_headers=("Accept-Encoding",),
            auto_decompress=False,
            # Never through an environment proxy: it would resolve names itself,
            # bypassing the address policy.
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            raise_for_status=False,
        )

    async def close(self) -> None:
        """Close every connection; the sender can be started again afterwards."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def __aenter__(self) -> Sender:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _literal_refusal(self, host: str) -> str | None:
        # aiohttp does not call the resolver for IP literals: they are checked here.
        try:
            return self._literal_refusals[host]
        except KeyError:
            pass
        literal = parse_ip_literal(host)
        reason = None if literal is None else self.policy.refusal(literal)
        if len(self._literal_refusals) >= _CACHE_ENTRIES:
            self._literal_refusals.clear()
        self._literal_refusals[host] = reason
        return reason

    def _timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            if len(self._timeouts) >= _CACHE_ENTRIES:
                self._timeouts.clear()
            timeout = self._timeouts[seconds] = aiohttp.ClientTimeout(total=seconds)
        return timeout

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes,
        timeout: float,  # noqa: ASYNC109 - the HTTP exchange's budget, handed to aiohttp
    ) -> SendResult:
        """Send one request and describe what happened; raises only if not started.

        Redirects are not followed (a 3xx is `redirect`); `timeout` bounds the whole
        exchange; at most `HEAD_BYTES` of the answer are read. `Host`,
        `Content-Length` and other connection headers in `headers` are ignored.
        """
        session = self._session
        if session is None:
            raise RuntimeError("Sender.start() has not been called")
        started = time.perf_counter()

        def failed(error: str, detail: str) -> SendResult:
            elapsed = (time.perf_counter() - started) * 1000
            return SendResult(status_code=None, error=error, detail=detail, duration_ms=elapsed)

        try:
            target = URL(url)
        except (ValueError, TypeError) as problem:
            return failed(INVALID_REQUEST, f"invalid URL: {problem}")
        if target.scheme not in ("http", "https") or not target.host:
            return failed(INVALID_REQUEST, "the URL must be absolute http(s)")
        reason = self._literal_refusal(target.host)
        if reason is not None:
            return failed(BLOCKED, reason)

        sent_headers = {k: v for k, v in headers.items() if k.lower() not in _CLIENT_OWNED}
        try:
            async with session.request(
                method,
                target,
                headers=sent_headers,
                data=body or None,
                allow_redirects=False,
                timeout=self._timeout(timeout),
            ) as response:
                head = await _read_head(response.content)
                if not response.content.at_eof():
                    # More than the head is coming: drop the connection rather than
                    # read (or keep) the rest of an arbitrarily large answer.
                    response.close()
                status = response.status
                location = response.headers.get("Location", "")
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
        except (aiohttp.ClientError, OSError, ValueError) as problem:
            return failed(*_classify(problem))

        if 200 <= status < 300:
            error, detail = None, ""
        elif 300 <= status < 400:
            error, detail = REDIRECT, f"HTTP {status} to {location[:200]}"
        else:
            error, detail = HTTP_STATUS, f"HTTP {status}"
        return SendResult(
            status_code=status,
            error=error,
            detail=detail,
            response_head=head.decode("utf-8", "replace"),
            duration_ms=(time.perf_counter() - started) * 1000,
            retry_after=retry_after,
        )
