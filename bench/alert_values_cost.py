"""CPU of the alert rules on one stored batch, in the process: `evaluate_values` over the
metric rows of 100 VCZ messages for the five rules that cover a device (ingest.py's
(e): 1,000 rules over 200 devices), none of them moving, so that no statement runs;
what every batch of a covered device pays in its group's transaction.

    .venv/bin/python bench/alert_values_cost.py

The rows are those the payload log derives and stores (`derive_metrics`), the rules and
states those `Alerts.covered` reads (four GREATER_THAN 1,000 standing still, one
LESS_THAN 5 standing firing). Prints the best and every round of 5 x 2,000 batches,
after a round to warm up, next to the lean reference: one pass over the same rows
that takes the reference marker's values and compares their extremes with each rule's
threshold, the least any evaluation does. `BENCH_SERVER_PYTHONPATH` is not used: run
older code with `PYTHONPATH`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import vsense
from vsense.alerts import evaluation, repository
from vsense.alerts.engine import GREATER_THAN, LESS_THAN, Standing
from vsense.payloads.metrics import derive_metrics
from vsense.payloads.schemas import validate_message

MESSAGES = 100
RULES = 5
ROUNDS = 5
BATCHES = 2_000
MARKER = "Z-0"


def batch_rows(device: uuid.UUID) -> list[dict[str, Any]]:
    """The metric rows of a batch of VCZ messages one minute apart, as stored."""
    zone, now = str(uuid.uuid4()), int(time.time())
    rows: list[dict[str, Any]] = []
    for n in range(MESSAGES):
        epoch = now - 60 * (MESSAGES - n)
        raw = {
            "type": "VCZ",
            "timestamp": epoch,
            "payload": [
                {
                    "id": zone,
                    "name": MARKER,
                    "count": 3,
                    "by_class": {"person": 3},
                    "period_start": epoch - 60,
                    "period_end": epoch,
                }
            ],
        }
        message = validate_message(raw, now=datetime.now(UTC))
        for metric in derive_metrics(message):
            rows.append(
                {
                    "device_uuid": device,
                    "message_id": n + 1,
                    "received_at": datetime.now(UTC),
                    "epoch": epoch,
                    "name": metric.name,
                    "value": metric.value,
                    "marker_id": metric.marker_id,
                    "marker_name": metric.marker_name,
                }
            )
    return rows


def covering_rules(zone: str) -> repository.DeviceRules:
    """The device's rules and states as `Alerts.covered` reads them."""
    rules, states = [], {}
    for n in range(RULES):
        below = n == RULES - 1
        kind, trigger, clearing = (LESS_THAN, 5.0, 10.0) if below else (GREATER_THAN, 1e3, 900.0)
        rules.append(
            repository.RuleView(
                n + 1,
                1,
                f"rule {n}",
                "count",
                MARKER,
                kind,
                trigger,
                clearing,
                None,
                None,
                "warning",
                datetime.now(UTC),
            )
        )
        if below:  # fired at the device's first batch, and stands firing
            states[(n + 1, zone)] = repository.StateRow(
                id=n + 1, version=1, standing=Standing(firing=True), alert_uuid=uuid.uuid4()
            )
    return repository.DeviceRules(rules, "VCZ", states)


def lean(rows: Sequence[Mapping[str, Any]], rules: repository.DeviceRules, zone: str) -> int:
    """The least evaluation: the marker's values in one pass, their extremes against
    each rule's threshold (a rule whose state at `zone` fires, against its clearing
    value)."""
    values = [
        row["value"] for row in rows if row["name"] == "count" and row["marker_name"] == MARKER
    ]
    high, low, moved = max(values), min(values), 0
    for rule in rules.rules:
        state = rules.states.get((rule.id, zone))
        firing = state is not None and state.standing.firing
        assert rule.trigger_value is not None and rule.clearing_value is not None
        if rule.kind == GREATER_THAN:
            moved += low < rule.clearing_value if firing else high > rule.trigger_value
        else:
            moved += high > rule.clearing_value if firing else low < rule.trigger_value
    return moved


async def main() -> None:
    device = uuid.uuid4()
    rows = batch_rows(device)
    zone = rows[0]["marker_id"]
    rules = covering_rules(zone)

    async def no_event(_session: Any, items: Sequence[Any]) -> int:
        raise AssertionError(f"no rule moves, yet {len(items)} events were emitted")

    async def vsense_batch() -> None:
        moved = await evaluation.evaluate_values(
            None,  # type: ignore[arg-type]  # no rule moves: no statement runs
            no_event,
            device,
            rows,
            datetime.now(UTC),
            rules,
        )
        assert moved == 0

    async def lean_batch() -> None:
        assert lean(rows, rules, zone) == 0

    print(f"vsense from {vsense.__file__}")
    print(f"{len(rows)} metric rows per batch, {RULES} rules covering the device")
    best: dict[str, float] = {}
    for name, run in (("vsense", vsense_batch), ("lean", lean_batch)):
        figures = [await per_batch(run) for _ in range(ROUNDS + 1)][1:]
        best[name] = min(figures)
        print(f"{name:7} best {best[name]:7.1f} µs per batch; rounds: " + ", ".join(
            f"{figure:.1f}" for figure in figures))  # fmt: skip
    print(f"lean / vsense: {best['lean'] / best['vsense']:.2f}")


async def per_batch(run: Callable[[], Awaitable[None]]) -> float:
    started = time.process_time()
    for _ in range(BATCHES):
        await run()
    return (time.process_time() - started) / BATCHES * 1e6


if __name__ == "__main__":
    asyncio.run(main())
