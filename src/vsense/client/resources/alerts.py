"""`client.alert_rules` and `client.alerts`: threshold and time rules, and the alerts
they raise (admins write rules; everyone reads those of the devices they see)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

from vsense.client._base import query
from vsense.client.models import Alert, AlertRule, Page
from vsense.client.pagination import DEFAULT_PER_PAGE, aiterate_pages, iterate_pages
from vsense.client.resources._resource import AsyncResource, SyncResource, path


def _alert_query(
    *,
    state: str | None,
    device_uuid: str | None,
    rule_id: int | None,
    severity: str | None,
    since: datetime | str | None,
    until: datetime | str | None,
    page: int | None,
    per_page: int | None,
) -> dict[str, str]:
    return query(
        state=state,
        device_uuid=device_uuid,
        rule_id=rule_id,
        severity=severity,
        since=since,
        until=until,
        page=page,
        per_page=per_page,
    )


class AlertRules(SyncResource):
    def list(
        self,
        *,
        device_uuid: str | None = None,
        page: int | None = None,
        per_page: int | None = None,
    ) -> Page[AlertRule]:
        """One page of the rules the caller sees (optionally those covering a device)."""
        params = query(device_uuid=device_uuid, page=page, per_page=per_page)
        return self._client._call("GET", "/alert-rules", cast=Page[AlertRule], params=params)

    def list_all(
        self, *, device_uuid: str | None = None, per_page: int = DEFAULT_PER_PAGE
    ) -> Iterator[AlertRule]:
        """Every rule the caller sees."""
        return iterate_pages(
            lambda number: self.list(device_uuid=device_uuid, page=number, per_page=per_page)
        )

    def get(self, rule_id: int) -> AlertRule:
        """One rule."""
        return self._client._call("GET", f"/alert-rules/{path(rule_id)}", cast=AlertRule)

    def create(self, **fields: Any) -> AlertRule:
        """Create a rule (admins): `name`, `rule`, a scope (`device_uuid`, `group` or
        `app_type`), `metric`, `reference_marker`, `trigger_value`, `clearing_value`,
        `for_s`, `clear_for_s`, `severity`, `enabled`."""
        return self._client._call("POST", "/alert-rules", cast=AlertRule, json=fields)

    def update(self, rule_id: int, **fields: Any) -> AlertRule:
        """Change the fields given (admins); `None` sets a field to null."""
        return self._client._call(
            "PUT", f"/alert-rules/{path(rule_id)}", cast=AlertRule, json=fields
        )

    def delete(self, rule_id: int) -> None:
        """Delete a rule (admins); its firing alerts end with a CLEARING."""
        self._client._call_empty("DELETE", f"/alert-rules/{path(rule_id)}")


class AsyncAlertRules(AsyncResource):
    async def list(
        self,
        *,
        device_uuid: str | None = None,
        page: int | None = None,
        per_page: int | None = None,
    ) -> Page[AlertRule]:
        """One page of the rules the caller sees (optionally those covering a device)."""
        params = query(device_uuid=device_uuid, page=page, per_page=per_page)
        return await self._client._call("GET", "/alert-rules", cast=Page[AlertRule], params=params)

    def list_all(
        self, *, device_uuid: str | None = None, per_page: int = DEFAULT_PER_PAGE
    ) -> AsyncIterator[AlertRule]:
        """Every rule the caller sees (`async for`)."""
        return aiterate_pages(
            lambda number: self.list(device_uuid=device_uuid, page=number, per_page=per_page)
        )

    async def get(self, rule_id: int) -> AlertRule:
        """One rule."""
        return await self._client._call("GET", f"/alert-rules/{path(rule_id)}", cast=AlertRule)

    async def create(self, **fields: Any) -> AlertRule:
        """Create a rule (admins); the fields of `Client.alert_rules.create`."""
        return await self._client._call("POST", "/alert-rules", cast=AlertRule, json=fields)

    async def update(self, rule_id: int, **fields: Any) -> AlertRule:
        """Change the fields given (admins); `None` sets a field to null."""
        return await self._client._call(
            "PUT", f"/alert-rules/{path(rule_id)}", cast=AlertRule, json=fields
        )

    async def delete(self, rule_id: int) -> None:
        """Delete a rule (admins); its firing alerts end with a CLEARING."""
        await self._client._call_empty("DELETE", f"/alert-rules/{path(rule_id)}")


class Alerts(SyncResource):
    def list(
        self,
        *,
        state: str | None = None,
        device_uuid: str | None = None,
        rule_id: int | None = None,
        severity: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        page: int | None = None,
        per_page: int | None = None,
    ) -> Page[Alert]:
        """One page of alerts, newest first; `state` is `firing` or `cleared`."""
        params = _alert_query(
            state=state,
            device_uuid=device_uuid,
            rule_id=rule_id,
            severity=severity,
            since=since,
            until=until,
            page=page,
            per_page=per_page,
        )
        return self._client._call("GET", "/alerts", cast=Page[Alert], params=params)

    def list_all(self, *, per_page: int = DEFAULT_PER_PAGE, **filters: Any) -> Iterator[Alert]:
        """Every alert matching the filters of `list`."""
        return iterate_pages(lambda number: self.list(page=number, per_page=per_page, **filters))

    def get(self, alert_uuid: str) -> Alert:
        """One alert, by its FIRING's uuid or its CLEARING's."""
        return self._client._call("GET", f"/alerts/{path(alert_uuid)}", cast=Alert)

    def ack(self, alert_uuid: str, *, note: str | None = None) -> Alert:
        """Acknowledge an alert with an optional note (who and when are recorded)."""
        return self._client._call(
            "POST", f"/alerts/{path(alert_uuid)}/ack", cast=Alert, json={"note": note}
        )


class AsyncAlerts(AsyncResource):
    async def list(
        self,
        *,
        state: str | None = None,
        device_uuid: str | None = None,
        rule_id: int | None = None,
        severity: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        page: int | None = None,
        per_page: int | None = None,
    ) -> Page[Alert]:
        """One page of alerts, newest first; `state` is `firing` or `cleared`."""
        params = _alert_query(
            state=state,
            device_uuid=device_uuid,
            rule_id=rule_id,
            severity=severity,
            since=since,
            until=until,
            page=page,
            per_page=per_page,
        )
        return await self._client._call("GET", "/alerts", cast=Page[Alert], params=params)

    def list_all(self, *, per_page: int = DEFAULT_PER_PAGE, **filters: Any) -> AsyncIterator[Alert]:
        """Every alert matching the filters of `list` (`async for`)."""
        return aiterate_pages(lambda number: self.list(page=number, per_page=per_page, **filters))

    async def get(self, alert_uuid: str) -> Alert:
        """One alert, by its FIRING's uuid or its CLEARING's."""
        return await self._client._call("GET", f"/alerts/{path(alert_uuid)}", cast=Alert)

    async def ack(self, alert_uuid: str, *, note: str | None = None) -> Alert:
        """Acknowledge an alert with an optional note (who and when are recorded)."""
        return await self._client._call(
            "POST", f"/alerts/{path(alert_uuid)}/ack", cast=Alert, json={"note": note}
        )
