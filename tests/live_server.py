"""A real `vsense serve` process on a free port, for tests that speak HTTP from outside."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

# Generous: on a loaded machine, importing, migrating and the first admin's password
# hash can take a minute before the server answers.
STARTUP_SECONDS = 180


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    base_url: str
    process: subprocess.Popen[bytes]
    env: dict[str, str]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def command(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "vsense.cli", *args],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


def start_server(
    data_dir: Path,
    database_url: str | None = None,
    *args: str,
    wait: float = STARTUP_SECONDS,
    extra_env: Mapping[str, str] | None = None,
) -> LiveServer:
    """`vsense serve` on a free port (`args` added to its command line, `extra_env` to
    its environment), once it answers (within `wait` seconds)."""
    env = {
        **os.environ,
        **(extra_env or {}),
        "VSENSE_DATA_DIR": str(data_dir),
        "VSENSE_ENVIRONMENT": "test",
        "VSENSE_SECRET_KEY": "live-server-secret-key-long-enough-0123456789",
    }
    env.pop("VSENSE_DATABASE_URL", None)
    if database_url:
        env["VSENSE_DATABASE_URL"] = database_url
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vsense.cli",
            "serve",
            "--port",
            str(port),
            "--log-level",
            "warning",
            *args,
        ],
        env=env,
    )
    server = LiveServer(f"http://127.0.0.1:{port}", process, env)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"vsense serve exited with {process.returncode}")
        try:
            if httpx.get(f"{server.base_url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"vsense serve did not answer within {wait:.0f} s")


SIMULATOR_PASSWORD = "simulator password"


def integrator_token(server: LiveServer) -> str:
    """An organization, its admin and a token that onboards and reads devices."""
    command(server.env, "admin", "create-org", "Sim")
    command(
        server.env,
        "admin",
        "create-user",
        "--org",
        "Sim",
        "--email",
        "sim@example.com",
        "--role",
        "admin",
        "--password",
        SIMULATOR_PASSWORD,
    )
    login = httpx.post(
        f"{server.base_url}/api/v1/login",
        json={"email": "sim@example.com", "password": SIMULATOR_PASSWORD},
    )
    assert login.status_code == 200, login.text
    access = login.json()["data"]["access_token"]
    created = httpx.post(
        f"{server.base_url}/api/v1/tokens",
        json={"name": "simulator", "scopes": ["devices:read", "devices:write"]},
        headers={"Authorization": f"Bearer {access}"},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    data = body.get("data", body)
    return str(data["token"])
