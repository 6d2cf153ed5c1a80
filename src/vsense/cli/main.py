"""`vsense`: run the server and administer it from the command line."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from vsense.cli.client import register as register_client_commands
from vsense.cli.client.context import global_options_callback
from vsense.cli.serving import server_options
from vsense.config import ConfigurationError, Settings, get_settings
from vsense.kit.errors import AppError
from vsense.simulator.command import simulate_command

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")

app = typer.Typer(
    help="vsense: an open platform for fleets of vision sensors.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
admin_app = typer.Typer(
    help="Organizations and users, straight in the database.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(admin_app, name="admin")


def fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@app.callback()
@global_options_callback
def root(
    config: Annotated[
        Path | None,
        typer.Option(help="TOML settings file (also VSENSE_CONFIG).", exists=True, dir_okay=False),
    ] = None,
) -> None:
    if config is not None:
        os.environ["VSENSE_CONFIG"] = str(config)
        get_settings.cache_clear()


def _settings() -> Settings:
    try:
        settings = get_settings()
        settings.signing_key()
    except ConfigurationError as exc:
        fail(str(exc))
    return settings


def _run(factory: Callable[[Settings], Coroutine[Any, Any, T]]) -> T:
    """Run an administrative action on an up-to-date schema; errors become one line."""
    from sqlalchemy.exc import SQLAlchemyError

    settings = _settings()
    _migrate(settings)
    try:
        return asyncio.run(factory(settings))
    except AppError as exc:
        fail(exc.message)
    except SQLAlchemyError as exc:
        fail(f"database error: {exc.__class__.__name__}: {str(exc).splitlines()[0]}")
    raise AssertionError("unreachable: fail() exits")


def _run_in_session(work: Callable[[AsyncSession], Coroutine[Any, Any, T]]) -> T:
    """`_run` for an action that is one transaction: committed when `work` returns."""
    from vsense.db import create_engine, create_sessionmaker, session_scope

    async def action(settings: Settings) -> T:
        engine = create_engine(settings)
        try:
            async with session_scope(create_sessionmaker(engine)) as session:
                return await work(session)
        finally:
            await engine.dispose()

    return _run(action)


def _migrate(settings: Settings) -> None:
    from vsense.migrate import upgrade

    try:
        upgrade(settings)
    except Exception as exc:
        fail(f"could not migrate the database at {_redacted(settings)}: {exc}")


def _invalid_input(exc: ValueError) -> str:
    """One line naming each refused field, from the body model's validation error."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
    return str(exc).splitlines()[0] if str(exc) else "invalid input"


def _redacted(settings: Settings) -> str:
    from sqlalchemy.engine.url import make_url

    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes (PostgreSQL only).")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Apply migrations, then serve the API."""
    import uvicorn

    from vsense.bootstrap import ensure_first_admin

    settings = _settings()
    if workers > 1 and settings.is_embedded_database:
        fail("several workers need PostgreSQL (VSENSE_DATABASE_URL); SQLite serves one process.")
    if workers > 1 and settings.mqtt_client_id:
        fail(
            "VSENSE_MQTT_CLIENT_ID names the MQTT sessions of one process; with --workers, "
            "run one `vsense serve` per slot instead, or leave it unset."
        )
    _migrate(settings)
    credentials = asyncio.run(ensure_first_admin(settings))
    if credentials:
        typer.echo(
            "\nFirst start: created an organization and an admin. The password is shown once:\n"
            f"  organization: {credentials.organization}\n"
            f"  email:        {credentials.email}\n"
            f"  password:     {credentials.password}\n"
        )
    typer.echo(f"vsense API on http://{host}:{port}/api/v1 (docs: /api/v1/docs)")
    made_dir = _metrics_dir(workers)
    try:
        _serve(uvicorn, settings, host=host, port=port, workers=workers, log_level=log_level)
    finally:
        if made_dir:
            shutil.rmtree(made_dir, ignore_errors=True)


def _metrics_dir(workers: int) -> str | None:
    """With several processes, the folder where each writes its metrics so that one
    scrape adds them up (`vsense.kit.metrics`): the operator's `PROMETHEUS_MULTIPROC_DIR`,
    else a new one, removed at exit (which is then returned)."""
    from vsense.kit.metrics import MULTIPROCESS_DIR

    if workers <= 1 or os.environ.get(MULTIPROCESS_DIR):
        return None
    made = tempfile.mkdtemp(prefix="vsense-metrics-")
    os.environ[MULTIPROCESS_DIR] = made  # the worker processes inherit it
    return made


