"""`AsyncClient`: the asynchronous client of the vsense API, the twin of `Client`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from functools import cached_property
from types import TracebackType
from typing import Any

import httpx

from vsense.client._base import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    MAX_RETRY_AFTER_S,
    BaseClient,
    Credentials,
    CredentialsCallback,
    CredentialsLoader,
    M,
    connection_error,
    default_ssl_context,
)
from vsense.client.errors import AuthenticationError, MissingCredentialsError
from vsense.client.models import Login
from vsense.client.resources.alerts import AsyncAlertRules, AsyncAlerts
from vsense.client.resources.devices import AsyncDevices
from vsense.client.resources.groups import AsyncGroups
from vsense.client.resources.images import AsyncImages
from vsense.client.resources.me import AsyncMeResource
from vsense.client.resources.payloads import AsyncPayloads
from vsense.client.resources.tokens import AsyncTokens
from vsense.client.resources.users import AsyncUsers
from vsense.client.resources.webhooks import AsyncWebhooks


class AsyncClient(BaseClient):
    """Asynchronous client of the vsense API: the same resources as `Client`, awaited.

    Authenticate with a `token` (a personal access token, or `VSENSE_TOKEN`), with
    `email` and `password` (logged in on first use, renewed before expiry and on 401),
    or with `credentials` of an earlier session (renewed with its refresh token;
    `on_credentials` is called with each new session so it can be stored, and
    `load_credentials`, if given, is asked for the stored session before renewing, so
    that processes sharing a store do not spend the same refresh token twice).

    Requests are retried with backoff on connection errors, 429 and 503, honouring
    `Retry-After` up to `max_retry_after` seconds.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        token: str | None = None,
        email: str | None = None,
        password: str | None = None,
        credentials: Credentials | None = None,
        on_credentials: CredentialsCallback | None = None,
        load_credentials: CredentialsLoader | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_retry_after: float = MAX_RETRY_AFTER_S,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            base_url=base_url,
            token=token,
            email=email,
            password=password,
            credentials=credentials,
            on_credentials=on_credentials,
            load_credentials=load_credentials,
            max_retries=max_retries,
            max_retry_after=max_retry_after,
            headers=headers,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, verify=default_ssl_context()
        )
        self._auth_lock = asyncio.Lock()

    @cached_property
    def devices(self) -> AsyncDevices:
        """Devices: list, read, change, onboard, remove; their events and metrics."""
        return AsyncDevices(self)

    @cached_property
    def images(self) -> AsyncImages:
        """Snapshot requests and their signed image links."""
        return AsyncImages(self)

    @cached_property
    def payloads(self) -> AsyncPayloads:
        """The messages devices sent, and the published payload schemas."""
        return AsyncPayloads(self)

    @cached_property
    def webhooks(self) -> AsyncWebhooks:
        """Webhooks, their deliveries, and signature verification for receivers."""
        return AsyncWebhooks(self)

    @cached_property
    def alert_rules(self) -> AsyncAlertRules:
        """Alert rules: thresholds with hysteresis and durations, and time rules."""
        return AsyncAlertRules(self)

    @cached_property
    def alerts(self) -> AsyncAlerts:
        """Alerts the rules raised: history, filters, acknowledgement."""
        return AsyncAlerts(self)

    @cached_property
    def groups(self) -> AsyncGroups:
        """Device groups."""
        return AsyncGroups(self)

    @cached_property
    def users(self) -> AsyncUsers:
        """Users of the caller's organization."""
        return AsyncUsers(self)

    @cached_property
    def tokens(self) -> AsyncTokens:
        """The caller's personal access tokens."""
        return AsyncTokens(self)

    @cached_property
    def me(self) -> AsyncMeResource:
        """The caller."""
        return AsyncMeResource(self)

    async def close(self) -> None:
        """Close the connections (only those of an HTTP client this client created)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # Sessions

    async def login(self, *, email: str | None = None, password: str | None = None) -> Login:
        """Log in with email and password (those given to the client by default); the
        client then uses and renews this session."""
        email = email or self._email
        password = password or self._password
        if not email or not password:
            raise MissingCredentialsError("Logging in needs an email and a password.")
        response = await self._send(
            "POST", "/login", json={"email": email, "password": password}, authenticated=False
        )
        self._raise_for_status(response)
        self._token = None
        login: Login = self._store_login(response.json())
        return login

    async def refresh(self) -> Login:
        """Spend the session's refresh token for a new session now."""
        if self._credentials is None or not self._credentials.refresh_token:
            raise MissingCredentialsError("There is no session to refresh; log in first.")
        response = await self._send(
            "POST",
            "/refresh",
            json={"refresh_token": self._credentials.refresh_token},
            authenticated=False,
        )
        self._raise_for_status(response)
        login: Login = self._store_login(response.json())
        return login

    async def logout(self) -> None:
        """Revoke the session (its whole refresh-token family) and forget it."""
        await self._call_empty("POST", "/logout")
        self._credentials = None

    # Transport

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        authenticated: bool = True,
    ) -> httpx.Response:
        """Send one request with authentication and retries, and return the response.

        `path` is under `/api/v1` when it starts with `/` (`/devices`), under the server's
        root without one (`healthz`), or an absolute URL. Raises an `APIStatusError`
        subclass for an error answer.
        """
        response = await self._send(
            method.upper(), path, params=params, json=json, authenticated=authenticated
        )
        self._raise_for_status(response)
        return response

    async def _call(
        self,
        method: str,
        path: str,
        *,
        cast: type[M],
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> M:
        return self._model(cast, await self.request(method, path, params=params, json=json))

    async def _call_empty(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None
    ) -> None:
        await self.request(method, path, params=params, json=json)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        authenticated: bool = True,
        follow_redirects: bool = False,
    ) -> httpx.Response:
        url = self._url(path)
        attempt = 0
        renewed = False
        while True:
            headers = dict(self._headers)
            token = await self._access_token() if authenticated else None
            session = self._credentials
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            try:
                response = await self._http.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    headers=headers,
                    follow_redirects=follow_redirects,
                )
            except httpx.TransportError as exc:
                delay = self._retry_delay(attempt, method, error=exc)
                if delay is None:
                    raise connection_error(exc, self.base_url) from exc
                attempt += 1
                await asyncio.sleep(delay)
                continue
            if response.status_code == 401 and token and not renewed and self._can_renew():
                renewed = True
                await self._renew_after_rejection(session)
                continue
            delay = self._retry_delay(attempt, method, response=response)
            if delay is None:
                return response
            attempt += 1
            await asyncio.sleep(delay)

    async def _access_token(self) -> str:
        if self._token is not None:
            return self._token
        if self._needs_renewal() and (self._credentials is None or self._can_renew()):
            async with self._auth_lock:
                if self._needs_renewal():
                    await self._renew()
        assert self._credentials is not None
        return self._credentials.access_token

    async def _renew_after_rejection(self, rejected: Credentials | None) -> None:
        async with self._auth_lock:
            if self._credentials is not rejected:
                return  # renewed by another task meanwhile
            await self._renew()

    async def _renew(self) -> None:
        if self._adopt_stored():
            return
        credentials = self._credentials
        if credentials is not None and credentials.refresh_token:
            try:
                await self.refresh()
                return
            except AuthenticationError:
                if not (self._email and self._password):
                    raise
        if self._email and self._password:
            await self.login()
            return
        raise MissingCredentialsError(
            "No credentials: pass a token, an email and password, or an earlier session."
        )
