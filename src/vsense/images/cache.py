"""What a process remembers of ready snapshots, so that serving a link is cheap.

A ready snapshot no longer changes: its media types and SHA-256 are final, and bytes
found under a (key, SHA-256) pair are those bytes for good. So serving a link needs
neither a database read nor a store read when the same snapshot was uploaded to this
process or served by it a moment ago (the integrator that polls its links until they
are ready, a dashboard that refreshes, a webhook receiver and a person opening the same
link).
What can still happen to a ready snapshot is its deletion: retention in this process
clears the cache; a device deleted in any process is seen within `REQUEST_TTL_S`.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row

from vsense.images.links import KINDS

REQUEST_TTL_S = 30.0
MAX_REQUESTS = 20_000
MAX_BYTES = 64 * 1_048_576


@dataclass(frozen=True, slots=True)
class ReadyImages:
    """The final facts of a ready request: per kind, media type and SHA-256."""

    request_id: uuid.UUID
    types: dict[str, str]
    sha256: dict[str, str]

    @classmethod
    def of(cls, request: Row[Any]) -> ReadyImages:
        """What a request's row says of its uploaded kinds (all of them once ready)."""
        return cls(
            request.id,
            {k: t for k in KINDS if (t := getattr(request, f"{k}_type")) is not None},
            {k: h for k in KINDS if (h := getattr(request, f"{k}_sha256")) is not None},
        )


class ReadyCache:
    def __init__(self) -> None:
        self._requests: OrderedDict[uuid.UUID, tuple[float, ReadyImages]] = OrderedDict()
        self._bytes: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._size = 0

    def request(self, request_id: uuid.UUID) -> ReadyImages | None:
        found = self._requests.get(request_id)
        if found is None or found[0] < time.monotonic():
            return None
        return found[1]

    def remember_request(self, ready: ReadyImages) -> None:
        self._requests[ready.request_id] = (time.monotonic() + REQUEST_TTL_S, ready)
        self._requests.move_to_end(ready.request_id)
        while len(self._requests) > MAX_REQUESTS:
            self._requests.popitem(last=False)

    def image(self, key: str, sha256: str) -> bytes | None:
        data = self._bytes.get((key, sha256))
        if data is not None:
            self._bytes.move_to_end((key, sha256))
        return data

    def remember_image(self, key: str, sha256: str, data: bytes) -> None:
        if len(data) > MAX_BYTES // 8 or (key, sha256) in self._bytes:
            return
        self._bytes[(key, sha256)] = data
        self._size += len(data)
        while self._size > MAX_BYTES:
            _, dropped = self._bytes.popitem(last=False)
            self._size -= len(dropped)

    def clear(self) -> None:
        self._requests.clear()
        self._bytes.clear()
        self._size = 0
