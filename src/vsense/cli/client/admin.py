"""`vsense groups ...` and `vsense users ...` (admins change them)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from vsense.cli.client import views
from vsense.cli.client.context import CommandError, Context, command
from vsense.client import NOT_GIVEN, Client

groups_app = typer.Typer(help="Device groups.", no_args_is_help=True)
users_app = typer.Typer(help="Users of your organization (admins).", no_args_is_help=True)

GroupArgument = Annotated[str, typer.Argument(help="The group's id or name.")]
UserArgument = Annotated[str, typer.Argument(help="The user's id or email.")]
Page = Annotated[int | None, typer.Option(min=1, help="Page number.")]
PerPage = Annotated[int | None, typer.Option(min=1, max=500, help="Items per page.")]
Keepalive = Annotated[
    int | None, typer.Option(min=10, max=86400, help="Keepalive interval of its devices (s).")
]
RoleOption = Annotated[str | None, typer.Option(help="admin or standard.", show_default=False)]
GroupsOption = Annotated[
    list[str] | None, typer.Option("--group", "-g", help="A group (name or id; repeat).")
]


def group_id(client: Client, reference: str) -> int:
    """A group's id from its id or its name."""
    if reference.isdigit():
        return int(reference)
    for group in client.groups.list_all():
        if group.name == reference:
            return group.id
    raise CommandError(f"no group named {reference!r}")


def user_id(client: Client, reference: str) -> int:
    """A user's id from their id or email."""
    if reference.isdigit():
        return int(reference)
    for user in client.users.list_all():
        if user.email.lower() == reference.lower():
            return user.id
    raise CommandError(f"no user with email {reference!r}")


def _password(from_stdin: bool, *, required: bool) -> str | None:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not required:
        return None
    password: str = typer.prompt(
        "Password for the new user", hide_input=True, confirmation_prompt=True, err=True
    )
    return password


@command(groups_app, "list")
def list_groups(cli: Context, page: Page = None, per_page: PerPage = None) -> None:
    """Groups you see (all of the organization for admins)."""
    result = cli.client().groups.list(page=page, per_page=per_page)
    cli.out.page(result, lambda items: views.groups(cli.out, items), "groups")


@command(groups_app, "get")
def get_group(cli: Context, group: GroupArgument) -> None:
    """One group."""
    client = cli.client()
    cli.out.result(
        client.groups.get(group_id(client, group)), lambda item: views.group(cli.out, item)
    )


@command(groups_app, "add")
def add_group(
    cli: Context,
    name: Annotated[str, typer.Argument(help="The group's name.")],
    keepalive_interval: Keepalive = None,
) -> None:
    """Create a group (admins)."""
    created = cli.client().groups.create(
        name=name,
        keepalive_interval=NOT_GIVEN if keepalive_interval is None else keepalive_interval,
    )
    cli.out.result(created, lambda item: views.group(cli.out, item))


@command(groups_app, "update")
def update_group(
    cli: Context,
    group: GroupArgument,
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    keepalive_interval: Keepalive = None,
    default_keepalive: Annotated[
        bool, typer.Option("--default-keepalive", help="Use the platform's default interval.")
    ] = False,
) -> None:
    """Rename a group or change its devices' keepalive interval (admins)."""
    client = cli.client()
    interval = None if default_keepalive else keepalive_interval
    updated = client.groups.update(
        group_id(client, group),
        name=NOT_GIVEN if name is None else name,
        keepalive_interval=interval
        if (default_keepalive or keepalive_interval is not None)
        else NOT_GIVEN,
    )
    cli.out.result(updated, lambda item: views.group(cli.out, item))


@command(groups_app, "rm")
def remove_group(cli: Context, group: GroupArgument) -> None:
    """Delete a group (admins); its devices stay, without a group."""
    client = cli.client()
    identifier = group_id(client, group)
    client.groups.delete(identifier)
    cli.out.done(f"Deleted group {group}.")


@command(users_app, "list")
def list_users(cli: Context, page: Page = None, per_page: PerPage = None) -> None:
    """Users of your organization."""
    result = cli.client().users.list(page=page, per_page=per_page)
    cli.out.page(result, lambda items: views.users(cli.out, items), "users")


@command(users_app, "get")
def get_user(cli: Context, user: UserArgument) -> None:
    """One user."""
    client = cli.client()
    cli.out.result(client.users.get(user_id(client, user)), lambda item: views.user(cli.out, item))


@command(users_app, "add")
def add_user(
    cli: Context,
    email: Annotated[str, typer.Option(help="Login email.")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    role: RoleOption = None,
    group: GroupsOption = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Add a user (admins); the password is asked for without echo."""
    password = _password(password_stdin, required=True)
    assert password is not None
    created = cli.client().users.create(
        email=email,
        password=password,
        name=NOT_GIVEN if name is None else name,
        role=NOT_GIVEN if role is None else role,
        groups=NOT_GIVEN if group is None else group,
    )
    cli.out.result(created, lambda item: views.user(cli.out, item))


@command(users_app, "update")
def update_user(
    cli: Context,
    user: UserArgument,
    email: Annotated[str | None, typer.Option(help="New login email.")] = None,
    name: Annotated[str | None, typer.Option(help="New display name.")] = None,
    role: RoleOption = None,
    group: GroupsOption = None,
    no_groups: Annotated[
        bool, typer.Option("--no-groups", help="Take the user out of every group.")
    ] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Set a new password read from stdin.")
    ] = False,
) -> None:
    """Change a user (admins); --group replaces their groups."""
    if group and no_groups:
        raise CommandError("give --group or --no-groups, not both")
    client = cli.client()
    password = _password(password_stdin, required=False)
    updated = client.users.update(
        user_id(client, user),
        email=NOT_GIVEN if email is None else email,
        name=NOT_GIVEN if name is None else name,
        role=NOT_GIVEN if role is None else role,
        groups=[] if no_groups else (NOT_GIVEN if group is None else group),
        password=NOT_GIVEN if password is None else password,
    )
    cli.out.result(updated, lambda item: views.user(cli.out, item))


@command(users_app, "rm")
def remove_user(cli: Context, user: UserArgument) -> None:
    """Remove a user; their sessions and tokens go with them."""
    client = cli.client()
    client.users.delete(user_id(client, user))
    cli.out.done(f"Removed user {user}.")


def register(app: typer.Typer) -> None:
    app.add_typer(groups_app, name="groups")
    app.add_typer(users_app, name="users")
