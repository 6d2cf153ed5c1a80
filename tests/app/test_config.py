"""Settings: environment, TOML file, and the secret key rule."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from vsense.config import ConfigurationError, load_settings
from vsense.db import create_engine
from vsense.images.storage import LocalImageStore
from vsense.migrate import upgrade_async


def test_development_generates_and_keeps_a_secret_key(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, environment="development")
    key = settings.signing_key()
    assert len(key) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert load_settings(data_dir=tmp_path, environment="development").signing_key() == key


@pytest.mark.parametrize("secret", [None, "change-me", "too-short"])
def test_production_refuses_a_missing_or_default_secret(tmp_path: Path, secret: str | None) -> None:
    settings = load_settings(data_dir=tmp_path, environment="production", secret_key=secret)
    with pytest.raises(ConfigurationError, match="VSENSE_SECRET_KEY"):
        settings.signing_key()


def test_production_accepts_a_real_secret(tmp_path: Path) -> None:
    secret = "s" * 48
    settings = load_settings(data_dir=tmp_path, environment="production", secret_key=secret)
    assert settings.signing_key() == secret


def test_environment_variables_and_toml_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "vsense.toml"
    config.write_text('access_token_ttl = 120\nwebhook_source = "FROMFILE"\n')
    monkeypatch.setenv("VSENSE_CONFIG", str(config))
    monkeypatch.setenv("VSENSE_ACCESS_TOKEN_TTL", "240")
    settings = load_settings(data_dir=tmp_path)
    assert settings.access_token_ttl == timedelta(seconds=240)  # the environment wins over the file
    assert settings.webhook_source == "FROMFILE"


def test_embedded_default_database_is_in_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    assert settings.is_embedded_database
    assert settings.resolved_database_url.endswith(f"{tmp_path}/vsense.db")


def test_a_broken_toml_file_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("this is = = not toml")
    monkeypatch.setenv("VSENSE_CONFIG", str(config))
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_settings(data_dir=tmp_path)


def test_lengths_of_time_are_seconds_or_iso_8601_durations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VSENSE_COMMAND_TTL", "90")
    monkeypatch.setenv("VSENSE_SWEEP_INTERVAL", "2.5")
    monkeypatch.setenv("VSENSE_IMAGE_RETENTION", "PT2H")
    settings = load_settings(data_dir=tmp_path)
    assert settings.command_ttl == timedelta(seconds=90)
    assert settings.sweep_interval == timedelta(seconds=2.5)
    assert settings.image_retention == timedelta(hours=2)
    monkeypatch.setenv("VSENSE_COMMAND_TTL", "5")  # below the 10 s minimum
    with pytest.raises(ValidationError, match="command_ttl"):
        load_settings(data_dir=tmp_path)


async def test_the_embedded_database_and_the_data_folder_are_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "new" / "data"
    settings = load_settings(data_dir=data_dir, environment="development")
    await upgrade_async(settings)
    settings.signing_key()
    assert data_dir.stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o700
    for name in ("vsense.db", "secret_key"):
        assert (data_dir / name).stat().st_mode & 0o777 == 0o600, name
    for extra in data_dir.glob("vsense.db-*"):  # the write-ahead log, when there is one
        assert extra.stat().st_mode & 0o777 == 0o600, extra.name
    async with LocalImageStore(data_dir / "images").stage(
        "ab12_raw", b"image", "image/png"
    ) as staged:
        await staged.keep()
    for path in (data_dir / "images", data_dir / "images" / "ab", data_dir / "images/ab/ab12_raw"):
        assert path.stat().st_mode & 0o077 == 0, path


async def test_an_embedded_database_readable_by_others_is_made_private(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, environment="development")
    await upgrade_async(settings)
    (tmp_path / "vsense.db").chmod(0o644)
    engine = create_engine(settings)
    await engine.dispose()
    assert (tmp_path / "vsense.db").stat().st_mode & 0o777 == 0o600


def test_several_hosts_refuse_what_one_host_keeps_on_its_disk(tmp_path: Path) -> None:
    postgres = "postgresql+asyncpg://vsense@db.example/vsense"
    with pytest.raises(ConfigurationError, match="VSENSE_IMAGE_STORAGE=s3"):
        load_settings(data_dir=tmp_path, hosts=2, database_url=postgres)
    with pytest.raises(ConfigurationError, match="not the embedded database"):
        load_settings(data_dir=tmp_path, hosts=2, image_storage="s3", image_s3_bucket="images")
    shared = load_settings(
        data_dir=tmp_path,
        hosts=3,
        database_url=postgres,
        image_storage="s3",
        image_s3_bucket="images",
    )
    assert shared.hosts == 3
    assert load_settings(data_dir=tmp_path).image_storage == "local"  # one host: as before
