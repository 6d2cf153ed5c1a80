"""CPU of reading a device message's JSON, as the MQTT bridge reads every message it
receives (`vsense.kit.json_text.json_value`: orjson, and the standard library for text
holding an integer orjson would turn into a float), and of reading a stored JSON column
back (`stored_json_value`, the engines' reader; the standard library's `json.loads`
before it existed).

    .venv/bin/python bench/json_read.py
    PYTHONPATH=<old src> .venv/bin/python bench/json_read.py      (older code)

For three messages (one VCZ zone; ten zones, about 1 KB; a batch of 100 one-zone
messages), and for two stored columns (a webhook's headers; a stored ten-zone payload),
it prints, per read, the best of 7 rounds: vsense's reader, orjson alone (the lean
reference: the fastest reader, which is not exact for big integers) and the standard
library, and the ratio lean / vsense.
"""

from __future__ import annotations

import json
import timeit
import uuid
from typing import Any

import orjson

from vsense.kit import json_text
from vsense.kit.json_text import json_value

# Older code has no reader of its own for stored columns: the engines used the standard
# library's.
stored_json_value = getattr(json_text, "stored_json_value", json.loads)

NOW = 1_764_547_200


def zone(n: int, count: int) -> dict[str, Any]:
    return {
        "id": str(uuid.UUID(int=n)),
        "name": f"Z-{n}",
        "count": count,
        "by_class": {"person": count, "car": count // 2},
        "period_start": NOW - 60,
        "period_end": NOW,
    }


def message(zones: int) -> dict[str, Any]:
    return {"type": "VCZ", "timestamp": NOW, "payload": [zone(n, 7 * n) for n in range(zones)]}


CASES = {
    "one zone": orjson.dumps(message(1)),
    "ten zones": orjson.dumps(message(10)),
    "batch of 100": orjson.dumps([message(1) for _ in range(100)]),
}

STORED = {
    "webhook headers": json.dumps([{"name": "X-Api-Key", "value": "k" * 32}]),
    "stored payload": json.dumps(message(10)["payload"]),
}


def best_us(read: Any, raw: bytes | str, number: int) -> float:
    return min(timeit.repeat(lambda: read(raw), number=number, repeat=7)) / number * 1e6


def main() -> None:
    print("| message | bytes | vsense µs | orjson alone µs | json (stdlib) µs | lean / vsense |")
    print("|---|---:|---:|---:|---:|---:|")
    cases = [(json_value, name, raw) for name, raw in CASES.items()]
    cases += [(stored_json_value, f"{name} (column)", text) for name, text in STORED.items()]
    for reader, name, raw in cases:
        assert reader(raw) == json.loads(raw)
        number = max(200, 2_000_000 // len(raw))
        ours = best_us(reader, raw, number)
        lean = best_us(orjson.loads, raw, number)
        stdlib = best_us(json.loads, raw, number)
        figures = f"{ours:.2f} | {lean:.2f} | {stdlib:.2f} | {lean / ours:.2f}"
        print(f"| {name} | {len(raw):,} | {figures} |")


if __name__ == "__main__":
    main()
