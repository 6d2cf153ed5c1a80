"""Alert rules and alerts through the SDK (sync and async) and the CLI, against a live
server of each backend."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.client.helpers import (
    SDK,
    Cli,
    call,
    close,
    collect,
    onboard,
    online_device,
    read_line,
    same_kind,
)
from tests.client.live_api import Account, LiveApi
from vsense.client import PermissionDeniedError, UnprocessableEntityError

ZONE_NAME = "Z-0"  # the zone of the tests' VCZ messages
EVERY_KIND: list[dict[str, Any]] = [
    {"rule": "GREATER_THAN", "metric": "count", "trigger_value": 100, "clearing_value": 90},
    {"rule": "LESS_THAN", "metric": "count", "trigger_value": 1, "clearing_value": 3, "for_s": 60},
    {"rule": "NO_DATA", "for_s": 600},
    {"rule": "FROZEN", "metric": "count", "reference_marker": ZONE_NAME, "for_s": 3600},
    {"rule": "OFFLINE", "for_s": 900},
]


@pytest.fixture
def admin(live: LiveApi, account: Account, tmp_path: Path) -> Cli:
    cli = Cli(live, account, tmp_path)
    cli.login()
    return cli


async def test_every_kind_of_rule_through_the_sdk(sdk: SDK, live: LiveApi) -> None:
    created, device = await online_device(sdk, live)
    rules = []
    for fields in EVERY_KIND:
        rule = await call(
            sdk.alert_rules.create(name=fields["rule"], device_uuid=created.uuid, **fields)
        )
        assert rule.rule == fields["rule"] and rule.device_uuid == created.uuid
        rules.append(rule)
    listed = await collect(sdk.alert_rules.list_all(device_uuid=created.uuid))
    assert [r.id for r in listed] == [r.id for r in rules]
    first = rules[0]
    assert (await call(sdk.alert_rules.get(first.id))).trigger_value == 100
    updated = await call(sdk.alert_rules.update(first.id, severity="critical"))
    assert updated.severity == "critical"
    with pytest.raises(UnprocessableEntityError) as invalid:
        await call(sdk.alert_rules.update(first.id, clearing_value=150))
    assert [e["field"] for e in invalid.value.error] == ["clearing_value"]

    now = int(time.time())
    device.send(150, now - 10)
    (firing,) = (await call(sdk.alerts.list(state="firing", rule_id=first.id))).data
    assert firing.fired_value == 150 and firing.severity == "critical"
    acked = await call(sdk.alerts.ack(firing.uuid, note="looking"))
    assert (acked.ack_note, acked.state) == ("looking", "firing")
    device.send(10, now)
    ended = await call(sdk.alerts.get(firing.uuid))
    assert (ended.state, ended.cleared_state) == ("cleared", "LIMIT_CLEARED")
    assert ended.acknowledged_by is not None
    everything = await collect(sdk.alerts.list_all(device_uuid=created.uuid))
    assert firing.uuid in [a.uuid for a in everything]
    for rule in rules:
        await call(sdk.alert_rules.delete(rule.id))
    assert (await call(sdk.alert_rules.list(device_uuid=created.uuid))).data == []
    device.close()


async def test_a_read_only_token_reads_rules_and_writes_none(sdk: SDK, live: LiveApi) -> None:
    created, device = await online_device(sdk, live)
    await call(sdk.alert_rules.create(name="busy", device_uuid=created.uuid, **EVERY_KIND[0]))
    token = await call(sdk.tokens.create(name="reader", scopes=["alerts:read"]))

    reader = same_kind(sdk, base_url=live.base_url, token=token.token)
    try:
        assert len((await call(reader.alert_rules.list())).data) == 1
        with pytest.raises(PermissionDeniedError):
            await call(reader.alert_rules.create(name="no", app_type="VCZ", **EVERY_KIND[2]))
    finally:
        await close(reader)
    device.close()


def test_alert_commands(admin: Cli) -> None:
    created, device = onboard(admin)
    rule = admin.json(
        "alert-rules", "add", "--name", "crowd", "--rule", "greater_than",
        "--device", created["uuid"], "--metric", "count", "--marker", ZONE_NAME,
        "--trigger", "100", "--clearing", "90", "--severity", "critical",
    )  # fmt: skip
    assert (rule["rule"], rule["trigger_value"], rule["reference_marker"]) == (
        "GREATER_THAN",
        100,
        ZONE_NAME,
    )
    for extra in (
        ["--rule", "no_data", "--for", "600"],
        ["--rule", "offline", "--for", "900"],
        ["--rule", "frozen", "--metric", "count", "--for", "3600"],
        ["--rule", "less_than", "--metric", "count", "--trigger", "1", "--clearing", "2"],
    ):
        admin.ok("alert-rules", "add", "--name", extra[1], "--device", created["uuid"], *extra)
    table = admin.ok("alert-rules", "list", "--device", created["uuid"]).stdout
    assert "crowd" in table and "GREATER_THAN 100/90" in table and "5 rules" in table
    wrong = admin("alert-rules", "update", str(rule["id"]), "--clearing", "120")
    assert wrong.exit_code != 0 and "clearing_value" in wrong.stderr
    admin.ok("alert-rules", "update", str(rule["id"]), "--trigger", "110")

    device.send(150)
    (firing,) = admin.json("alerts", "list", "--firing")["data"]
    assert firing["rule_id"] == rule["id"]
    assert firing["uuid"] in admin.ok("alerts", "list").stdout
    acked = admin.json("alerts", "ack", firing["uuid"], "--note", "on my way")
    assert acked["ack_note"] == "on my way"
    assert "on my way" in admin.ok("alerts", "get", firing["uuid"]).stdout
    admin.ok("alert-rules", "rm", str(rule["id"]))
    (ended,) = admin.json("alerts", "list")["data"]
    assert (ended["state"], ended["cleared_state"]) == ("cleared", "RULE_DELETED")
    device.close()


def test_alerts_follow_prints_firing_then_clearing(
    admin: Cli, processes: list[subprocess.Popen[str]]
) -> None:
    created, device = onboard(admin)
    admin.json(
        "alert-rules", "add", "--name", "crowd", "--rule", "GREATER_THAN",
        "--device", created["uuid"], "--metric", "count", "--trigger", "10", "--clearing", "5",
    )  # fmt: skip
    follow = subprocess.Popen(
        [sys.executable, "-m", "vsense.cli", "alerts", "list", "--follow", "--interval", "0.2",
         "-o", "json"],
        env=admin.process_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    processes.append(follow)
    now = int(time.time())
    device.send(20, now - 5)
    fired = json.loads(read_line(follow))
    assert (fired["state"], fired["fired_value"]) == ("firing", 20)
    device.send(1, now)
    cleared = json.loads(read_line(follow))
    assert (cleared["uuid"], cleared["state"]) == (fired["uuid"], "cleared")
    device.close()
