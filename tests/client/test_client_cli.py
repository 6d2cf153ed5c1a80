"""The client commands of `vsense` against a real running server.

Most commands run in-process (Typer's runner, real HTTP to the live server); the ones
whose subject is the process itself (exit status and stderr of the installed entry
point, `listen`, `payloads --follow`, shell completion) run as subprocesses. HOME and
XDG_CONFIG_HOME point into the test's temporary folder.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.client.helpers import (
    Cli,
    onboard,
    read_line,
)
from tests.client.live_api import Account, LiveApi
from tests.factories import unique
from tests.live_server import free_port
from vsense.client import Client


@pytest.fixture
def cli(live: LiveApi, account: Account, tmp_path: Path) -> Cli:
    return Cli(live, account, tmp_path)


@pytest.fixture
def admin(cli: Cli) -> Cli:
    """The CLI logged in as the organization's admin."""
    cli.login()
    return cli


@pytest.fixture
def local(sqlite_live: LiveApi, tmp_path: Path) -> Cli:
    """The CLI with the SQLite server at hand, not logged in."""
    return Cli(sqlite_live, sqlite_live.organization(), tmp_path)


@pytest.fixture
def local_admin(local: Cli) -> Cli:
    """The CLI logged in to the SQLite server as an organization's admin."""
    local.login()
    return local


def test_login_with_prompts_then_me_then_logout(cli: Cli) -> None:
    result = cli.ok(
        "login",
        "--api-addr",
        cli.live.base_url,
        input=f"{cli.account.email}\n{cli.account.password}\n",
    )
    assert "Email" in result.stderr and "Password" in result.stderr
    assert cli.account.password not in result.stdout + result.stderr
    assert cli.account.email in result.stdout

    path = cli.home / "config/vsense/credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    stored = json.loads(path.read_text())["profiles"]["default"]
    assert stored["last_api_addr"] == cli.live.base_url
    assert stored["logins"][cli.live.base_url]["email"] == cli.account.email

    # No --api-addr: the profile's last login says where.
    me = cli.json("me")
    with cli.api() as api:
        assert me == api.get("/me").json()
    table = cli.ok("me").stdout
    assert cli.account.organization in table and "admin" in table

    assert "Logged out" in cli.ok("logout").stdout
    assert json.loads(path.read_text())["profiles"]["default"]["logins"] == {}
    again = cli("me")
    assert again.exit_code == 1
    assert again.stderr.strip() == (
        f"error: not logged in to {cli.live.base_url} (profile 'default'): "
        "run `vsense login`, or pass --token"
    )


def test_an_expired_stored_session_is_renewed_and_saved_again(admin: Cli) -> None:
    path = admin.home / "config/vsense/credentials.json"
    stored = json.loads(path.read_text())
    session = stored["profiles"]["default"]["logins"][admin.live.base_url]
    session["expires_at"] = time.time() - 60  # as if the access token had expired
    path.write_text(json.dumps(stored))

    assert admin.json("me")["email"] == admin.account.email
    renewed = json.loads(path.read_text())["profiles"]["default"]["logins"][admin.live.base_url]
    assert renewed["refresh_token"] != session["refresh_token"]  # refresh tokens rotate
    assert renewed["expires_at"] > time.time() and renewed["email"] == admin.account.email
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_wrong_password_is_one_line_on_stderr(cli: Cli) -> None:
    result = cli(
        "login",
        "--api-addr",
        cli.live.base_url,
        "--email",
        cli.account.email,
        "--password-stdin",
        input="wrong password\n",
    )
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert not (cli.home / "config/vsense/credentials.json").exists()


