"""What the sync and async clients share: options, URLs, retry rules, credentials."""

from __future__ import annotations

import functools
import os
import random
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

from vsense.client.errors import APIConnectionError, APITimeoutError, status_error
from vsense.client.models import APIModel
from vsense.client.retry_after import retry_after_seconds

API_PREFIX = "/api/v1"
DEFAULT_API_ADDR = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
DEFAULT_MAX_RETRIES = 2
# A server asking for a longer pause than this is answered with RateLimitError at once:
# the caller, not the SDK, decides whether to wait that long.
MAX_RETRY_AFTER_S = 10.0
INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
# Refresh an access token this long before it expires, so no request carries a token
# that expires on the way.
REFRESH_LEEWAY_S = 30.0
RETRY_STATUSES = frozenset({429, 503})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Transport errors raised before the request left: retrying cannot repeat an action.
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

M = TypeVar("M", bound=APIModel)


@functools.cache
def default_ssl_context() -> ssl.SSLContext:
    """One verifying TLS context shared by the clients of a process: building one (the
    CA bundle) costs tens of milliseconds, which would otherwise be paid per client."""
    return httpx.create_ssl_context()


def normalize_api_addr(address: str) -> str:
    """The server's base URL: a bare host (`api.example.com`) means HTTPS, an explicit
    scheme is kept, and a trailing `/api/v1` is dropped."""
    base = address.strip().rstrip("/")
    if not base:
        raise ValueError("The API address is empty.")
    # Not urlsplit: it reads `localhost:8000` as the scheme "localhost".
    if "://" not in base:
        base = f"https://{base}"
    return base.removesuffix(API_PREFIX).rstrip("/")


@dataclass
class Credentials:
    """A user session: an access token, the refresh token that renews it, and when the
    access token expires (UNIX seconds; `None` if unknown)."""

    access_token: str
    refresh_token: str | None = None
    expires_at: float | None = None

    def expires_soon(self, now: float | None = None) -> bool:
        """Whether the access token expires within the refresh leeway."""
        if self.expires_at is None:
            return False
        return (time.time() if now is None else now) >= self.expires_at - REFRESH_LEEWAY_S


CredentialsCallback = Callable[[Credentials], None]
CredentialsLoader = Callable[[], "Credentials | None"]


def query(**params: Any) -> dict[str, str]:
    """Query parameters without the unset ones; booleans as `true`/`false`."""
    cleaned: dict[str, str] = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            cleaned[name] = "true" if value else "false"
        elif isinstance(value, datetime):
            cleaned[name] = isoformat(value)
        else:
            cleaned[name] = str(value)
    return cleaned


def isoformat(value: datetime) -> str:
    """A datetime as the API writes them: UTC, `Z` suffix (naive means UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with jitter: about 0.5 s, 1 s, 2 s, ... at most 8 s."""
    delay: float = min(INITIAL_BACKOFF_S * 2.0**attempt, MAX_BACKOFF_S)
    return delay * (1 - 0.25 * random.random())


class BaseClient:
    """Options and decisions shared by `Client` and `AsyncClient`; no I/O here."""

    def __init__(
        self,
        *,
        base_url: str | None,
        token: str | None,
        email: str | None,
        password: str | None,
        credentials: Credentials | None,
        on_credentials: CredentialsCallback | None,
        load_credentials: CredentialsLoader | None,
        max_retries: int,
        max_retry_after: float,
        headers: Mapping[str, str] | None,
    ) -> None:
        self.base_url = normalize_api_addr(
            base_url or os.environ.get("VSENSE_API_ADDR") or DEFAULT_API_ADDR
        )
        if token is None and credentials is None and email is None:
            token = os.environ.get("VSENSE_TOKEN") or None
        self._token = token
        self._email = email
        self._password = password
        self._credentials = credentials
        self._on_credentials = on_credentials
        self._load_credentials = load_credentials
        self.max_retries = max_retries
        self.max_retry_after = max_retry_after
        from vsense.client import __version__

        self._headers = {
            "Accept": "application/json",
            "User-Agent": f"vsense-python/{__version__}",
            **(headers or {}),
        }

    @property
    def credentials(self) -> Credentials | None:
        """The current session (after a login or with given credentials), if any."""
        return self._credentials

    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        if path.startswith(API_PREFIX) or not path.startswith("/"):
            return f"{self.base_url}/{path.lstrip('/')}"
        return f"{self.base_url}{API_PREFIX}{path}"

    def _can_renew(self) -> bool:
        if self._token is not None:
            return False
        has_refresh = self._credentials is not None and self._credentials.refresh_token
        return bool(has_refresh or (self._email and self._password))

    def _needs_renewal(self) -> bool:
        return self._token is None and (
            self._credentials is None or self._credentials.expires_soon()
        )

    def _adopt_stored(self) -> bool:
        """Take up a session that another process sharing the store renewed meanwhile,
        rather than spend a refresh token that may be spent already (which would revoke
        the whole session)."""
        if self._load_credentials is None:
            return False
        stored = self._load_credentials()
        current = self._credentials
        if stored is None or stored.expires_soon():
            return False
        # Compared whole: two access tokens issued in the same second can be equal, but
        # refresh tokens never are.
        if stored == current:
            return False
        self._credentials = stored
        return True

    def _store_login(self, body: Any) -> Any:
        from vsense.client.models import LoginResponse

        login = LoginResponse.model_validate(body).data
        self._credentials = Credentials(
            access_token=login.access_token,
            refresh_token=login.refresh_token,
            expires_at=time.time() + login.expires_in,
        )
        if self._on_credentials is not None:
            self._on_credentials(self._credentials)
        return login

    def _retry_delay(
        self,
        attempt: int,
        method: str,
        *,
        response: httpx.Response | None = None,
        error: Exception | None = None,
    ) -> float | None:
        """Seconds to wait before trying again, or `None` to stop here."""
        if attempt >= self.max_retries:
            return None
        if error is not None:
            if isinstance(error, NOT_SENT_ERRORS) or method in IDEMPOTENT_METHODS:
                return backoff_seconds(attempt)
            return None
        assert response is not None
        if response.status_code not in RETRY_STATUSES:
            return None
        wait = retry_after_seconds(response)
        if wait is None:
            return backoff_seconds(attempt)
        return wait if wait <= self.max_retry_after else None

    @staticmethod
    def _raise_for_status(response: httpx.Response) -> None:
        if response.status_code >= 400:
            raise status_error(response, retry_after_seconds(response))

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    @staticmethod
    def _model(cast: type[M], response: httpx.Response) -> M:
        return cast.model_validate(response.json())


def connection_error(exc: httpx.TransportError, base_url: str) -> APIConnectionError:
    """The SDK's exception for a transport failure."""
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"The server at {base_url} did not answer in time.")
    reason = str(exc) or exc.__class__.__name__
    return APIConnectionError(f"Could not reach the server at {base_url}: {reason}")
