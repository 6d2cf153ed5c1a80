"""Typed settings: `VSENSE_*` environment variables, optionally a TOML file.

Precedence: explicit keyword arguments > environment > TOML file (`--config` or
`VSENSE_CONFIG`) > defaults. Zero configuration runs the embedded default: a SQLite
database in the data folder and a secret key generated there on first use.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, IPvAnyNetwork, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from vsense.kit.files import private_folder

DEFAULT_SECRET_PLACEHOLDER = "change-me"
MIN_SECRET_LENGTH = 32


class ConfigurationError(RuntimeError):
    """The settings do not allow the server to start; the message says what to fix."""


def _seconds(value: Any) -> Any:
    """A number of seconds as the environment writes it (`"3600"`, `"1.5"`) is a duration
    too; pydantic reads numbers as seconds, and ISO 8601 (`PT1H`) as it is."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


# A length of time: seconds (a number) or ISO 8601 (`PT1H`) in the environment or TOML.
Duration = Annotated[timedelta, BeforeValidator(_seconds)]


class Settings(BaseSettings):
    """Every setting of the server. Each has a `VSENSE_` environment variable."""

    model_config = SettingsConfigDict(env_prefix="VSENSE_", extra="ignore")

    environment: Literal["development", "production", "test"] = Field(
        "development",
        description="`development` generates a secret key in the data folder when none is "
        "given; any other value requires `VSENSE_SECRET_KEY`.",
    )
    data_dir: Path = Field(
        Path(".vsense"), description="Folder of the embedded database and the local image store."
    )
    database_url: str | None = Field(
        None,
        description="`postgresql+asyncpg://...` or `sqlite+aiosqlite:///...`; "
        "unset means a SQLite file in the data folder.",
    )
    hosts: int = Field(
        1,
        ge=1,
        description="How many hosts run vsense server processes on this database. Above 1, "
        "what one host keeps on its own disk is refused at start-up: the embedded database "
        "and the local image store (a link served by another host would find no image).",
    )
    database_pool_size: int = Field(
        32,
        ge=1,
        description="Connections kept open per process (PostgreSQL); size it to the expected "
        "concurrency, since connections opened beyond it are closed again after use.",
    )
    secret_key: SecretStr | None = Field(
        None, description="Signing key for access tokens and image links (at least 32 characters)."
    )
    access_token_ttl: Duration = Field(
        timedelta(hours=1), ge=timedelta(seconds=60), description="Access token lifetime, seconds."
    )
    refresh_token_ttl: Duration = Field(
        timedelta(days=30),
        ge=timedelta(seconds=300),
        description="Refresh token lifetime, seconds.",
    )
    image_link_ttl: Duration = Field(
        timedelta(minutes=30), ge=timedelta(seconds=60), description="Image link lifetime, seconds."
    )
    image_capture_timeout: Duration = Field(
        timedelta(minutes=2),
        ge=timedelta(seconds=5),
        description="Seconds a device has to upload before an image request fails.",
    )
    image_max_bytes: int = Field(
        10 * 1_048_576,
        ge=1024,
        description="Largest image a device may upload (PUT /device/v1/images/...), bytes.",
    )
    image_retention: Duration = Field(
        timedelta(days=1),
        ge=timedelta(seconds=60),
        description="Seconds images and their requests are kept before they are deleted.",
    )
    image_storage: Literal["local", "s3"] = Field(
        "local",
        description="Where uploaded images are kept: `local` (the `images` folder of the data "
        "folder) or `s3` (any S3-compatible store, see the `image_s3_*` settings).",
    )
    image_s3_endpoint: str | None = Field(
        None,
        description="URL of the S3-compatible store (`http://127.0.0.1:9000`); unset means "
        "AWS S3 itself.",
    )
    image_s3_bucket: str | None = Field(
        None, description="Bucket of the images; required when `image_storage` is `s3`."
    )
    image_s3_prefix: str = Field("images/", description="Key prefix of the images in the bucket.")
    image_s3_region: str = Field("us-east-1", description="Region of the S3 bucket.")
    image_s3_access_key: SecretStr | None = Field(
        None, description="S3 access key id; unset uses the usual AWS credential chain."
    )
    image_s3_secret_key: SecretStr | None = Field(None, description="S3 secret access key.")
    image_s3_delivery: Literal["redirect", "stream"] = Field(
        "redirect",
        description="How a signed link serves an image kept in S3: `redirect` to a presigned "
        "URL that expires with the link, or `stream` the bytes through the server.",
    )
    public_url: str | None = Field(
        None,
        description="Base URL of the server as integrators reach it (`https://vsense.example`), "
        "used in image links; unset means the scheme and host of the request when that "
        "host is allowed (`allowed_hosts`), else the address the server listens on.",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names a request's `Host` header may give for image links when "
        '`public_url` is unset, as a JSON list (`["vsense.example"]`); the address the '
        "server listens on and localhost are always allowed. Any other `Host` is ignored "
        "(a forged one would send link followers elsewhere).",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or networks of reverse proxies whose `X-Forwarded-For` and "
        '`X-Forwarded-Proto` are believed, as a JSON list (`["10.0.0.5"]`); empty: the '
        "peer's own address is the client's (the login throttle counts it).",
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="When set, `/metrics` answers only requests bearing it "
        "(`Authorization: Bearer ...`); unset, it is open in development and test and "
        "refused in production (the figures describe the fleet and its traffic).",
    )
    webhook_allow_private: bool = Field(
        False, description="Let webhooks target private and loopback addresses."
    )
    webhook_allow_networks: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Networks webhooks may target even when private addresses are refused "
        '(on-premises receivers), as a JSON list: `["10.1.0.0/16"]`.',
    )
    webhook_source: str = Field("VIZIOSENSE", description="`source` value of keepalive webhooks.")
    webhook_timeout: Duration = Field(
        timedelta(seconds=10),
        ge=timedelta(seconds=1),
        le=timedelta(seconds=30),
        description="Seconds a webhook receiver has to answer with a 2xx.",
    )
    webhook_keepalive_min_interval: Duration = Field(
        timedelta(minutes=1),
        ge=timedelta(0),
        description="At most one keepalive webhook per device per this many seconds.",
    )
    webhook_max_in_flight: int = Field(
        8, ge=1, le=64, description="Requests in flight at once to one webhook endpoint."
    )
    webhook_disable_after: Duration = Field(
        timedelta(days=5),
        gt=timedelta(0),
        description="Seconds after which a webhook whose every attempt has failed is disabled.",
    )
    webhook_dispatcher: bool = Field(
        True,
        description="Deliver webhooks from `vsense serve` too; off when `vsense worker` "
        "processes do it.",
    )
    delivery_retention: Duration = Field(
        timedelta(days=30),
        gt=timedelta(0),
        description="Seconds webhook events, deliveries and their attempts are kept.",
    )
    payload_retention: Duration = Field(
        timedelta(days=90),
        gt=timedelta(0),
        description="Seconds the payload log and its metrics are kept.",
    )
    mqtt_url: str | None = Field(
        None, description="MQTT broker of the device bridge; unset = none."
    )
    default_keepalive_interval: int = Field(
        600,
        ge=10,
        description="Keepalive interval, seconds, of devices whose own and whose group's are "
        "unset; a device is offline after 1.5 times its interval without a sign of life.",
    )
    liveness_flush_interval: Duration = Field(
        timedelta(seconds=1),
        gt=timedelta(0),
        description="Seconds between two batched writes of devices' last sign of life.",
    )
    sweep_interval: Duration = Field(
        timedelta(seconds=15),
        gt=timedelta(0),
        le=timedelta(seconds=30),
        description="Seconds between two sweeps for overdue devices.",
    )
    accept_unknown_payload_types: bool = Field(
        False,
        description="Store and forward messages of unknown types (no metrics) instead of "
        "refusing them with 422.",
    )
    command_ttl: Duration = Field(
        timedelta(minutes=5),
        ge=timedelta(seconds=10),
        description="Seconds a command waits for its device before it expires.",
    )
    device_max_body_bytes: int = Field(
        4 * 1_048_576,
        ge=1024,
        description="Largest body a device may send to /device/v1 (a batch of 500 messages).",
    )
    mqtt_share_group: str = Field(
        "vsense",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Shared-subscription group of the MQTT bridge: server processes of one "
        "group share the devices' messages.",
    )
    mqtt_client_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{1,48}$",
        description="A stable name for this server process's MQTT sessions (one per "
        "process slot, such as the host's name): a restarted process resumes them, and "
        "the broker hands it what the stopped or killed one had received but not "
        "acknowledged. Unset: a new name at each start, so that what a killed process "
        "held waits in its sessions until they expire. Not with `--workers` above 1.",
    )
    mqtt_subscribers: int = Field(
        4,
        ge=1,
        le=64,
        description="Connections each server process opens to the MQTT broker as members of "
        "the share group: the broker spreads the devices' messages over all of them; each "
        "hands over its own batches, and those waiting at the same time share one "
        "transaction (the group commit).",
    )
    mqtt_batch_size: int = Field(
        100,
        ge=1,
        le=5000,
        description="Most messages the MQTT bridge handles in one transaction (each is "
        "acknowledged once that transaction commits).",
    )
    mqtt_batch_wait: Duration = Field(
        timedelta(milliseconds=5),
        ge=timedelta(0),
        le=timedelta(seconds=1),
        description="Seconds the MQTT bridge waits for more messages before it commits a "
        "batch that is not full.",
    )
    mqtt_receive_maximum: int = Field(
        1000,
        ge=1,
        le=65535,
        description="Messages the broker may have in flight (sent, not yet acknowledged) to "
        "each bridge connection (MQTT 5 receive maximum): at least the batch size, so that "
        "a batch can fill while the previous one commits.",
    )
    shutdown_grace: Duration = Field(
        timedelta(seconds=10),
        ge=timedelta(0),
        le=timedelta(minutes=5),
        description="Seconds a stopping process (SIGTERM) gives its work to end: long polls "
        "answer at once, requests in progress and webhook sends in flight get this long, "
        "then what is left is cancelled (unsent deliveries are released at once).",
    )
    http_keepalive_timeout: Duration = Field(
        timedelta(seconds=20),
        gt=timedelta(0),
        le=timedelta(hours=1),
        description="Seconds an idle HTTP keep-alive connection stays open. Longer than the "
        "idle expiry of common clients (httpx 5 s, aiohttp 15 s), so that they close an idle "
        "connection first instead of sending a request on one the server is closing (a "
        "POST lost to that race cannot be sent again safely); behind a load balancer, set "
        "it above the balancer's idle timeout.",
    )
    max_requests_in_flight: int = Field(
        256,
        ge=1,
        description="Requests one process serves at once (long polls and the health and "
        "metrics endpoints not counted); more are answered 503 with Retry-After at once, "
        "before their body is read.",
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body accepted under /api/v1, bytes."
    )
    count_cache_ttl: Duration = Field(
        timedelta(seconds=1),
        ge=timedelta(0),
        description="Seconds a device-list `total` (and the rows deep pages start from) may be "
        "reused before it is counted again.",
    )
    auth_cache_ttl: Duration = Field(
        timedelta(seconds=5),
        ge=timedelta(0),
        description="Seconds a verified bearer token's caller (role, organization), a device "
        "token's device and a device's webhooks (a hint) may be reused without a database "
        "read. A change applies in every process when it commits (PostgreSQL: LISTEN/NOTIFY; "
        "while that connection is down, entries are trusted for at most 1 s). 0 checks the "
        "database every time.",
    )
    login_max_failures_per_email: int = Field(
        5, ge=1, description="Failed logins for one email within the window before 429."
    )
    login_max_failures_per_address: int = Field(
        20, ge=1, description="Failed logins from one client address within the window before 429."
    )
    login_failure_window: Duration = Field(
        timedelta(minutes=15),
        ge=timedelta(seconds=1),
        description="Window of the login throttle, seconds.",
    )
    login_max_attempts_per_email: int = Field(
        10,
        ge=1,
        description="Logins for one email, failed or not, within the attempt window before 429.",
    )
    login_max_attempts_per_address: int = Field(
        30,
        ge=1,
        description="Logins from one client address, failed or not, within the attempt window "
        "before 429.",
    )
    login_attempt_window: Duration = Field(
        timedelta(minutes=1),
        ge=timedelta(seconds=1),
        description="Window of the login attempt limit, seconds.",
    )
    password_hashing_threads: int = Field(
        2,
        ge=1,
        le=64,
        description="Threads of a process that hash and verify passwords (argon2id, 64 MiB "
        "each), away from the event loop; logins beyond them wait their turn.",
    )

    @model_validator(mode="after")
    def _absolute_data_dir(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        return self

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> Settings:
        if self.image_storage == "s3" and not self.image_s3_bucket:
            raise ValueError("VSENSE_IMAGE_STORAGE=s3 needs VSENSE_IMAGE_S3_BUCKET")
        return self

    @model_validator(mode="after")
    def _several_hosts_share_their_stores(self) -> Settings:
        if self.hosts == 1:
            return self
        if self.is_embedded_database:
            raise ConfigurationError(
                f"VSENSE_HOSTS={self.hosts}: servers on several hosts need one PostgreSQL "
                "(VSENSE_DATABASE_URL=postgresql+asyncpg://...), not the embedded database."
            )
        if self.image_storage == "local":
            raise ConfigurationError(
                f"VSENSE_HOSTS={self.hosts}: the local image store keeps each image on the "
                "disk of the host that received it, where the others cannot serve it; set "
                "VSENSE_IMAGE_STORAGE=s3 and VSENSE_IMAGE_S3_BUCKET."
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("VSENSE_CONFIG")
        if config_file:
            path = Path(config_file).expanduser()
            if not path.is_file():
                raise ConfigurationError(f"VSENSE_CONFIG points to {path}, which is not a file.")
            try:
                tomllib.loads(path.read_text())
            except tomllib.TOMLDecodeError as exc:
                raise ConfigurationError(f"{path} is not valid TOML: {exc}") from exc
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @property
    def resolved_database_url(self) -> str:
        """The database URL in force: the configured one, or the embedded SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'vsense.db'}"

    @property
    def is_embedded_database(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    def signing_key(self) -> str:
        """The secret key, or (in development only) one generated and kept in the data folder.

        Raises ConfigurationError outside development when the key is missing, is the
        placeholder, or is too short.
        """
        value = self.secret_key.get_secret_value() if self.secret_key else ""
        if value and value != DEFAULT_SECRET_PLACEHOLDER and len(value) >= MIN_SECRET_LENGTH:
            return value
        if self.environment != "development":
            raise ConfigurationError(
                "VSENSE_SECRET_KEY must be set to a random value of at least "
                f"{MIN_SECRET_LENGTH} characters outside development "
                '(for example: python -c "import secrets; print(secrets.token_urlsafe(48))").'
            )
        if value:
            raise ConfigurationError(
                f"VSENSE_SECRET_KEY is too short or a placeholder; use at least "
                f"{MIN_SECRET_LENGTH} random characters, or unset it in development."
            )
        return _development_key(self.data_dir)


def _development_key(data_dir: Path) -> str:
    key_file = data_dir / "secret_key"
    if key_file.is_file():
        return key_file.read_text().strip()
    private_folder(data_dir)
    key = secrets.token_urlsafe(48)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()


def load_settings(**overrides: Any) -> Settings:
    """Fresh settings with explicit overrides (for tests and commands)."""
    return Settings(**overrides)
