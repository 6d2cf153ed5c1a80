"""`vsense webhooks ...`: endpoints the platform calls, and their delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from vsense.cli.client import views
from vsense.cli.client.context import CommandError, Context, command, parse_instant
from vsense.client import NOT_GIVEN, NotGiven
from vsense.client.models import Queued, Webhook, WebhookTestResult

webhooks_app = typer.Typer(
    help="Webhooks: where the platform sends device events, and what it sent.",
    no_args_is_help=True,
)

WebhookId = Annotated[int, typer.Argument(help="The webhook's id.")]
TypeOption = Annotated[
    str | None, typer.Option("--type", help="payload, keepalive or alert.", show_default=False)
]
ActionsOption = Annotated[
    str | None,
    typer.Option(
        help="Events that trigger it, comma or space separated: payload, keepalive, alert, "
        "status, image (the console's labels too: 'Keep alive', 'Payload transfer').",
        show_default=False,
    ),
]
MethodOption = Annotated[
    str | None,
    typer.Option(
        help="POST, or GET (keepalive events only; the default for those).", show_default=False
    ),
]
HeaderOption = Annotated[
    list[str] | None,
    typer.Option("--header", "-H", help="`Name: value` added to every call (repeat)."),
]
ParamOption = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="`name=value` query parameter of every call (repeat)."),
]


def _pairs(values: list[str] | None, separator: str, what: str) -> list[tuple[str, str]] | NotGiven:
    if values is None:
        return NOT_GIVEN
    pairs = []
    for value in values:
        name, found, content = value.partition(separator)
        if not found or not name.strip():
            raise CommandError(f"{what} {value!r} must look like `name{separator}value`")
        pairs.append((name.strip(), content.strip()))
    return pairs


def _given(value: str | None, *, upper: bool = False) -> str | NotGiven:
    if value is None:
        return NOT_GIVEN
    return value.upper() if upper else value


@command(webhooks_app, "list")
def list_webhooks(
    cli: Context,
    device: Annotated[str | None, typer.Option(help="Only this device's webhooks.")] = None,
) -> None:
    """Webhooks of a device, or all you may see."""
    result = cli.client().webhooks.list(device_uuid=device)
    cli.out.page(result, lambda items: views.webhooks(cli.out, items), "webhooks")


@command(webhooks_app, "add")
def add_webhook(
    cli: Context,
    device: Annotated[str, typer.Option(help="The device's UUID.")],
    url: Annotated[str, typer.Option(help="Where to send (http or https).")],
    webhook_type: TypeOption = None,
    actions: ActionsOption = None,
    method: MethodOption = None,
    header: HeaderOption = None,
    param: ParamOption = None,
    inactive: Annotated[bool, typer.Option("--inactive", help="Create it disabled.")] = False,
) -> None:
    """Add a webhook to a device (admins); its signing secret is shown once."""
    created = cli.client().webhooks.create(
        device_uuid=device,
        url=url,
        webhook_type=webhook_type or "payload",
        actions=_given(actions),
        method=_given(method, upper=True),
        status=0 if inactive else NOT_GIVEN,
        headers=_pairs(header, ":", "header"),
        params=_pairs(param, "=", "parameter"),
    )
    _answer(cli, created)
    cli.out.secret("Signing secret", created.secret)


def _answer(cli: Context, webhook: Webhook) -> None:
    """An add's or an update's answer: the API's `{"data", "error"}` in JSON mode."""
    if cli.out.json_mode:
        cli.out.json({"data": webhook.api_json(), "error": []})
    else:
        views.webhook(cli.out, webhook)


