"""The rules of the device gateway: who a device is, what it may send, what it receives."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from vsense.accounts.service import DEVICE_PREFIX
from vsense.alerts import integration as alerts
from vsense.db import session_scope
from vsense.gateway import repository
from vsense.gateway.liveness import deadline_after
from vsense.gateway.repository import DeviceIdentity
from vsense.gateway.schemas import Health, command_json
from vsense.images.uploads import capture_failed
from vsense.kit.crypto import token_digest
from vsense.kit.errors import BadRequest, NotFound, Unauthorized, Unprocessable
from vsense.kit.time import utcnow
from vsense.models import DeviceCommand
from vsense.payloads.metrics import derive_metrics, next_occupancy
from vsense.payloads.schemas import PayloadInvalid, ValidatedMessage, validate_message
from vsense.state import AppState
from vsense.webhooks import outbox
from vsense.webhooks.events import KEEPALIVE, PAYLOAD, keepalive_body, payload_body

MAX_BATCH = 500
VPM_TYPE = "VPM"
VPM_MIN_SPACING = 30  # seconds between two messages of a parking device
MAX_WAIT = 55
# A long poll also looks at the database this often, for commands created by another
# server process (this process's own wake it at once).
POLL_INTERVAL = 1.0


class BatchPartlyRejected(Unprocessable):
    """Some messages of a batch were refused; the accepted ones are kept (committed)."""

    commit_session = True


def bearer(header: str | None) -> str:
    scheme, _, token = (header or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(DEVICE_PREFIX):
        raise Unauthorized("A device token is required (Authorization: Bearer vsd_...).")
    return token


DEVICE_TOKENS = "device-tokens"  # namespace of the identity cache


async def authenticate(
    session: AsyncSession, header: str | None, state: AppState | None = None
) -> DeviceIdentity:
    """The device behind a device token; a user or API token opens nothing here.

    With `state`, a verified identity is reused for `auth_cache_ttl` seconds: a rotation
    or removal in this process drops it at once (`forget_device_tokens`), other
    processes within that time. Its `is_online` may be stale; that is safe, because
    a batched sign of life finds devices that went offline and brings them back.
    """
    token_hash = token_digest(bearer(header))
    if state is not None:
        cached = state.auth_cache.get(DEVICE_TOKENS, token_hash)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
    identity = await repository.device_for_token_hash(session, token_hash)
    if identity is None:
        raise Unauthorized("The device token is invalid or has been rotated.")
    if state is not None:
        state.auth_cache.put(DEVICE_TOKENS, token_hash, identity)
    return identity


def forget_device_tokens(state: AppState) -> None:
    """Drop every cached device identity (a token was rotated or a device removed)."""
    state.auth_cache.invalidate(DEVICE_TOKENS)


def _interval(state: AppState, device: DeviceIdentity) -> int:
    """The device's keepalive interval: its own, else its group's, else the default."""
    return device.keepalive_interval or state.settings.default_keepalive_interval


async def sign_of_life(
    session: AsyncSession, state: AppState, device: DeviceIdentity, reason: str
) -> None:
    """Any message from a device keeps it online. Already online: batched. Coming back:
    written now, with its event and its webhooks, in the caller's transaction."""
    now = utcnow()
    interval = _interval(state, device)
    if device.is_online or not await repository.set_online(
        session, device.uuid, now, deadline_after(now, interval), reason
    ):
        state.liveness.note(device.uuid, now, interval)
    else:
        await outbox.emit_status(session, state, [device.uuid], "online", reason, now)


async def keepalive(
    state: AppState, header: str | None, health: Health | None
) -> list[dict[str, Any]]:
    """A keepalive; answered with the device's pending commands.

    The common case (an online device, no command waiting, no keepalive webhook due)
    reads and writes nothing but one indexed look-up: its sign of life joins the next
    batch. A write transaction is opened only to bring a device back online, to queue
    its keepalive webhook or to hand out commands. Health is not stored; the keepalive
    webhook forwards it.
    """
    async with state.read_sessionmaker() as session:
        device = await authenticate(session, header, state)
        waiting = await repository.has_pending_commands(session, device.uuid, utcnow())
        forward = await outbox.wants(
            session, state, device.uuid, KEEPALIVE
        ) and outbox.keepalive_due(state, device.uuid)
    if device.is_online and not waiting and not forward:
        state.liveness.note(device.uuid, utcnow(), _interval(state, device))
        return []
    async with session_scope(state.sessionmaker) as session:
        return await keepalive_in(session, state, device, health, forward=forward)


