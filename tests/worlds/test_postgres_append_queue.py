"""The PostgreSQL World's group commit queue on its own (no database): which waiting appends
each transaction takes. In a burst, the appends that end runs go after the others (which
hold up a step's start, or a run's wake-up); they are passed over for a bounded time at
most, and a run's appends keep their order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from workflowkit.worlds._plan_state import lookups
from workflowkit.worlds.postgres._batch import DEFERRED_BATCH_LIMIT, AppendQueue
from workflowkit.worlds.postgres._jobs import AppendJob, ends_its_run
from workflowkit.worlds.records import EventType, NewEvent


@dataclass(frozen=True)
class Job:
    run_id: str
    ends: bool  # ends its run (deferrable); shown as "name." in the transactions


def ends(job: Job) -> bool:
    return job.ends


class Recorder:
    """Stands for the transactions: each call is one, and the first is held until let go."""

    def __init__(self) -> None:
        self.transactions: list[list[str]] = []
        self.gate = asyncio.Event()

    async def alone(self, job: Job) -> str:
        await self.together([job])
        return job.run_id

    async def together(self, jobs: list[Job]) -> Sequence[str]:
        self.transactions.append([f"{j.run_id}{'.' if j.ends else ''}" for j in jobs])
        await self.gate.wait()
        return [job.run_id for job in jobs]


async def burst(jobs: list[Job], defer: bool = True) -> list[list[str]]:
    """``jobs`` submitted while a first append is in flight; the transactions, in order."""
    rec = Recorder()
    queue: AppendQueue[Job, str] = AppendQueue(
        rec.alone, rec.together, deferrable=ends if defer else None
    )
    first = asyncio.ensure_future(queue.submit(Job("first", False)))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(queue.submit(job)) for job in jobs]
    await asyncio.sleep(0)
    rec.gate.set()
    assert await first == "first"
    assert await asyncio.gather(*rest) == [job.run_id for job in jobs]
    return rec.transactions[1:]


async def test_run_endings_commit_after_the_others_in_a_burst() -> None:
    jobs = [Job("end1", True), Job("wake1", False), Job("end2", True), Job("wake2", False)]
    assert await burst(jobs) == [["wake1", "wake2"], ["end1.", "end2."]]


async def test_without_deferrable_jobs_a_burst_commits_in_arrival_order() -> None:
    jobs = [Job("end1", True), Job("wake1", False), Job("end2", True), Job("wake2", False)]
    assert await burst(jobs, defer=False) == [["end1.", "wake1", "end2.", "wake2"]]


async def test_a_burst_of_one_kind_is_one_transaction() -> None:
    assert await burst([Job("a", False), Job("b", False)]) == [["a", "b"]]
    assert await burst([Job("a", True), Job("b", True)]) == [["a.", "b."]]


class Slow(Recorder):
    """Transactions of 5 ms each."""

    async def together(self, jobs: list[Job]) -> Sequence[str]:
        self.transactions.append([f"{j.run_id}{'.' if j.ends else ''}" for j in jobs])
        await asyncio.sleep(0.005)
        return [job.run_id for job in jobs]


async def test_an_append_is_passed_over_for_a_bounded_time_at_most() -> None:
    """While others keep arriving, a run's ending waits behind them only until it has waited
    the queue's ``defer_limit``; then a transaction takes it with them, in arrival order."""
    rec = Slow()
    queue: AppendQueue[Job, str] = AppendQueue(
        rec.alone, rec.together, deferrable=ends, defer_limit=0.05
    )
    loop = asyncio.get_running_loop()
    first = asyncio.ensure_future(queue.submit(Job("first", False)))
    await asyncio.sleep(0)
    since = loop.time()
    ending = asyncio.ensure_future(queue.submit(Job("end", True)))
    others = []
    for i in range(1000):  # another append every millisecond: always some waiting
        others.append(asyncio.ensure_future(queue.submit(Job(f"w{i}", False))))
        await asyncio.sleep(0.001)
        if ending.done():
            break
    waited = loop.time() - since
    assert ending.done()
    await asyncio.gather(first, *others)
    (taken,) = [batch for batch in rec.transactions if "end." in batch]
    assert 0.05 <= waited < 0.5
    assert taken[0] == "end." and len(taken) > 1  # with the others that waited behind it


async def test_run_endings_go_a_few_dozen_at_most_in_one_transaction() -> None:
    """A wake-up arriving while run endings commit waits for no more than a few dozen."""
    jobs = [Job(f"end{i}", True) for i in range(DEFERRED_BATCH_LIMIT + 8)] + [Job("w", False)]
    sizes = [len(batch) for batch in await burst(jobs)]
    assert sizes == [1, DEFERRED_BATCH_LIMIT, 8]  # the wake-up, then the endings


async def test_a_run_keeps_the_order_of_its_appends() -> None:
    """A run's append waits behind its own earlier append that was passed over."""
    jobs = [Job("r1", True), Job("r1", False), Job("r2", False)]
    assert await burst(jobs) == [["r2"], ["r1."], ["r1"]]


async def test_a_burst_whose_other_appends_all_wait_behind_their_runs_goes_in_order() -> None:
    jobs = [Job("r1", True), Job("r1", False)]
    assert await burst(jobs) == [["r1."], ["r1"]]


def test_an_append_that_ends_its_run_is_deferrable() -> None:
    def job(*kinds: EventType) -> AppendJob:
        events = [NewEvent(kind, "x") for kind in kinds]
        return AppendJob("run", events, "me", lookups(events))

    assert ends_its_run(job(EventType.STEP_COMPLETED, EventType.RUN_COMPLETED))
    assert ends_its_run(job(EventType.STEP_FAILED, EventType.RUN_FAILED))
    assert ends_its_run(job(EventType.RUN_CANCELLED))
    assert not ends_its_run(job(EventType.WAIT_COMPLETED, EventType.STEP_STARTED))
    assert not ends_its_run(job(EventType.STEP_COMPLETED, EventType.STEP_STARTED))
    assert not ends_its_run(job(EventType.WAIT_CREATED))
