"""The repository of the delivery queue: all its SQL (enqueue for the outbox, claims with
leases, deferrals, outcomes, retention); what to write is decided elsewhere (`policy.py`).

The queue is the `webhook_deliveries` table. A delivery is due when it is pending, its
`next_attempt_at` has come and nobody holds a live lease on it. Claiming sets the lease
in the same statement that selects the rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL,
where claims are also serialized by a transaction-level advisory lock so that the
per-device order check below sees every other claim; SQLite has one writer at a time).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Integer,
    Table,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.db import transaction_state
from vsense.kit.sql import is_postgres, one_of
from vsense.models import Webhook, WebhookAttempt, WebhookDelivery, WebhookEvent
from vsense.webhooks.breaker import Breaker
from vsense.webhooks.domain import Claimed, DeliveryOutcome, DeliveryStatus, EventBody, NewEvent

CHUNK = 2000
NOTIFY_CHANNEL = "vsense_webhooks"
CLAIM_LOCK = 0x76736E73  # advisory lock key of claims ("vsns")
SCAN_FACTOR = 3  # due rows looked at per row a claim may take
# Literal, not bound: PostgreSQL only uses the partial indexes when it sees the constant.
PENDING_ROW = text(f"webhook_deliveries.status = '{DeliveryStatus.PENDING}'")
FINISHED_ROW = text(f"webhook_deliveries.status <> '{DeliveryStatus.PENDING}'")

# Core tables for the batched statements (executemany by bound id, not ORM bulk mode).
Deliveries: Table = WebhookDelivery.__table__  # type: ignore[assignment]
Webhooks: Table = Webhook.__table__  # type: ignore[assignment]


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


async def enqueue(
    session: AsyncSession, events: Sequence[NewEvent], now: datetime, lease_until: datetime | None
) -> list[int]:
    """Write events and one due delivery per webhook; the deliveries' ids, in order.
    With `lease_until`, the deliveries are born leased (the caller sends them itself)."""
    if not events:
        return []
    event_ids = list(
        (
            await session.scalars(
                insert(WebhookEvent).returning(WebhookEvent.id, sort_by_parameter_order=True),
                [
                    {
                        "msg_id": e.msg_id,
                        "organization_id": e.organization_id,
                        "device_uuid": e.device_uuid,
                        "type": e.type,
                        "created": now,
                        "body": e.body,
                    }
                    for e in events
                ],
            )
        ).all()
    )
    return await add_deliveries(
        session,
        [
            (event_id, webhook_id, event.device_uuid)
            for event_id, event in zip(event_ids, events, strict=True)
            for webhook_id in event.webhook_ids
        ],
        now,
        lease_until,
    )


async def add_deliveries(
    session: AsyncSession,
    targets: Sequence[tuple[int, int, uuid.UUID]],
    now: datetime,
    lease_until: datetime | None = None,
) -> list[int]:
    """Due deliveries of existing events, `(event, webhook, device)` each; their ids, in
    order. With `lease_until`, they are born leased (the caller sends them itself).

    On PostgreSQL, the rest of the caller's transaction is planned for each call
    (`_PLANNED_PER_CALL`). Each delivery's foreign key to its event is checked by a
    query the server plans once per connection and keeps: planned while the events were
    few, it scans them all, until their statistics are gathered again, which may be
    never where autovacuum is off. From an empty queue to 12,000 deliveries, an emit of
    100 events went from 16 to 48 ms (`bench/webhook_queue_growth.py`). Only
    transactions that queue deliveries pay for the planning, once each (a group commit
    queues the deliveries of each of its units)."""
    if not targets:
        return []
    state = transaction_state(session)
    if is_postgres(session) and _PLANNED_PER_CALL_KEY not in state:
        await session.execute(_PLANNED_PER_CALL)
        state[_PLANNED_PER_CALL_KEY] = True
    result = await session.scalars(
        insert(WebhookDelivery).returning(WebhookDelivery.id, sort_by_parameter_order=True),
        [
            {
                "event_id": event_id,
                "webhook_id": webhook_id,
                "device_uuid": device,
                "status": DeliveryStatus.PENDING,
                "attempts": 0,
                "reclaims": 0,
                "created": now,
                "next_attempt_at": now,
                "lease_until": lease_until,
            }
            for event_id, webhook_id, device in targets
        ],
    )
    return list(result.all())


async def outcomes_transaction(session: AsyncSession) -> None:
    """The transaction that writes a batch of outcomes (`record_outcomes`), on
    PostgreSQL: without waiting for the disk, and its statements planned for each
    call's parameters.

    The dispatcher's own writes (leases, outcomes) need not wait for the disk: lost in
    a crash of the database, they only mean a delivery is sent again, which
    at-least-once allows. What devices were told is stored stays synchronous. (A
    claim's transaction is set so by `claim`, in the statement that takes its turn.)

    The server switches a prepared statement to a generic plan after five calls. A
    generic plan of the outcome write made while the queue's tables were small updates
    the batch through a sequential scan of the deliveries, and it stays in use until
    the tables' statistics are gathered again, which may be never where autovacuum is
    off: from an empty queue to 40,000 deliveries a write of 100 outcomes went from 22
    to 465 ms, against 7.5-11 ms planned each time (`bench/webhook_queue_growth.py`).
    The claim keeps its generic plan, which does not degrade so."""
    if is_postgres(session):
        await session.execute(_OUTCOME_SETTINGS)


_NO_WAIT_FOR_DISK = func.set_config("synchronous_commit", "off", True)
_PER_CALL_PLANS = func.set_config("plan_cache_mode", "force_custom_plan", True)
_PLANNED_PER_CALL = select(_PER_CALL_PLANS)
_PLANNED_PER_CALL_KEY = "webhooks.planned_per_call"  # in `transaction_state`: asked already
_OUTCOME_SETTINGS = select(_NO_WAIT_FOR_DISK, _PER_CALL_PLANS)


async def notify(session: AsyncSession) -> None:
    """Tell every listening dispatcher that work was queued (PostgreSQL delivers the
    notification at commit, and never for a rollback)."""
    if is_postgres(session):
        await session.execute(select(func.pg_notify(NOTIFY_CHANNEL, "")))


async def claim(
    session: AsyncSession,
    now: datetime,
    lease: timedelta,
    limit: int,
    *,
    per_webhook: int,
    per_device: int,
    skip_webhooks: Iterable[int] = (),
    own: Iterable[int] = (),
) -> list[Claimed]:
    """Lease up to `limit` due deliveries, oldest first, at most `per_webhook` of one
    webhook and `per_device` of one device to one webhook, so that one claim spreads
    over every endpoint with work instead of filling up with one backlog.

    A delivery waits while another delivery of the same device to the same webhook is
    leased by another process (sent in event order while the endpoint is healthy), and
    while its webhook's breaker is open (whichever process opened it); once it has
    closed again, one delivery of the webhook at a time is claimed until one succeeds
    (the probe of a half-open breaker). `own` are the deliveries whose lease the caller
    holds and may queue behind (in flight, or sent and not yet written): the device's
    later deliveries are claimed by the caller, which sends them after those.

    A claim of a delivery whose earlier lease ran out is counted in `reclaims`: its
    worker vanished, and the receiver may see it twice.
    """
    postgres = is_postgres(session)
    if postgres:
        # Claims take turns (so each sees the leases of the one before), and their
        # transaction writes leases only: it need not wait for the disk (as
        # `outcomes_transaction`). One statement, one round trip, for both.
        await session.execute(_CLAIM_TURN)
    connection = await session.connection()
    rows = await connection.execute(
        _claim_statement(postgres),
        {
            "now": now,
            "lease_until": now + lease,
            "scan": limit * SCAN_FACTOR,
            "take": limit,
            "per_webhook": per_webhook,
            "per_device": per_device,
            "skip": list(skip_webhooks),
            "own": list(own),
        },
    )
    claimed = [Claimed(*row) for row in rows]
    claimed.sort(key=lambda c: c.delivery_id)
    return claimed


_CLAIM_TURN = select(_NO_WAIT_FOR_DISK, func.pg_advisory_xact_lock(CLAIM_LOCK))
_CLAIMS: dict[bool, Any] = {}


def _claim_statement(postgres: bool) -> Any:
    """The claim, built once per dialect (building it is most of a claim's CPU when the
    queue is short); everything that varies is a bound parameter."""
    if postgres in _CLAIMS:
        return _CLAIMS[postgres]
    now = bindparam("now", type_=WebhookDelivery.next_attempt_at.type)
    # Endpoints whose breaker is open, and those whose breaker closed again without a
    # success since (half-open: one delivery at a time probes them): few rows of a small
    # partial index.
    tripped = select(Webhook.id).where(Webhook.breaker_open_until > now)
    probing = select(Webhook.id).where(Webhook.breaker_open_until <= now)
    # Devices (per webhook) with a delivery out: few, whatever the backlog, so leaving
    # their other deliveries out is one hash look-up per row (a `NOT IN` the server
    # hashes; as `NOT EXISTS` it was planned, on the estimate of the leases' index, as a
    # loop over `busy` for each row scanned). `mine`: the claimer's own lease, which its
    # later deliveries may queue behind.
    own = one_of(WebhookDelivery.id, "own", postgres)
    busy = (
        select(WebhookDelivery.webhook_id, WebhookDelivery.device_uuid, own.label("mine"))
        .where(PENDING_ROW, WebhookDelivery.lease_until >= now)
        .distinct()
        .cte("busy")
    )
    # The oldest due rows, a few times what one claim takes, then ranked per webhook and
    # per device.
    due = (
        select(WebhookDelivery.id, WebhookDelivery.webhook_id, WebhookDelivery.device_uuid)
        .where(
            PENDING_ROW,
            WebhookDelivery.next_attempt_at <= now,
            or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now),
            tuple_(WebhookDelivery.webhook_id, WebhookDelivery.device_uuid).not_in(
                select(busy.c.webhook_id, busy.c.device_uuid).where(~busy.c.mine)
            ),
            WebhookDelivery.webhook_id.not_in(tripped),
            ~and_(
                WebhookDelivery.webhook_id.in_(probing),
                WebhookDelivery.webhook_id.in_(select(busy.c.webhook_id)),
            ),
            WebhookDelivery.webhook_id.not_in(bindparam("skip", expanding=True)),
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(bindparam("scan", type_=Integer))
    )
    scanned = due.subquery("scanned")
    ranked = select(
        scanned.c.id,
        scanned.c.webhook_id,
        func.row_number()
        .over(partition_by=scanned.c.webhook_id, order_by=scanned.c.id)
        .label("webhook_rank"),
        func.row_number()
        .over(partition_by=(scanned.c.webhook_id, scanned.c.device_uuid), order_by=scanned.c.id)
        .label("device_rank"),
    ).subquery("ranked")
    per_webhook = bindparam("per_webhook", type_=Integer)
    chosen: Any = (
        select(ranked.c.id)
        .where(
            ranked.c.webhook_rank <= case((ranked.c.webhook_id.in_(probing), 1), else_=per_webhook),
            ranked.c.device_rank <= bindparam("per_device", type_=Integer),
        )
        .order_by(ranked.c.id)
        .limit(bindparam("take", type_=Integer))
    )
    if postgres:
        # Lock only the rows taken; a row some other statement holds is left for the next.
        chosen = (
            select(WebhookDelivery.id)
            .where(WebhookDelivery.id.in_(chosen.scalar_subquery()))
            .with_for_update(skip_locked=True)
        )
    statement = (
        update(Deliveries)
        .where(Deliveries.c.id.in_(chosen.scalar_subquery()))
        .values(
            lease_until=bindparam("lease_until", type_=Deliveries.c.lease_until.type),
            reclaims=Deliveries.c.reclaims
            + case((Deliveries.c.lease_until.is_not(None), 1), else_=0),
        )
        .returning(
            Deliveries.c.id,
            Deliveries.c.event_id,
            Deliveries.c.webhook_id,
            Deliveries.c.device_uuid,
            Deliveries.c.attempts,
        )
    )
    _CLAIMS[postgres] = statement
    return statement


async def defer(
    session: AsyncSession,
    webhook_id: int,
    until: datetime,
    now: datetime,
    device: uuid.UUID | None = None,
) -> None:
    """Move the due, unleased deliveries of a webhook (or of one device to it) to
    `until`: its breaker opened, or the device's latest attempt failed. They spend no
    attempt, and claims no longer walk past them meanwhile."""
    where: list[Any] = [
        PENDING_ROW,
        WebhookDelivery.webhook_id == webhook_id,
        WebhookDelivery.next_attempt_at < until,
        or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now),
    ]
    if device is not None:
        where.append(WebhookDelivery.device_uuid == device)
    await session.execute(update(WebhookDelivery).where(*where).values(next_attempt_at=until))


async def breakers_for_update(
    session: AsyncSession, webhook_ids: Sequence[int]
) -> dict[int, Breaker]:
    """The shared breakers of `webhook_ids`, locked until the transaction ends (in id
    order, the order every dispatcher takes them), so that two processes' outcomes of
    one endpoint are counted one after the other. `FOR NO KEY UPDATE`, the lock of the
    update that follows: it does not make the outbox wait, whose transactions lock the
    same webhooks `FOR KEY SHARE` to queue their deliveries (`repository.targets`)."""
    if not webhook_ids:
        return {}
    query = (
        select(
            Webhook.id,
            Webhook.breaker_failures,
            Webhook.breaker_open_until,
            Webhook.breaker_open_seconds,
        )
        .where(Webhook.id.in_(sorted(webhook_ids)))
        .order_by(Webhook.id)
    )
    if is_postgres(session):
        query = query.with_for_update(key_share=True)
    rows = await session.execute(query)
    return {w: Breaker(failures, until, seconds) for w, failures, until, seconds in rows}


async def save_breakers(session: AsyncSession, breakers: dict[int, Breaker]) -> None:
    """Write breakers back (after `breakers_for_update` in the same transaction)."""
    if not breakers:
        return
    await session.execute(
        update(Webhooks)
        .where(Webhooks.c.id == bindparam("b_id"))
        .values(
            breaker_failures=bindparam("b_failures"),
            breaker_open_until=bindparam("b_until"),
            breaker_open_seconds=bindparam("b_seconds"),
        ),
        [
            {
                "b_id": webhook_id,
                "b_failures": b.failures,
                "b_until": b.open_until,
                "b_seconds": b.open_seconds,
            }
            for webhook_id, b in sorted(breakers.items())
        ],
    )


async def note_recovered(session: AsyncSession, webhook_ids: Sequence[int]) -> None:
    """A success: end the webhooks' runs of failures and close their breakers (only rows
    that have either, so a healthy batch writes nothing)."""
    if not webhook_ids:
        return
    await session.execute(
        update(Webhook)
        .where(
            Webhook.id.in_(sorted(webhook_ids)),
            or_(Webhook.failing_since.is_not(None), Webhook.breaker_failures > 0),
        )
        .values(
            failing_since=None, breaker_failures=0, breaker_open_until=None, breaker_open_seconds=0
        )
    )


async def leased(session: AsyncSession, delivery_ids: Sequence[int]) -> list[Claimed]:
    """Deliveries by id, as claimed (the caller leased them when it created them)."""
    rows = await session.execute(
        select(
            WebhookDelivery.id,
            WebhookDelivery.event_id,
            WebhookDelivery.webhook_id,
            WebhookDelivery.device_uuid,
            WebhookDelivery.attempts,
        )
        .where(WebhookDelivery.id.in_(list(delivery_ids)))
        .order_by(WebhookDelivery.id)
    )
    return [Claimed(*row) for row in rows]


async def events_by_id(session: AsyncSession, ids: Iterable[int]) -> dict[int, EventBody]:
    """The events of claimed deliveries, by id."""
    wanted = sorted(set(ids))
    statement = _events_statement(is_postgres(session))
    connection = await session.connection()  # plain rows: no ORM step around them
    found: dict[int, EventBody] = {}
    for chunk in _chunks(wanted):
        for row in await connection.execute(statement, {"ids": list(chunk)}):
            found[row[0]] = EventBody(*row)
    return found


@functools.cache
def _events_statement(postgres: bool) -> Any:
    columns = (WebhookEvent.id, WebhookEvent.msg_id, WebhookEvent.type, WebhookEvent.body)
    return select(*columns).where(one_of(WebhookEvent.id, "ids", postgres))


async def record_outcomes(session: AsyncSession, outcomes: Sequence[DeliveryOutcome]) -> None:
    """Write outcomes back: the deliveries updated, and an attempt logged for each one
    that was sent.

    A delivery may be gone by now: its webhook was deleted while it was out, and the
    deletion took its deliveries along. Its outcome is dropped, and so is its attempt
    (logging it would break the attempts' foreign key and with it the whole batch). The
    deliveries updated are locked until the transaction ends, so none of them can go
    before their attempts are inserted."""
    if not outcomes:
        return
    if is_postgres(session):
        await session.execute(
            _OUTCOMES_FROM_ARRAYS,
            {
                "ids": [o.delivery_id for o in outcomes],
                "statuses": [o.status for o in outcomes],
                "spent": [1 if o.attempted else 0 for o in outcomes],
                "next": [o.next_attempt_at for o in outcomes],
                "at": [o.attempted_at for o in outcomes],
                "codes": [o.status_code for o in outcomes],
                "errors": [(o.error or "")[:200] or None for o in outcomes],
                "durations": [round(o.duration_ms, 3) for o in outcomes],
                "heads": [o.response_head for o in outcomes],
            },
        )
        return
    present = await _record_each(session, outcomes)
    attempts = [
        {
            "delivery_id": o.delivery_id,
            "attempted_at": o.attempted_at,
            "status_code": o.status_code,
            "duration_ms": round(o.duration_ms, 3),
            "error": (o.error or "")[:200] or None,
            "response_head": o.response_head,
        }
        for o in outcomes
        if o.attempted and o.delivery_id in present
    ]
    if attempts:
        await session.execute(insert(WebhookAttempt), attempts)


# PostgreSQL: a batch of outcomes in one statement: the deliveries updated from arrays
# (an executemany would be one statement per row on the server), then an attempt for
# each delivery sent that the update found.
_OUTCOMES_FROM_ARRAYS = text(
    """
    WITH outcomes AS (
        SELECT * FROM unnest(
            CAST(:ids AS bigint[]), CAST(:statuses AS varchar[]), CAST(:spent AS int[]),
            CAST(:next AS timestamptz[]), CAST(:at AS timestamptz[]), CAST(:codes AS int[]),
            CAST(:errors AS varchar[]), CAST(:durations AS float8[]), CAST(:heads AS text[])
        ) AS v(id, status, spent, next_at, at, code, error, duration, head)
    ), updated AS (
        UPDATE webhook_deliveries AS d SET
            status = v.status,
            attempts = d.attempts + v.spent,
            lease_until = NULL,
            next_attempt_at = v.next_at,
            last_attempt_at = CASE WHEN v.spent > 0 THEN v.at ELSE d.last_attempt_at END,
            last_status_code = CASE WHEN v.spent > 0 THEN v.code ELSE d.last_status_code END,
            last_error = v.error
        FROM outcomes AS v
        WHERE d.id = v.id
        RETURNING d.id
    )
    INSERT INTO webhook_attempts
        (delivery_id, attempted_at, status_code, duration_ms, error, response_head)
    SELECT v.id, v.at, v.code, v.duration, v.error, v.head
    FROM outcomes AS v JOIN updated AS u ON u.id = v.id
    WHERE v.spent > 0
    ORDER BY v.id
    """
)


async def _record_each(session: AsyncSession, outcomes: Sequence[DeliveryOutcome]) -> set[int]:
    """SQLite: the outcomes as one executemany; the ids of the deliveries still there
    (the write lock is this transaction's, so none can go before it ends)."""
    await session.execute(
        update(Deliveries)
        .where(Deliveries.c.id == bindparam("b_id"))
        .values(
            status=bindparam("b_status"),
            attempts=Deliveries.c.attempts + bindparam("b_spent"),
            lease_until=None,
            next_attempt_at=bindparam("b_next"),
            last_attempt_at=case(
                (bindparam("b_spent") > 0, bindparam("b_at")),
                else_=Deliveries.c.last_attempt_at,
            ),
            last_status_code=case(
                (bindparam("b_spent") > 0, bindparam("b_code")),
                else_=Deliveries.c.last_status_code,
            ),
            last_error=bindparam("b_error"),
        ),
        [
            {
                "b_id": o.delivery_id,
                "b_status": o.status,
                "b_spent": 1 if o.attempted else 0,
                "b_next": o.next_attempt_at,
                "b_at": o.attempted_at,
                "b_code": o.status_code,
                "b_error": (o.error or "")[:200] or None,
            }
            for o in outcomes
        ],
    )
    ids = sorted({o.delivery_id for o in outcomes})
    present: set[int] = set()
    for chunk in _chunks(ids):
        present.update(
            (
                await session.execute(select(Deliveries.c.id).where(Deliveries.c.id.in_(chunk)))
            ).scalars()
        )
    return present


async def next_due(session: AsyncSession) -> datetime | None:
    """When the earliest pending delivery falls due (None: the queue is empty)."""
    return await session.scalar(
        select(func.min(WebhookDelivery.next_attempt_at)).where(PENDING_ROW)
    )


async def purge(session: AsyncSession, before: datetime, limit: int = 5000) -> int:
    """Delete finished deliveries (with their attempts) and events older than `before`,
    at most `limit` of each per call, so retention never holds a long transaction."""
    old = (
        select(WebhookDelivery.id)
        .where(WebhookDelivery.created < before, FINISHED_ROW)
        .limit(limit)
    )
    removed: Any = await session.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(old)))
    stale = (
        select(WebhookEvent.id)
        .where(
            WebhookEvent.created < before,
            ~exists().where(WebhookDelivery.event_id == WebhookEvent.id),
        )
        .limit(limit)
    )
    events: Any = await session.execute(delete(WebhookEvent).where(WebhookEvent.id.in_(stale)))
    return int(removed.rowcount or 0) + int(events.rowcount or 0)
