"""What the SDK and client-command tests share: the CLI run with a private home, calls
of either SDK client, devices brought online through either."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from click.testing import Result
from typer.testing import CliRunner

from tests.client.live_api import Account, FakeDevice, LiveApi
from tests.factories import unique
from vsense.cli.main import app
from vsense.client import AsyncClient, Client
from vsense.client.models import Device

CLIENT_VARIABLES = (
    "VSENSE_API_ADDR",
    "VSENSE_TOKEN",
    "VSENSE_PROFILE",
    "VSENSE_OUTPUT",
    "VSENSE_CLIENT_CONFIG",
    "VSENSE_CLIENT_CREDENTIALS",
    "VSENSE_DEBUG",
    "VSENSE_WEBHOOK_SECRET",
)


@dataclass
class Cli:
    """Runs `vsense` with a private home and the live server at hand."""

    live: LiveApi
    account: Account
    home: Path
    env: dict[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.env = {name: None for name in CLIENT_VARIABLES}
        self.env.update({"HOME": str(self.home), "XDG_CONFIG_HOME": str(self.home / "config")})
        self.env["COLUMNS"] = "250"  # tables wide enough not to fold UUIDs

    def __call__(self, *args: str, input: str | None = None, **env: str | None) -> Result:
        return CliRunner().invoke(app, list(args), input=input, env={**self.env, **env})

    def ok(self, *args: str, input: str | None = None, **env: str | None) -> Result:
        result = self(*args, input=input, **env)
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
        return result

    def json(self, *args: str, input: str | None = None, **env: str | None) -> Any:
        return json.loads(self.ok(*args, "--output", "json", input=input, **env).stdout)

    def login(self) -> None:
        self.ok(
            "login",
            "--api-addr",
            self.live.base_url,
            "--email",
            self.account.email,
            "--password-stdin",
            input=self.account.password + "\n",
        )

    def api(self) -> httpx.Client:
        """Raw HTTP with the stored session's token, to compare with the commands' JSON."""
        stored = json.loads((self.home / "config/vsense/credentials.json").read_text())
        session = stored["profiles"]["default"]["logins"][self.live.base_url]
        return httpx.Client(
            verify=False,  # plain HTTP on loopback; skips loading a CA bundle
            base_url=f"{self.live.base_url}/api/v1",
            headers={"Authorization": f"Bearer {session['access_token']}"},
        )

    def process_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in CLIENT_VARIABLES}
        env.update({k: v for k, v in self.env.items() if v is not None})
        env.update(extra)
        return env


SDK = Client | AsyncClient


async def call(value: Any) -> Any:
    """The result of an SDK call of either client."""
    return await value if inspect.isawaitable(value) else value


async def collect(items: Any) -> list[Any]:
    """Every item of a `list_all` iterator of either client."""
    if hasattr(items, "__aiter__"):
        return [item async for item in items]
    return list(items)


def onboard(cli: Cli, **options: str) -> tuple[dict[str, Any], FakeDevice]:
    args = [f"--{name.replace('_', '-')}={value}" for name, value in options.items()]
    created = cli.json("devices", "add", "--name", unique("Gate"), "--app-type", "vcz", *args)
    device = FakeDevice(cli.live.base_url, created["uuid"], created["device_token"])
    device.keepalive()
    return created, device


async def online_device(sdk: SDK, live: LiveApi, **fields: Any) -> tuple[Device, FakeDevice]:
    created = await call(sdk.devices.create(name=unique("Gate"), app_type="VCZ", **fields))
    device = FakeDevice(live.base_url, created.uuid, created.device_token)
    device.keepalive()
    return created, device


def read_line(process: subprocess.Popen[str], timeout: float = 20) -> str:
    """The next line of a process's stdout, or fail after `timeout` seconds."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()))  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    assert lines and lines[0], f"no output within {timeout} s"
    return lines[0]


def make(kind: str, **options: Any) -> SDK:
    """A client of `kind` (`sync` or `async`)."""
    return AsyncClient(**options) if kind == "async" else Client(**options)


def same_kind(sdk: SDK, **options: Any) -> SDK:
    """Another client of the same kind as `sdk`."""
    return make("async" if isinstance(sdk, AsyncClient) else "sync", **options)


async def close(client: SDK) -> None:
    await call(client.close())