async def keepalive_in(
    session: AsyncSession,
    state: AppState,
    device: DeviceIdentity,
    health: Health | None = None,
    *,
    forward: bool | None = None,
) -> list[dict[str, Any]]:
    """A keepalive in the caller's transaction: sign of life, its webhook (at most one per
    device per `webhook_keepalive_min_interval`; `forward` when the caller decided),
    then the pending commands."""
    await sign_of_life(session, state, device, "keepalive")
    if forward is None:
        forward = await outbox.wants(
            session, state, device.uuid, KEEPALIVE
        ) and outbox.keepalive_due(state, device.uuid)
    if forward:
        body = keepalive_body(
            state.settings.webhook_source,
            device.uuid,
            int(utcnow().timestamp()),
            health.model_dump(exclude_none=True) if health else None,
        )
        await outbox.emit(session, state, device_uuid=device.uuid, event=KEEPALIVE, body=body)
    commands = await repository.take_pending_commands(session, device.uuid, utcnow())
    return [command_json(c) for c in commands]


def _as_batch(body: Any) -> list[Any]:
    messages = body if isinstance(body, list) else [body]
    if not messages:
        raise Unprocessable("The batch is empty.")
    if len(messages) > MAX_BATCH:
        raise Unprocessable(f"A batch holds at most {MAX_BATCH} messages.")
    return messages


async def ingest(session: AsyncSession, state: AppState, device: DeviceIdentity, body: Any) -> int:
    """Validate and store a message or a batch. Every accepted message is kept even when
    others of its batch are refused (422 naming each refused message by index)."""
    messages = _as_batch(body)
    now = utcnow()
    accepted: list[ValidatedMessage] = []
    errors: list[dict[str, Any]] = []
    for index, raw in enumerate(messages):
        try:
            accepted.append(
                validate_message(
                    raw,
                    now=now,
                    accept_unknown_types=state.settings.accept_unknown_payload_types,
                )
            )
        except PayloadInvalid as exc:
            errors += [{"index": index, **error} for error in exc.errors]
    if accepted:
        accepted = await _drop_excess_vpm(session, state, device.uuid, accepted)
        metric_rows = await _store(session, device.uuid, accepted, now)
        await sign_of_life(session, state, device, "payload")
        await outbox.emit_many(
            session,
            state,
            [
                (
                    device.uuid,
                    PAYLOAD,
                    payload_body(device.uuid, m.type, m.timestamp, m.payload, m.sent_version),
                )
                for m in accepted
            ],
        )
        await alerts.after_store(session, state, device.uuid, metric_rows, now)
    if errors:
        rejected = len({e["index"] for e in errors})
        raise BatchPartlyRejected(
            f"{len(accepted)} of {len(messages)} messages accepted; {rejected} refused "
            "(see `error`, by message index).",
            errors=errors,
        )
    return len(accepted)


async def _drop_excess_vpm(
    session: AsyncSession, state: AppState, device: uuid.UUID, messages: list[ValidatedMessage]
) -> list[ValidatedMessage]:
    """Parking devices send at most one message per 30 s (spec/devices.md); the excess is
    dropped and counted. The last kept time is remembered per process, and read from
    the payload log when this process has not seen the device yet."""
    kept: list[ValidatedMessage] = []
    for message in messages:
        if message.type != VPM_TYPE:
            kept.append(message)
            continue
        last = state.last_vpm.get(device)
        if last is None:
            last = await repository.last_message_time(session, device, VPM_TYPE)
        if last is not None and last <= message.timestamp < last + VPM_MIN_SPACING:
            state.metrics.payloads_dropped.labels(VPM_TYPE, "rate_limited").inc()
            continue
        state.last_vpm[device] = max(message.timestamp, last or 0)
        kept.append(message)
    return kept


async def _store(
    session: AsyncSession, device: uuid.UUID, messages: list[ValidatedMessage], now: datetime
) -> list[dict[str, Any]]:
    """Store messages and their metrics; returns the metric rows (alert rules read them)."""
    ids = await repository.add_messages(
        session,
        [
            {
                "device_uuid": device,
                "type": m.type,
                "version": m.version,
                "timestamp": datetime.fromtimestamp(m.timestamp, UTC),
                "received_at": now,
                "payload": m.payload,
            }
            for m in messages
        ],
    )
    rows: list[dict[str, Any]] = []
    for message_id, message in zip(ids, messages, strict=True):
        for metric in derive_metrics(message):
            rows.append(
                {
                    "device_uuid": device,
                    "message_id": message_id,
                    "epoch": message.timestamp,
                    "name": metric.name,
                    "value": metric.value,
                    "marker_id": metric.marker_id,
                    "marker_name": metric.marker_name,
                }
            )
            if metric.name == "net":
                rows.append(
                    {
                        **rows[-1],
                        "name": "occupancy",
                        "value": await _running_occupancy(
                            session,
                            device,
                            metric.marker_id,
                            message.timestamp,
                            metric.value,
                            rows,
                        ),
                    }
                )
    await repository.add_metrics(session, rows)
    return rows


