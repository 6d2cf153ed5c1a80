"""`client.webhooks`: endpoints the platform calls, their delivery log, and `verify`
for receivers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import datetime
from functools import cached_property
from typing import Any

from vsense.client import signatures
from vsense.client._base import isoformat, query
from vsense.client.models import (
    Answer,
    Delivery,
    Page,
    Queued,
    Webhook,
    WebhookCreated,
    WebhookTestResult,
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

# Extra headers or query parameters of a webhook: a mapping, or pairs (names may repeat).
NameValues = Mapping[str, str] | Sequence[tuple[str, str]]
Instant = datetime | int | str


def _pairs(values: NameValues) -> list[dict[str, str]]:
    items = values.items() if isinstance(values, Mapping) else values
    return [{"name": name, "value": value} for name, value in items]


def _webhook_body(
    url: str | NotGiven,
    webhook_type: str | NotGiven,
    actions: str | Sequence[str] | NotGiven,
    method: str | NotGiven,
    status: int | NotGiven,
    active: bool | NotGiven,
    headers: NameValues | NotGiven,
    params: NameValues | NotGiven,
) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if not isinstance(headers, NotGiven):
        data["headers"] = _pairs(headers)
    if not isinstance(params, NotGiven):
        data["params"] = _pairs(params)
    if not isinstance(actions, str | NotGiven):
        actions = ",".join(actions)
    payload = body(
        url=url,
        webhook_type=webhook_type,
        actions=actions,
        method=method,
        status=status,
        active=active,
    )
    if data:
        payload["data"] = data
    return payload


def _instant(value: Instant) -> str:
    return isoformat(value) if isinstance(value, datetime) else str(value)


def _replay_body(since: Instant, until: Instant | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"since": _instant(since)}
    if until is not None:
        payload["until"] = _instant(until)
    return payload


def verify(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str | bytes | Sequence[str | bytes],
    *,
    tolerance: float = signatures.DEFAULT_TOLERANCE_S,
) -> Any:
    """Check the signature of a webhook call and return its parsed JSON body.

    `body` is the raw request body, `headers` its headers, `secret` the webhook's
    `whsec_...` secret (or a list of them during a rotation). Raises
    `WebhookVerificationError` if a header is missing, the call is older or newer than
    `tolerance` seconds, or no signature matches.
    """
    return signatures.verify(body, headers, secret, tolerance=tolerance)


class Deliveries(SyncResource):
    def list(
        self,
        webhook_id: int,
        *,
        status: str | None = None,
        page: int | None = None,
        per_page: int | None = None,
    ) -> Page[Delivery]:
        """One page of a webhook's delivery log, with each delivery's attempts. `status`:
        `pending`, `succeeded`, `failed` or `dead`."""
        return self._client._call(
            "GET",
            f"/webhooks/{path(webhook_id)}/deliveries",
            cast=Page[Delivery],
            params=query(status=status, page=page, per_page=per_page),
        )

    def list_all(
        self, webhook_id: int, *, status: str | None = None, per_page: int = DEFAULT_PER_PAGE
    ) -> Iterator[Delivery]:
        """Every delivery of a webhook's log."""
        return iterate_pages(
            lambda number: self.list(webhook_id, status=status, page=number, per_page=per_page)
        )

    def redeliver(self, webhook_id: int, delivery_id: int) -> Queued:
        """Queue one delivery's event again (with the same `webhook-id`)."""
        return self._client._call(
            "POST",
            f"/webhooks/{path(webhook_id)}/deliveries/{path(delivery_id)}/redeliver",
            cast=Queued,
        )


class AsyncDeliveries(AsyncResource):
    async def list(
        self,
        webhook_id: int,
        *,
        status: str | None = None,
        page: int | None = None,
        per_page: int | None = None,
    ) -> Page[Delivery]:
        """One page of a webhook's delivery log (see `Deliveries.list`)."""
        return await self._client._call(
            "GET",
            f"/webhooks/{path(webhook_id)}/deliveries",
            cast=Page[Delivery],
            params=query(status=status, page=page, per_page=per_page),
        )

    def list_all(
        self, webhook_id: int, *, status: str | None = None, per_page: int = DEFAULT_PER_PAGE
    ) -> AsyncIterator[Delivery]:
        """Every delivery of a webhook's log (`async for`)."""
        return aiterate_pages(
            lambda number: self.list(webhook_id, status=status, page=number, per_page=per_page)
        )

    async def redeliver(self, webhook_id: int, delivery_id: int) -> Queued:
        """Queue one delivery's event again (with the same `webhook-id`)."""
        return await self._client._call(
            "POST",
            f"/webhooks/{path(webhook_id)}/deliveries/{path(delivery_id)}/redeliver",
            cast=Queued,
        )


