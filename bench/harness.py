"""What the benchmarks share: ports, server subprocesses, the seeded database, results.

Each benchmark (`api_devices.py`, `ingest.py`, `images.py`, `webhooks.py`,
`http_clients.py`) imports what it needs from here; none imports another benchmark.
Benchmarks run as scripts from the repository root (`.venv/bin/python bench/x.py`),
so this directory is on `sys.path`; an app a benchmark serves with uvicorn is named
with `--app-dir bench` for the same reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import math
import os
import platform
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost"})
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432"
BACKENDS = ("sqlite", "postgresql")
BACKEND_LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}

GROUP_COUNT = 20

START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
REQUEST_TIMEOUT = 30.0
SEED_CHUNK = 5000

NAME_PREFIXES = ("Gate", "Dock", "Lobby", "Parking", "Entrance", "Yard", "Hall", "Lane")
PLACES = (
    ("Amsterdam", "NL"),
    ("Antwerp", "BE"),
    ("Berlin", "DE"),
    ("Lyon", "FR"),
    ("Madrid", "ES"),
    ("Milan", "IT"),
    ("Porto", "PT"),
    ("Vienna", "AT"),
    ("Warsaw", "PL"),
    ("Zurich", "CH"),
)
APP_TYPES = ("VPM", "VYD", "VCZ", "VCB", "VCW")


AsgiMessage = dict[str, Any]


async def answer_lifespan(
    receive: Callable[[], Awaitable[AsgiMessage]], send: Callable[[AsgiMessage], Awaitable[None]]
) -> None:
    """The ASGI lifespan protocol of an app with nothing to start or stop."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