def _serve(
    uvicorn: Any, settings: Settings, *, host: str, port: int, workers: int, log_level: str
) -> None:
    uvicorn.run(
        "vsense.app:served_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        **server_options(settings),
    )


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    devices: Annotated[int, typer.Option(min=1, help="Simulated sensors.")] = 12,
    rate: Annotated[
        float, typer.Option(min=0.1, help="Simulated time speed (60: a minute per second).")
    ] = 10.0,
) -> None:
    """Run the platform with a simulated fleet on the embedded database, and show how."""
    from vsense.cli.demo import port_is_free, run_demo

    settings = _settings()
    if not port_is_free(host, port):
        fail(f"{host}:{port} is in use; stop what listens there or pass --port")
    try:
        asyncio.run(run_demo(settings, host=host, port=port, devices=devices, rate=rate))
    except KeyboardInterrupt:
        typer.echo("demo stopped")


@app.command()
def worker() -> None:
    """Deliver webhooks (and sweep, and apply retention) without serving HTTP; run as
    many as needed beside `vsense serve --workers N` on one PostgreSQL."""
    import signal

    from vsense.components import Components
    from vsense.kit.gc_tuning import tune_for_server
    from vsense.worker import BackgroundRuntime

    settings = _settings()
    _migrate(settings)

    async def run() -> None:
        parts = Components.for_worker(settings)
        runtime = BackgroundRuntime(parts)
        tune_for_server()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        parts.changes.start()
        runtime.start(ingest=False)
        typer.echo(f"vsense worker delivering webhooks from {_redacted(settings)}")
        try:
            await stop.wait()
        finally:
            await runtime.stop()
            await parts.changes.stop()
            await parts.engine.dispose()

    import uvloop  # the event loop `vsense serve` runs on too (uvicorn picks it)

    uvloop.run(run())


app.command("simulate", help="Onboard N simulated sensors and run them against a server.")(
    simulate_command
)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema to the newest version."""
    settings = _settings()
    _migrate(settings)
    typer.echo(f"database at {_redacted(settings)} is up to date")


@admin_app.command("create-org")
def create_org(name: Annotated[str, typer.Argument(help="Organization name.")]) -> None:
    """Create an organization."""
    from vsense.users import service

    async def work(session: AsyncSession) -> Any:
        return await service.create_organization(session, name)

    organization = _run_in_session(work)
    typer.echo(f"created organization {organization.name!r} (id {organization.id})")


@admin_app.command("create-user")
def create_user(
    org: Annotated[str, typer.Option("--org", help="Organization name.")],
    email: Annotated[str, typer.Option(help="Login email.")],
    role: Annotated[str, typer.Option(help="admin, standard or owner.")],
    password: Annotated[str | None, typer.Option(help="Password (or --password-stdin).")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    name: Annotated[str, typer.Option(help="Display name.")] = "",
) -> None:
    """Create a user in an organization (the only way to create an owner)."""
    from vsense.users import service

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        fail("give --password or --password-stdin")
    assert password is not None

    async def work(session: AsyncSession) -> Any:
        return await service.create_user_in(
            session,
            organization_name=org,
            email=email,
            password=password,
            role=role,
            name=name,
        )

    try:
        user = _run_in_session(work)
    except ValueError as exc:  # the body model's own checks (email, password)
        fail(_invalid_input(exc))
        return
    typer.echo(f"created {user.role} {user.email} (id {user.id}) in {org!r}")


@admin_app.command("update-user")
def update_user(
    email: Annotated[str, typer.Option(help="The user's current login email.")],
    new_email: Annotated[str | None, typer.Option(help="A new login email.")] = None,
    password: Annotated[str | None, typer.Option(help="A new password.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the new password from standard input.")
    ] = False,
    role: Annotated[str | None, typer.Option(help="admin, standard or owner.")] = None,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
) -> None:
    """Change a user's email, password, role or name; the only way to change the platform
    owner's. A new password ends the user's sessions."""
    from vsense.users import service

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            fail("no password on standard input")
    if new_email is None and password is None and role is None and name is None:
        fail("nothing to change: give --new-email, --password, --role or --name")

    async def work(session: AsyncSession) -> Any:
        return await service.update_user_in(
            session,
            email=email,
            new_email=new_email,
            password=password,
            role=role,
            name=name,
        )

    try:
        user = _run_in_session(work)
    except ValueError as exc:  # the body model's own checks (email, password)
        fail(_invalid_input(exc))
        return
    ended = "; their sessions are ended" if password is not None else ""
    typer.echo(f"updated {user.role} {user.email} (id {user.id}){ended}")


# The client commands (login, devices, webhooks, ...), after the server's in the help.
register_client_commands(app)


def main() -> None:
    app()