def test_devices_commands_list_show_change_and_remove(admin: Cli) -> None:
    group = admin.json("groups", "add", unique("site"))
    created, device = onboard(admin, city="Lyon", country="FR")
    offline = admin.json("devices", "add", "--name", "Cold", "--client-identifier", "c/1")
    assert created["device_token"].startswith("vsd_") and "device_token" in offline

    table = admin.ok("devices", "list").stdout
    assert "● online" in table and "○ offline" in table and created["uuid"] in table
    assert "1-2 of 2 devices" in table
    with admin.api() as api:
        assert (
            admin.json("devices", "list", "--online")
            == api.get("/devices", params={"is_online": "true"}).json()
        )
        assert (
            admin.json("devices", "get", created["uuid"])
            == api.get(f"/devices/{created['uuid']}").json()
        )
    every = admin.json("devices", "list", "--all", "--per-page", "1", "--sort", "-name")
    assert [d["name"] for d in every["data"]] == sorted([created["name"], "Cold"], reverse=True)
    assert "Lyon" in admin.ok("devices", "get", created["uuid"]).stdout

    moved = admin.json(
        "devices", "update", created["uuid"], "--name", "Gate B", "--group", group["name"]
    )
    assert (moved["name"], moved["group"], moved["geo_city"]) == ("Gate B", group["name"], "Lyon")
    released = admin.json("devices", "update", created["uuid"], "--no-group")
    assert released["group"] is None

    removed = admin.ok("devices", "rm", offline["uuid"], "--yes")
    assert f"Removed device {offline['uuid']}" in removed.stdout
    missing = admin("devices", "get", offline["uuid"])
    assert missing.exit_code == 1 and missing.stdout == ""
    assert missing.stderr.startswith("error: ") and "Traceback" not in missing.stderr
    device.close()


def test_json_output_of_removals_is_empty(admin: Cli) -> None:
    created = admin.json("devices", "add", "--name", "Doomed")
    result = admin.ok("devices", "rm", created["uuid"], "--yes", "--output", "json")
    assert result.stdout == "" and "Removed" in result.stderr


def test_groups_commands(admin: Cli) -> None:
    name = unique("north")
    created = admin.json("groups", "add", name, "--keepalive-interval", "120")
    assert created["keepalive_interval"] == 120
    assert admin.json("groups", "get", name)["id"] == created["id"]
    with admin.api() as api:
        assert admin.json("groups", "list") == api.get("/groups").json()
    updated = admin.json("groups", "update", str(created["id"]), "--name", name + "-x")
    assert updated["name"] == name + "-x"
    reset = admin.json("groups", "update", name + "-x", "--default-keepalive")
    assert reset["keepalive_interval"] is None
    assert name + "-x" in admin.ok("groups", "list").stdout
    assert "Deleted group" in admin.ok("groups", "rm", name + "-x").stdout
    unknown = admin("groups", "get", name)
    assert unknown.exit_code == 1 and f"no group named '{name}'" in unknown.stderr


def test_users_commands(admin: Cli) -> None:
    group = admin.json("groups", "add", unique("south"))
    email = f"{unique('viewer')}@example.com"
    added = admin.ok(
        "users",
        "add",
        "--email",
        email,
        "--group",
        group["name"],
        "--password-stdin",
        "-o",
        "json",
        input="viewer password\n",
    )
    created = json.loads(added.stdout)
    assert created["role"] == "standard"
    assert [g["name"] for g in created["groups"]] == [group["name"]]
    assert admin.json("users", "get", email)["id"] == created["id"]
    with admin.api() as api:
        assert admin.json("users", "list") == api.get("/users").json()
    changed = admin.json(
        "users", "update", email, "--role", "admin", "--name", "Vee", "--no-groups"
    )
    assert (changed["role"], changed["name"], changed["groups"]) == ("admin", "Vee", [])
    assert email in admin.ok("users", "list").stdout
    assert "Removed user" in admin.ok("users", "rm", str(created["id"])).stdout
    assert admin("users", "get", email).exit_code == 1


def test_tokens_commands_and_using_a_token(admin: Cli) -> None:
    shown = admin.ok("tokens", "create", "--name", "ci", "--scope", "devices:read")
    assert "Token (shown once" in shown.stdout
    created = admin.json("tokens", "create", "--name", "reader", "-s", "devices:read")
    token = created["token"]
    assert token.startswith("vst_") and created["scopes"] == ["devices:read"]
    with admin.api() as api:
        assert admin.json("tokens", "list") == api.get("/tokens").json()
    assert "reader" in admin.ok("tokens", "list").stdout

    me = admin.json("me", "--token", token)
    assert me["token_kind"] == "personal"
    denied = admin("devices", "add", "--name", "x", "--token", token)
    assert denied.exit_code == 1 and denied.stderr.startswith("error: ")
    assert "Revoked token" in admin.ok("tokens", "revoke", str(created["id"])).stdout
    revoked = admin("me", "--token", token, VSENSE_TOKEN=None)
    assert revoked.exit_code == 1 and "error:" in revoked.stderr


