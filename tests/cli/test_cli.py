"""The server-side commands, run as a user would run them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vsense.accounts import service as accounts_service
from vsense.bootstrap import DEFAULT_ADMIN_EMAIL, ensure_first_admin
from vsense.components import Components
from vsense.config import load_settings
from vsense.db import session_scope
from vsense.kit.errors import Unauthorized
from vsense.migrate import upgrade_async
from vsense.users import repository as users_repository


def vsense(
    args: list[str], data_dir: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VSENSE_DATA_DIR": str(data_dir), "VSENSE_ENVIRONMENT": "development"}
    env.pop("VSENSE_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "vsense.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.live
def test_db_upgrade_then_create_org_and_users(tmp_path: Path) -> None:
    assert vsense(["db", "upgrade"], tmp_path).returncode == 0
    created = vsense(["admin", "create-org", "Acme"], tmp_path)
    assert created.returncode == 0 and "Acme" in created.stdout
    again = vsense(["admin", "create-org", "Acme"], tmp_path)
    assert again.returncode == 1 and "already exists" in again.stderr
    user = vsense(
        [
            "admin",
            "create-user",
            "--org",
            "Acme",
            "--email",
            "op@acme.io",
            "--role",
            "owner",
            "--password-stdin",
        ],
        tmp_path,
        stdin="a long enough password\n",
    )
    assert user.returncode == 0, user.stderr
    assert "owner op@acme.io" in user.stdout
    admin = vsense(
        [
            "admin",
            "create-user",
            "--org",
            "Acme",
            "--email",
            "ad@acme.io",
            "--role",
            "admin",
            "--password",
            "another long password",
            "--name",
            "Ada",
        ],
        tmp_path,
    )
    assert admin.returncode == 0, admin.stderr


@pytest.mark.live
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--org", "Nope", "--email", "a@b.io", "--role", "admin", "--password", "x" * 12],
            "No organization",
        ),
        (["--org", "Acme", "--email", "a@b.io", "--role", "king", "--password", "x" * 12], "role"),
        (
            ["--org", "Acme", "--email", "a@b.io", "--role", "admin", "--password", "short"],
            "error:",
        ),
        (["--org", "Acme", "--email", "a@b.io", "--role", "admin"], "--password"),
        (
            ["--org", "Acme", "--email", "a@b.io", "--role", "admin", "--password", "password"],
            "password: is too easy to guess",
        ),
    ],
)
def test_create_user_refuses_bad_input_with_a_clear_message(
    tmp_path: Path, args: list[str], message: str
) -> None:
    vsense(["admin", "create-org", "Acme"], tmp_path)
    result = vsense(["admin", "create-user", *args], tmp_path)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.live
def test_production_without_a_secret_refuses_to_start(tmp_path: Path) -> None:
    env = {**os.environ, "VSENSE_DATA_DIR": str(tmp_path), "VSENSE_ENVIRONMENT": "production"}
    env.pop("VSENSE_SECRET_KEY", None)
    result = subprocess.run(
        [sys.executable, "-m", "vsense.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "VSENSE_SECRET_KEY" in result.stderr


@pytest.mark.live
def test_a_server_told_it_is_one_of_several_hosts_refuses_the_local_image_store(
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "VSENSE_DATA_DIR": str(tmp_path),
        "VSENSE_HOSTS": "2",
        "VSENSE_DATABASE_URL": "postgresql+asyncpg://vsense@127.0.0.1:1/vsense",
    }
    env.pop("VSENSE_IMAGE_STORAGE", None)
    result = subprocess.run(
        [sys.executable, "-m", "vsense.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "VSENSE_IMAGE_STORAGE=s3" in result.stderr
    assert "Traceback" not in result.stderr


async def test_first_start_creates_one_admin_once(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    await upgrade_async(settings)
    credentials = await ensure_first_admin(settings)
    assert credentials is not None and credentials.email == DEFAULT_ADMIN_EMAIL
    assert len(credentials.password) >= 12
    assert await ensure_first_admin(settings) is None


@pytest.mark.slow
@pytest.mark.live
async def test_update_user_changes_the_owners_credentials_and_ends_their_sessions(
    tmp_path: Path,
) -> None:
    await asyncio.to_thread(vsense, ["admin", "create-org", "Acme"], tmp_path)
    create = ["admin", "create-user", "--org", "Acme", "--email", "op@acme.io", "--role", "owner"]
    created = await asyncio.to_thread(
        vsense, [*create, "--password-stdin"], tmp_path, "a long enough password\n"
    )
    assert created.returncode == 0, created.stderr
    state = Components.for_server(load_settings(data_dir=tmp_path))
    try:
        async with session_scope(state.sessionmaker) as session:
            before = await accounts_service.open_session(
                session,
                state.callers,
                await users_repository.get_user_by_email(session, "op@acme.io"),
            )
        update = ["admin", "update-user", "--email", "OP@acme.io", "--new-email", "root@acme.io"]
        updated = await asyncio.to_thread(
            vsense, [*update, "--password-stdin"], tmp_path, "the owner's fresh passphrase\n"
        )
        assert updated.returncode == 0, updated.stderr
        assert "owner root@acme.io" in updated.stdout and "sessions are ended" in updated.stdout
        async with session_scope(state.sessionmaker) as session:
            with pytest.raises(Unauthorized):
                await accounts_service.refresh(session, state.callers, before.refresh_token)
        # Read only: the password check writes its throttle in transactions of its own.
        async with session_scope(state.sessionmaker, write=False) as session:
            owner = await accounts_service.check_password(
                session,
                state.callers,
                email="root@acme.io",
                password="the owner's fresh passphrase",
                client_address="127.0.0.1",
            )
        assert owner.role == "owner"
    finally:
        await state.engine.dispose()


@pytest.mark.slow
@pytest.mark.live
def test_update_user_refuses_what_it_cannot_do_with_a_clear_message(tmp_path: Path) -> None:
    vsense(["admin", "create-org", "Acme"], tmp_path)
    args = ["--org", "Acme", "--role", "admin", "--password", "a long enough password"]
    assert (
        vsense(["admin", "create-user", "--email", "ad@acme.io", *args], tmp_path).returncode == 0
    )
    for update, message in (
        (["--email", "nobody@acme.io", "--name", "x"], "No user"),
        (["--email", "ad@acme.io"], "nothing to change"),
        (["--email", "ad@acme.io", "--role", "standard"], "at least one admin"),
        (["--email", "ad@acme.io", "--new-email", "not an email"], "email"),
    ):
        result = vsense(["admin", "update-user", *update], tmp_path)
        assert result.returncode == 1, update
        assert message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_serve_refuses_one_mqtt_session_name_for_several_workers(tmp_path: Path) -> None:
    """Several processes under one MQTT client id would take each other's sessions."""
    env = {
        **os.environ,
        "VSENSE_DATA_DIR": str(tmp_path),
        "VSENSE_MQTT_CLIENT_ID": "host-1",
        "VSENSE_DATABASE_URL": "postgresql+asyncpg://vsense@127.0.0.1:1/vsense",
    }
    result = subprocess.run(
        [sys.executable, "-m", "vsense.cli", "serve", "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "VSENSE_MQTT_CLIENT_ID" in result.stderr
    assert "Traceback" not in result.stderr
