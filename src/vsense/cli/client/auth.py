"""`vsense login`, `logout`, `me`, `tokens ...` and `config show`."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Annotated

import typer

from vsense.cli.client import views
from vsense.cli.client.context import CommandError, Context, command, parse_instant
from vsense.client import APIStatusError, Client, Credentials

tokens_app = typer.Typer(
    help="Personal access tokens, for scripts and machines.", no_args_is_help=True
)
config_app = typer.Typer(
    help="The client's settings and where they come from.", no_args_is_help=True
)


def login(
    cli: Context,
    email: Annotated[
        str | None, typer.Option(help="Login email (asked for when missing).", show_default=False)
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Log in with email and password; the session is kept for this profile and address."""
    settings = cli.settings
    if not email:
        email = typer.prompt("Email", err=True).strip()
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, err=True)
    if not email or not password:
        raise CommandError("give an email and a password")

    def keep(credentials: Credentials) -> None:
        settings.store.save(settings.profile_name, settings.base_url, credentials, email)

    client = cli.use(Client(base_url=settings.base_url, email=email, on_credentials=keep))
    result = client.login(email=email, password=password)
    if cli.out.json_mode:
        # The login answer without the tokens themselves: they stay in the credentials file.
        cli.out.json(
            {
                "data": {
                    "user": result.user.api_json(),
                    "token_type": result.token_type,
                    "expires_in": result.expires_in,
                }
            }
        )
        return
    cli.out.done(
        f"Logged in to {settings.base_url} as {result.user.name or result.user.email} "
        f"<{result.user.email}> ({', '.join(result.user.role)}), profile "
        f"{settings.profile_name!r}."
    )
    cli.out.note(f"Session saved in {settings.credentials_file}")


def logout(cli: Context) -> None:
    """Revoke this profile's session on the server and forget it here."""
    settings = cli.settings
    stored = settings.store.load(settings.profile_name, settings.base_url)
    if stored is None:
        raise CommandError(
            f"not logged in to {settings.base_url} (profile {settings.profile_name!r})"
        )
    client = cli.use(
        Client(base_url=settings.base_url, credentials=stored.credentials, max_retries=0)
    )
    try:
        client.logout()
    except APIStatusError as exc:
        if exc.status_code != 401:  # an already dead session is logged out all the same
            raise
    finally:
        settings.store.delete(settings.profile_name, settings.base_url)
    cli.out.done(f"Logged out of {settings.base_url} (profile {settings.profile_name!r}).")


def me(cli: Context) -> None:
    """Who the token or session belongs to: role, organization, groups, scopes."""
    cli.out.result(cli.client().me.get(), lambda item: views.me(cli.out, item))


@command(tokens_app, "list")
def list_tokens(
    cli: Context,
    page: Annotated[int | None, typer.Option(min=1, help="Page number.")] = None,
    per_page: Annotated[int | None, typer.Option(min=1, max=500, help="Items per page.")] = None,
) -> None:
    """Your personal access tokens (never the tokens themselves)."""
    result = cli.client().tokens.list(page=page, per_page=per_page)
    cli.out.page(result, lambda items: views.tokens(cli.out, items), "tokens")


@command(tokens_app, "create")
def create_token(
    cli: Context,
    name: Annotated[str, typer.Option(help="What the token is for.")],
    scope: Annotated[
        list[str],
        typer.Option(
            "--scope",
            "-s",
            help="A scope (repeat): devices:read, devices:write, images:request, "
            "webhooks:read, webhooks:write, users:read, users:write, tokens:write, ...",
        ),
    ],
    expires_at: Annotated[
        datetime | None,
        typer.Option(
            help="When it stops working (ISO 8601 or UNIX seconds); default never.",
            parser=parse_instant,
        ),
    ] = None,
) -> None:
    """Create a personal access token; it is shown once."""
    created = cli.client().tokens.create(name=name, scopes=scope, expires_at=expires_at)
    cli.out.result(created, lambda item: views.tokens(cli.out, [item]))
    cli.out.secret("Token", created.token)


@command(tokens_app, "revoke")
def revoke_token(
    cli: Context, token_id: Annotated[int, typer.Argument(help="The token's id.")]
) -> None:
    """Revoke a personal access token at once."""
    cli.client().tokens.revoke(token_id)
    cli.out.done(f"Revoked token {token_id}.")


def _redacted(token: str | None) -> str | None:
    if not token:
        return None
    return token[:8] + "…" if len(token) > 12 else "…"


@command(config_app, "show")
def show_config(cli: Context) -> None:
    """Each setting, its value, and where it came from.

    Sources, strongest first: flag, environment, profile, last login, default.
    """
    settings = cli.settings
    stored = settings.store.load(settings.profile_name, settings.base_url)
    login = f"{stored.email} at {settings.base_url}" if stored else None
    rows = {
        "profile": (settings.profile.value, settings.profile.source),
        "api_addr": (settings.api_addr.value, settings.api_addr.source),
        "base_url": (settings.base_url, "from api_addr"),
        "token": (_redacted(settings.token.value), settings.token.source),
        "output": (settings.output.value, settings.output.source),
        "config_file": (
            str(settings.config_file),
            "exists" if settings.config_file.exists() else "absent",
        ),
        "login": (login, str(settings.credentials_file)),
    }
    if cli.out.json_mode:
        cli.out.json({name: {"value": v, "source": s} for name, (v, s) in rows.items()})
        return
    cli.out.table(
        ["SETTING", "VALUE", "SOURCE"], ([name, v or "-", s] for name, (v, s) in rows.items())
    )


def register(app: typer.Typer) -> None:
    command(app, "login")(login)
    command(app, "logout")(logout)
    command(app, "me")(me)
    app.add_typer(tokens_app, name="tokens")
    app.add_typer(config_app, name="config")