def test_image_request_waits_and_saves_both_images(admin: Cli, tmp_path: Path) -> None:
    created, device = onboard(admin)
    device.answer_capture()
    result = admin.ok("image", "request", created["uuid"], "--out", str(tmp_path / "shots"))
    saved = sorted((tmp_path / "shots").iterdir())
    assert [p.name.split("_", 1)[1] for p in saved] == ["annotated_image.png", "raw_image.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in saved)
    assert "waiting for device" in result.stderr and "Saved" in result.stdout
    listed = admin.json("image", "list", created["uuid"])
    assert [i["status"] for i in listed["data"]] == ["ready"]
    assert "ready" in admin.ok("image", "list", created["uuid"]).stdout
    device.close()


def test_image_request_without_wait_prints_the_links(admin: Cli) -> None:
    created, device = onboard(admin)
    answer = admin.json("image", "request", created["uuid"])
    assert answer["meta"]["status"] == "pending" and len(answer["data"]) == 2
    assert answer["meta"]["request_id"] in admin.ok("image", "list", created["uuid"]).stdout
    device.close()


def test_payloads_command_lists_recent_messages(admin: Cli) -> None:
    created, device = onboard(admin)
    now = int(time.time())
    device.send(4, now - 20)
    device.send(5, now - 10)
    with admin.api() as api:
        expected = api.get(f"/devices/{created['uuid']}/payloads", params={"per_page": 20})
    assert admin.json("payloads", created["uuid"]) == expected.json()
    table = admin.ok("payloads", created["uuid"], "--type", "vcz").stdout
    assert "VCZ" in table and '"count":5' in table and "2 of 2 messages" in table
    device.close()


class Receiver:
    """A local webhook endpoint for `webhooks test`."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


def test_webhooks_commands(admin: Cli, receiver: Receiver) -> None:
    created, device = onboard(admin)
    added = admin.ok(
        "webhooks",
        "add",
        "--device",
        created["uuid"],
        "--url",
        receiver.url,
        "--actions",
        "payload,status",
        "-H",
        "X-Site: 12",
        "-p",
        "site=12",
    )
    assert "Signing secret (shown once" in added.stdout
    hook = admin.json("webhooks", "list", "--device", created["uuid"])["data"][0]
    assert hook["data"]["headers"] == [{"name": "X-Site", "value": "12"}]
    assert hook["data"]["params"] == [{"name": "site", "value": "12"}]
    with admin.api() as api:
        assert admin.json("webhooks", "list") == api.get("/webhooks").json()
    hook_id = str(hook["id"])

    tested = admin.json("webhooks", "test", hook_id)
    assert tested["status"] == "succeeded" and tested["status_code"] == 200
    assert "succeeded" in admin.ok("webhooks", "test", hook_id).stdout
    deliveries = admin.json("webhooks", "deliveries", hook_id, "--status", "succeeded")
    assert [d["event"]["type"] for d in deliveries["data"]] == ["test", "test"]
    assert "succeeded" in admin.ok("webhooks", "deliveries", hook_id).stdout
    delivery_id = str(deliveries["data"][0]["id"])
    assert admin.json("webhooks", "redeliver", hook_id, delivery_id)["queued"] == 1
    assert "Queued 1" in admin.ok("webhooks", "redeliver", hook_id, delivery_id).stdout
    since = str(int(time.time()) - 600)
    assert admin.json("webhooks", "replay", hook_id, "--since", since)["queued"] >= 2

    disabled = admin.json("webhooks", "update", hook_id, "--disable", "--actions", "payload")
    assert (disabled["data"]["status"], disabled["data"]["actions"]) == (0, "payload")
    rotated = admin.json("webhooks", "rotate-secret", hook_id)
    assert rotated["secret"].startswith("whsec_")
    bad = admin("webhooks", "add", "--device", created["uuid"], "--url", "ftp://x", "-H", "nope")
    assert bad.exit_code == 1 and "must look like `name:value`" in bad.stderr
    assert "Deleted webhook" in admin.ok("webhooks", "rm", hook_id).stdout
    assert admin.json("webhooks", "list", "--device", created["uuid"]) == {"data": []}
    device.close()


def test_webhooks_add_and_update_answer_as_the_api_and_update_by_device(admin: Cli) -> None:
    created = admin.json("devices", "add", "--name", unique("Gate"))
    added = admin.json(
        "webhooks", "add", "--device", created["uuid"], "--url", "https://example.com/alive",
        "--type", "keepalive", "--actions", "Keep alive",
    )  # fmt: skip
    assert sorted(added) == ["data", "error"] and added["error"] == []
    hook = added["data"]
    assert (hook["method"], hook["events"], hook["actions"]) == ("GET", ["keepalive"], "Keep alive")
    assert hook["secret"].startswith("whsec_")

    off = admin.json("webhooks", "update", "--device", created["uuid"], "--disable")
    assert off == {"data": {**off["data"], "id": hook["id"], "status": 0}, "error": []}
    with admin.api() as api:
        assert api.get("/webhooks", params={"device_uuid": created["uuid"]}).json() == {
            "data": [off["data"]]
        }
    assert "inactive" in admin.ok("webhooks", "update", "--device", created["uuid"]).stdout
    unnamed = admin("webhooks", "update", "--url", "https://example.com/x")
    assert unnamed.exit_code == 1 and "--device" in unnamed.stderr


def test_devices_list_sorts_by_online_status(admin: Cli) -> None:
    online, device = onboard(admin)
    offline = admin.json("devices", "add", "--name", unique("Gate"))
    assert offline["refreshed"] == offline["created"]
    listed = admin.json("devices", "list", "--sort", "-is_online")
    assert [d["uuid"] for d in listed["data"]] == [online["uuid"], offline["uuid"]]
    listed = admin.json("devices", "list", "--sort=is_online")
    assert [d["uuid"] for d in listed["data"]] == [offline["uuid"], online["uuid"]]
    device.close()


def write_config(cli: Cli, text: str) -> Path:
    path = cli.home / "config/vsense/config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_settings_come_from_flag_then_environment_then_profile_then_default(
    local: Cli,
) -> None:
    def show(*args: str, **env: str | None) -> dict[str, Any]:
        return local.json("config", "show", *args, **env)

    default = show()
    assert default["api_addr"] == {"value": "http://127.0.0.1:8000", "source": "default"}
    assert default["profile"] == {"value": "default", "source": "default"}

    path = write_config(
        local,
        'default_profile = "staging"\n'
        '[profiles.staging]\napi_addr = "staging.example.com"\ntoken = "vst_staging_token"\n'
        '[profiles.local]\napi_addr = "http://127.0.0.1:9"\noutput = "json"\n',
    )
    profile = show()
    assert profile["profile"]["value"] == "staging"
    assert profile["api_addr"] == {
        "value": "staging.example.com",
        "source": f"profile 'staging' in {path}",
    }
    assert profile["base_url"]["value"] == "https://staging.example.com"
    assert profile["token"]["value"] == "vst_stag…"

    from_env = show(VSENSE_API_ADDR="env.example.com:8443", VSENSE_PROFILE="local")
    assert from_env["profile"] == {"value": "local", "source": "environment VSENSE_PROFILE"}
    assert from_env["api_addr"]["source"] == "environment VSENSE_API_ADDR"
    assert from_env["base_url"]["value"] == "https://env.example.com:8443"
    assert from_env["token"] == {"value": None, "source": "default"}

    from_flag = show(
        "--api-addr",
        "http://flag.example.com",
        "--profile",
        "local",
        VSENSE_API_ADDR="env.example.com",
    )
    assert from_flag["api_addr"] == {
        "value": "http://flag.example.com",
        "source": "flag --api-addr",
    }
    assert from_flag["base_url"]["value"] == "http://flag.example.com"
    # `output = "json"` of the profile applies when no flag says otherwise.
    assert json.loads(local.ok("config", "show", "--profile", "local").stdout)["output"] == {
        "value": "json",
        "source": f"profile 'local' in {path}",
    }
    assert (
        "flag --api-addr" in local.ok("config", "show", "--api-addr", "x.io", "-o", "table").stdout
    )


def _reader_token(local: Cli) -> str:
    with Client(
        base_url=local.live.base_url, email=local.account.email, password=local.account.password
    ) as client:
        return client.tokens.create(name="cli", scopes=["devices:read"]).token


def test_global_options_go_before_or_after_the_command_in_either_form(local: Cli) -> None:
    token = _reader_token(local)
    url = local.live.base_url
    dead = f"http://127.0.0.1:{free_port()}"
    for args in (
        [f"--api-addr={url}", f"--token={token}", "--output=json", "devices", "list"],
        ["--api-addr", url, "--token", token, "-o", "json", "devices", "list"],
        ["devices", "list", f"--api-addr={url}", f"--token={token}", "--output=json"],
        ["--output", "json", "devices", "list", "--api-addr", url, "--token", token],
        # Given on both sides, the command's own option wins.
        ["--api-addr", dead, "-o", "table", "devices", "list", f"--api-addr={url}",
         "--token", token, "-o", "json"],
    ):  # fmt: skip
        result = local.ok(*args)
        assert json.loads(result.stdout)["meta"]["total"] == 0, args

    shown = local.json("--profile=staging", "config", "show")
    assert shown["profile"] == {"value": "staging", "source": "flag --profile"}
    failed = local("--debug", f"--api-addr={dead}", "--token", token, "devices", "list")
    assert failed.exit_code == 1 and "Traceback" in failed.stderr
    assert (
        "Traceback" not in local(f"--api-addr={dead}", "--token", token, "devices", "list").stderr
    )


def test_a_top_level_api_addr_and_token_need_no_profile(local: Cli) -> None:
    token = _reader_token(local)
    path = write_config(local, f'api_addr = "{local.live.base_url}"\ntoken = "{token}"\n')
    assert local.json("devices", "list")["meta"]["total"] == 0
    shown = local.json("config", "show")
    assert shown["api_addr"] == {"value": local.live.base_url, "source": f"config file {path}"}
    assert shown["token"]["source"] == f"config file {path}"

    write_config(
        local,
        f'api_addr = "{local.live.base_url}"\n'
        '[profiles.default]\napi_addr = "profile.example.com"\n',
    )
    assert local.json("config", "show")["api_addr"]["value"] == "profile.example.com"
    write_config(local, "api_addr = 8000\n")
    wrong = local("config", "show")
    assert wrong.exit_code == 1 and "`api_addr` must be a string" in wrong.stderr


def test_precedence_decides_which_server_is_called(local: Cli) -> None:
    with Client(
        base_url=local.live.base_url, email=local.account.email, password=local.account.password
    ) as client:
        token = client.tokens.create(name="cli", scopes=["devices:read"]).token
    dead = f"http://127.0.0.1:{free_port()}"
    write_config(
        local, f'[profiles.default]\napi_addr = "{local.live.base_url}"\ntoken = "{token}"\n'
    )
    assert local.json("devices", "list")["meta"]["total"] == 0  # the profile's server

    env_wins = local("devices", "list", VSENSE_API_ADDR=dead)
    assert env_wins.exit_code == 1
    assert env_wins.stderr.startswith(f"error: Could not reach the server at {dead}")
    flag_wins = local("devices", "list", "--api-addr", local.live.base_url, VSENSE_API_ADDR=dead)
    assert flag_wins.exit_code == 0, flag_wins.stderr
    bad_token = local("devices", "list", VSENSE_TOKEN="vst_not_a_token")
    assert bad_token.exit_code == 1 and bad_token.stderr.startswith("error: ")


def test_sessions_are_kept_per_profile(local: Cli) -> None:
    local.ok(
        "login",
        "--profile",
        "work",
        "--api-addr",
        local.live.base_url,
        "--email",
        local.account.email,
        "--password-stdin",
        input=local.account.password + "\n",
    )
    assert local("me").exit_code == 1  # the default profile has no session
    assert local.json("me", "--profile", "work")["email"] == local.account.email
    assert local.json("me", VSENSE_PROFILE="work")["email"] == local.account.email
    other_address = local("me", "--profile", "work", "--api-addr", "http://127.0.0.1:9")
    assert other_address.exit_code == 1 and "not logged in to http://127.0.0.1:9" in (
        other_address.stderr
    )


def test_a_config_file_with_a_typo_is_explained(local: Cli) -> None:
    write_config(local, '[profiles.default]\napi_adr = "x"\n')
    result = local("config", "show")
    assert result.exit_code == 1
    assert "unknown settings api_adr" in result.stderr and "Traceback" not in result.stderr


def vsense(
    args: list[str], env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vsense.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_entry_point_exits_non_zero_with_one_line_and_no_traceback(local: Cli) -> None:
    env = local.process_env(VSENSE_API_ADDR=local.live.base_url, VSENSE_TOKEN="vst_wrong")
    result = vsense(["devices", "list"], env)
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    debug = vsense(["devices", "list", "--debug"], env)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


@pytest.mark.live
def test_shell_completion_is_offered() -> None:
    script = Path(sys.executable).parent / "vsense"  # the installed entry point
    result = subprocess.run(
        [str(script), "--show-completion", "bash"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "_VSENSE_COMPLETE=complete_bash" in result.stdout
    assert "complete -o default -F _vsense_completion vsense" in result.stdout


def test_payloads_follow_prints_each_new_message(
    local_admin: Cli, processes: list[subprocess.Popen[str]]
) -> None:
    created, device = onboard(local_admin)
    device.send(1, int(time.time()) - 5)
    follow = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vsense.cli",
            "payloads",
            created["uuid"],
            "--follow",
            "--interval",
            "0.2",
            "-o",
            "json",
        ],
        env=local_admin.process_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    processes.append(follow)
    first = json.loads(read_line(follow))
    assert first["payload"][0]["count"] == 1
    device.send(2)
    second = json.loads(read_line(follow))
    assert second["payload"][0]["count"] == 2 and second["id"] != first["id"]
    device.close()


def test_listen_verifies_and_prints_a_real_signed_delivery(
    local_admin: Cli, processes: list[subprocess.Popen[str]]
) -> None:
    created, device = onboard(local_admin)
    port = free_port()
    hook = local_admin.json(
        "webhooks", "add", "--device", created["uuid"], "--url", f"http://127.0.0.1:{port}/hook"
    )["data"]
    listener = subprocess.Popen(
        [sys.executable, "-m", "vsense.cli", "listen", "--port", str(port), "-o", "json"],
        env=local_admin.process_env(VSENSE_WEBHOOK_SECRET=hook["secret"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    processes.append(listener)
    assert "Listening on" in listener.stderr.readline()  # type: ignore[union-attr]

    tested = local_admin.json("webhooks", "test", str(hook["id"]))
    assert tested["status"] == "succeeded" and tested["status_code"] == 204
    received = json.loads(read_line(listener))
    assert received["verified"] is True and received["method"] == "POST"
    assert received["body"]["type"] == "TEST" and received["body"]["stream_id"] == created["uuid"]
    assert received["headers"]["webhook-id"].startswith("msg_")

    forged = httpx.post(
        f"http://127.0.0.1:{port}/hook",
        content=b'{"type": "TEST"}',
        headers={
            "webhook-id": "msg_forged",
            "webhook-timestamp": str(int(time.time())),
            "webhook-signature": "v1,AAAA",
        },
    )
    assert forged.status_code == 401
    rejected = json.loads(read_line(listener))
    assert rejected["verified"] is False and "No signature matches" in rejected["error"]
    device.close()
