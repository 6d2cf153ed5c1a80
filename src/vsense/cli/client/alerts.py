"""`vsense alert-rules ...` and `vsense alerts ...`: rules, and the alerts they raise."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any

import typer

from vsense.cli.client.context import CommandError, Context, command, parse_instant
from vsense.cli.client.output import Printer, text, when
from vsense.client.models import Alert, AlertRule

rules_app = typer.Typer(
    help="Alert rules: thresholds with hysteresis and durations, and time rules.",
    no_args_is_help=True,
)
alerts_app = typer.Typer(help="Alerts: what the rules raised, and acknowledging them.")

RuleId = Annotated[int, typer.Argument(help="The rule's id.")]
NameOption = Annotated[str | None, typer.Option(help="The rule's name.", show_default=False)]
KindOption = Annotated[
    str | None,
    typer.Option(
        "--rule", help="GREATER_THAN, LESS_THAN, NO_DATA, FROZEN or OFFLINE.", show_default=False
    ),
]
DeviceOption = Annotated[
    str | None, typer.Option("--device", help="The one device it covers.", show_default=False)
]
GroupOption = Annotated[
    str | None, typer.Option(help="The group (name or id) it covers.", show_default=False)
]
AppTypeOption = Annotated[
    str | None,
    typer.Option("--app-type", help="VPM, VYD, VCZ, VCB or VCW.", show_default=False),
]
MetricOption = Annotated[
    str | None,
    typer.Option(help="count, occupied, in, out, net, occupancy or dwell_s.", show_default=False),
]
MarkerOption = Annotated[
    str | None,
    typer.Option("--marker", help="A zone, line or spot (uuid or name).", show_default=False),
]
TriggerOption = Annotated[
    float | None, typer.Option("--trigger", help="trigger_value.", show_default=False)
]
ClearingOption = Annotated[
    float | None, typer.Option("--clearing", help="clearing_value.", show_default=False)
]
ForOption = Annotated[
    int | None,
    typer.Option("--for", help="Seconds the condition must hold.", show_default=False),
]
ClearForOption = Annotated[
    int | None,
    typer.Option("--clear-for", help="Seconds before a clearing counts.", show_default=False),
]
SeverityOption = Annotated[
    str | None, typer.Option(help="info, warning or critical.", show_default=False)
]


def _fields(**options: Any) -> dict[str, Any]:
    """The options given, under their API names."""
    return {name: value for name, value in options.items() if value is not None}


def _rules(out: Printer, items: list[AlertRule]) -> None:
    out.table(
        ["ID", "NAME", "ON", "SCOPE", "WATCHES", "RULE", "SEVERITY"],
        (
            [
                str(r.id),
                r.name,
                "yes" if r.enabled else "no",
                r.device_uuid or (f"group {r.group}" if r.group else f"all {r.app_type}"),
                " ".join(x for x in (r.metric, r.reference_marker) if x) or "-",
                _summary(r),
                r.severity,
            ]
            for r in items
        ),
    )


def _summary(rule: AlertRule) -> str:
    parts = [rule.rule]
    if rule.trigger_value is not None:
        parts.append(f"{rule.trigger_value:g}/{rule.clearing_value:g}")
    if rule.for_s:
        parts.append(f"for {rule.for_s}s")
    if rule.clear_for_s:
        parts.append(f"clear {rule.clear_for_s}s")
    return " ".join(parts)


def _rule(out: Printer, rule: AlertRule) -> None:
    _rules(out, [rule])


def _alerts(out: Printer, items: list[Alert]) -> None:
    out.table(
        ["UUID", "STATE", "SEVERITY", "RULE", "DEVICE", "FIRED", "VALUE", "CLEARED", "ACK"],
        (
            [
                a.uuid,
                a.state,
                a.severity,
                a.rule_name,
                a.device_uuid,
                when(a.fired_at, short=True),
                text(a.fired_value),
                when(a.cleared_at, short=True) if a.cleared_at else "-",
                text(a.acknowledged_by) if a.acknowledged_at else "-",
            ]
            for a in items
        ),
    )


def _alert(out: Printer, item: Alert) -> None:
    marker = item.reference_marker or {}
    out.fields(
        [
            ("uuid", item.uuid),
            ("state", item.state),
            ("rule", f"{item.rule_name} ({item.rule_id})"),
            ("severity", item.severity),
            ("device", item.device_uuid),
            ("marker", text(marker.get("name") or marker.get("uuid"))),
            ("fired", f"{when(item.fired_at)} {item.fired_state} {text(item.fired_value)}"),
            (
                "cleared",
                f"{when(item.cleared_at)} {item.cleared_state} {text(item.cleared_value)}"
                if item.cleared_at
                else "-",
            ),
            (
                "acknowledged",
                f"{when(item.acknowledged_at)} by {text(item.acknowledged_by)}: "
                f"{text(item.ack_note)}"
                if item.acknowledged_at
                else "-",
            ),
        ]
    )


@command(rules_app, "list")
def list_rules(
    cli: Context,
    device: Annotated[str | None, typer.Option(help="Only rules covering this device.")] = None,
) -> None:
    """The rules you see."""
    rules = cli.client().alert_rules.list_all(device_uuid=device)
    cli.out.every(rules, lambda items: _rules(cli.out, items), "rules")


@command(rules_app, "add")
def add_rule(
    cli: Context,
    name: Annotated[str, typer.Option(help="The rule's name.")],
    rule: Annotated[
        str, typer.Option("--rule", help="GREATER_THAN, LESS_THAN, NO_DATA, FROZEN or OFFLINE.")
    ],
    device: DeviceOption = None,
    group: GroupOption = None,
    app_type: AppTypeOption = None,
    metric: MetricOption = None,
    marker: MarkerOption = None,
    trigger: TriggerOption = None,
    clearing: ClearingOption = None,
    for_s: ForOption = None,
    clear_for_s: ClearForOption = None,
    severity: SeverityOption = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it turned off.")] = False,
) -> None:
    """Add a rule (admins)."""
    created = cli.client().alert_rules.create(
        **_fields(
            name=name,
            rule=rule.upper(),
            device_uuid=device,
            group=group,
            app_type=app_type.upper() if app_type else None,
            metric=metric,
            reference_marker=marker,
            trigger_value=trigger,
            clearing_value=clearing,
            for_s=for_s,
            clear_for_s=clear_for_s,
            severity=severity,
            enabled=False if disabled else None,
        )
    )
    cli.out.result(created, lambda item: _rule(cli.out, item))


@command(rules_app, "update")
def update_rule(
    cli: Context,
    rule_id: RuleId,
    name: NameOption = None,
    rule: KindOption = None,
    device: DeviceOption = None,
    group: GroupOption = None,
    app_type: AppTypeOption = None,
    metric: MetricOption = None,
    marker: MarkerOption = None,
    trigger: TriggerOption = None,
    clearing: ClearingOption = None,
    for_s: ForOption = None,
    clear_for_s: ClearForOption = None,
    severity: SeverityOption = None,
    enable: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Turn the rule on or off.")
    ] = None,
) -> None:
    """Change a rule; only the options given change."""
    fields = _fields(
        name=name,
        rule=rule.upper() if rule else None,
        device_uuid=device,
        group=group,
        app_type=app_type.upper() if app_type else None,
        metric=metric,
        reference_marker=marker,
        trigger_value=trigger,
        clearing_value=clearing,
        for_s=for_s,
        clear_for_s=clear_for_s,
        severity=severity,
        enabled=enable,
    )
    if not fields:
        raise CommandError("nothing to change: give at least one option")
    updated = cli.client().alert_rules.update(rule_id, **fields)
    cli.out.result(updated, lambda item: _rule(cli.out, item))


@command(rules_app, "rm")
def remove_rule(cli: Context, rule_id: RuleId) -> None:
    """Delete a rule; its firing alerts end with a CLEARING."""
    cli.client().alert_rules.delete(rule_id)
    cli.out.done(f"Deleted rule {rule_id}.")


def _print_change(cli: Context, item: Alert) -> None:
    if cli.out.json_mode:
        cli.out.json_line(item.api_json())
        return
    if item.cleared_at is not None:
        line = f"{when(item.cleared_at)} CLEARING {item.cleared_state} {text(item.cleared_value)}"
    else:
        line = f"{when(item.fired_at)} FIRING {item.fired_state} {text(item.fired_value)}"
    cli.out.lines([f"{line} {item.severity} {item.rule_name} {item.device_uuid} {item.uuid}"])


@command(alerts_app, "list")
def list_alerts(
    cli: Context,
    firing: Annotated[bool, typer.Option("--firing", help="Only alerts still firing.")] = False,
    cleared: Annotated[bool, typer.Option("--cleared", help="Only ended alerts.")] = False,
    device: Annotated[str | None, typer.Option(help="Only this device's.")] = None,
    rule: Annotated[int | None, typer.Option(help="Only this rule's.")] = None,
    severity: SeverityOption = None,
    since: Annotated[
        datetime | None,
        typer.Option(help="Fired from this time on (ISO 8601 or UNIX).", parser=parse_instant),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing FIRING and CLEARING as they come.")
    ] = False,
    interval: Annotated[
        float, typer.Option(min=0.2, help="Seconds between two polls with --follow.")
    ] = 2.0,
    page: Annotated[int | None, typer.Option(min=1, help="Page number.")] = None,
    per_page: Annotated[int | None, typer.Option(min=1, max=500, help="Items per page.")] = None,
) -> None:
    """Alerts, newest first. With --follow: each FIRING and CLEARING as it happens (JSON
    output: one alert per line), until Ctrl-C."""
    if firing and cleared:
        raise CommandError("--firing and --cleared exclude each other")
    client = cli.client()
    filters: dict[str, Any] = {
        "state": "firing" if firing else "cleared" if cleared else None,
        "device_uuid": device,
        "rule_id": rule,
        "severity": severity,
        "since": since,
    }
    first = client.alerts.list(page=page, per_page=per_page, **filters)
    if not follow:
        cli.out.page(first, lambda items: _alerts(cli.out, items), "alerts")
        return
    for item in reversed(first.data):
        _print_change(cli, item)
    # Each episode's last printed state: a new uuid is a FIRING, a new state a CLEARING.
    seen = {item.uuid: item.state for item in first.data}
    while True:
        time.sleep(interval)
        fresh = client.alerts.list(per_page=500, **filters).data
        for item in sorted(fresh, key=lambda a: a.cleared_at or a.fired_at):
            if seen.get(item.uuid) != item.state:
                seen[item.uuid] = item.state
                _print_change(cli, item)


@command(alerts_app, "get")
def get_alert(
    cli: Context, alert_uuid: Annotated[str, typer.Argument(help="The alert's uuid.")]
) -> None:
    """One alert."""
    found = cli.client().alerts.get(alert_uuid)
    cli.out.result(found, lambda item: _alert(cli.out, item))


@command(alerts_app, "ack")
def ack_alert(
    cli: Context,
    alert_uuid: Annotated[str, typer.Argument(help="The alert's uuid.")],
    note: Annotated[str | None, typer.Option(help="Why, or what is being done.")] = None,
) -> None:
    """Acknowledge an alert (it silences nothing)."""
    acked = cli.client().alerts.ack(alert_uuid, note=note)
    cli.out.result(acked, lambda item: _alert(cli.out, item))


def register(app: typer.Typer) -> None:
    app.add_typer(rules_app, name="alert-rules")
    app.add_typer(alerts_app, name="alerts")
