"""The README's first command: `vsense demo` shows devices online and payloads arriving."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.live_server import free_port

pytestmark = [pytest.mark.live, pytest.mark.slow]


def test_demo_brings_a_simulated_fleet_online(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "VSENSE_DATA_DIR": str(tmp_path), "VSENSE_ENVIRONMENT": "development"}
    env.pop("VSENSE_DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "vsense.cli", "demo", "--port", str(port), "--rate", "30"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        assert process.stdout is not None
        password = None
        printed: list[str] = []
        deadline = time.monotonic() + 60
        while password is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            printed.append(line.strip())
            match = re.search(r"^\s*password:\s+(\S+)$", line)
            password = match[1] if match else None
        assert password, "the demo did not print its credentials"
        # The console's address and the admin's credentials come first.
        console = f"http://127.0.0.1:{port}/console/"
        assert console in printed
        assert printed.index(console) < printed.index("email:    demo@vsense.local")
        page = httpx.get(console)
        assert page.status_code == 303 and page.headers["location"].startswith("/console/login")
        login = httpx.post(
            f"{base}/login", json={"email": "demo@vsense.local", "password": password}
        )
        headers = {"Authorization": f"Bearer {login.json()['data']['access_token']}"}
        online: list[dict[str, object]] = []
        messages = 0
        while time.monotonic() < deadline and not (len(online) == 12 and messages > 0):
            time.sleep(1)
            online = httpx.get(
                f"{base}/devices", params={"is_online": "Online"}, headers=headers
            ).json()["data"]
            messages = sum(
                httpx.get(f"{base}/devices/{device['uuid']}/payloads", headers=headers).json()[
                    "meta"
                ]["total"]
                for device in online
            )
        assert len(online) == 12
        assert {device["app_type"] for device in online} == {"VPM", "VYD", "VCZ", "VCB", "VCW"}
        assert messages > 0
        # Every sensor's webhook reaches the demo's receiver, which checks the signatures.
        delivered: list[str] = []
        while time.monotonic() < deadline + 30 and not delivered:
            hooks = httpx.get(f"{base}/webhooks", headers=headers).json()["data"]
            for hook in hooks:
                log = httpx.get(
                    f"{base}/webhooks/{hook['id']}/deliveries",
                    params={"status": "succeeded"},
                    headers=headers,
                ).json()
                delivered += [d["event"]["type"] for d in log["data"]]
            time.sleep(1)
        assert len(hooks) == 12
        assert "payload" in delivered
        assert all("alert" in hook["actions"] for hook in hooks)
        # One alert rule per application type, each on a sensor of its type.
        rules: list[dict[str, object]] = []
        while time.monotonic() < deadline + 60 and len(rules) < 5:
            rules = httpx.get(f"{base}/alert-rules", headers=headers).json()["data"]
            time.sleep(0.5)
        types = {device["uuid"]: device["app_type"] for device in online}
        assert sorted(str(types[str(rule["device_uuid"])]) for rule in rules) == sorted(
            ["VPM", "VYD", "VCZ", "VCB", "VCW"]
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
