"""The platform's JSON reader keeps integers of any size exact (orjson alone would turn
those beyond 64 bits into floats) and refuses what is not JSON."""

from __future__ import annotations

import json

import pytest

from vsense.kit.json_text import json_text, json_value


@pytest.mark.parametrize(
    "value",
    [
        2**64,  # 20 digits: beyond orjson
        2**64 - 1,  # 20 digits: within it, read exactly either way
        -(2**63) - 1,  # 19 digits
        10**18,  # 19 digits, within
        123456789012345678901234567890,
        999999999999999999,  # 18 digits: orjson's path
    ],
)
def test_integers_are_read_exactly_whatever_their_size(value: int) -> None:
    raw = json_text({"payload": [{"serial": value, "label": "Entrée 🚪"}]}).encode()
    read = json_value(raw)
    assert read["payload"][0]["serial"] == value
    assert type(read["payload"][0]["serial"]) is int
    assert json_value(bytearray(raw)) == read


def test_long_digit_runs_elsewhere_do_not_change_what_is_read() -> None:
    raw = b'{"text": "1234567890123456789012", "ratio": 0.1, "n": [1, 2.5e3, -7]}'
    assert json_value(raw) == json.loads(raw)


@pytest.mark.parametrize("raw", [b"", b"{", b"NaN", b'{"a": 1}x', b"\xff\xfe", b"[" * 2000])
def test_what_is_not_json_raises_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        json_value(raw)
