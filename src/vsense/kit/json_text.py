"""The one way the platform writes a JSON value as text: stored JSON columns and the
webhook bodies it serializes once.

orjson, compact and several times faster than the standard library on a device
message. orjson refuses an integer beyond 64 bits, which a device may send in a field no
model reads (and which is kept and forwarded as sent): such a value is written by the
standard library instead, as compact. Read back, both give the same value.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def json_text(value: Any) -> str:
    """`value` as compact JSON text."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"))