@command(webhooks_app, "update")
def update_webhook(
    cli: Context,
    webhook_id: Annotated[
        int | None, typer.Argument(help="The webhook's id; without it, the webhook of --device.")
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            help="The device whose webhook to change (its only one, or the one of --type)."
        ),
    ] = None,
    url: Annotated[str | None, typer.Option(help="New URL.")] = None,
    webhook_type: TypeOption = None,
    actions: ActionsOption = None,
    method: MethodOption = None,
    header: HeaderOption = None,
    param: ParamOption = None,
    enable: Annotated[
        bool | None,
        typer.Option("--enable/--disable", help="Turn on (also after an auto-disable) or off."),
    ] = None,
) -> None:
    """Change a webhook; only the options given change (--header/--param replace the lists)."""
    if webhook_id is None and device is None:
        raise CommandError("name the webhook by its id, or its device with --device")
    updated = cli.client().webhooks.update(
        webhook_id,
        device_uuid=device,
        url=_given(url),
        webhook_type=_given(webhook_type),
        actions=_given(actions),
        method=_given(method, upper=True),
        status=NOT_GIVEN if enable is None else int(enable),
        headers=_pairs(header, ":", "header"),
        params=_pairs(param, "=", "parameter"),
    )
    _answer(cli, updated)


@command(webhooks_app, "rm")
def remove_webhook(cli: Context, webhook_id: WebhookId) -> None:
    """Delete a webhook and its delivery log."""
    cli.client().webhooks.delete(webhook_id)
    cli.out.done(f"Deleted webhook {webhook_id}.")


def _test_result(cli: Context, result: WebhookTestResult) -> None:
    outcome = str(result.status_code) if result.status_code else (result.error or "no answer")
    cli.out.fields(
        [
            ("status", result.status),
            ("answer", outcome),
            ("duration", f"{result.duration_ms or 0:.0f} ms"),
            ("delivery", str(result.delivery_id)),
            ("response", result.response or "-"),
        ]
    )


@command(webhooks_app, "test")
def test_webhook(cli: Context, webhook_id: WebhookId) -> None:
    """Send a `test` event now and show how the endpoint answered."""
    result = cli.client().webhooks.test(webhook_id)
    cli.out.result(result, lambda item: _test_result(cli, item))


@command(webhooks_app, "rotate-secret")
def rotate_secret(cli: Context, webhook_id: WebhookId) -> None:
    """A new signing secret; the old one keeps signing alongside for 24 hours."""
    result = cli.client().webhooks.rotate_secret(webhook_id)
    cli.out.result(result, lambda item: views.webhook(cli.out, item))
    cli.out.secret("New signing secret", result.secret)


@command(webhooks_app, "deliveries")
def list_deliveries(
    cli: Context,
    webhook_id: WebhookId,
    status: Annotated[str | None, typer.Option(help="pending, succeeded, failed or dead.")] = None,
    page: Annotated[int | None, typer.Option(min=1, help="Page number.")] = None,
    per_page: Annotated[int | None, typer.Option(min=1, max=500, help="Items per page.")] = None,
) -> None:
    """A webhook's delivery log, newest first."""
    result = cli.client().webhooks.deliveries.list(
        webhook_id, status=status, page=page, per_page=per_page
    )
    cli.out.page(result, lambda items: views.deliveries(cli.out, items), "deliveries")


def _queued(cli: Context, result: Queued) -> None:
    ids = ", ".join(str(i) for i in result.delivery_ids)
    cli.out.done(f"Queued {result.queued} deliveries" + (f": {ids}" if ids else "."))


@command(webhooks_app, "redeliver")
def redeliver(
    cli: Context,
    webhook_id: WebhookId,
    delivery_id: Annotated[int, typer.Argument(help="The delivery's id.")],
) -> None:
    """Send one delivery's event again (same `webhook-id`)."""
    result = cli.client().webhooks.deliveries.redeliver(webhook_id, delivery_id)
    cli.out.result(result, lambda item: _queued(cli, item))


@command(webhooks_app, "replay")
def replay(
    cli: Context,
    webhook_id: WebhookId,
    since: Annotated[
        datetime,
        typer.Option(help="From this time (ISO 8601 or UNIX seconds).", parser=parse_instant),
    ],
    until: Annotated[
        datetime | None, typer.Option(help="Up to this time; default now.", parser=parse_instant)
    ] = None,
) -> None:
    """Send again every event of a time window."""
    result = cli.client().webhooks.replay(webhook_id, since=since, until=until)
    cli.out.result(result, lambda item: _queued(cli, item))


def register(app: typer.Typer) -> None:
    app.add_typer(webhooks_app, name="webhooks")
