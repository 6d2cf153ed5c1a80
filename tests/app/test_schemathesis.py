"""Property-based run of the OpenAPI document against a real server, on each backend.

Schemathesis generates valid and invalid requests for every operation; none may get a
5xx, a status the document does not list, or a body outside the documented schemas.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.environment import BACKENDS, fresh_postgres_database
from tests.live_server import LiveServer, command, start_server

MAX_EXAMPLES = int(os.environ.get("VSENSE_SCHEMATHESIS_EXAMPLES", "25"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module", params=BACKENDS)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    data_dir: Path = tmp_path_factory.mktemp("schemathesis")
    database_url = None
    if request.param == "postgresql":
        database_url = asyncio.run(fresh_postgres_database("schemathesis"))
    server = start_server(data_dir, database_url)
    try:
        command(server.env, "admin", "create-org", "Fuzz")
        command(
            server.env,
            "admin",
            "create-user",
            "--org",
            "Fuzz",
            "--email",
            "fuzz@example.com",
            "--role",
            "admin",
            "--password",
            "fuzzing password",
        )
        login = httpx.post(
            f"{server.base_url}/api/v1/login",
            json={"email": "fuzz@example.com", "password": "fuzzing password"},
        )
        token = login.json()["data"]["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        # Some data, so that generated ids and names sometimes hit something.
        with httpx.Client(base_url=server.base_url, headers=headers) as client:
            for name in ("1", "North"):
                client.post("/api/v1/groups", json={"name": name})
            for index in range(3):
                client.post("/api/v1/devices", json={"name": f"Device {index}", "group": "North"})
            client.post("/api/v1/users", json={"email": "u@example.com", "password": "x" * 10})
        yield server, headers
    finally:
        server.stop()


def run_operation(operation: Any, server: LiveServer, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=server.base_url, headers=headers, checks=CHECKS)

    check()


@pytest.mark.slow
def test_api_conforms_to_its_openapi_document(live: tuple[LiveServer, dict[str, str]]) -> None:
    server, headers = live
    schema = schemathesis.openapi.from_url(f"{server.base_url}/api/v1/openapi.json")
    # Logging out would end the session the run authenticates with.
    schema = schema.exclude(path="/api/v1/logout")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        try:
            run_operation(operation, server, headers)
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert operations >= 20
    assert not failures, "\n\n".join(failures)


def test_the_run_is_authenticated(live: tuple[LiveServer, dict[str, str]]) -> None:
    server, headers = live
    response = httpx.get(f"{server.base_url}/api/v1/me", headers=headers)
    assert response.status_code == 200, response.text
