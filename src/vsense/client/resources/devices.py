"""`client.devices`: list, read, change, onboard and remove devices."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

from vsense.client._base import query
from vsense.client.models import (
    Device,
    DeviceCredentials,
    DeviceEvent,
    DeviceMetrics,
    DeviceOnboarded,
    Page,
)
from vsense.client.pagination import DEFAULT_PER_PAGE, aiterate_pages, iterate_pages
from vsense.client.resources._resource import (
    NOT_GIVEN,
    AsyncResource,
    NotGiven,
    SyncResource,
    body,
    path,
)

Online = bool | str | None
Instant = datetime | int | str | None


def _list_query(
    sort: str | None,
    group: str | int | None,
    is_online: Online,
    search: str | None,
    page: int | None,
    per_page: int | None,
) -> dict[str, str]:
    return query(
        sort=sort, group=group, is_online=is_online, search=search, page=page, per_page=per_page
    )


def _update_body(
    name: str | NotGiven,
    client_identifier: str | NotGiven,
    geo_city: str | NotGiven,
    geo_country: str | NotGiven,
    group: str | int | NotGiven | None,
    keepalive_interval: int | NotGiven | None,
) -> dict[str, Any]:
    return body(
        name=name,
        client_identifier=client_identifier,
        geo_city=geo_city,
        geo_country=geo_country,
        group=group,
        keepalive_interval=keepalive_interval,
    )


def _metrics_query(
    interval: str | None, since: Instant, until: Instant, name: str | None, marker: str | None
) -> dict[str, str]:
    return query(interval=interval, since=since, until=until, name=name, marker=marker)


class Devices(SyncResource):
    def list(
        self,
        *,
        sort: str | None = None,
        group: str | int | None = None,
        is_online: Online = None,
        search: str | None = None,
        page: int | None = None,
        per_page: int | None = None,
    ) -> Page[Device]:
        """One page of the devices the caller may see.

        `sort`: `name` (default), `refreshed`, `is_online` (ties by name), `geo_city`,
        `geo_country` or `created`, with a leading `-` for descending. `group`: a
        group's name or id, or `none`. `is_online`: `True`/`False` (or the API's
        `Online`/`Offline`). `search`: a substring of the name or client identifier.
        """
        params = _list_query(sort, group, is_online, search, page, per_page)
        return self._client._call("GET", "/devices", cast=Page[Device], params=params)

    def list_all(
        self,
        *,
        sort: str | None = None,
        group: str | int | None = None,
        is_online: Online = None,
        search: str | None = None,
        per_page: int = DEFAULT_PER_PAGE,
    ) -> Iterator[Device]:
        """Every device matching the filters of `list`, page after page."""
        return iterate_pages(
            lambda number: self.list(
                sort=sort,
                group=group,
                is_online=is_online,
                search=search,
                page=number,
                per_page=per_page,
            )
        )

    def get(self, device_uuid: str) -> Device:
        """One device."""
        return self._client._call("GET", f"/devices/{path(device_uuid)}", cast=Device)

    def create(
        self,
        *,
        name: str,
        client_identifier: str | NotGiven = NOT_GIVEN,
        group: str | int | NotGiven | None = NOT_GIVEN,
        app_type: str | NotGiven | None = NOT_GIVEN,
        geo_city: str | NotGiven = NOT_GIVEN,
        geo_country: str | NotGiven = NOT_GIVEN,
        keepalive_interval: int | NotGiven | None = NOT_GIVEN,
    ) -> DeviceOnboarded:
        """Onboard a device (admins). The answer carries the device token, shown once."""
        payload = body(
            name=name,
            client_identifier=client_identifier,
            group=group,
            app_type=app_type,
            geo_city=geo_city,
            geo_country=geo_country,
            keepalive_interval=keepalive_interval,
        )
        return self._client._call("POST", "/devices", cast=DeviceOnboarded, json=payload)

    def update(
        self,
        device_uuid: str,
        *,
        name: str | NotGiven = NOT_GIVEN,
        client_identifier: str | NotGiven = NOT_GIVEN,
        geo_city: str | NotGiven = NOT_GIVEN,
        geo_country: str | NotGiven = NOT_GIVEN,
        group: str | int | NotGiven | None = NOT_GIVEN,
        keepalive_interval: int | NotGiven | None = NOT_GIVEN,
    ) -> Device:
        """Change the given fields of a device (admins). `group=None` takes the device out
        of its group; `keepalive_interval=None` makes it inherit its group's."""
        payload = _update_body(
            name, client_identifier, geo_city, geo_country, group, keepalive_interval
        )
        return self._client._call("PUT", f"/devices/{path(device_uuid)}", cast=Device, json=payload)

    def delete(self, device_uuid: str) -> None:
        """Remove a device and its credentials (admins)."""
        self._client._call_empty("DELETE", f"/devices/{path(device_uuid)}")

    def rotate_credentials(self, device_uuid: str) -> DeviceCredentials:
        """Give the device a new token (shown once); the old one stops working."""
        return self._client._call(
            "POST", f"/devices/{path(device_uuid)}/credentials", cast=DeviceCredentials
        )

    def events(
        self, device_uuid: str, *, page: int | None = None, per_page: int | None = None
    ) -> Page[DeviceEvent]:
        """One page of the device's online/offline transitions, newest first."""
        return self._client._call(
            "GET",
            f"/devices/{path(device_uuid)}/events",
            cast=Page[DeviceEvent],
            params=query(page=page, per_page=per_page),
        )

    def metrics(
        self,
        device_uuid: str,
        *,
        interval: str | None = None,
        since: Instant = None,
        until: Instant = None,
        name: str | None = None,
        marker: str | None = None,
    ) -> DeviceMetrics:
        """The device's application values (counts, occupancy) per `interval` (`5m`,
        `1h`, ...) over `[since, until]` (default: the last 24 hours)."""
        return self._client._call(
            "GET",
            f"/devices/{path(device_uuid)}/metrics",
            cast=DeviceMetrics,
            params=_metrics_query(interval, since, until, name, marker),
        )