class Webhooks(SyncResource):
    verify = staticmethod(verify)

    @cached_property
    def deliveries(self) -> Deliveries:
        """The delivery log of a webhook."""
        return Deliveries(self._client)

    def list(self, *, device_uuid: str | None = None) -> Page[Webhook]:
        """The webhooks of one device, or every webhook the caller may see (one list,
        without `meta`)."""
        params = query(device_uuid=device_uuid)
        return self._client._call("GET", "/webhooks", cast=Page[Webhook], params=params)

    def list_all(self, *, device_uuid: str | None = None) -> Iterator[Webhook]:
        """Every webhook of one device, or every webhook the caller may see."""
        return iterate_pages(lambda number: self.list(device_uuid=device_uuid))

    def create(
        self,
        *,
        device_uuid: str,
        url: str,
        webhook_type: str = "payload",
        actions: str | Sequence[str] | NotGiven = NOT_GIVEN,
        method: str | NotGiven = NOT_GIVEN,
        status: int | NotGiven = NOT_GIVEN,
        active: bool | NotGiven = NOT_GIVEN,
        headers: NameValues | NotGiven = NOT_GIVEN,
        params: NameValues | NotGiven = NOT_GIVEN,
    ) -> WebhookCreated:
        """Add a webhook to a device (admins). `webhook_type`: `payload`, `keepalive` or
        `alert`; `actions`: the events that trigger it (`payload`, `keepalive`, `alert`,
        `status`, `image`, in a free string or a list); `method` defaults to GET for a
        keepalive-only webhook, else POST; `active` is the same as `status` (1/0);
        `headers` and `params` are added to every call. The answer carries the signing
        secret (`whsec_...`), shown once."""
        payload = _webhook_body(url, webhook_type, actions, method, status, active, headers, params)
        answer = self._client._call(
            "POST",
            "/webhooks",
            cast=Answer[WebhookCreated],
            params=query(device_uuid=device_uuid),
            json=payload,
        )
        return answer.data

    def update(
        self,
        webhook_id: int | None = None,
        *,
        device_uuid: str | None = None,
        url: str | NotGiven = NOT_GIVEN,
        webhook_type: str | NotGiven = NOT_GIVEN,
        actions: str | Sequence[str] | NotGiven = NOT_GIVEN,
        method: str | NotGiven = NOT_GIVEN,
        status: int | NotGiven = NOT_GIVEN,
        active: bool | NotGiven = NOT_GIVEN,
        headers: NameValues | NotGiven = NOT_GIVEN,
        params: NameValues | NotGiven = NOT_GIVEN,
    ) -> Webhook:
        """Change the given fields of a webhook. `status=1` (or `active=True`) re-enables a
        disabled one. Without `webhook_id`, the webhook of `device_uuid` is changed (the
        seed's form): the one of `webhook_type` if given, else the device's only one."""
        payload = _webhook_body(url, webhook_type, actions, method, status, active, headers, params)
        where = "/webhooks" if webhook_id is None else f"/webhooks/{path(webhook_id)}"
        answer = self._client._call(
            "PUT", where, cast=Answer[Webhook], params=query(device_uuid=device_uuid), json=payload
        )
        return answer.data

    def delete(self, webhook_id: int) -> None:
        """Delete a webhook."""
        self._client._call_empty("DELETE", f"/webhooks/{path(webhook_id)}")

    def test(self, webhook_id: int) -> WebhookTestResult:
        """Send a `test` event now and return the attempt's outcome."""
        return self._client._call(
            "POST", f"/webhooks/{path(webhook_id)}/test", cast=WebhookTestResult
        )

    def rotate_secret(self, webhook_id: int) -> WebhookCreated:
        """A new signing secret; the old one keeps signing alongside for 24 hours."""
        return self._client._call(
            "POST", f"/webhooks/{path(webhook_id)}/rotate-secret", cast=WebhookCreated
        )

    def replay(self, webhook_id: int, *, since: Instant, until: Instant | None = None) -> Queued:
        """Queue again every event of the webhook in `[since, until]`."""
        return self._client._call(
            "POST",
            f"/webhooks/{path(webhook_id)}/replay",
            cast=Queued,
            json=_replay_body(since, until),
        )


