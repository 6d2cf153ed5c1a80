"""The composition root: every part a process holds beside the request, built here once.

`vsense serve` (through `vsense.app.create_app`) and `vsense worker` (through
`vsense.cli`) build their parts with `Components.for_server` and `Components.for_worker`;
nothing else builds them, and nothing below the application, the worker and the command
line imports this module. Each service receives the parts it uses, not this object; the
routes receive theirs as typed dependencies (`vsense.kit.parts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from vsense.accounts.service import Callers
from vsense.alerts.integration import Alerts
from vsense.changes import ChangeFeed
from vsense.commands.service import Commands
from vsense.config import Settings
from vsense.console.sessions import ConsoleSessions
from vsense.db import Database, create_engine
from vsense.device_auth.service import DeviceAuth
from vsense.gateway.liveness import Liveness
from vsense.gateway.mqtt import MqttBridge
from vsense.gateway.service import Gateway
from vsense.images import uploads
from vsense.images.service import CAPTURE_COMMAND
from vsense.images.snapshots import Snapshots
from vsense.kit.cache import CountCache
from vsense.kit.metrics import Metrics
from vsense.payloads.ingest import PayloadLog
from vsense.webhooks.dispatcher import Dispatcher, DispatchParts, SenderSlot
from vsense.webhooks.outbox import Outbox


@dataclass(slots=True, kw_only=True)
class Components:
    """The parts of one process, wired together."""

    settings: Settings
    database: Database
    metrics: Metrics
    changes: ChangeFeed  # tells other processes what their caches must drop, and hears theirs
    callers: Callers  # access-token key, login throttle, verified bearers
    counts: CountCache  # device counts per organization
    device_auth: DeviceAuth  # device tokens to devices
    outbox: Outbox  # webhook targets, keepalive throttle, dispatcher wake-up
    liveness: Liveness  # batched signs of life, the offline sweep
    commands: Commands  # device commands and their waiters
    payloads: PayloadLog  # the payload log and its derived metrics
    alerts: Alerts  # alert rules evaluated at ingest and in the sweep
    snapshots: Snapshots  # link key, image store, ready cache
    gateway: Gateway  # the device protocol over the parts above
    sender: SenderSlot  # the dispatcher's HTTP client
    console: ConsoleSessions  # the console's CSRF key and recent refreshes

    @classmethod
    def for_server(cls, settings: Settings, engine: AsyncEngine | None = None) -> Components:
        """The parts of `vsense serve`: over `engine` when given (tests share one), with
        fresh caches."""
        metrics = Metrics()
        database = Database.for_engine(
            engine or create_engine(settings), on_group=metrics.group_commit_size.observe
        )
        signing_key = settings.signing_key()
        changes = ChangeFeed(settings.resolved_database_url)
        outbox = Outbox(settings, changes)
        device_auth = DeviceAuth(settings, changes, database)
        liveness = Liveness(settings, database, outbox)
        commands = Commands(settings, changes)
        alerts = Alerts(outbox)
        payloads = PayloadLog(settings, metrics, outbox, after_store=alerts)
        commands.on_result(CAPTURE_COMMAND, uploads.capture_result)
        return cls(
            settings=settings,
            database=database,
            metrics=metrics,
            changes=changes,
            callers=Callers(settings, signing_key, database, changes),
            counts=CountCache(ttl=settings.count_cache_ttl.total_seconds()),
            device_auth=device_auth,
            outbox=outbox,
            liveness=liveness,
            commands=commands,
            payloads=payloads,
            alerts=alerts,
            snapshots=Snapshots.build(settings, signing_key),
            gateway=Gateway(
                database=database,
                device_auth=device_auth,
                liveness=liveness,
                commands=commands,
                payloads=payloads,
                outbox=outbox,
                webhook_source=settings.webhook_source,
            ),
            sender=SenderSlot(settings),
            console=ConsoleSessions(signing_key, int(settings.refresh_token_ttl.total_seconds())),
        )

    @classmethod
    def for_worker(cls, settings: Settings) -> Components:
        """The parts of `vsense worker`: the same wiring (its sweep, retention and
        dispatcher use a subset), over an engine of its own."""
        return cls.for_server(settings)

    # The engine and sessions, as the jobs and the tests reach them.
    @property
    def engine(self) -> AsyncEngine:
        return self.database.engine

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        return self.database.sessionmaker

    @property
    def read_sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        return self.database.read_sessionmaker

    def route_parts(self) -> dict[type[Any], object]:
        """The parts routes depend on, keyed by the type they ask for."""
        return {
            Settings: self.settings,
            Database: self.database,
            Callers: self.callers,
            CountCache: self.counts,
            DeviceAuth: self.device_auth,
            Outbox: self.outbox,
            Alerts: self.alerts,
            Commands: self.commands,
            Snapshots: self.snapshots,
            Gateway: self.gateway,
            Metrics: self.metrics,
            DispatchParts: self,  # the `test` endpoint sends at once
            ConsoleSessions: self.console,
        }

    def dispatcher(self) -> Dispatcher:
        return Dispatcher(self)

    def mqtt_bridge(self) -> MqttBridge:
        return MqttBridge(
            self.settings,
            database=self.database,
            device_auth=self.device_auth,
            gateway=self.gateway,
            commands=self.commands,
            metrics=self.metrics,
        )
