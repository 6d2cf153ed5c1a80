"""Sessions of `vsense login`, kept per profile and API address in a file only its owner
can read (`$XDG_CONFIG_HOME/vsense/credentials.json`, mode 0600; `VSENSE_CLIENT_CREDENTIALS`
names another file)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vsense.client import Credentials

CREDENTIALS_ENV = "VSENSE_CLIENT_CREDENTIALS"


def credentials_path(environ: Mapping[str, str] | None = None) -> Path:
    """The credentials file (which need not exist)."""
    environ = os.environ if environ is None else environ
    explicit = environ.get(CREDENTIALS_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "vsense" / "credentials.json"


@dataclass(frozen=True)
class StoredLogin:
    """A saved session and whose it is."""

    credentials: Credentials
    email: str


class CredentialStore:
    """Read and write the credentials file: `{"profiles": {name: {"last_api_addr": ...,
    "logins": {base_url: {...}}}}}`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, Any]:
        try:
            content = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {}  # a damaged file is as good as none: the user logs in again
        return content if isinstance(content, dict) else {}

    def _write(self, content: dict[str, Any]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Written to a private temporary file, then renamed: the tokens are never in a
        # file others can read, and a crash leaves the old file whole.
        descriptor, temporary = tempfile.mkstemp(
            dir=self.path.parent, prefix=".credentials-", suffix=".tmp"
        )
        try:
            with os.fdopen(descriptor, "w") as file:
                os.fchmod(file.fileno(), 0o600)
                json.dump(content, file, indent=2)
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def _profile(self, content: dict[str, Any], profile: str) -> dict[str, Any]:
        profiles = content.setdefault("profiles", {})
        entry: dict[str, Any] = profiles.setdefault(profile, {})
        entry.setdefault("logins", {})
        return entry

    def load(self, profile: str, base_url: str) -> StoredLogin | None:
        """The session saved for this profile and address, if any."""
        entry = self._read().get("profiles", {}).get(profile, {})
        saved = entry.get("logins", {}).get(base_url)
        if not isinstance(saved, dict) or not saved.get("access_token"):
            return None
        return StoredLogin(
            Credentials(
                access_token=saved["access_token"],
                refresh_token=saved.get("refresh_token"),
                expires_at=saved.get("expires_at"),
            ),
            email=saved.get("email", ""),
        )

    def save(self, profile: str, base_url: str, credentials: Credentials, email: str) -> None:
        """Keep a session (after a login or a refresh)."""
        content = self._read()
        entry = self._profile(content, profile)
        entry["last_api_addr"] = base_url
        entry["logins"][base_url] = {
            "access_token": credentials.access_token,
            "refresh_token": credentials.refresh_token,
            "expires_at": credentials.expires_at,
            "email": email,
            "saved_at": int(time.time()),
        }
        self._write(content)

    def delete(self, profile: str, base_url: str) -> bool:
        """Forget a session; whether there was one."""
        content = self._read()
        entry = content.get("profiles", {}).get(profile)
        if not entry or base_url not in entry.get("logins", {}):
            return False
        del entry["logins"][base_url]
        self._write(content)
        return True

    def last_api_addr(self, profile: str) -> str | None:
        """The address this profile last logged in to."""
        entry = self._read().get("profiles", {}).get(profile, {})
        address = entry.get("last_api_addr")
        return address if isinstance(address, str) else None
