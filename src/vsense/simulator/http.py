"""The HTTP transport of the simulated fleet: the device API of spec/devices.md.

`DeviceHttp` sends a device's requests with retries (connection errors, 429 and 503,
after the server's `Retry-After` when it gives one); image uploads use it whatever the
transport. `HttpTransport` carries keepalives, payloads and command results over it;
commands come in the keepalive answers.
"""

from __future__ import annotations

import asyncio
import random
import urllib.parse
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from vsense.client.retry_after import retry_after_seconds
from vsense.simulator.scenes import Message
from vsense.simulator.transport import Command, FleetStats, Identity, OnCommand, TokenRefused

MAX_ATTEMPTS = 5
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
MAX_RETRY_AFTER_S = 120.0

_jitter = random.Random()  # spreads retries only; runs stay reproducible without it


def problem(response: httpx.Response) -> str:
    """The status and the server's own message (the error envelope of spec/api.md)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    return f"HTTP {response.status_code}" + (f": {message}" if message else "")


class DeviceHttp:
    """Requests of devices with retries: connection errors, 429 and 503 are tried again
    with exponential backoff, or after the server's Retry-After when it gives one."""

    def __init__(
        self, client: httpx.AsyncClient, stats: FleetStats, log: Callable[[str], None]
    ) -> None:
        self.client = client
        self.stats = stats
        self.log = log

    async def send(
        self,
        method: str,
        path: str,
        *,
        token: str,
        json: Any = None,
        content: bytes | None = None,
        content_type: str | None = None,
        **params: Any,
    ) -> httpx.Response | None:
        """The first answer that is not worth retrying, or None (counted) after giving up."""
        backoff = FIRST_BACKOFF_S
        trouble = ""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                headers = {"Authorization": f"Bearer {token}"}
                if content_type is not None:
                    headers["Content-Type"] = content_type
                response = await self.client.request(
                    method, path, json=json, content=content, params=params or None, headers=headers
                )
            except httpx.TransportError as exc:
                trouble, wait = f"{type(exc).__name__}: {exc}", backoff
            else:
                if response.status_code not in (429, 503):
                    return response
                trouble = problem(response)
                wait = min(retry_after_seconds(response) or backoff, MAX_RETRY_AFTER_S)
            if attempt == MAX_ATTEMPTS:
                break
            self.stats.retries += 1
            # Jitter keeps devices that failed together from retrying together.
            await asyncio.sleep(wait * _jitter.uniform(1.0, 1.25))
            backoff = min(backoff * 2, MAX_BACKOFF_S)
        self.stats.errors += 1
        self.log(f"{method} {path}: gave up after {MAX_ATTEMPTS} attempts ({trouble})")
        return None


class HttpTransport:
    """Keepalives, payloads and command results over the device API."""

    def __init__(self, http: DeviceHttp) -> None:
        self.http = http
        self.stats = http.stats
        self.log = http.log

    @asynccontextmanager
    async def connect(self, on_command: OnCommand) -> AsyncIterator[None]:
        """Nothing to hold: each request takes a pooled connection, and commands come
        in the keepalive answers."""
        yield

    def _check_token(self, response: httpx.Response) -> None:
        # The token was rotated (another run with the same prefix?) or the device
        # deleted: retrying would only repeat the error.
        if response.status_code in (401, 403):
            raise TokenRefused(problem(response))

    async def keepalive(self, device: Identity, health: dict[str, Any]) -> list[Command] | None:
        response = await self.http.send(
            "POST", "/device/v1/keepalive", token=device.token, json=health
        )
        if response is None:
            return None
        self._check_token(response)
        if response.status_code != 200:
            self.stats.errors += 1
            self.log(f"{device.identifier}: keepalive answered {problem(response)}")
            return None
        commands: list[Command] = response.json().get("commands") or []
        return commands

    async def send_payloads(self, device: Identity, batch: list[Message]) -> int | None:
        response = await self.http.send(
            "POST", "/device/v1/payloads", token=device.token, json=batch
        )
        if response is None:
            return None  # counted and logged by `send`
        self._check_token(response)
        if response.status_code == 202:
            return int(response.json().get("accepted", len(batch)))
        self.stats.errors += 1
        if response.status_code < 500:
            # 422 and other refusals: sending the same messages again cannot help.
            # The whole body: a 422 lists each rejected message by index.
            refusal = f"HTTP {response.status_code} {response.text[:300]}"
            self.log(f"{device.identifier}: payloads refused, {refusal}")
            return 0
        self.log(f"{device.identifier}: payloads answered {problem(response)}")
        return None

    async def report_result(self, device: Identity, command_id: str, result: Command) -> bool:
        path = f"/device/v1/commands/{urllib.parse.quote(command_id, safe='')}/result"
        response = await self.http.send("POST", path, token=device.token, json=result)
        if response is None:
            return False  # counted; the command expires on the server
        if response.is_success:
            return True
        self.stats.errors += 1
        self.log(f"{device.identifier}: result of {command_id}: {problem(response)}")
        return False


__all__ = ["DeviceHttp", "HttpTransport", "problem"]
