"""The dispatcher: claims due deliveries, sends them, writes the outcomes back in batches.

Any number of dispatchers may run (inside `vsense serve`, and as `vsense worker`
processes), and any may die at any moment: a delivery is leased, not taken, so one
whose dispatcher vanished falls due again when its lease runs out (a possible
duplicate, counted in `reclaims`; receivers deduplicate on `webhook-id`).

Isolation: each endpoint has at most `webhook_max_in_flight` requests in flight and at
most twice that claimed per process; endpoints that are full here, or whose breaker is
open (a state shared by every process, in the webhook's row; `breaker.py`), are left out
of claims, so their deliveries stay in the database holding no lease and spending no
attempt, and a slow endpoint never takes the places of healthy ones. Sends are tasks of
their own: the claim loop waits for nothing but room in the process.

The dispatcher orchestrates: the SQL is the queue repository's and the webhooks
repository's, what an answer means is `policy.py`'s, the breaker is `breaker.py` and the
wake-ups from other processes are `wakeup.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from vsense.config import Settings
from vsense.db import Database, session_scope
from vsense.kit.metrics import Metrics
from vsense.kit.time import utcnow
from vsense.webhooks import policy, queue_repository, repository
from vsense.webhooks.breaker import Breaker, Result
from vsense.webhooks.domain import Claimed, DeliveryOutcome, DeliveryStatus, Prepared
from vsense.webhooks.outbox import Outbox
from vsense.webhooks.request import USER_AGENT, build_request
from vsense.webhooks.sender import TIMEOUT, Sender
from vsense.webhooks.ssrf import AddressPolicy
from vsense.webhooks.wakeup import listen_for_wakeups

logger = logging.getLogger("vsense.webhooks")

MAX_IN_FLIGHT = 1000  # deliveries claimed, not finished, per process; a claim takes the room
POLL_INTERVAL = 1.0  # a look at the queue without a wake-up (retries falling due)
PER_DEVICE = 8  # deliveries of one device to one webhook per claim (sent in order)
TOP_UP = PER_DEVICE // 2  # a device's chain with this few left to send gets more
# Seconds a wake-up waits for more work to claim at once. Every delivery of a device
# waits for it again behind the one before: 10 ms added 30-100 ms to the p99 of
# bench/webhooks.py's latency scenario (1,000 events/s), for no CPU saved.
COALESCE = 0.002


def lease_for(settings: Settings) -> timedelta:
    """How long a claim holds a delivery: it may wait behind the others of its device
    (sent one after the other, each within the timeout; a failure releases the rest:
    at most what was left when its chain was topped up, and the one in flight), after
    up to two rounds of its endpoint's other requests."""
    return (PER_DEVICE + TOP_UP + 3) * settings.webhook_timeout + timedelta(seconds=10)


class SenderSlot:
    """The process's webhook HTTP client (one keep-alive pool for every delivery),
    started on first use.

    No per-host connection cap: the cap is per webhook (the dispatcher's), and several
    webhooks may share one receiving host."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._sender: Sender | None = None

    async def get(self) -> Sender:
        if self._sender is None:
            self._sender = Sender(
                AddressPolicy.of(self.settings),
                user_agent=USER_AGENT,
                limit=MAX_IN_FLIGHT,
                limit_per_host=0,
            )  # kept before the await: one sender per process
        sender = self._sender
        await sender.start()  # idempotent; a concurrent first caller may still be starting it
        return sender

    async def close(self) -> None:
        """Close the client, if it was started."""
        if self._sender is not None:
            sender, self._sender = self._sender, None
            await sender.close()


class DispatchParts(Protocol):
    """What a dispatcher uses of its process."""

    @property
    def settings(self) -> Settings: ...
    @property
    def database(self) -> Database: ...
    @property
    def outbox(self) -> Outbox: ...
    @property
    def sender(self) -> SenderSlot: ...
    @property
    def metrics(self) -> Metrics: ...


async def close_sender(parts: DispatchParts) -> None:
    """Close the process's webhook HTTP client, if it was started."""
    await parts.sender.close()


@dataclass
class _Endpoint:
    slots: asyncio.Semaphore  # its requests in flight, at most `webhook_max_in_flight`
    claimed: int = 0
    breaker: Breaker = field(default_factory=Breaker)