class AsyncDevices(AsyncResource):
    async def list(
        self,
        *,
        sort: str | None = None,
        group: str | int | None = None,
        is_online: Online = None,
        search: str | None = None,
        page: int | None = None,
        per_page: int | None = None,
    ) -> Page[Device]:
        """One page of the devices the caller may see (see `Devices.list`)."""
        params = _list_query(sort, group, is_online, search, page, per_page)
        return await self._client._call("GET", "/devices", cast=Page[Device], params=params)

    def list_all(
        self,
        *,
        sort: str | None = None,
        group: str | int | None = None,
        is_online: Online = None,
        search: str | None = None,
        per_page: int = DEFAULT_PER_PAGE,
    ) -> AsyncIterator[Device]:
        """Every device matching the filters of `list`, page after page (`async for`)."""
        return aiterate_pages(
            lambda number: self.list(
                sort=sort,
                group=group,
                is_online=is_online,
                search=search,
                page=number,
                per_page=per_page,
            )
        )

    async def get(self, device_uuid: str) -> Device:
        """One device."""
        return await self._client._call("GET", f"/devices/{path(device_uuid)}", cast=Device)

    async def create(
        self,
        *,
        name: str,
        client_identifier: str | NotGiven = NOT_GIVEN,
        group: str | int | NotGiven | None = NOT_GIVEN,
        app_type: str | NotGiven | None = NOT_GIVEN,
        geo_city: str | NotGiven = NOT_GIVEN,
        geo_country: str | NotGiven = NOT_GIVEN,
        keepalive_interval: int | NotGiven | None = NOT_GIVEN,
    ) -> DeviceOnboarded:
        """Onboard a device (admins). The answer carries the device token, shown once."""
        payload = body(
            name=name,
            client_identifier=client_identifier,
            group=group,
            app_type=app_type,
            geo_city=geo_city,
            geo_country=geo_country,
            keepalive_interval=keepalive_interval,
        )
        return await self._client._call("POST", "/devices", cast=DeviceOnboarded, json=payload)

    async def update(
        self,
        device_uuid: str,
        *,
        name: str | NotGiven = NOT_GIVEN,
        client_identifier: str | NotGiven = NOT_GIVEN,
        geo_city: str | NotGiven = NOT_GIVEN,
        geo_country: str | NotGiven = NOT_GIVEN,
        group: str | int | NotGiven | None = NOT_GIVEN,
        keepalive_interval: int | NotGiven | None = NOT_GIVEN,
    ) -> Device:
        """Change the given fields of a device (see `Devices.update`)."""
        payload = _update_body(
            name, client_identifier, geo_city, geo_country, group, keepalive_interval
        )
        return await self._client._call(
            "PUT", f"/devices/{path(device_uuid)}", cast=Device, json=payload
        )

    async def delete(self, device_uuid: str) -> None:
        """Remove a device and its credentials (admins)."""
        await self._client._call_empty("DELETE", f"/devices/{path(device_uuid)}")

    async def rotate_credentials(self, device_uuid: str) -> DeviceCredentials:
        """Give the device a new token (shown once); the old one stops working."""
        return await self._client._call(
            "POST", f"/devices/{path(device_uuid)}/credentials", cast=DeviceCredentials
        )

    async def events(
        self, device_uuid: str, *, page: int | None = None, per_page: int | None = None
    ) -> Page[DeviceEvent]:
        """One page of the device's online/offline transitions, newest first."""
        return await self._client._call(
            "GET",
            f"/devices/{path(device_uuid)}/events",
            cast=Page[DeviceEvent],
            params=query(page=page, per_page=per_page),
        )

    async def metrics(
        self,
        device_uuid: str,
        *,
        interval: str | None = None,
        since: Instant = None,
        until: Instant = None,
        name: str | None = None,
        marker: str | None = None,
    ) -> DeviceMetrics:
        """The device's application values per `interval` (see `Devices.metrics`)."""
        return await self._client._call(
            "GET",
            f"/devices/{path(device_uuid)}/metrics",
            cast=DeviceMetrics,
            params=_metrics_query(interval, since, until, name, marker),
        )
