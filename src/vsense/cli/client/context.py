"""The global options of every client command, and what a command runs with.

`command(app, "name")` registers a function `def name(cli: Context, ...)` as a Typer
command that also takes `--api-addr`, `--token`, `--profile`, `--output` and `--debug`,
and turns every error into one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import click
import typer

from vsense.cli.client.output import Printer
from vsense.cli.client.settings import ClientSettings, Flags, SettingsError, resolve
from vsense.client import (
    APIStatusError,
    AuthenticationError,
    Client,
    Credentials,
    VsenseError,
)

F = TypeVar("F", bound=Callable[..., Any])
PANEL = "Global options"
# The parameter through which a command receives its Typer context.
CONTEXT_PARAMETER = "global_options_context"


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


class CommandError(Exception):
    """A failure the command explains in one line (not logged in, bad input, ...)."""


GLOBAL_OPTIONS: dict[str, Any] = {
    "api_addr": Annotated[
        str | None,
        typer.Option(
            "--api-addr",
            help="The API: a host (api.example.com means https://) or a URL with its scheme. "
            "[env: VSENSE_API_ADDR]",
            rich_help_panel=PANEL,
            show_default=False,
        ),
    ],
    "token": Annotated[
        str | None,
        typer.Option(
            "--token",
            help="A personal access token instead of the session of `vsense login`. "
            "[env: VSENSE_TOKEN]",
            rich_help_panel=PANEL,
            show_default=False,
        ),
    ],
    "profile": Annotated[
        str | None,
        typer.Option(
            "--profile",
            help="Profile of the config file (and of the stored login). [env: VSENSE_PROFILE]",
            rich_help_panel=PANEL,
            show_default=False,
        ),
    ],
    "output": Annotated[
        OutputFormat | None,
        typer.Option(
            "--output",
            "-o",
            help="table for people, json for scripts (the API's JSON only). [env: VSENSE_OUTPUT]",
            rich_help_panel=PANEL,
            show_default=False,
        ),
    ],
    "debug": Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Show tracebacks of errors.",
            rich_help_panel=PANEL,
            envvar="VSENSE_DEBUG",
        ),
    ],
}


class Context:
    """What a client command works with: its settings, its printer, the SDK client."""

    def __init__(self, flags: Flags, *, debug: bool) -> None:
        self.flags = flags
        self.debug = debug
        # Until the settings are known, print in the format the flag asked for.
        self.printer = Printer(flags.output or "table")
        self._settings: ClientSettings | None = None
        self._client: Client | None = None
        # Whether the command runs on the stored session of `vsense login`.
        self.uses_session = False

    @property
    def settings(self) -> ClientSettings:
        if self._settings is None:
            self._settings = resolve(self.flags)
            self.printer = Printer(self._settings.output.value or "table")
        return self._settings

    @property
    def out(self) -> Printer:
        """The printer of the output format the settings chose."""
        if self._settings is None:
            # A command that needs the settings reports their error when it reads them.
            with contextlib.suppress(SettingsError):
                self.settings  # noqa: B018
        return self.printer

    def client(self) -> Client:
        """The SDK client: with the token if one is set, else with the stored login of
        this profile and address (renewed as needed, and saved again when renewed)."""
        if self._client is not None:
            return self._client
        settings = self.settings
        if settings.token.value:
            self._client = Client(base_url=settings.base_url, token=settings.token.value)
            return self._client
        stored = settings.store.load(settings.profile_name, settings.base_url)
        if stored is None:
            raise CommandError(
                f"not logged in to {settings.base_url} (profile {settings.profile_name!r}): "
                "run `vsense login`, or pass --token"
            )

        def keep(credentials: Credentials) -> None:
            settings.store.save(settings.profile_name, settings.base_url, credentials, stored.email)

        def load() -> Credentials | None:
            # Another vsense process may have renewed the session meanwhile.
            latest = settings.store.load(settings.profile_name, settings.base_url)
            return latest.credentials if latest else None

        self.uses_session = True
        self._client = Client(
            base_url=settings.base_url,
            credentials=stored.credentials,
            on_credentials=keep,
            load_credentials=load,
        )
        return self._client

    def use(self, client: Client) -> Client:
        """Make `client` the one this command uses (and closes)."""
        self._client = client
        return client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _error_line(exc: BaseException) -> str:
    if isinstance(exc, APIStatusError):
        fields = [
            f"{item.get('field', '?')}: {item.get('message', '')}"
            for item in exc.error
            if isinstance(item, dict)
        ]
        return exc.message + (f" ({'; '.join(fields)})" if fields else "")
    if isinstance(exc, VsenseError):
        return exc.message
    return str(exc)


def _run(cli: Context, action: Callable[[], Any]) -> None:
    try:
        action()
    except (typer.Exit, typer.Abort, click.ClickException):
        raise
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except (VsenseError, CommandError, SettingsError) as exc:
        if cli.debug:
            traceback.print_exc()
        line = _error_line(exc)
        if isinstance(exc, AuthenticationError) and cli.uses_session:
            line += "; run `vsense login` to start a new session"
        cli.printer.error(line)
        raise typer.Exit(1) from None
    except Exception as exc:
        if cli.debug:
            traceback.print_exc()
        cli.printer.error(
            f"unexpected {exc.__class__.__name__}: {exc} (--debug shows the traceback)"
        )
        raise typer.Exit(1) from None
    finally:
        cli.close()


def with_global_options(function: F) -> F:
    """`function(cli, **options)` as a Typer callback that also takes the global options."""
    signature = inspect.signature(function, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "cli"]
    extra = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=False if name == "debug" else None,
            annotation=annotation,
        )
        for name, annotation in GLOBAL_OPTIONS.items()
    ]
    extra.append(
        inspect.Parameter(
            CONTEXT_PARAMETER, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context
        )
    )

    @functools.wraps(function)
    def command(**arguments: Any) -> None:
        given = {name: arguments.pop(name) for name in GLOBAL_OPTIONS}
        # Given before the command (`vsense --api-addr=X devices list`), they are the
        # root's; after it, the command's own win.
        before = _root_options(arguments.pop(CONTEXT_PARAMETER))
        for name, value in given.items():
            if value is None or value is False:
                given[name] = before.get(name, value)
        output = given["output"]
        flags = Flags(
            api_addr=given["api_addr"],
            token=given["token"],
            profile=given["profile"],
            output=OutputFormat(output).value if output is not None else None,
        )
        cli = Context(flags, debug=bool(given["debug"]) or bool(os.environ.get("VSENSE_DEBUG")))
        _run(cli, lambda: function(cli, **arguments))

    parameters = own + extra
    command.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=parameters, return_annotation=None
    )
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    return command  # type: ignore[return-value]


def _root_options(context: typer.Context) -> dict[str, Any]:
    """The global options given before the command, as the root command parsed them."""
    params = context.find_root().params
    return {name: params[name] for name in GLOBAL_OPTIONS if params.get(name) is not None}


def global_options_callback(function: F) -> F:
    """`function(**own)` as the root command's callback that also takes the global
    options, so that they may come before the command; the commands read them back."""
    signature = inspect.signature(function, eval_str=True)
    own = list(signature.parameters.values())
    extra = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=False if name == "debug" else None,
            annotation=annotation,
        )
        for name, annotation in GLOBAL_OPTIONS.items()
    ]

    @functools.wraps(function)
    def callback(**arguments: Any) -> None:
        for name in GLOBAL_OPTIONS:
            arguments.pop(name)
        function(**arguments)

    parameters = own + extra
    callback.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=parameters, return_annotation=None
    )
    callback.__annotations__ = {p.name: p.annotation for p in parameters}
    return callback  # type: ignore[return-value]


def command(app: typer.Typer, name: str, **kwargs: Any) -> Callable[[F], F]:
    """Register a client command on `app` (see the module's docstring)."""

    def register(function: F) -> F:
        app.command(name, **kwargs)(with_global_options(function))
        return function

    return register


def parse_instant(value: str) -> datetime:
    """A time given on the command line: ISO 8601 (`Z` or an offset; none means UTC) or
    UNIX seconds."""
    text = value.strip()
    try:
        if text.replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(text), UTC)
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise typer.BadParameter(
            f"{value!r} is not a time: give ISO 8601 (2026-11-28T14:05:00Z) or UNIX seconds"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