class AsyncWebhooks(AsyncResource):
    verify = staticmethod(verify)

    @cached_property
    def deliveries(self) -> AsyncDeliveries:
        """The delivery log of a webhook."""
        return AsyncDeliveries(self._client)

    async def list(self, *, device_uuid: str | None = None) -> Page[Webhook]:
        """The webhooks of one device, or every webhook the caller may see (one list,
        without `meta`)."""
        params = query(device_uuid=device_uuid)
        return await self._client._call("GET", "/webhooks", cast=Page[Webhook], params=params)

    def list_all(self, *, device_uuid: str | None = None) -> AsyncIterator[Webhook]:
        """Every webhook of one device, or every webhook the caller may see (`async for`)."""
        return aiterate_pages(lambda number: self.list(device_uuid=device_uuid))

    async def create(
        self,
        *,
        device_uuid: str,
        url: str,
        webhook_type: str = "payload",
        actions: str | Sequence[str] | NotGiven = NOT_GIVEN,
        method: str | NotGiven = NOT_GIVEN,
        status: int | NotGiven = NOT_GIVEN,
        active: bool | NotGiven = NOT_GIVEN,
        headers: NameValues | NotGiven = NOT_GIVEN,
        params: NameValues | NotGiven = NOT_GIVEN,
    ) -> WebhookCreated:
        """Add a webhook to a device (see `Webhooks.create`); the secret is shown once."""
        payload = _webhook_body(url, webhook_type, actions, method, status, active, headers, params)
        answer = await self._client._call(
            "POST",
            "/webhooks",
            cast=Answer[WebhookCreated],
            params=query(device_uuid=device_uuid),
            json=payload,
        )
        return answer.data

    async def update(
        self,
        webhook_id: int | None = None,
        *,
        device_uuid: str | None = None,
        url: str | NotGiven = NOT_GIVEN,
        webhook_type: str | NotGiven = NOT_GIVEN,
        actions: str | Sequence[str] | NotGiven = NOT_GIVEN,
        method: str | NotGiven = NOT_GIVEN,
        status: int | NotGiven = NOT_GIVEN,
        active: bool | NotGiven = NOT_GIVEN,
        headers: NameValues | NotGiven = NOT_GIVEN,
        params: NameValues | NotGiven = NOT_GIVEN,
    ) -> Webhook:
        """Change the given fields of a webhook. `status=1` (or `active=True`) re-enables a
        disabled one. Without `webhook_id`, the webhook of `device_uuid` is changed (the
        seed's form): the one of `webhook_type` if given, else the device's only one."""
        payload = _webhook_body(url, webhook_type, actions, method, status, active, headers, params)
        where = "/webhooks" if webhook_id is None else f"/webhooks/{path(webhook_id)}"
        answer = await self._client._call(
            "PUT", where, cast=Answer[Webhook], params=query(device_uuid=device_uuid), json=payload
        )
        return answer.data

    async def delete(self, webhook_id: int) -> None:
        """Delete a webhook."""
        await self._client._call_empty("DELETE", f"/webhooks/{path(webhook_id)}")

    async def test(self, webhook_id: int) -> WebhookTestResult:
        """Send a `test` event now and return the attempt's outcome."""
        return await self._client._call(
            "POST", f"/webhooks/{path(webhook_id)}/test", cast=WebhookTestResult
        )

    async def rotate_secret(self, webhook_id: int) -> WebhookCreated:
        """A new signing secret; the old one keeps signing alongside for 24 hours."""
        return await self._client._call(
            "POST", f"/webhooks/{path(webhook_id)}/rotate-secret", cast=WebhookCreated
        )

    async def replay(
        self, webhook_id: int, *, since: Instant, until: Instant | None = None
    ) -> Queued:
        """Queue again every event of the webhook in `[since, until]`."""
        return await self._client._call(
            "POST",
            f"/webhooks/{path(webhook_id)}/replay",
            cast=Queued,
            json=_replay_body(since, until),
        )
