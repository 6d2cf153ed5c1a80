"""The HTTP request of one attempt: the wire format of each event in spec/delivery.md
(query, headers, body, signatures). What its answer means is `policy.py`'s."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

import orjson

from vsense import __version__
from vsense.webhooks.domain import Prepared
from vsense.webhooks.events import KEEPALIVE
from vsense.webhooks.schemas import RESERVED_HEADERS
from vsense.webhooks.signing import signed_headers

USER_AGENT = f"vsense-webhooks/{__version__}"


@dataclass(frozen=True, slots=True)
class Request:
    """An attempt's request, ready to send."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes


def build_request(prepared: Prepared, timestamp: int) -> Request:
    """The HTTP request of an attempt, signed at `timestamp` (UNIX seconds)."""
    pairs: list[tuple[str, str]] = []
    own_params = list(prepared.params)
    if prepared.event_type == KEEPALIVE:
        platform = orjson.loads(prepared.body)
        pairs = [("source", str(platform["source"])), ("id", str(platform["id"]))]
        # The webhook's params follow the platform's and never replace them.
        own_params = [(k, v) for k, v in own_params if k not in ("source", "id")]
    pairs += own_params
    url = prepared.url
    if pairs:
        url += ("&" if "?" in url else "?") + urlencode(pairs)
    body = b"" if prepared.method == "GET" else prepared.body
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/plain, */*",
        "User-Agent": USER_AGENT,
    }
    for name, value in prepared.headers:
        if name.lower() not in RESERVED_HEADERS:
            headers[name] = value
    headers.update(signed_headers(prepared.secrets, prepared.msg_id, timestamp, body))
    return Request(prepared.method, url, headers, body)