class Dispatcher:
    """Delivers the queue of one database until cancelled."""

    def __init__(self, state: DispatchParts) -> None:
        self.state = state
        self.cap = state.settings.webhook_max_in_flight
        self.timeout = state.settings.webhook_timeout.total_seconds()
        self.lease = lease_for(state.settings)
        # Seconds requests in flight may take to end at a stop (the grace period's rest).
        self.finish_within = state.settings.shutdown_grace.total_seconds()
        self.endpoints: dict[int, _Endpoint] = defaultdict(self._endpoint)
        self.in_flight = 0
        self._room = asyncio.Event()
        self._results: list[DeliveryOutcome] = []
        self._writing: list[DeliveryOutcome] = []  # the outcome batch being written
        self._results_ready = asyncio.Event()
        self._chains: set[asyncio.Task[None]] = set()
        # Per webhook and device, the deliveries its running chain has still to send.
        self._queues: dict[tuple[int, uuid.UUID], deque[Prepared]] = {}
        self._unfinished: dict[int, Prepared] = {}  # claimed, no outcome yet
        self._breaker_results: list[Result] = []  # for the shared breakers, in order
        self.sent = 0

    def _endpoint(self) -> _Endpoint:
        return _Endpoint(slots=asyncio.Semaphore(self.cap))

    # -- the loop ---------------------------------------------------------------------

    async def run(self) -> None:
        """Claim and send until cancelled; outcomes are written by a task of their own."""
        writer = asyncio.create_task(self._write_loop())
        listener = asyncio.create_task(
            listen_for_wakeups(self.state.settings.resolved_database_url, self.state.outbox.wakeup)
        )
        try:
            while True:
                try:
                    claimed = await self.claim_round()
                except Exception:
                    logger.exception("claiming deliveries failed; trying again shortly")
                    claimed = 0
                if claimed == 0:
                    await self._wait(self.state.outbox.wakeup, POLL_INTERVAL)
                    await asyncio.sleep(COALESCE)  # what commits meanwhile joins this claim
        finally:
            listener.cancel()
            await self._finish_in_flight()
            writer.cancel()
            await asyncio.gather(listener, writer, return_exceptions=True)
            await self.write_results()  # what finished before the stop

    async def _finish_in_flight(self) -> None:
        """On a stop: let the requests in flight end (up to one timeout), then release
        what has not been sent, so that it falls due at once instead of after its lease."""
        if self._chains:
            await asyncio.wait(list(self._chains), timeout=min(self.timeout, self.finish_within))
        for chain in list(self._chains):
            chain.cancel()
        await asyncio.gather(*self._chains, return_exceptions=True)
        now = utcnow()
        for item in list(self._unfinished.values()):
            self._finish(item, policy.released(item, now, now, "dispatcher stopped"))

    async def run_once(self) -> list[DeliveryOutcome]:
        """Claim once, send all of it and write the outcomes (tests, tools)."""
        await self.claim_round()
        return await self.drain()

    async def settled(self) -> None:
        """Until every send started has ended (its outcome not necessarily written)."""
        while self._chains:
            await asyncio.gather(*list(self._chains), return_exceptions=True)

    async def drain(self) -> list[DeliveryOutcome]:
        """Wait for every send started, then write the outcomes; returns them."""
        await self.settled()
        return await self.write_results()

    @staticmethod
    async def _wait(event: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await event.wait()
        event.clear()

    async def claim_round(self) -> int:
        """Lease what this process has room for and start sending it; how many rows."""
        room = MAX_IN_FLIGHT - self.in_flight
        if room <= 0:
            await self._wait(self._room, POLL_INTERVAL)
            return 0
        now = utcnow()
        skip = [
            webhook
            for webhook, endpoint in self.endpoints.items()
            if endpoint.claimed >= 2 * self.cap or endpoint.breaker.is_open(now)
        ]
        async with session_scope(self.state.database.sessionmaker) as session:
            claimed = await queue_repository.claim(
                session,
                now,
                self.lease,
                room,
                per_webhook=2 * self.cap,
                per_device=PER_DEVICE,
                skip_webhooks=skip,
                own=self.own_leases(),
            )
            prepared = await prepare(session, claimed, now)
        self.launch(prepared)
        return len(prepared)

    def own_leases(self) -> list[int]:
        """The deliveries whose lease this process holds and that a device's later
        deliveries may queue behind: those of a chain with at most `TOP_UP` left to
        send (it is given more before it runs dry, so that it does not wait for the
        next claim), and those sent with success whose outcome is not written yet. A
        chain with more waiting is not given more (one request that hangs holds back
        at most one claim and what was left of the one before), and a failure is not
        queued behind: the device's later deliveries wait until its outcome is
        written."""
        waiting = {pair for pair, queue in self._queues.items() if len(queue) > TOP_UP}
        out = [
            delivery
            for delivery, item in self._unfinished.items()
            if (item.webhook_id, item.device_uuid) not in waiting
        ]
        sent = [
            o.delivery_id
            for o in (*self._writing, *self._results)
            if o.status == DeliveryStatus.SUCCEEDED
        ]
        return [*out, *sent]

    def launch(self, prepared: Sequence[Prepared]) -> None:
        """Start sending leased deliveries: one chain per device and webhook, or, when
        one is running, at its end."""
        for item in prepared:
            self._unfinished[item.delivery_id] = item
            self.endpoints[item.webhook_id].claimed += 1
            pair = (item.webhook_id, item.device_uuid)
            queue = self._queues.get(pair)
            if queue is None:
                queue = self._queues[pair] = deque()
                task = asyncio.create_task(self._send_chain(pair, queue))
                self._chains.add(task)
                task.add_done_callback(self._chains.discard)
            queue.append(item)
        self.in_flight += len(prepared)

    async def _send_chain(self, pair: tuple[int, uuid.UUID], queue: deque[Prepared]) -> None:
        """One device's deliveries to one webhook, in event order, until its queue is
        empty. After a failure the rest are released untouched for a few seconds
        (retries may reorder; nothing waits behind one for long, and a failing endpoint
        is not asked again at once)."""
        try:
            while queue:
                item = queue.popleft()
                try:
                    outcome = await self._attempt(item)
                except Exception:
                    logger.exception("delivery %s could not be attempted", item.delivery_id)
                    outcome = policy.after_internal_error(item, utcnow())
                self._finish(item, outcome)
                if outcome.status != DeliveryStatus.SUCCEEDED:
                    now = utcnow()
                    while queue:
                        behind = queue.popleft()
                        self._finish(behind, policy.behind_failure(behind, now))
        finally:
            # No await since the queue was found empty: nothing was added meanwhile.
            if self._queues.get(pair) is queue:
                del self._queues[pair]

    async def _attempt(self, item: Prepared) -> DeliveryOutcome:
        endpoint = self.endpoints[item.webhook_id]
        if not item.active:
            return policy.skipped(item, utcnow())
        async with endpoint.slots:
            at = utcnow()
            if endpoint.breaker.is_open(at) and endpoint.breaker.open_until is not None:
                # Opened here since the claim (another process's breaker is in the claim).
                return policy.released(item, endpoint.breaker.open_until, at, "circuit open")
            request = build_request(item, int(at.timestamp()))
            sent = await (await self.state.sender.get()).send(
                request.method,
                request.url,
                headers=request.headers,
                body=request.body,
                timeout=self.timeout,
            )
            # This process's copy stops the endpoint's other requests here at once; the
            # shared breaker counts the result when the outcome batch is written.
            result = Result(
                item.webhook_id, policy.is_endpoint_failure(sent), sent.error == TIMEOUT, utcnow()
            )
            endpoint.breaker.record(result.failed, result.timed_out, result.at)
            self._breaker_results.append(result)
        self.sent += 1
        return policy.after_attempt(item, sent, at)

    def _finish(self, item: Prepared, outcome: DeliveryOutcome) -> None:
        if self._unfinished.pop(item.delivery_id, None) is None:
            return  # already finished (released at a stop while its send ended)
        endpoint = self.endpoints[item.webhook_id]
        endpoint.claimed -= 1
        self.in_flight -= 1
        self._room.set()
        self.state.metrics.webhook_deliveries.labels(
            outcome.status if outcome.attempted else "deferred"
        ).inc()
        self._results.append(outcome)
        self._results_ready.set()

    # -- outcomes ---------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            await self._results_ready.wait()
            self._results_ready.clear()
            await asyncio.sleep(0.005)  # let a few more finish: one write for many
            try:
                await self.write_results()
            except Exception:
                logger.exception("writing delivery outcomes failed; retrying")
                await asyncio.sleep(1)
                self._results_ready.set()

    async def write_results(self) -> list[DeliveryOutcome]:
        """Write finished outcomes, and what they change for their webhooks (`policy`),
        in one transaction; put them back if it fails (their leases still hold the rows,
        so nobody else sends them meanwhile), unless the fault is in what is written,
        which writing again cannot mend."""
        if not self._results:
            return []
        batch, self._results = self._results, []
        self._writing = batch
        now = utcnow()
        results, self._breaker_results = self._breaker_results, []
        try:
            effects = policy.webhook_effects(batch, now, self.state.settings.webhook_disable_after)
            async with session_scope(self.state.database.sessionmaker) as session:
                gone, stale = await _write(session, batch, results, effects, now)
        except (IntegrityError, DataError):
            # Writing these again would fail again, and every later outcome with them:
            # they are dropped, and their deliveries fall due when their leases run out
            # (sent again: at least once still holds).
            logger.exception(
                "delivery outcomes could not be written; %d deliveries will be sent again "
                "when their leases run out",
                len(batch),
            )
            return []
        except BaseException:
            self._results = batch + self._results
            self._breaker_results = results + self._breaker_results
            raise
        finally:
            if self._writing is batch:
                self._writing = []
        # Rows behind these (the same device's next ones) may be claimed now.
        self.state.outbox.wakeup.set()
        if gone or stale:
            self.state.outbox.forget_targets()  # no new deliveries to them from this process
            logger.warning("webhooks disabled: %s", sorted(set(gone) | set(stale)))
        return batch


async def _write(
    session: AsyncSession,
    batch: Sequence[DeliveryOutcome],
    results: Sequence[Result],
    effects: policy.WebhookEffects,
    now: datetime,
) -> tuple[list[int], list[int]]:
    """One batch's writes, in the order every dispatcher takes its locks; the webhooks
    disabled for 410 and for failing too long."""
    await queue_repository.outcomes_transaction(session)
    await queue_repository.record_outcomes(session, batch)
    await queue_repository.note_recovered(session, effects.recovered)
    for webhook_id, until in (await _count_failures(session, results)).items():
        # Its queue waits (no attempt spent) until the breaker closes, out of the way of
        # every process's claims.
        await queue_repository.defer(session, webhook_id, until, now)
    for webhook_id, device in effects.waiting:
        await queue_repository.defer(session, webhook_id, effects.wait_until, now, device)
    gone = await repository.disable(session, effects.gone, policy.GONE_REASON)
    await repository.note_health(session, [], effects.failing, now)
    stale = await repository.disable(
        session,
        effects.failing,
        effects.failing_reason,
        failing_since_before=effects.disable_failing_since,
    )
    return gone, stale


async def _count_failures(session: AsyncSession, results: Sequence[Result]) -> dict[int, datetime]:
    """Count the batch's results into the shared breakers of the endpoints that failed in
    it (a healthy batch reads and writes none); the breakers it opened, and until when."""
    failed = {r.webhook_id for r in results if r.failed}
    if not failed:
        return {}
    breakers = await queue_repository.breakers_for_update(session, sorted(failed))
    opened: dict[int, datetime] = {}
    for result in results:
        breaker = breakers.get(result.webhook_id)
        if breaker is not None and breaker.record(result.failed, result.timed_out, result.at):
            assert breaker.open_until is not None
            opened[result.webhook_id] = breaker.open_until
    await queue_repository.save_breakers(session, breakers)
    return opened


async def prepare(
    session: AsyncSession, claimed: Sequence[Claimed], now: datetime
) -> list[Prepared]:
    """What the attempts of claimed deliveries need: their events and webhooks, read
    as plain rows, two statements for the whole claim."""
    if not claimed:
        return []
    events = await queue_repository.events_by_id(session, (c.event_id for c in claimed))
    webhooks = await repository.destinations_by_id(session, (c.webhook_id for c in claimed))
    return [Prepared.of(c, events[c.event_id], webhooks[c.webhook_id], now) for c in claimed]


async def send_now(state: DispatchParts, delivery_ids: Sequence[int]) -> list[DeliveryOutcome]:
    """Attempt deliveries this process leased itself (born leased: the `test` endpoint)
    at once, and write their outcomes; returns them."""
    dispatcher = Dispatcher(state)
    async with session_scope(state.database.sessionmaker) as session:
        leased = await queue_repository.leased(session, delivery_ids)
        prepared = await prepare(session, leased, utcnow())
    dispatcher.launch(prepared)
    return await dispatcher.drain()