@dataclass
class Measurement:
    server: str
    workers: int
    scenario: str
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    response_bytes: int = 0
    # Requests answered over the whole run (warm-up included) and the CPU seconds the
    # server's processes used meanwhile: CPU per request, which the machine's other
    # load changes far less than it changes requests per second.
    answered: int = 0
    server_cpu: float = math.nan

    @property
    def cpu_per_request_us(self) -> float:
        return 1e6 * self.server_cpu / self.answered if self.answered else math.nan

    @property
    def rps(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    def record_error(self, message: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = message


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def vsense_executable() -> str:
    beside = Path(sys.executable).parent / "vsense"
    if beside.is_file():
        return str(beside)
    found = shutil.which("vsense")
    if found is None:
        raise SystemExit("the `vsense` command is not installed (pip install -e '.[dev]')")
    return found


def _open_log(path: Path) -> IO[bytes]:
    return path.open("ab")


def log_tail(path: Path, lines: int = 15) -> str:
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def log_problems(path: Path) -> list[str]:
    if not path.is_file():
        return []
    markers = ("Traceback", "ERROR", "CRITICAL", "Exception")
    return [
        line
        for line in path.read_text(errors="replace").splitlines()
        if any(marker in line for marker in markers)
    ]


async def stop_process(process: asyncio.subprocess.Process) -> None:
    """SIGTERM (uvicorn stops its workers), then SIGKILL to the process group we started."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    # Workers left behind by a killed supervisor share its process group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


async def run_command(command: Sequence[str], env: dict[str, str], log_path: Path) -> None:
    log = _open_log(log_path)
    try:
        process = await asyncio.create_subprocess_exec(
            *command, env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        code = await process.wait()
    finally:
        log.close()
    if code != 0:
        raise RuntimeError(f"{shlex.join(command)} failed ({code}):\n{log_tail(log_path)}")


@contextlib.asynccontextmanager
async def served(
    command: Sequence[str],
    env: dict[str, str],
    port: int,
    log_path: Path,
    pids: list[int] | None = None,
) -> AsyncIterator[str]:
    """Run a server subprocess until the block ends; yields its base URL once /healthz is
    200. Its process id is appended to `pids` (for a profiler) when given."""
    import aiohttp

    base_url = f"http://{HOST}:{port}"
    log = _open_log(log_path)
    process = await asyncio.create_subprocess_exec(
        *command,
        env=env,
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    if pids is not None:
        pids.append(process.pid)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        async with aiohttp.ClientSession() as session:
            while True:
                if process.returncode is not None:
                    raise RuntimeError(
                        f"server exited ({process.returncode}):\n{log_tail(log_path)}"
                    )
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(
                        f"{base_url}/healthz", timeout=aiohttp.ClientTimeout(total=2)
                    ) as response:
                        if response.status == 200:
                            break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server not healthy in {START_TIMEOUT:.0f} s")
                await asyncio.sleep(0.2)
        yield base_url
    finally:
        await stop_process(process)
        log.close()


# A source tree (the `src` of another commit, say) that the subprocesses import `vsense`
# from instead of the installed one, so that one benchmark script measures either code.
SERVER_PYTHONPATH_ENV = "BENCH_SERVER_PYTHONPATH"


def base_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VSENSE_")}
    code = os.environ.get(SERVER_PYTHONPATH_ENV)
    if code:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [code, env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def announce_code_under_test() -> str:
    """Print (and return) where the subprocesses import `vsense` from."""
    found = subprocess.run(
        [sys.executable, "-c", "import vsense; print(vsense.__file__)"],
        env=base_env({}),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"vsense under test: {found}", flush=True)
    return found


def server_env(data_dir: Path, database_url: str | None, extra: dict[str, str]) -> dict[str, str]:
    settings = {"VSENSE_DATA_DIR": str(data_dir), "VSENSE_ENVIRONMENT": "development"}
    if database_url:
        settings["VSENSE_DATABASE_URL"] = database_url
    return base_env({**settings, **extra})


# --------------------------------------------------------------------------- database


async def recreate_postgres_database(url: str) -> str:
    """Drop and create the bench database; returns the server version."""
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine.url import make_url

    parsed = make_url(url)
    connection = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database="postgres",
    )
    try:
        name = parsed.database
        if not name or not name.replace("_", "").isalnum():
            raise SystemExit(f"unsafe database name {name!r}")
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
        return str(await connection.fetchval("SHOW server_version"))
    finally:
        await connection.close()


def device_rows(
    rng: random.Random, organization_id: int, group_ids: Sequence[int], count: int
) -> list[dict[str, Any]]:
    now = datetime.now(UTC).replace(microsecond=0)
    rows = []
    for n in range(count):
        city, country = rng.choice(PLACES)
        online = rng.random() < 0.5
        refreshed = (
            None if rng.random() < 0.05 else now - timedelta(seconds=rng.randrange(5 * 86400))
        )
        rows.append(
            {
                "uuid": uuid.UUID(int=rng.getrandbits(128), version=4),
                "organization_id": organization_id,
                "group_id": None if rng.random() < 1 / GROUP_COUNT else rng.choice(group_ids),
                "name": f"{rng.choice(NAME_PREFIXES)} {rng.randrange(100_000):05d}",
                "client_identifier": f"VS-{n:06d}",
                "geo_city": city,
                "geo_country": country,
                "app_type": rng.choice(APP_TYPES),
                "keepalive_interval": None,
                "is_online": online,
                "refreshed": refreshed,
                "last_seen": refreshed,
                "status_reason": None if online else "keepalive_missed",
                "created": now - timedelta(seconds=rng.randrange(365 * 86400)),
                "updated": now,
            }
        )
    return rows


async def seed(data_dir: Path, database_url: str | None, devices: int) -> str:
    """One organization, an admin, 20 groups, `devices` devices; returns a `vst_` token."""
    from sqlalchemy import insert, select

    from vsense.accounts.scopes import ALL_SCOPES
    from vsense.accounts.service import PERSONAL_PREFIX
    from vsense.config import load_settings
    from vsense.db import create_engine
    from vsense.kit.crypto import hash_password, new_token, token_digest
    from vsense.models import Device, Group, Organization, PersonalAccessToken, User

    settings = load_settings(data_dir=data_dir, database_url=database_url)
    engine = create_engine(settings)
    rng = random.Random(20_000)
    token = new_token(PERSONAL_PREFIX)
    hashed: Any = hash_password(secrets_password())
    # Awaited where hashing is asynchronous; older code (BENCH_SERVER_PYTHONPATH) is sync.
    password_hash: str = await hashed if inspect.isawaitable(hashed) else hashed
    try:
        async with engine.begin() as connection:
            organization_id = (
                await connection.execute(
                    insert(Organization).values(name="Bench").returning(Organization.id)
                )
            ).scalar_one()
            user_id = (
                await connection.execute(
                    insert(User)
                    .values(
                        organization_id=organization_id,
                        email="admin@bench.example",
                        name="Bench admin",
                        password_hash=password_hash,
                        role="admin",
                    )
                    .returning(User.id)
                )
            ).scalar_one()
            await connection.execute(
                insert(Group),
                [
                    {"organization_id": organization_id, "name": f"site-{n:02d}"}
                    for n in range(1, GROUP_COUNT + 1)
                ],
            )
            group_ids = list(
                (
                    await connection.scalars(
                        select(Group.id).where(Group.organization_id == organization_id)
                    )
                ).all()
            )
            rows = device_rows(rng, organization_id, group_ids, devices)
            for start in range(0, len(rows), SEED_CHUNK):
                await connection.execute(insert(Device), rows[start : start + SEED_CHUNK])
            await connection.execute(
                insert(PersonalAccessToken).values(
                    user_id=user_id,
                    name="bench",
                    token_hash=token_digest(token),
                    prefix=token[:8],
                    scopes=list(ALL_SCOPES),
                )
            )
        if engine.dialect.name == "postgresql":
            # What autovacuum does soon after a bulk load: statistics and visibility map.
            async with engine.connect() as connection:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                await autocommit.exec_driver_sql("VACUUM ANALYZE")
    finally:
        await engine.dispose()
    return token


@dataclass
class InProcess:
    """vsense built in the benchmark's own process (`in_process`)."""

    app: Any
    settings: Any
    admin: str  # the seeded admin's personal access token
    data_dir: Path

    @property
    def driver_url(self) -> str:
        """Its database as a lean reference's driver takes it."""
        return (
            str(self.settings.resolved_database_url)
            .replace("postgresql+asyncpg://", "postgresql://")
            .replace("sqlite+aiosqlite:///", "sqlite:///")
        )


@contextlib.asynccontextmanager
async def migrated_settings(
    database_url: str | None, prefix: str, environment: str, **extra: Any
) -> AsyncIterator[Any]:
    """Settings of a fresh database (PostgreSQL dropped and recreated, else SQLite in a
    temporary folder), migrated; the folder is removed afterwards."""
    import tempfile

    from vsense.config import load_settings
    from vsense.migrate import upgrade_async

    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        if database_url:
            await recreate_postgres_database(database_url)
        settings = load_settings(
            data_dir=data_dir,
            database_url=database_url,
            environment=environment,
            secret_key="bench-cpu-secret-key-long-enough-0123456789",
            **extra,
        )
        await upgrade_async(settings)
        yield settings
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.asynccontextmanager
async def in_process(database_url: str | None, pool: int, prefix: str) -> AsyncIterator[InProcess]:
    """vsense over a fresh database (`migrated_settings`), an admin seeded, the app built
    without background jobs (no flush, sweep or dispatcher) and not started. `vsense` is
    imported here, once `BENCH_SERVER_PYTHONPATH` has chosen it."""
    from vsense.app import create_app

    async with migrated_settings(
        database_url, prefix, "development", database_pool_size=pool
    ) as settings:
        data_dir = settings.data_dir
        admin = await seed(data_dir, database_url, 0)
        yield InProcess(create_app(settings, background=False), settings, admin, data_dir)


@contextlib.asynccontextmanager
async def migrated_components(database_url: str | None, prefix: str) -> AsyncIterator[Any]:
    """The components of a server process (`Components.for_server`) over a fresh
    database (`migrated_settings`); the engine is disposed afterwards."""
    from vsense.components import Components

    async with migrated_settings(database_url, prefix, "test") as settings:
        components = Components.for_server(settings)
        try:
            yield components
        finally:
            await components.engine.dispose()


async def seed_payload_webhooks(
    session: Any, organization_id: int, urls: Sequence[str], name: str
) -> list[tuple[uuid.UUID, int]]:
    """A device per URL (named `name` and its index) with a payload webhook to that URL;
    the devices and the webhooks' ids, in the order of `urls`."""
    from sqlalchemy import insert

    from vsense.models import Device, Webhook
    from vsense.webhooks.signing import new_secret

    targets = []
    for n, url in enumerate(urls):
        device = uuid.uuid4()
        await session.execute(
            insert(Device).values(uuid=device, organization_id=organization_id, name=f"{name}{n}")
        )
        webhook = await session.scalar(
            insert(Webhook)
            .values(
                organization_id=organization_id,
                device_uuid=device,
                url=url,
                webhook_type="payload",
                secret=new_secret(),
            )
            .returning(Webhook.id)
        )
        targets.append((device, webhook))
    return targets


def secrets_password() -> str:
    import secrets

    return secrets.token_urlsafe(16)


def command_line() -> str:
    executable = Path(sys.executable)
    with contextlib.suppress(ValueError):
        executable = executable.relative_to(Path.cwd())
    if executable.is_absolute():
        executable = Path("python")
    return shlex.join([str(executable), *sys.argv])


def machine_facts() -> str:
    import uvicorn

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{cpus} CPUs (nproc), {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, uvicorn {uvicorn.__version__}; "
        "server and load generator share the machine"
    )


def append_markdown(path: Path, lines: list[str]) -> None:
    """Append a section to a results file, a blank line apart from what is there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        if path.stat().st_size and not lines[0].startswith("# "):
            handle.write("\n")
        handle.write("\n".join(lines))


T = TypeVar("T")


def event_loop_runner(main: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when it is installed (it comes with uvicorn[standard])."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def percentile(values: Sequence[float], q: float) -> float:
    """The `q` quantile (0 to 1) of `values` by the nearest-rank method; NaN when empty."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else math.nan


async def wait_listening(port: int, process: asyncio.subprocess.Process) -> None:
    """Wait until a subprocess accepts connections on `port` (15 s at most)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"the receiver exited ({process.returncode})")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection(HOST, port)
            writer.close()
            await writer.wait_closed()
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the receiver did not start listening")


# --------------------------------------------------------------------------- a large fleet

FLEET_GROUP = "fleet"
FLEET_PREFIX = "FLEET"
SILENT_PREFIX = "SILENT"
# Seconds after the seeding before a keeping-alive fleet device falls due: a day, longer
# than any run, so that the sweep takes none offline as the benchmark goes on (a real
# fleet keeps alive; this one only does where a scenario reaches it).
FLEET_HOLD = 86_400.0
FLEET_MARGIN = 600.0  # seconds beyond a run before a retimed fleet device falls due


def fleet_token(n: int) -> str:
    """The device token of fleet device `n`: derived, so that a client of a million
    devices keeps no list of tokens."""
    return "vsd_fleet_" + hashlib.sha256(f"vsense-bench-fleet/{n}".encode()).hexdigest()[:40]


def fleet_uuid(n: int) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"vsense-bench-fleet/{n}")


async def seed_fleet(data_dir: Path, database_url: str | None, count: int, silent: int) -> None:
    """`count` online devices of group `fleet` at the default keepalive interval (600 s),
    each last seen at a random moment of the past interval, and `silent` more: all due
    only after `FLEET_HOLD` (spread over one interval), so that the sweep finds none of
    them until `retime_fleet` makes the silent ones due during a run. Tokens:
    `fleet_token(n)`; silent devices have none in use. Written straight into the
    database (COPY on PostgreSQL): onboarding a million devices through the API would
    take an hour."""
    from sqlalchemy import insert, select

    from vsense.config import load_settings
    from vsense.db import create_engine
    from vsense.kit.crypto import token_digest
    from vsense.models import Device, DeviceCredential, Group, Organization

    settings = load_settings(data_dir=data_dir, database_url=database_url)
    interval = int(settings.default_keepalive_interval)
    engine = create_engine(settings)
    rng = random.Random(1_000_000)
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        async with engine.begin() as connection:
            organization_id = (
                await connection.execute(select(Organization.id).order_by(Organization.id))
            ).scalar_one()
            group_id = (
                await connection.execute(
                    insert(Group)
                    .values(organization_id=organization_id, name=FLEET_GROUP)
                    .returning(Group.id)
                )
            ).scalar_one()

            def device(n: int) -> tuple[Any, ...]:
                seen = now - timedelta(seconds=rng.uniform(0, interval))
                deadline = seen + timedelta(seconds=FLEET_HOLD + 1.5 * interval)
                name = f"{SILENT_PREFIX if n >= count else FLEET_PREFIX}-{n:07d}"
                return (fleet_uuid(n), organization_id, group_id, name, name, "VCZ", True,
                        seen, seen, deadline, now, now)  # fmt: skip

            columns = ("uuid", "organization_id", "group_id", "name", "client_identifier",
                       "app_type", "is_online", "refreshed", "last_seen", "offline_after",
                       "created", "updated")  # fmt: skip
            total = count + silent
            if engine.dialect.name == "postgresql":
                raw = (await connection.get_raw_connection()).driver_connection
                assert raw is not None
                for start in range(0, total, 100_000):
                    stop = min(total, start + 100_000)
                    await raw.copy_records_to_table(
                        "devices",
                        records=[(*device(n), "", "") for n in range(start, stop)],
                        columns=[*columns, "geo_city", "geo_country"],
                    )
                    await raw.copy_records_to_table(
                        "device_credentials",
                        records=[
                            (fleet_uuid(n), token_digest(fleet_token(n)), now)
                            for n in range(start, min(stop, count))
                        ],
                        columns=["device_uuid", "token_hash", "created"],
                    )
            else:
                for start in range(0, total, SEED_CHUNK):
                    stop = min(total, start + SEED_CHUNK)
                    await connection.execute(
                        insert(Device),
                        [dict(zip(columns, device(n), strict=True)) for n in range(start, stop)],
                    )
                    if start < count:
                        await connection.execute(
                            insert(DeviceCredential),
                            [
                                {
                                    "device_uuid": fleet_uuid(n),
                                    "token_hash": token_digest(fleet_token(n)),
                                }
                                for n in range(start, min(stop, count))
                            ],
                        )
        if engine.dialect.name == "postgresql":
            async with engine.connect() as connection:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                await autocommit.exec_driver_sql("VACUUM ANALYZE")
    finally:
        await engine.dispose()


async def retime_fleet(
    data_dir: Path, database_url: str | None, count: int, silent: int, window: float
) -> None:
    """Make the seeded fleet's deadlines relative to now, just before a run over it: the
    `count` keeping-alive devices that would fall due within `window` + `FLEET_MARGIN`
    (an earlier run kept them alive; freshly seeded, none would) due over one interval
    after that, so that none the run does not reach falls due during it; then, in a
    second transaction, the `silent` ones online again and due over the next `window`
    seconds, for the sweep. Only those rows are written: rewriting the whole fleet
    before (d) left the table and its indexes a million dead rows to step over while
    (d) ran, which the lean reference, run before it, did not have."""
    from sqlalchemy import bindparam, or_, update

    from vsense.config import load_settings
    from vsense.db import create_engine
    from vsense.models import Device

    settings = load_settings(data_dir=data_dir, database_url=database_url)
    interval = int(settings.default_keepalive_interval)
    engine = create_engine(settings)
    rng = random.Random(2_000_000)
    horizon = window + FLEET_MARGIN
    plan: tuple[tuple[str, range, float, float, float | None], ...] = (
        (FLEET_PREFIX, range(count), horizon, interval, horizon),  # those due before then
        (SILENT_PREFIX, range(count, count + silent), 0.0, window, None),  # all of them
    )
    try:
        if engine.dialect.name == "postgresql":
            for prefix, _, first, spread, due_before in plan:
                async with engine.begin() as connection:
                    await connection.exec_driver_sql(
                        "UPDATE devices AS d SET is_online = true, offline_after = v.due,"
                        " last_seen = v.due - make_interval(secs => $5)"
                        " FROM (SELECT uuid, now() + make_interval(secs => $1)"
                        " + random() * make_interval(secs => $2) AS due FROM devices"
                        " WHERE group_id = (SELECT id FROM groups WHERE name = $3)"
                        " AND name LIKE $4 AND ($6::float8 IS NULL OR NOT is_online"
                        " OR offline_after < now() + make_interval(secs => $6))) AS v"
                        " WHERE d.uuid = v.uuid",
                        (float(first), float(spread), FLEET_GROUP, prefix + "-%",
                         1.5 * interval, due_before),
                    )  # fmt: skip
            return
        for _, numbers, first, spread, due_before in plan:
            async with engine.begin() as connection:
                now = datetime.now(UTC)
                statement = (
                    update(Device)
                    .where(Device.uuid == bindparam("key"))
                    .values(
                        is_online=True, offline_after=bindparam("due"), last_seen=bindparam("seen")
                    )
                )
                if due_before is not None:
                    statement = statement.where(
                        or_(
                            Device.is_online.is_(False),
                            Device.offline_after < now + timedelta(seconds=due_before),
                        )
                    )
                for start in range(0, len(numbers), SEED_CHUNK):
                    rows = []
                    for n in numbers[start : start + SEED_CHUNK]:
                        due = now + timedelta(seconds=first + rng.uniform(0, spread))
                        seen = due - timedelta(seconds=1.5 * interval)
                        rows.append({"key": fleet_uuid(n), "due": due, "seen": seen})
                    await connection.execute(statement, rows)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def profiled(pid: int | None, output: Path | None) -> AsyncIterator[None]:
    """py-spy samples the server process (and its workers) while the block runs, into
    `output` as collapsed stacks (`function (file:line);...  count` per line); nothing
    when `output` is None."""
    if pid is None or output is None:
        yield
        return
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.is_file():
        raise SystemExit("--profile needs py-spy (pip install -e '.[dev]')")
    output.parent.mkdir(parents=True, exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        str(spy), "record", "--pid", str(pid), "--subprocesses", "--rate", "250",
        "--format", "raw", "--nonblocking", "--output", str(output),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await asyncio.sleep(0.5)  # py-spy attaches
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            await asyncio.wait_for(process.wait(), 20)
        except TimeoutError:
            process.kill()
            await process.wait()


async def metric(session: Any, base_url: str, name: str, labels: str = "") -> float:
    """One sample of a server's `/metrics` (with `labels` as exposed, `a="b"`); 0 when
    it is not there (not counted yet, or a server without the metric)."""
    sample = f"{name}{{{labels}}}" if labels else name
    async with session.get(f"{base_url}/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if head == sample:
            return float(value)
    return 0.0


async def group_commit_totals(session: Any, base_url: str) -> tuple[float, float]:
    """A server's group commit so far (`/metrics`, every process's): the units of work
    and the group transactions they shared."""
    units = await metric(session, base_url, "vsense_group_commit_size_sum")
    return units, await metric(session, base_url, "vsense_group_commit_size_count")


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its descendants that are
    alive (uvicorn's workers); NaN when /proc cannot tell."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    todo = [pid]
    try:
        while todo:
            current = todo.pop()
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                todo += [int(child) for child in children]
    except (OSError, ValueError, IndexError):
        return math.nan
    return total
