"""Group commit: concurrent device writes share one transaction, and each is answered
only once that transaction has committed."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, func, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from tests.factories import Api, sensor, vcz
from vsense.components import Components
from vsense.db import GroupCommit
from vsense.kit.errors import NotFound
from vsense.kit.time import utcnow
from vsense.models import DeviceEvent


def event_row(device: uuid.UUID, reason: str) -> dict[str, Any]:
    return {"device_uuid": device, "created": utcnow(), "status": "online", "reason": reason}


async def stored_reasons(state: Components, device: uuid.UUID) -> Counter[str]:
    async with state.read_sessionmaker() as session:
        rows = await session.scalars(
            select(DeviceEvent.reason).where(DeviceEvent.device_uuid == device)
        )
        return Counter(rows.all())


async def device_uuid(api: Api) -> uuid.UUID:
    admin = await api.organization()
    return uuid.UUID((await sensor(admin)).uuid)


class Units:
    """Units of work that each write one status event of a device, counting their runs;
    the first (`blocker`) waits until released, so that the next ones queue behind it
    and form one group."""

    def __init__(self, state: Components, device: uuid.UUID) -> None:
        self.state = state
        self.device = device
        self.release = asyncio.Event()
        self.running = asyncio.Event()
        self.runs: Counter[str] = Counter()
        self.seen_by_others: dict[str, int] = {}
        self.answered_during: dict[str, list[str]] = {}
        self.tasks: dict[str, asyncio.Task[str]] = {}

    def write(
        self, reason: str, *, fail: bool = False, refuse: bool = False, block: bool = False
    ) -> Any:
        async def work(session: AsyncSession) -> str:
            self.runs[reason] += 1
            if refuse:
                raise NotFound("No such thing.")  # before it writes, as refusals are
            if block:
                self.running.set()
                await self.release.wait()
            device = uuid.uuid4() if fail else self.device  # no such device: a foreign key
            await session.execute(insert(DeviceEvent), [event_row(device, reason)])
            await session.flush()
            # What the group's other units see of this write before the commit, and
            # which of them were answered already.
            self.seen_by_others[reason] = (await stored_reasons(self.state, self.device))[reason]
            self.answered_during[reason] = [n for n, t in self.tasks.items() if t.done()]
            return reason

        return work

    def start(self, group: GroupCommit, reason: str, **options: Any) -> None:
        refusals = (NotFound,) if options.get("refuse") else ()
        work = self.write(reason, **options)
        self.tasks[reason] = asyncio.create_task(group.run(work, refusals=refusals))

    async def blocking(self, group: GroupCommit) -> None:
        """Start the blocking first unit, and wait until its leader runs it alone."""
        self.start(group, "first", block=True)
        await self.running.wait()

    async def until_queued(self, group: GroupCommit, count: int) -> None:
        await asyncio.sleep(0)  # the tasks started run up to their wait for an answer
        assert len(group._waiting) == count  # handed over, none run yet


@pytest.fixture
def group(state: Components) -> GroupCommit:
    """A group commit with one group in flight, as on SQLite, on either database."""
    return GroupCommit(state.sessionmaker, in_flight=1)


async def test_units_are_answered_only_after_their_shared_commit(
    api: Api, state: Components, group: GroupCommit
) -> None:
    units = Units(state, await device_uuid(api))
    await units.blocking(group)
    for name in ("a", "b", "c"):
        units.start(group, name)
    await units.until_queued(group, 3)
    units.release.set()
    assert await asyncio.gather(*units.tasks.values()) == ["first", "a", "b", "c"]
    assert group.groups == 1  # a, b and c in one transaction; `first` alone
    # Inside the transaction, nobody else saw a write, and no unit was answered yet.
    assert [units.seen_by_others[n] for n in "abc"] == [0, 0, 0]
    assert not {"a", "b", "c"} & set(units.answered_during["c"])
    assert await stored_reasons(state, units.device) == Counter(first=1, a=1, b=1, c=1)


async def test_a_failing_unit_fails_alone_and_its_group_mates_are_stored_once(
    api: Api, state: Components, group: GroupCommit
) -> None:
    units = Units(state, await device_uuid(api))
    await units.blocking(group)
    units.start(group, "a")
    units.start(group, "bad", fail=True)
    units.start(group, "c")
    await units.until_queued(group, 3)
    units.release.set()
    answers = await asyncio.gather(*units.tasks.values(), return_exceptions=True)
    assert answers[:2] == ["first", "a"] and answers[3] == "c"
    assert isinstance(answers[2], IntegrityError)
    # The group rolled back and each unit ran again alone: a and c are kept once.
    assert units.runs == Counter(first=1, a=2, bad=2, c=1)
    assert await stored_reasons(state, units.device) == Counter(first=1, a=1, c=1)


async def test_a_refusal_answers_its_unit_alone_and_the_group_goes_on(
    api: Api, state: Components, group: GroupCommit
) -> None:
    units = Units(state, await device_uuid(api))
    await units.blocking(group)
    units.start(group, "a")
    units.start(group, "refused", refuse=True)
    units.start(group, "c")
    await units.until_queued(group, 3)
    units.release.set()
    answers = await asyncio.gather(*units.tasks.values(), return_exceptions=True)
    assert answers[:2] == ["first", "a"] and answers[3] == "c"
    assert isinstance(answers[2], NotFound)
    # One group, committed: nothing ran again.
    assert group.groups == 1
    assert units.runs == Counter(first=1, a=1, refused=1, c=1)
    assert await stored_reasons(state, units.device) == Counter(first=1, a=1, c=1)


@contextmanager
def failing_commits() -> Iterator[list[int]]:
    """Every COMMIT of a write fails as if the database went away at that moment."""
    failed: list[int] = []

    def refuse(session: Session) -> None:
        failed.append(1)
        raise OperationalError("COMMIT", {}, ConnectionResetError("connection lost"))

    event.listen(Session, "before_commit", refuse)
    try:
        yield failed
    finally:
        event.remove(Session, "before_commit", refuse)


async def test_a_failed_commit_answers_every_unit_of_its_group_with_the_error(
    api: Api, state: Components, group: GroupCommit
) -> None:
    units = Units(state, await device_uuid(api))
    await units.blocking(group)
    units.start(group, "a")
    units.start(group, "b")
    await units.until_queued(group, 2)
    with failing_commits() as failed:
        units.release.set()
        answers = await asyncio.gather(*units.tasks.values(), return_exceptions=True)
    assert all(isinstance(answer, OperationalError) for answer in answers)
    assert len(failed) == 2  # `first` alone, then a and b together: not retried
    assert await stored_reasons(state, units.device) == Counter()


async def stored_messages(state: Components, device: str) -> int:
    from vsense.models import PayloadMessage

    async with state.read_sessionmaker() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(PayloadMessage)
            .where(PayloadMessage.device_uuid == uuid.UUID(device))
        )
    return int(count or 0)


async def test_concurrent_payload_requests_are_each_stored_and_a_refused_one_fails_alone(
    api: Api, state: Components
) -> None:
    admin = await api.organization()
    devices = [await sensor(admin, app_type="VCZ") for _ in range(6)]
    bad = {"type": "VCZ", "timestamp": 1, "payload": "not a list"}
    now = int(time.time())
    bodies: list[Any] = [[vcz(n + 1, now - 60), vcz(n + 2, now)] for n in range(6)]
    bodies[2] = [vcz(3), bad]  # one refused message: 422, its valid neighbour kept
    responses = await asyncio.gather(
        *(device.send(body) for device, body in zip(devices, bodies, strict=True))
    )
    assert [r.status_code for r in responses] == [202, 202, 422, 202, 202, 202]
    assert responses[0].json() == {"accepted": 2}
    assert responses[2].json()["error"][0]["index"] == 1
    assert [await stored_messages(state, d.uuid) for d in devices] == [2, 2, 1, 2, 2, 2]


async def test_payload_requests_whose_commit_fails_are_answered_503_and_nothing_is_kept(
    api: Api, state: Components
) -> None:
    admin = await api.organization()
    devices = [await sensor(admin, app_type="VCZ") for _ in range(4)]
    with failing_commits():
        responses = await asyncio.gather(*(device.send(vcz(5)) for device in devices))
    assert [r.status_code for r in responses] == [503] * 4
    assert {r.json()["code"] for r in responses} == {5003}
    assert [await stored_messages(state, d.uuid) for d in devices] == [0, 0, 0, 0]
    # Once the database is back, the same messages are taken.
    responses = await asyncio.gather(*(device.send(vcz(5)) for device in devices))
    assert [r.status_code for r in responses] == [202] * 4
    assert [await stored_messages(state, d.uuid) for d in devices] == [1, 1, 1, 1]


async def test_units_handed_over_with_run_many_are_done_in_one_call(
    api: Api, state: Components, group: GroupCommit
) -> None:
    units = Units(state, await device_uuid(api))
    calls: list[list[str]] = []

    async def many(session: AsyncSession, reasons: list[str]) -> list[str]:
        calls.append(list(reasons))
        if "bad" in reasons:
            raise ValueError("bad")
        rows = [event_row(units.device, reason) for reason in reasons]
        await session.execute(insert(DeviceEvent), rows)
        return [reason.upper() for reason in reasons]

    await units.blocking(group)
    tasks = [asyncio.create_task(group.run_many(many, r)) for r in ("a", "b")]
    units.start(group, "plain")  # another kind of unit cuts the run
    tasks += [asyncio.create_task(group.run_many(many, r)) for r in ("c", "bad", "d")]
    await units.until_queued(group, 6)
    units.release.set()
    answers = await asyncio.gather(*tasks, return_exceptions=True)
    assert answers[:2] == ["A", "B"]
    assert answers[2] == "C" and isinstance(answers[3], ValueError) and answers[4] == "D"
    # In the group: [a, b], then `plain`, then [c, bad, d], which failed; so the group
    # rolled back and each unit ran again alone.
    assert calls == [["a", "b"], ["c", "bad", "d"], ["a"], ["b"], ["c"], ["bad"], ["d"]]
    assert await units.tasks["plain"] == "plain"
    assert await stored_reasons(state, units.device) == Counter(
        first=1, plain=1, a=1, b=1, c=1, d=1
    )


# PostgreSQL: on SQLite the blocked group holds the one write lock, so nothing else commits.
@pytest.mark.parametrize("database_settings", ["postgresql"], indirect=True)
async def test_a_second_group_starts_only_once_the_units_waiting_are_heavy(
    api: Api, state: Components
) -> None:
    group = GroupCommit(state.sessionmaker, in_flight=2, heavy=100)
    units = Units(state, await device_uuid(api))

    async def many(session: AsyncSession, reasons: list[str]) -> list[str]:
        await session.execute(insert(DeviceEvent), [event_row(units.device, r) for r in reasons])
        return reasons

    await units.blocking(group)  # the first group, in flight until released
    light = [asyncio.create_task(group.run_many(many, r, weight=40)) for r in ("a", "b")]
    await units.until_queued(group, 2)
    await asyncio.sleep(0.2)
    # 80 waiting: they wait for the group in flight, no second group starts.
    assert group.leaders.running == 1 and not any(task.done() for task in light)
    heavy = asyncio.create_task(group.run_many(many, "c", weight=40))  # 120 waiting
    assert await asyncio.wait_for(asyncio.gather(*light, heavy), 10) == ["a", "b", "c"]
    assert not units.tasks["first"].done()  # committed beside the blocked group
    assert group.groups == 1
    units.release.set()
    assert await units.tasks["first"] == "first"
    assert await stored_reasons(state, units.device) == Counter(first=1, a=1, b=1, c=1)


async def test_the_size_of_each_group_is_a_metric(api: Api, state: Components) -> None:
    admin = await api.organization()
    devices = [await sensor(admin, app_type="VCZ") for _ in range(6)]
    registry = state.metrics.registry

    def sample(name: str) -> float:
        return registry.get_sample_value(f"vsense_group_commit_size_{name}") or 0.0

    units, groups = sample("sum"), sample("count")
    responses = await asyncio.gather(*(device.send(vcz(4)) for device in devices))
    assert [r.status_code for r in responses] == [202] * 6
    assert sample("sum") - units == 6  # every request's write, in some group
    assert 1 <= sample("count") - groups <= 6