async def _running_occupancy(
    session: AsyncSession,
    device: uuid.UUID,
    marker_id: str | None,
    epoch: int,
    net: float,
    pending: list[dict[str, Any]],
) -> float:
    """A line's occupancy: the sum of `net` since the day began (UTC), never below 0."""
    day_start = epoch - epoch % 86400
    previous = next(
        (
            row["value"]
            for row in reversed(pending[:-1])
            if row["name"] == "occupancy"
            and row["marker_id"] == marker_id
            and row["epoch"] >= day_start
        ),
        None,
    )
    if previous is None:
        previous = await repository.last_metric_value(
            session, device, "occupancy", marker_id, day_start
        )
    return next_occupancy(previous or 0.0, net)


async def take_commands(session: AsyncSession, device: uuid.UUID) -> list[dict[str, Any]]:
    """A device's pending commands, marked taken, as the device receives them."""
    return [
        command_json(c) for c in await repository.take_pending_commands(session, device, utcnow())
    ]


async def create_command(
    session: AsyncSession,
    state: AppState,
    device: uuid.UUID,
    command_type: str,
    arguments: dict[str, Any] | None = None,
) -> DeviceCommand:
    """Queue a command for a device (it takes it on its next keepalive or long poll)."""
    now = utcnow()
    command = DeviceCommand(
        id=uuid.uuid4(),
        device_uuid=device,
        type=command_type,
        arguments=arguments or {},
        created=now,
        expires_at=now + state.settings.command_ttl,
    )
    await repository.add_command(session, command)
    # Woken once the command is committed: a poll woken before would not see it yet.
    _, devices = session.sync_session.info.setdefault(
        _COMMAND_WAKEUPS, (state.command_waiters, set())
    )
    devices.add(device)
    return command


_COMMAND_WAKEUPS = "vsense.command_wakeups"


@event.listens_for(Session, "after_commit")
def _wake_polls_after_commit(session: Session) -> None:
    waiting = session.info.pop(_COMMAND_WAKEUPS, None)
    if waiting is not None:
        waiters, devices = waiting
        for device in devices:
            waiters.wake(device)


@event.listens_for(Session, "after_rollback")
def _forget_wakeups_after_rollback(session: Session) -> None:
    session.info.pop(_COMMAND_WAKEUPS, None)


async def wait_for_commands(
    state: AppState, header: str | None, wait: float
) -> list[dict[str, Any]]:
    """The long poll: pending commands as soon as there are some, or [] after `wait`
    (or at once when the process is stopping).

    Each look at the database is a short read of its own, so a waiting device holds no
    connection, and many waiting devices do not queue for the write lock (SQLite); a
    write transaction is opened only to take commands that are there, or to bring the
    device back online.
    """
    if not 0 <= wait <= MAX_WAIT:
        raise BadRequest(f"`wait` must be between 0 and {MAX_WAIT} seconds.")
    deadline = time.monotonic() + wait
    async with state.read_sessionmaker() as session:
        device = await authenticate(session, header, state)
    if device.is_online:
        state.liveness.note(device.uuid, utcnow(), _interval(state, device))
    else:
        async with session_scope(state.sessionmaker) as session:
            await sign_of_life(session, state, device, "command_poll")
    while True:
        async with state.read_sessionmaker() as session:
            waiting = await repository.has_pending_commands(session, device.uuid, utcnow())
        if waiting:
            async with session_scope(state.sessionmaker) as session:
                commands = await take_commands(session, device.uuid)
            if commands:
                return commands
        remaining = deadline - time.monotonic()
        if remaining <= 0 or state.command_waiters.stopping:
            return []
        await state.command_waiters.wait(device.uuid, min(remaining, POLL_INTERVAL))


async def complete_command(
    session: AsyncSession, device: DeviceIdentity, command_id: str, ok: bool, error: str | None
) -> None:
    try:
        parsed = uuid.UUID(command_id)
    except ValueError:
        raise NotFound("No such command.") from None
    if not await repository.complete_command(session, device.uuid, parsed, utcnow(), ok, error):
        raise NotFound("No such command for this device.")
    if not ok:
        await capture_failed(session, parsed, error)  # a snapshot's request fails with it
