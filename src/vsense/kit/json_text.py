"""The one way the platform writes a JSON value as text (stored JSON columns and the
webhook bodies it serializes once), and reads it back: the JSON bytes a device sends
over MQTT, and the stored JSON columns (the engines' reader).

orjson, compact and several times faster than the standard library on a device
message. orjson refuses an integer beyond 64 bits, which a device may send in a field no
model reads (and which is kept and forwarded as sent): such a value is written by the
standard library instead, as compact. Read back, both give the same value.

Read, orjson turns such an integer into a float, losing its digits: text that may hold
one is read by the standard library, as HTTP bodies are, so that a message keeps the
same value whichever transport brought it.
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


# An integer literal orjson may not read exactly has at least 19 digits (its range is
# -2**63 to 2**64 - 1); a run of that many digits elsewhere (in a string) only costs the
# slower reader. The run is looked for in a copy with every ASCII digit made "0" and
# everything else a space: two passes in C, about a tenth of a regular expression's
# search of the same text (bench/json_read.py).
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_RUN = b"0" * 19


def json_value(raw: bytes | bytearray) -> Any:
    """The value of UTF-8 JSON text, integers exact whatever their size. Raises
    `ValueError` (of which `orjson.JSONDecodeError` and `UnicodeDecodeError` are kinds)
    for what is not JSON."""
    if _LONG_RUN not in raw.translate(_DIGITS_AS_ZEROS):
        return orjson.loads(raw)
    return json.loads(bytes(raw).decode("utf-8"))


def stored_json_value(text: str) -> Any:
    """The value of a stored JSON column, as `json_value` reads it; text orjson refuses
    (`NaN`, which the standard library wrote before `json_text` existed) is read by the
    standard library."""
    try:
        return json_value(text.encode())
    except orjson.JSONDecodeError:
        return json.loads(text)
