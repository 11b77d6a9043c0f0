"""Group commit in the PostgreSQL World: appends of step and wait events that arrive while
another is in flight are committed together, and each still gets exactly what it would
have got alone.

To make a batch certain rather than likely, the tests hold the row lock of one run from a
connection of their own: an append to that run goes first and waits in its transaction, the
appends made meanwhile queue behind it, and releasing the lock lets them go as one batch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql

from workflowkit.errors import LeaseLostError, WorkflowRunNotFoundError
from workflowkit.ids import new_id
from workflowkit.worlds.postgres import PostgresWorld
from workflowkit.worlds.postgres import _jobs as pg_jobs
from workflowkit.worlds.postgres._jobs import AppendJob
from workflowkit.worlds.records import (
    MOVED,
    AppendAfter,
    AppendResult,
    EventType,
    NewEvent,
    RunChange,
    StepStatus,
    WorkerInfo,
)

Append = tuple[str, Sequence[NewEvent], str | None]
Appends = Sequence[Append | tuple[str, Sequence[NewEvent], str | None, AppendAfter]]


@dataclass
class Setup:
    world: PostgresWorld
    url: str
    schema: str
    me: WorkerInfo
    batches: list[int]  # the size of each batch committed together, in order


@pytest.fixture
async def s(pg_url: str, pg_schema: str) -> AsyncIterator[Setup]:
    world = PostgresWorld(pg_url, schema=pg_schema)
    batches: list[int] = []
    together = world._append_together

    async def counted(jobs: list[AppendJob]) -> Sequence[AppendResult | BaseException]:
        batches.append(len(jobs))
        return await together(jobs)

    world._appends._together = counted
    me = WorkerInfo(new_id("wrkr"), socket.gethostname(), os.getpid())
    await world.register_worker(me)
    yield Setup(world, pg_url, pg_schema, me, batches)
    await world.close()


def created_and_started(step_id: str) -> list[NewEvent]:
    return [
        NewEvent(EventType.STEP_CREATED, step_id, b"in", {"name": "s"}),
        NewEvent(EventType.STEP_STARTED, step_id, None, {"attempt": 1}),
    ]


def completed_then_next(done: str, following: str) -> list[NewEvent]:
    return [NewEvent(EventType.STEP_COMPLETED, done, b"out"), *created_and_started(following)]


async def running_runs(s: Setup, count: int) -> list[tuple[str, str]]:
    """``count`` runs held by ``s.me``, each running one step; (run id, step id) each."""
    runs = [(new_id("wrun"), new_id("step")) for _ in range(count)]
    for run_id, _ in runs:
        await s.world.create_run(run_id, "wf", b"", {})
    held: set[str] = set()
    while len(held) < count:
        held |= {
            r.run_id for r in await s.world.claim_runs(s.me, ["wf"], limit=count, lease_seconds=60)
        }
    for run_id, step_id in runs:
        await s.world.append(
            run_id,
            [NewEvent(EventType.RUN_STARTED), *created_and_started(step_id)],
            owner=s.me.worker_id,
        )
    return runs


async def batched(s: Setup, appends: Appends) -> list[AppendResult | BaseException]:
    """Make ``appends`` (each with its ``after`` if it has one) wait behind one blocked
    append, then let them go together.

    The blocker is an append to a run of its own whose row lock a separate connection holds.
    """
    ((blocker, step_id),) = await running_runs(s, 1)
    async with await psycopg.AsyncConnection.connect(s.url) as conn:
        table = sql.Identifier(s.schema, "runs")
        await conn.execute(
            sql.SQL("SELECT 1 FROM {} WHERE run_id = %s FOR UPDATE").format(table), (blocker,)
        )
        first = asyncio.ensure_future(
            s.world.append(blocker, completed_then_next(step_id, new_id("step")))
        )
        await _until(lambda: s.world._appends._busy)
        tasks = [
            asyncio.ensure_future(
                s.world.append(append[0], append[1], owner=append[2], after=append[3])
                if len(append) == 4
                else s.world.append(append[0], append[1], owner=append[2])
            )
            for append in appends
        ]
        await _until(lambda: len(s.world._appends._waiting) == len(appends))
        await conn.commit()
    assert not (await first).rejected
    return list(await asyncio.gather(*tasks, return_exceptions=True))


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


def ok(outcome: AppendResult | BaseException) -> AppendResult:
    assert isinstance(outcome, AppendResult), outcome
    return outcome


async def assert_log(world: PostgresWorld, run_id: str, kinds: Sequence[EventType]) -> None:
    events = await world.get_events(run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.type for e in events] == list(kinds)


OPENING = [
    EventType.RUN_CREATED,
    EventType.RUN_STARTED,
    EventType.STEP_CREATED,
    EventType.STEP_STARTED,
]
NEXT_STEP = [EventType.STEP_COMPLETED, EventType.STEP_CREATED, EventType.STEP_STARTED]


async def test_many_appends_from_one_world_commit_together_each_as_alone(s: Setup) -> None:
    runs = await running_runs(s, 40)
    heard: list[RunChange] = []
    s.world.subscribe(heard.extend)
    following = {run_id: new_id("step") for run_id, _ in runs}
    outcomes = await batched(
        s,
        [
            (run_id, completed_then_next(step_id, following[run_id]), s.me.worker_id)
            for run_id, step_id in runs
        ],
    )
    assert s.batches == [40]
    for (run_id, step_id), outcome in zip(runs, outcomes, strict=True):
        result = ok(outcome)
        assert [e.seq for e in result.events] == [5, 6, 7] and not result.rejected
        assert {e.run_id for e in result.events} == {run_id}
        await assert_log(s.world, run_id, [*OPENING, *NEXT_STEP])
        stored = await s.world.get_events(run_id, after_seq=4)
        assert [e.event_id for e in stored] == [e.event_id for e in result.events]
        steps = {st.step_id: st for st in await s.world.list_steps(run_id)}
        assert steps[step_id].status is StepStatus.COMPLETED and steps[step_id].output == b"out"
        # The batch's new step rows go in one statement: each row has its own values.
        created = steps[following[run_id]]
        assert created.status is StepStatus.RUNNING and created.attempt == 1
        assert created.step_name == "s" and created.input == b"in"
        assert created.started_at is not None and created.started_at >= created.created_at
    # Local listeners hear of each append as they would alone: its run, its last seq, its writer.
    mine = {c.run_id: c for c in heard if c.run_id in following}
    assert len(mine) == len(runs)
    assert all(c.last_seq == 7 and c.writer == s.me.worker_id for c in mine.values())


async def test_appends_without_an_owner_in_a_batch_wake_the_run_and_notify(
    s: Setup, pg_url: str, pg_schema: str
) -> None:
    runs = await running_runs(s, 5)
    other = PostgresWorld(pg_url, schema=pg_schema)
    try:
        heard: list[RunChange] = []
        other.subscribe(heard.extend)
        await asyncio.sleep(0.2)  # the other World's LISTEN is open
        outcomes = await batched(
            s,
            [
                (run_id, [NewEvent(EventType.STEP_COMPLETED, step_id, b"out")], None)
                for run_id, step_id in runs
            ],
        )
        assert s.batches == [5]
        assert all(ok(o).events[0].seq == 5 for o in outcomes)
        ids = {run_id for run_id, _ in runs}
        await _until(lambda: ids <= {c.run_id for c in heard})
        assert all(c.writer is None and c.last_seq == 5 for c in heard if c.run_id in ids)
        for run_id, _ in runs:
            record = await s.world.get_run(run_id)
            # A delivery without an owner makes the run due (as a lone append would).
            assert record is not None and record.wake_at is not None
    finally:
        await other.close()


async def test_a_burst_commits_the_run_endings_last(s: Setup) -> None:
    """Runs that end and runs whose next step starts, queued together: the step starts
    commit in a transaction of their own, before the endings (3 then 5), and each run's
    log is what it would be alone."""
    runs = await running_runs(s, 8)
    starting, ending = runs[:3], runs[3:]
    following = {run_id: new_id("step") for run_id, _ in starting}
    appends: list[Append] = [
        (
            run_id,
            [
                NewEvent(EventType.STEP_COMPLETED, step_id, b"out"),
                NewEvent(EventType.RUN_COMPLETED, None, b"done"),
            ],
            s.me.worker_id,
        )
        for run_id, step_id in ending
    ]
    appends[1:1] = [  # arriving among the endings
        (run_id, completed_then_next(step_id, following[run_id]), s.me.worker_id)
        for run_id, step_id in starting
    ]
    outcomes = await batched(s, appends)
    assert s.batches == [3, 5]
    assert all(not ok(o).rejected for o in outcomes)
    for run_id, _ in starting:
        await assert_log(s.world, run_id, [*OPENING, *NEXT_STEP])
    for run_id, _ in ending:
        await assert_log(
            s.world, run_id, [*OPENING, EventType.STEP_COMPLETED, EventType.RUN_COMPLETED]
        )


async def test_a_failing_job_fails_alone(s: Setup) -> None:
    runs = await running_runs(s, 6)
    (lost_run, lost_step), (done_run, done_step), *fine = runs
    missing = new_id("wrun")
    stranger = new_id("wrkr")
    following = {run_id: new_id("step") for run_id, _ in fine}
    never = new_id("step")
    outcomes = await batched(
        s,
        [
            (lost_run, completed_then_next(lost_step, new_id("step")), stranger),
            (missing, created_and_started(new_id("step")), s.me.worker_id),
            # Completing a step that does not exist, or one twice: refused events.
            (
                done_run,
                [
                    NewEvent(EventType.STEP_COMPLETED, never, b"x"),
                    NewEvent(EventType.STEP_COMPLETED, done_step, b"out"),
                    NewEvent(EventType.STEP_COMPLETED, done_step, b"again"),
                    NewEvent(EventType.STEP_STARTED, done_step, None, {"attempt": 2}),
                ],
                s.me.worker_id,
            ),
            *(
                (run_id, completed_then_next(step_id, following[run_id]), s.me.worker_id)
                for run_id, step_id in fine
            ),
        ],
    )
    assert s.batches == [len(runs) + 1]
    lost, gone, partly, *good = outcomes
    assert isinstance(lost, LeaseLostError) and lost.run_id == lost_run
    assert isinstance(gone, WorkflowRunNotFoundError)
    refused = ok(partly)
    assert [r.reason for r in refused.rejected] == [
        f"step {never} does not exist",
        f"step {done_step} is completed, cannot apply step_completed",
        f"step {done_step} is completed, cannot apply step_started",
    ]
    assert [(e.seq, e.type) for e in refused.events] == [(5, EventType.STEP_COMPLETED)]
    await assert_log(s.world, lost_run, OPENING)
    await assert_log(s.world, done_run, [*OPENING, EventType.STEP_COMPLETED])
    for (run_id, _), outcome in zip(fine, good, strict=True):
        assert [e.seq for e in ok(outcome).events] == [5, 6, 7]
        await assert_log(s.world, run_id, [*OPENING, *NEXT_STEP])


async def test_a_statement_failing_for_one_job_falls_back_to_each_alone(
    s: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    runs = await running_runs(s, 5)
    (bad_run, bad_step), *fine = runs
    # A step name PostgreSQL cannot store (its text holds no NUL): the statement fails,
    # which aborts the whole transaction.
    far = NewEvent(EventType.STEP_CREATED, new_id("step"), b"in", {"name": "bad\x00name"})
    caplog.set_level(logging.WARNING, "workflowkit.postgres")
    outcomes = await batched(
        s,
        [
            (bad_run, [NewEvent(EventType.STEP_COMPLETED, bad_step, b"out"), far], s.me.worker_id),
            *(
                (run_id, completed_then_next(step_id, new_id("step")), s.me.worker_id)
                for run_id, step_id in fine
            ),
        ],
    )
    assert s.batches == [5]
    assert "appends failed" in caplog.text
    bad, *good = outcomes
    assert isinstance(bad, psycopg.DataError)
    await assert_log(s.world, bad_run, OPENING)
    for (run_id, _), outcome in zip(fine, good, strict=True):
        assert [e.seq for e in ok(outcome).events] == [5, 6, 7]
        await assert_log(s.world, run_id, [*OPENING, *NEXT_STEP])


async def test_appends_to_one_run_from_one_world_stay_in_order(s: Setup) -> None:
    (run_id, first_step), (other_run, other_step) = await running_runs(s, 2)
    steps = [new_id("step") for _ in range(12)]
    outcomes = await batched(
        s,
        [
            *((run_id, created_and_started(step), s.me.worker_id) for step in steps),
            (other_run, completed_then_next(other_step, new_id("step")), s.me.worker_id),
        ],
    )
    # One append per run per batch: the first batch took the first append of each run; the
    # run's others went one by one, each alone.
    assert s.batches == [2]
    assert [[e.seq for e in ok(o).events] for o in outcomes[:12]] == [
        [5 + 2 * i, 6 + 2 * i] for i in range(12)
    ]
    events = await s.world.get_events(run_id)
    assert [e.seq for e in events] == list(range(1, 4 + 2 * 12 + 1))
    # In the order they were made.
    created = [e.correlation_id for e in events if e.type is EventType.STEP_CREATED]
    assert created == [first_step, *steps]
    await assert_log(s.world, other_run, [*OPENING, *NEXT_STEP])


async def test_concurrent_appends_to_one_run_without_a_blocker_lose_nothing(s: Setup) -> None:
    (run_id, _), *others = await running_runs(s, 4)
    steps = [new_id("step") for _ in range(40)]
    await asyncio.gather(
        *(
            s.world.append(run_id, created_and_started(step), owner=s.me.worker_id)
            for step in steps
        ),
        *(
            s.world.append(other, created_and_started(new_id("step")), owner=s.me.worker_id)
            for other, _ in others
            for _ in range(10)
        ),
    )
    events = await s.world.get_events(run_id)
    assert [e.seq for e in events] == list(range(1, 4 + 80 + 1))
    started = {e.correlation_id for e in events if e.type is EventType.STEP_STARTED}
    assert set(steps) <= started
    for other, _ in others:
        assert [e.seq for e in await s.world.get_events(other)] == list(range(1, 4 + 20 + 1))


@pytest.mark.parametrize("when", ["after", "before"])
async def test_lost_commit_of_a_batch_is_neither_lost_nor_doubled(
    s: Setup, flaky_commit: Callable[[str], None], when: str
) -> None:
    runs = await running_runs(s, 4)
    (blocker, step_id), *rest = runs
    # The lone append's COMMIT goes through; the batch's is lost.
    flaky_commit("through")
    flaky_commit(when)
    async with await psycopg.AsyncConnection.connect(s.url) as conn:
        await conn.execute(
            sql.SQL("SELECT 1 FROM {} WHERE run_id = %s FOR UPDATE").format(
                sql.Identifier(s.schema, "runs")
            ),
            (blocker,),
        )
        first = asyncio.ensure_future(
            s.world.append(blocker, completed_then_next(step_id, new_id("step")))
        )
        await _until(lambda: s.world._appends._busy)
        tasks = [
            asyncio.ensure_future(
                s.world.append(
                    run_id, completed_then_next(step, new_id("step")), owner=s.me.worker_id
                )
            )
            for run_id, step in rest
        ]
        await _until(lambda: len(s.world._appends._waiting) == len(rest))
        await conn.commit()
        await first
    results = [ok(r) for r in await asyncio.gather(*tasks)]
    assert s.batches == [3]
    for (run_id, _), result in zip(rest, results, strict=True):
        assert [e.seq for e in result.events] == [5, 6, 7]
        await assert_log(s.world, run_id, [*OPENING, *NEXT_STEP])
        stored = await s.world.get_events(run_id, after_seq=4)
        assert [e.event_id for e in stored] == [e.event_id for e in result.events]


async def test_writes_to_one_row_keep_their_order_within_a_batch(
    s: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    """One job only starts a step; the next creates, starts, retries, restarts and completes
    another in one append. Written statement kind by statement kind, that second step
    would be started before it exists; the batch must not need the one-by-one fallback."""
    (started_run, _), (busy_run, _) = await running_runs(s, 2)
    pending = new_id("step")
    await s.world.append(
        started_run,
        [NewEvent(EventType.STEP_CREATED, pending, b"in", {"name": "s"})],
        owner=s.me.worker_id,
    )
    whole = new_id("step")
    caplog.set_level(logging.WARNING, "workflowkit.postgres")
    outcomes = await batched(
        s,
        [
            (started_run, [NewEvent(EventType.STEP_STARTED, pending, None, {"attempt": 1})], None),
            (
                busy_run,
                [
                    *created_and_started(whole),
                    NewEvent(EventType.STEP_RETRYING, whole, b"err", {"retry_at": time.time()}),
                    NewEvent(EventType.STEP_STARTED, whole, None, {"attempt": 2}),
                    NewEvent(EventType.STEP_COMPLETED, whole, b"out"),
                ],
                s.me.worker_id,
            ),
        ],
    )
    assert s.batches == [2] and "appends failed" not in caplog.text
    assert [len(ok(o).events) for o in outcomes] == [1, 5]
    steps = {st.step_id: st for st in await s.world.list_steps(busy_run)}
    assert steps[whole].status is StepStatus.COMPLETED and steps[whole].attempt == 2
    started = {st.step_id: st for st in await s.world.list_steps(started_run)}
    assert started[pending].status is StepStatus.RUNNING


async def _blocked_by(conn: psycopg.AsyncConnection[Any], pid: int) -> set[int]:
    cur = await conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", (pid,)
    )
    return {row[0] for row in await cur.fetchall()}


async def test_lease_renewal_and_a_batch_lock_runs_in_the_same_order(
    s: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch waits halfway through its runs; the worker renews its leases meanwhile.

    The runs rows are laid out in descending run_id order, the order a scan of ``WHERE
    owner = ...`` finds them in. Renewing in that order would lock the upper half, then
    wait for the batch, which waits for the upper half: a deadlock, found only after
    deadlock_timeout (1 s) and then retried.
    """
    runs = sorted((new_id("wrun"), new_id("step")) for _ in range(10))
    for run_id, _ in runs:
        await s.world.create_run(run_id, "wf", b"", {})
    held: set[str] = set()
    while len(held) < len(runs):
        held |= {
            r.run_id for r in await s.world.claim_runs(s.me, ["wf"], limit=20, lease_seconds=60)
        }
    for run_id, step_id in reversed(runs):  # the last update decides where a row lies
        await s.world.append(
            run_id,
            [NewEvent(EventType.RUN_STARTED), *created_and_started(step_id)],
            owner=s.me.worker_id,
        )
    middle = runs[len(runs) // 2][0]
    caplog.set_level(logging.WARNING, "workflowkit.postgres")
    table = sql.Identifier(s.schema, "runs")
    lock = sql.SQL("SELECT 1 FROM {} WHERE run_id = %s FOR UPDATE").format(table)
    async with (
        await psycopg.AsyncConnection.connect(s.url) as holder,
        await psycopg.AsyncConnection.connect(s.url, autocommit=True) as watcher,
    ):
        await holder.execute(lock, (middle,))
        appends = [
            (run_id, completed_then_next(step_id, new_id("step")), s.me.worker_id)
            for run_id, step_id in runs
        ]
        batch = asyncio.ensure_future(batched(s, appends))
        ext = holder.info.backend_pid
        deadline = time.monotonic() + 5
        while not await _blocked_by(watcher, ext):  # the batch waits for the middle run
            assert time.monotonic() < deadline, "the batch never reached the middle run"
            await asyncio.sleep(0.01)
        (batch_pid,) = await _blocked_by(watcher, ext)
        held_runs = [run_id for run_id, _ in runs]
        renewal = asyncio.ensure_future(s.world.renew_leases(s.me.worker_id, held_runs, [], 60))
        while not (await _blocked_by(watcher, batch_pid) | await _blocked_by(watcher, ext)) - {
            batch_pid
        }:
            assert time.monotonic() < deadline, "the renewal never waited"
            await asyncio.sleep(0.01)
        await holder.commit()
    outcomes = await asyncio.wait_for(batch, 10)
    await asyncio.wait_for(renewal, 10)
    assert "deadlock" not in caplog.text
    assert s.batches == [len(runs)]
    assert all([e.seq for e in ok(o).events] == [5, 6, 7] for o in outcomes)


# -- decided on presumed rows ------------------------------------------------------------------


def wake_then_step(wait_id: str, step_id: str) -> list[NewEvent]:
    return [NewEvent(EventType.WAIT_COMPLETED, wait_id), *created_and_started(step_id)]


async def sleeping_runs(s: Setup, count: int) -> list[tuple[str, str]]:
    """``count`` runs held by ``s.me`` whose step has ended and who now sleep (their log
    ends at seq 6); (run id, wait id) each."""
    asleep = []
    for run_id, step_id in await running_runs(s, count):
        wait_id = new_id("wait")
        await s.world.append(
            run_id,
            [
                NewEvent(EventType.STEP_COMPLETED, step_id, b"out"),
                NewEvent(EventType.WAIT_CREATED, wait_id, None, {"resume_at": time.time()}),
            ],
            owner=s.me.worker_id,
            after=AppendAfter(4, facts=1),
        )
        asleep.append((run_id, wait_id))
    return asleep


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The runs whose rows appends read before deciding."""
    found: list[str] = []
    read_states = pg_jobs.read_states

    async def counted(conn: Any, jobs: Sequence[AppendJob], *args: Any, **kwargs: Any) -> Any:
        found.extend(job.run_id for job in jobs)
        return await read_states(conn, jobs, *args, **kwargs)

    monkeypatch.setattr(pg_jobs, "read_states", counted)
    return found


WOKEN = [
    *OPENING,
    EventType.STEP_COMPLETED,
    EventType.WAIT_CREATED,
    EventType.WAIT_COMPLETED,
    EventType.STEP_CREATED,
    EventType.STEP_STARTED,
]


async def woken_together(
    s: Setup, runs: Sequence[tuple[str, str]]
) -> tuple[dict[str, str], list[AppendResult | BaseException]]:
    """Each of ``sleeping_runs`` woken by its owner, in one batch: the step each starts next,
    and the outcomes."""
    following = {run_id: new_id("step") for run_id, _ in runs}
    outcomes = await batched(
        s,
        [
            (run_id, wake_then_step(wait_id, following[run_id]), s.me.worker_id, AppendAfter(6, 1))
            for run_id, wait_id in runs
        ],
    )
    return following, outcomes


async def test_a_batch_of_owners_wake_ups_is_decided_unread(s: Setup, reads: list[str]) -> None:
    """A burst of sleeps coming due: each owner's wake-up is decided on its run as the owner
    knows it and the rows as its events expect them, checked under the runs' locks in the
    pipeline that commits: no read, and the outcome of reading."""
    runs = await sleeping_runs(s, 6)
    reads.clear()
    following, outcomes = await woken_together(s, runs)
    assert s.batches == [6]
    assert [run_id for run_id in reads if run_id in following] == []
    for (run_id, wait_id), outcome in zip(runs, outcomes, strict=True):
        assert [e.seq for e in ok(outcome).events] == [7, 8, 9] and not ok(outcome).rejected
        await assert_log(s.world, run_id, WOKEN)
        (wait,) = await s.world.list_waits(run_id)
        assert wait.wait_id == wait_id and wait.completed_at is not None
        steps = {st.step_id: st.status for st in await s.world.list_steps(run_id)}
        assert steps[following[run_id]] is StepStatus.RUNNING


@pytest.mark.parametrize("miss", ["stale log", "wait already completed"])
async def test_a_presumption_missed_in_a_batch_decides_it_again_from_the_rows(
    s: Setup, reads: list[str], miss: str
) -> None:
    """One run not as its owner presumed (its log moved on, or its wait completed by someone
    else): the batch writes nothing, is read and decided again, and each append gets what it
    would have got alone."""
    runs = await sleeping_runs(s, 5)
    (odd_run, odd_wait), *fine = runs
    if miss == "stale log":
        later = NewEvent(EventType.WAIT_CREATED, new_id("wait"), None, {"resume_at": time.time()})
        await s.world.append(odd_run, [later], owner=s.me.worker_id)
    else:
        await s.world.append(odd_run, [NewEvent(EventType.WAIT_COMPLETED, odd_wait)])
    reads.clear()
    following, outcomes = await woken_together(s, runs)
    assert s.batches == [5]
    assert sorted(run_id for run_id in reads if run_id in following) == sorted(following)
    odd, *good = outcomes
    if miss == "stale log":
        # The wake-up itself is a fact; what the code decided after it is refused.
        assert [e.type for e in ok(odd).events] == [EventType.WAIT_COMPLETED]
        assert {r.reason for r in ok(odd).rejected} == {MOVED}
    else:
        assert not ok(odd).events
        assert ok(odd).rejected[0].reason == f"wait {odd_wait} is not waiting"
    for (run_id, _), outcome in zip(fine, good, strict=True):
        assert [e.seq for e in ok(outcome).events] == [7, 8, 9]
        await assert_log(s.world, run_id, WOKEN)
