"""Batched reads: look-ups that miss the caches at the same time share one read, and each
is answered as if it had been read alone."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.factories import Api, Sensor, deliveries
from vsense.kit.batching import Batcher


class Reads:
    """A fetch that records its batches; each waits until released when `hold` is set."""

    def __init__(self, *, hold: bool = False, fail_on: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()
        if not hold:
            self.release.set()
        self.fail_on = fail_on

    async def fetch(self, keys: list[str]) -> dict[str, str]:
        self.batches.append(keys)
        await self.release.wait()
        if self.fail_on in keys:
            raise RuntimeError(f"cannot read {self.fail_on}")
        return {key: key.upper() for key in keys if key != "missing"}


async def test_keys_asked_while_a_read_runs_are_read_together_once_each() -> None:
    reads = Reads(hold=True)
    batcher: Batcher[str, str] = Batcher(reads.fetch, in_flight=1)
    first = asyncio.create_task(batcher.get("a"))
    await asyncio.sleep(0)  # the first read starts, alone
    rest = [asyncio.create_task(batcher.get(key)) for key in ("b", "c", "b", "missing")]
    await asyncio.sleep(0)
    reads.release.set()
    assert await first == "A"
    assert await asyncio.gather(*rest) == ["B", "C", "B", None]
    assert reads.batches == [["a"], ["b", "c", "missing"]]
    assert batcher.reads == 2


async def test_by_default_one_read_runs_at_a_time_and_the_next_keys_wait_for_it() -> None:
    # A read costs the process more than its wait for the database: the fewest, largest
    # batches (the device API's batchers take this default).
    reads = Reads(hold=True)
    batcher: Batcher[str, str] = Batcher(reads.fetch)
    tasks = []
    for key in "abcd":
        tasks.append(asyncio.create_task(batcher.get(key)))
        await asyncio.sleep(0)
    assert reads.batches == [["a"]]
    reads.release.set()
    assert await asyncio.gather(*tasks) == list("ABCD")
    assert reads.batches == [["a"], ["b", "c", "d"]]


async def test_no_more_reads_run_at_once_than_allowed() -> None:
    reads = Reads(hold=True)
    batcher: Batcher[str, str] = Batcher(reads.fetch, in_flight=2)
    tasks = []
    for key in "abcdef":
        tasks.append(asyncio.create_task(batcher.get(key)))
        await asyncio.sleep(0)
    assert reads.batches == [["a"], ["b"]]  # two in flight; the others wait together
    reads.release.set()
    assert await asyncio.gather(*tasks) == list("ABCDEF")
    assert sorted(key for batch in reads.batches[2:] for key in batch) == list("cdef")
    assert len(reads.batches) <= 4


async def test_a_failed_read_fails_its_own_batch_only() -> None:
    reads = Reads(hold=True, fail_on="bad")
    batcher: Batcher[str, str] = Batcher(reads.fetch, in_flight=1)
    first = asyncio.create_task(batcher.get("bad"))
    await asyncio.sleep(0)
    other = asyncio.create_task(batcher.get("good"))
    await asyncio.sleep(0)
    reads.release.set()
    with pytest.raises(RuntimeError, match="cannot read bad"):
        await first
    assert await other == "GOOD"
    assert await batcher.get("bad2") == "BAD2"


async def test_a_waiter_that_gives_up_does_not_disturb_the_others() -> None:
    reads = Reads(hold=True)
    batcher: Batcher[str, str] = Batcher(reads.fetch, in_flight=1)
    first = asyncio.create_task(batcher.get("a"))
    await asyncio.sleep(0)
    leaving = asyncio.create_task(batcher.get("b"))
    staying = asyncio.create_task(batcher.get("b"))
    await asyncio.sleep(0)
    leaving.cancel()
    reads.release.set()
    assert (await first, await staying) == ("A", "B")
    assert leaving.cancelled()


async def test_keepalives_of_devices_not_seen_lately_are_answered_each_as_alone(
    api: Api,
) -> None:
    admin = await api.organization()
    sensors = [Sensor(api.client, await admin.device(app_type="VCZ")) for _ in range(12)]
    for device in sensors:
        assert (await device.keepalive()).status_code == 200  # online
    commanded, hooked = sensors[3], sensors[7]
    asked = await admin.post(f"/api/v1/devices/{commanded.uuid}/image")
    assert asked.status_code == 200, asked.text
    created = await admin.post(
        "/api/v1/webhooks",
        params={"device_uuid": hooked.uuid},
        json={"url": "https://receiver.example/hook", "webhook_type": "keepalive"},
    )
    assert created.status_code == 201, created.text
    stranger = Sensor(api.client, {"uuid": str(uuid.uuid4()), "device_token": "vsd_" + "0" * 40})
    state = api.state
    state.device_auth._cache.clear()  # every keepalive below misses every cache
    state.commands._idle.clear()
    state.outbox._hints.clear()
    identity_reads = state.device_auth._reads.reads

    answers = await asyncio.gather(*(s.keepalive() for s in [*sensors, stranger]))

    assert [a.status_code for a in answers] == [200] * len(sensors) + [401]
    for device, answer in zip(sensors, answers, strict=False):
        commands = answer.json()["commands"]
        if device is commanded:
            assert [c["type"] for c in commands] == ["capture_image"]
        else:
            assert commands == []
    webhook = int(created.json()["data"]["id"])
    assert await deliveries(state, webhook) == 1
    # 13 devices unknown to the process, read in fewer reads than requests.
    assert state.device_auth._reads.reads - identity_reads < len(sensors) + 1
    # The webhook removed, its delivery (to a host that does not exist) goes with it:
    # no later test's dispatcher round finds it due.
    assert (await admin.delete(f"/api/v1/webhooks/{webhook}")).status_code == 204
