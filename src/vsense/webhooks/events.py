"""The events webhooks receive: their names, which webhooks want them, and their bodies.

Bodies follow the seed platform's documented formats (spec/delivery.md), so receivers
written for it work unchanged. Timestamps inside bodies are UNIX seconds.
"""

from __future__ import annotations

import functools
import os
import re
import time
import uuid
from typing import Any

from vsense.kit.json_text import json_text

KEEPALIVE = "keepalive"
PAYLOAD = "payload"
ALERT = "alert"
STATUS = "status"
IMAGE = "image"
TEST = "test"

# Events a webhook may subscribe to through `actions` (test goes to one webhook only).
ACTIONS = (PAYLOAD, KEEPALIVE, ALERT, STATUS, IMAGE)
WEBHOOK_TYPES = (PAYLOAD, KEEPALIVE, ALERT)

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_message_id() -> str:
    """`msg_` and a ULID: sortable by creation time, unique without coordination."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "msg_" + "".join(reversed(chars))


def encode(body: dict[str, Any]) -> str:
    """An event's body as sent: serialized once, the same bytes on every attempt."""
    return json_text(body)


# The vendor console's labels, and other spellings of one event in two words.
_LABELS = re.compile(r"\bkeep[\s_-]*alive(s?)\b")
_SEPARATORS = re.compile(r"[\s,;|/+]+")


def parse_actions(actions: str) -> list[str]:
    """The known events named in a free `actions` string, in order, once each.

    Names are separated by commas or spaces, in any case; the console's labels count
    (`Keep alive`, `Payload transfer`, `Alert`), and so do plurals (`alerts`). Words
    that name no event are left out here and kept in the stored string as given.
    `"Keep alive, Payload transfer"` -> ["keepalive", "payload"].
    """
    text = _LABELS.sub(r"keepalive\1", actions.lower())
    found: dict[str, None] = {}
    for word in _SEPARATORS.split(text):
        if word in ACTIONS:
            found[word] = None
        elif word.endswith("s") and word[:-1] in ACTIONS:
            found[word[:-1]] = None
    return list(found)


@functools.lru_cache(maxsize=4096)
def events_of(webhook_type: str, actions: str) -> tuple[str, ...]:
    """The events a webhook takes: those its `actions` name, else its type's (cached:
    the outbox asks for every event of every webhook)."""
    return tuple(parse_actions(actions)) or (webhook_type,)


def subscribed(webhook_type: str, actions: str, event: str) -> bool:
    """Whether a webhook wants an event: listed in `actions`, or its type when empty."""
    return event in events_of(webhook_type, actions)


def keepalive_body(
    source: str, device: uuid.UUID, timestamp: int, health: dict[str, Any] | None
) -> dict[str, Any]:
    """POST body of a keepalive; a GET webhook gets `source` and `id` in its query."""
    return {"source": source, "id": str(device), "timestamp": timestamp, "health": health or {}}


def payload_body(
    device: uuid.UUID, message_type: str, timestamp: int, payload: Any, version: int | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "stream_id": str(device),
        "type": message_type,
        "timestamp": timestamp,
        "payload": payload,
    }
    if version is not None:
        body["version"] = version
    return body


def status_body(device: uuid.UUID, timestamp: int, status: str, reason: str) -> dict[str, Any]:
    return {
        "stream_id": str(device),
        "type": "STATUS",
        "timestamp": timestamp,
        "status": status,
        "reason": reason,
    }


def test_body(device: uuid.UUID, timestamp: int) -> dict[str, Any]:
    return {"stream_id": str(device), "type": "TEST", "timestamp": timestamp}
