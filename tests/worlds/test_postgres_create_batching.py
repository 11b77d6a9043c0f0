"""Group commit of ``create_run`` in the PostgreSQL World: runs created while another
creation is in flight are created together, and each call still gets exactly what it would
have got alone (a new run, or the one its id already names).

To make a batch certain rather than likely, the tests hold the lock on one run id from a
connection of their own (the advisory lock ``create_run`` takes): the creation of that id
goes first and waits in its transaction, the creations made meanwhile queue behind it, and
releasing the lock lets them go as one batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import psycopg
import pytest

from workflowkit.ids import new_id
from workflowkit.worlds.postgres import PostgresWorld
from workflowkit.worlds.postgres._creates import CreateJob
from workflowkit.worlds.records import CreatedRun, EventType, RunChange, RunStatus


@dataclass
class Setup:
    world: PostgresWorld
    url: str
    batches: list[int]  # the size of each batch created together, in order


@pytest.fixture
async def s(pg_url: str, pg_schema: str) -> AsyncIterator[Setup]:
    world = PostgresWorld(pg_url, schema=pg_schema)
    batches: list[int] = []
    together = world._create_together

    async def counted(jobs: list[CreateJob]) -> Sequence[CreatedRun | BaseException]:
        batches.append(len(jobs))
        return await together(jobs)

    world._creates._together = counted
    yield Setup(world, pg_url, batches)
    await world.close()


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def batched(s: Setup, run_ids: Sequence[str]) -> list[CreatedRun]:
    """Create ``run_ids`` (input: the id) behind one blocked creation, all at once."""
    blocker = new_id("wrun")
    lock = "SELECT {}(hashtext(%s), hashtext(%s))"
    async with await psycopg.AsyncConnection.connect(s.url, autocommit=True) as conn:
        await conn.execute(lock.format("pg_advisory_lock"), (s.world.channel, blocker))
        first = asyncio.ensure_future(s.world.create_run(blocker, "wf", b"", {}))
        await _until(lambda: s.world._creates._busy)
        tasks = [
            asyncio.ensure_future(s.world.create_run(run_id, "wf", run_id.encode(), {}))
            for run_id in run_ids
        ]
        await _until(lambda: len(s.world._creates._waiting) == len(run_ids))
        await conn.execute(lock.format("pg_advisory_unlock"), (s.world.channel, blocker))
        assert (await first).created
    return list(await asyncio.gather(*tasks))


async def test_runs_created_at_once_are_created_together_each_as_alone(s: Setup) -> None:
    existing = new_id("wrun")
    before = await s.world.create_run(existing, "wf", b"first", {})
    fresh = [new_id("wrun") for _ in range(30)]
    twice = new_id("wrun")
    heard: list[RunChange] = []
    s.world.subscribe(heard.extend)

    results = await batched(s, [*fresh, existing, twice, twice])

    # At most one call per run id in a batch: the second ``twice`` goes next, alone.
    assert s.batches == [32]
    *news, again, one, other = results
    for run_id, created in zip(fresh, news, strict=True):
        assert created.created and created.record.run_id == run_id
        assert created.record.status is RunStatus.PENDING
        assert created.record.input == run_id.encode()
        events = await s.world.get_events(run_id)
        assert [(e.seq, e.type, e.payload) for e in events] == [
            (1, EventType.RUN_CREATED, run_id.encode())
        ]
    # An id that exists: the run it names, nothing written.
    assert not again.created and again.record.input == b"first"
    assert again.record.created_at == before.record.created_at
    assert len(await s.world.get_events(existing)) == 1
    # One id twice: one call creates it, the other finds it.
    assert sorted([one.created, other.created]) == [False, True]
    assert one.record.run_id == other.record.run_id == twice
    assert len(await s.world.get_events(twice)) == 1
    # Local listeners hear of each new run once, as they would alone.
    new_runs = [c.run_id for c in heard if c.run_id in {*fresh, twice}]
    assert sorted(new_runs) == sorted([*fresh, twice])


@pytest.mark.parametrize("when", ["after", "before"])
async def test_lost_commit_of_a_batch_of_creations_is_neither_lost_nor_doubled(
    s: Setup, flaky_commit: Callable[[str], None], when: str
) -> None:
    fresh = [new_id("wrun") for _ in range(5)]
    # The lone creation's COMMIT goes through; the batch's is lost.
    flaky_commit("through")
    flaky_commit(when)

    results = await batched(s, fresh)

    assert s.batches == [5]
    for run_id, created in zip(fresh, results, strict=True):
        # Created by this call, whether the lost COMMIT had landed (found) or not (retried).
        assert created.created and created.record.run_id == run_id
        events = await s.world.get_events(run_id)
        assert [(e.seq, e.type) for e in events] == [(1, EventType.RUN_CREATED)]
    assert len(await s.world.list_runs(limit=100)) == len(fresh) + 1
