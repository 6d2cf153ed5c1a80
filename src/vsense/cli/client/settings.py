"""Where the client commands' settings come from: flag > environment > profile > the
config file's top level > default.

The config file is `$XDG_CONFIG_HOME/vsense/config.toml` (`~/.config/...` without
XDG_CONFIG_HOME; `VSENSE_CLIENT_CONFIG` names another file). It holds settings at its
top level, for every profile, and named profiles, whose settings win over those:

```toml
api_addr = "api.staging.viziosense.ai"   # enough on its own
default_profile = "staging"

[profiles.staging]
api_addr = "staging.example.com"
output = "table"
```

Every resolved value remembers its source, for `vsense config show`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vsense.cli.client.credentials import CredentialStore, credentials_path
from vsense.client import normalize_api_addr

CONFIG_ENV = "VSENSE_CLIENT_CONFIG"
PROFILE_ENV = "VSENSE_PROFILE"
DEFAULT_PROFILE = "default"
DEFAULT_API_ADDR = "http://127.0.0.1:8000"
DEFAULT_OUTPUT = "table"
OUTPUTS = ("table", "json")
# setting -> environment variable
ENVIRONMENT = {"api_addr": "VSENSE_API_ADDR", "token": "VSENSE_TOKEN", "output": "VSENSE_OUTPUT"}
PROFILE_KEYS = frozenset(ENVIRONMENT)


class SettingsError(Exception):
    """The client's settings are unusable; the message says what to fix."""


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`$XDG_CONFIG_HOME/vsense`, or `~/.config/vsense`."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "vsense"


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The client's config file (which need not exist)."""
    environ = os.environ if environ is None else environ
    explicit = environ.get(CONFIG_ENV)
    return Path(explicit).expanduser() if explicit else config_dir(environ) / "config.toml"


@dataclass(frozen=True)
class Setting:
    """One resolved value and where it came from."""

    value: str | None
    source: str


@dataclass(frozen=True)
class Flags:
    """The global options as given on the command line (`None` when absent)."""

    api_addr: str | None = None
    token: str | None = None
    profile: str | None = None
    output: str | None = None


@dataclass
class ClientSettings:
    profile: Setting
    api_addr: Setting
    token: Setting
    output: Setting
    config_file: Path
    credentials_file: Path
    store: CredentialStore = field(repr=False)

    @property
    def base_url(self) -> str:
        """The API's base URL (`https://` added to a bare host)."""
        assert self.api_addr.value is not None
        return normalize_api_addr(self.api_addr.value)

    @property
    def profile_name(self) -> str:
        assert self.profile.value is not None
        return self.profile.value


def load_config(path: Path) -> dict[str, Any]:
    """The config file's content; an absent file is an empty config."""
    try:
        with path.open("rb") as file:
            config = tomllib.load(file)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"cannot read the config file {path}: {exc}") from None
    for name in sorted(PROFILE_KEYS & set(config)):
        if not isinstance(config[name], str):
            raise SettingsError(f"{path}: `{name}` must be a string")
    profiles = config.get("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(p, dict) for p in profiles.values()):
        raise SettingsError(f"{path}: `profiles` must be tables such as [profiles.default]")
    for name, profile in profiles.items():
        unknown = sorted(set(profile) - PROFILE_KEYS)
        if unknown:
            raise SettingsError(
                f"{path}: profile {name!r} has unknown settings {', '.join(unknown)} "
                f"(known: {', '.join(sorted(PROFILE_KEYS))})"
            )
    return config


def _profile(flags: Flags, environ: Mapping[str, str], config: dict[str, Any]) -> Setting:
    if flags.profile:
        return Setting(flags.profile, "flag --profile")
    if environ.get(PROFILE_ENV):
        return Setting(environ[PROFILE_ENV], f"environment {PROFILE_ENV}")
    default = config.get("default_profile")
    if isinstance(default, str) and default:
        return Setting(default, "config file (default_profile)")
    return Setting(DEFAULT_PROFILE, "default")


def resolve(flags: Flags, environ: Mapping[str, str] | None = None) -> ClientSettings:
    """Each setting from the first place that has it: flag, environment, profile, the
    config file's top level, default.

    The API address has one more place before the default: the address this profile
    last logged in to, so that `vsense login --api-addr X` is enough to use X after.
    """
    environ = os.environ if environ is None else environ
    path = config_path(environ)
    config = load_config(path)
    profile = _profile(flags, environ, config)
    assert profile.value is not None
    values: dict[str, Any] = config.get("profiles", {}).get(profile.value, {})
    store = CredentialStore(credentials_path(environ))

    def pick(name: str, flag: str | None, default: str | None) -> Setting:
        if flag:
            return Setting(flag, f"flag --{name.replace('_', '-')}")
        variable = ENVIRONMENT[name]
        if environ.get(variable):
            return Setting(environ[variable], f"environment {variable}")
        if values.get(name):
            return Setting(str(values[name]), f"profile {profile.value!r} in {path}")
        if config.get(name):
            return Setting(config[name], f"config file {path}")
        if name == "api_addr":
            last = store.last_api_addr(profile.value or DEFAULT_PROFILE)
            if last:
                return Setting(last, f"last login of profile {profile.value!r}")
        return Setting(default, "default")

    settings = ClientSettings(
        profile=profile,
        api_addr=pick("api_addr", flags.api_addr, DEFAULT_API_ADDR),
        token=pick("token", flags.token, None),
        output=pick("output", flags.output, DEFAULT_OUTPUT),
        config_file=path,
        credentials_file=store.path,
        store=store,
    )
    if settings.output.value not in OUTPUTS:
        raise SettingsError(
            f"output {settings.output.value!r} (from {settings.output.source}) must be "
            f"{' or '.join(OUTPUTS)}"
        )
    try:
        settings.base_url  # noqa: B018 (validates the address early)
    except ValueError as exc:
        raise SettingsError(f"{exc} (from {settings.api_addr.source})") from None
    return settings
