"""What only the PostgreSQL World promises: URLs and schemas, migrations, several processes
(simulated by several Worlds, each with its own pool) sharing one database, LISTEN/NOTIFY,
and retries that never double a write."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg import sql

from workflowkit.errors import CorruptDataError, HookNotFoundError
from workflowkit.ids import new_id
from workflowkit.worlds import open_world
from workflowkit.worlds.base import on_home_loop
from workflowkit.worlds.postgres import PostgresWorld, parse_url
from workflowkit.worlds.postgres import _jobs as pg_jobs
from workflowkit.worlds.postgres._feed import TOLD_LIMIT
from workflowkit.worlds.records import (
    MOVED,
    AppendAfter,
    Divergence,
    EventType,
    NewEvent,
    RunChange,
    RunStatus,
    StepStatus,
    WorkerInfo,
)


def worker(name: str) -> WorkerInfo:
    return WorkerInfo(new_id("wrkr") + name, socket.gethostname(), os.getpid())


@pytest.fixture
async def pg_world(pg_url: str, pg_schema: str) -> AsyncIterator[PostgresWorld]:
    """One World on a fresh schema."""
    world = PostgresWorld(pg_url, schema=pg_schema)
    yield world
    await world.close()


@pytest.fixture
async def pair(pg_url: str, pg_schema: str) -> AsyncIterator[tuple[PostgresWorld, PostgresWorld]]:
    """Two Worlds on one schema, as two processes would have."""
    first = PostgresWorld(pg_url, schema=pg_schema)
    second = PostgresWorld(pg_url, schema=pg_schema)
    yield first, second
    await first.close()
    await second.close()


def test_url_forms() -> None:
    assert parse_url("postgresql://u@h:5432/db") == ("postgresql://u@h:5432/db", "workflowkit")
    assert parse_url("postgres://u@h/db?schema=abc&sslmode=disable") == (
        "postgresql://u@h/db?sslmode=disable",
        "abc",
    )
    assert parse_url("postgresql://h/db?schema=abc", schema="xyz")[1] == "xyz"
    with pytest.raises(ValueError, match="invalid schema name"):
        parse_url("postgresql://h/db?schema=Robert');DROP")


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
async def test_open_world_selects_postgres(scheme: str, pg_url: str, pg_schema: str) -> None:
    url = pg_url.replace("postgresql://", f"{scheme}://", 1) + f"?schema={pg_schema}"
    world = open_world(url)
    try:
        assert isinstance(world, PostgresWorld) and world.schema == pg_schema
        run_id = new_id("wrun")
        await world.create_run(run_id, "wf", b"\x00\xff binary \x00", {})
        record = await world.get_run(run_id)
        assert record is not None and record.input == b"\x00\xff binary \x00"
    finally:
        await world.close()


def _query(url: str, query: sql.Composable, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


async def test_migrations_are_versioned_and_run_once(pg_url: str, pg_schema: str) -> None:
    await PostgresWorld(pg_url, schema=pg_schema).close()
    await PostgresWorld(pg_url, schema=pg_schema).close()  # a second start changes nothing
    table = sql.Identifier(pg_schema, "migrations")
    rows = _query(pg_url, sql.SQL("SELECT version FROM {} ORDER BY version").format(table))
    assert [r[0] for r in rows] == list(range(1, PostgresWorld.schema_version + 1))
    _query(pg_url, sql.SQL("INSERT INTO {} (version, name) VALUES (999, 'future')").format(table))
    with pytest.raises(CorruptDataError, match="upgrade workflowkit"):
        PostgresWorld(pg_url, schema=pg_schema)


async def test_two_worlds_claim_each_run_exactly_once(
    pair: tuple[PostgresWorld, PostgresWorld],
) -> None:
    first, second = pair
    runs = {new_id("wrun") for _ in range(120)}
    await asyncio.gather(*(first.create_run(r, "wf", b"", {}) for r in runs))
    claimers = [(world, worker(f"w{i}")) for i in range(3) for world in (first, second)]
    for world, info in claimers:
        await world.register_worker(info)
    claimed: dict[str, list[str]] = {}

    async def claim_until_empty(world: PostgresWorld, info: WorkerInfo) -> None:
        while True:
            got = await world.claim_runs(info, ["wf"], limit=7, lease_seconds=60)
            if not got:
                return
            for record in got:
                assert record.owner == info.worker_id
                claimed.setdefault(record.run_id, []).append(info.worker_id)

    await asyncio.gather(*(claim_until_empty(w, i) for w, i in claimers))
    assert set(claimed) == runs
    assert all(len(owners) == 1 for owners in claimed.values())
    # Both Worlds took part (each has its own pool, as separate processes would).
    owners = {owner for owners in claimed.values() for owner in owners}
    assert len(owners) > 1


async def test_two_worlds_appending_to_one_run_keep_seq_contiguous(
    pair: tuple[PostgresWorld, PostgresWorld],
) -> None:
    first, second = pair
    run_id = new_id("wrun")
    await first.create_run(run_id, "wf", b"", {})
    await second.append(run_id, [NewEvent(EventType.RUN_STARTED)])

    async def many(world: PostgresWorld) -> None:
        for _ in range(15):
            step = NewEvent(EventType.STEP_CREATED, new_id("step"), b"x", {"name": "s"})
            await world.append(
                run_id, [step, NewEvent(EventType.STEP_STARTED, step.correlation_id)]
            )

    await asyncio.gather(*(many(w) for w in (first, second, first, second)))
    seqs = [e.seq for e in await first.get_events(run_id)]
    assert seqs == list(range(1, 3 + 4 * 15 * 2))


async def test_same_token_from_two_worlds_one_wins(
    pair: tuple[PostgresWorld, PostgresWorld],
) -> None:
    first, second = pair
    runs = [new_id("wrun") for _ in range(10)]
    for run_id in runs:
        await first.create_run(run_id, "wf", b"", {})
    results = await asyncio.gather(
        *(
            (first if i % 2 else second).append(
                run_id,
                [
                    NewEvent(EventType.RUN_STARTED),
                    NewEvent(EventType.HOOK_CREATED, new_id("hook"), None, {"token": "shared"}),
                ],
            )
            for i, run_id in enumerate(runs)
        )
    )
    kinds = [r.events[-1].type for r in results]
    assert kinds.count(EventType.HOOK_CREATED) == 1
    assert kinds.count(EventType.HOOK_CONFLICT) == len(runs) - 1
    holder = runs[kinds.index(EventType.HOOK_CREATED)]
    assert all(
        r.events[-1].attrs["holder_run_id"] == holder
        for r in results
        if r.events[-1].type is EventType.HOOK_CONFLICT
    )


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_other_worlds_hear_changes_through_notify(
    pair: tuple[PostgresWorld, PostgresWorld],
) -> None:
    first, second = pair
    heard_here: list[RunChange] = []
    heard_there: list[RunChange] = []
    first.subscribe(heard_here.extend)
    second.subscribe(heard_there.extend)
    await asyncio.sleep(0.3)  # let both LISTEN connections come up
    run_id = new_id("wrun")
    await first.create_run(run_id, "wf", b"", {})
    await first.append(run_id, [NewEvent(EventType.RUN_STARTED)], owner=None)
    someone = worker("someone")
    await first.register_worker(someone)
    assert await first.claim_runs(someone, ["wf"], limit=1, lease_seconds=30)
    await first.append(run_id, [NewEvent(EventType.RUN_CANCELLED)], owner=someone.worker_id)
    await _until(lambda: len([c for c in heard_there if c.run_id == run_id]) >= 3)
    there = [c for c in heard_there if c.run_id == run_id]
    assert [(c.last_seq, c.status) for c in there] == [
        (1, RunStatus.PENDING),
        (2, RunStatus.RUNNING),
        (3, RunStatus.CANCELLED),
    ]
    assert there[-1].writer == someone.worker_id
    await asyncio.sleep(0.2)
    # The writing World heard each of its own changes once (directly, not again via NOTIFY).
    assert [c.last_seq for c in heard_here if c.run_id == run_id] == [1, 2, 3]


async def test_an_owners_start_and_steps_are_not_told_to_other_worlds_its_end_is(
    pair: tuple[PostgresWorld, PostgresWorld],
) -> None:
    """No other process waits on a run's start or its steps while its owner drives it, and
    every worker would wake up to hear them: only the owner's World hears those; the run's
    end reaches everyone."""
    first, second = pair
    heard_here: list[RunChange] = []
    heard_there: list[RunChange] = []
    first.subscribe(heard_here.extend)
    second.subscribe(heard_there.extend)
    await asyncio.sleep(0.3)  # let both LISTEN connections come up
    owner = worker("owner")
    await first.register_worker(owner)
    run_id = new_id("wrun")
    await first.create_run(run_id, "wf", b"", {})
    assert await first.claim_runs(owner, ["wf"], limit=1, lease_seconds=30)
    mine = owner.worker_id
    await first.append(run_id, [NewEvent(EventType.RUN_STARTED)], owner=mine)
    step = [
        NewEvent(EventType.STEP_CREATED, "s1", b"in", {"step_name": "s"}),
        NewEvent(EventType.STEP_STARTED, "s1", None, {"attempt": 1}),
    ]
    await first.append(run_id, step, owner=mine, after=AppendAfter(2, facts=0))
    ending = [
        NewEvent(EventType.STEP_COMPLETED, "s1", b"out"),
        NewEvent(EventType.RUN_COMPLETED, None, b"out"),
    ]
    await first.append(run_id, ending, owner=mine, after=AppendAfter(4, facts=1))
    await _until(lambda: any(c.status.terminal for c in heard_there if c.run_id == run_id))
    await asyncio.sleep(0.2)
    there = [(c.last_seq, c.status) for c in heard_there if c.run_id == run_id]
    assert there == [(1, RunStatus.PENDING), (6, RunStatus.COMPLETED)]
    # The end tells its events: whoever awaits the result takes it from there, unread.
    (end,) = [c for c in heard_there if c.run_id == run_id and c.status.terminal]
    assert [(e.seq, e.type, e.payload) for e in end.events] == [
        (5, EventType.STEP_COMPLETED, b"out"),
        (6, EventType.RUN_COMPLETED, b"out"),
    ]
    assert [c.last_seq for c in heard_here if c.run_id == run_id] == [1, 2, 4, 6]
    record = await second.get_run(run_id)  # the start is on the run's row all the same
    assert record is not None and record.started_at is not None


async def test_another_writers_events_come_with_its_notification(
    pair: tuple[PostgresWorld, PostgresWorld],
) -> None:
    """A non-owner's append (a hook payload, a wake-up) tells other processes its events,
    exactly as stored, so the run's worker need not read its log, and so does the append
    that ends a run (whoever awaits its result takes it from there); too large to carry,
    the change comes without them."""
    first, second = pair
    heard: list[RunChange] = []
    second.subscribe(heard.extend)
    await asyncio.sleep(0.3)  # let the LISTEN connection come up
    run_id = new_id("wrun")
    await first.create_run(run_id, "wf", b"", {})
    small = NewEvent(EventType.RUN_STARTED, None, b"\x00|payload", {"attempt": 1})
    await first.append(run_id, [small], owner=None)
    big = NewEvent(EventType.STEP_CREATED, "s1", b"x" * (TOLD_LIMIT * 2))
    await first.append(run_id, [big], owner=None)
    someone = worker("someone")
    await first.register_worker(someone)
    assert await first.claim_runs(someone, ["wf"], limit=1, lease_seconds=30)
    await first.append(run_id, [NewEvent(EventType.RUN_CANCELLED)], owner=someone.worker_id)
    await _until(lambda: len([c for c in heard if c.run_id == run_id]) >= 4)
    log = await first.get_events(run_id)
    told = {c.last_seq: c.events for c in heard if c.run_id == run_id}
    assert told == {1: (), 2: (log[1],), 3: (), 4: (log[3],)}
    assert told[2][0].payload == b"\x00|payload" and told[2][0].attrs == {"attempt": 1}


async def test_a_notification_whose_events_do_not_decode_still_tells_its_change(
    pg_url: str, pg_schema: str
) -> None:
    world = PostgresWorld(pg_url, schema=pg_schema)
    try:
        heard: list[RunChange] = []
        world.subscribe(heard.extend)
        await asyncio.sleep(0.3)
        run_id = new_id("wrun")
        for payload in (f"other|{run_id}|4|running||e!!not base64", f"other|{run_id}|5|running||q"):
            _query(pg_url, sql.SQL("SELECT pg_notify(%s, %s)"), world.channel, payload)
        await _until(lambda: len(heard) >= 2)
        assert [(c.last_seq, c.events, c.steps_queued) for c in heard] == [
            (4, (), False),
            (5, (), True),
        ]
    finally:
        await world.close()


async def test_notifications_read_together_reach_listeners_in_one_call(
    pg_url: str, pg_schema: str
) -> None:
    # Every worker hears each run another one creates or ends: one listener call (and one
    # wake-up of a worker's loop) per notification cost 4 workers more than 2 gained.
    world = PostgresWorld(pg_url, schema=pg_schema)
    try:
        calls: list[list[RunChange]] = []
        world.subscribe(lambda changes: calls.append(list(changes)))
        await asyncio.sleep(0.3)
        run_ids = [new_id("wrun") for _ in range(50)]
        payloads = [f"other|{run_id}|1|pending||" for run_id in run_ids]
        # One transaction: the server delivers the 50 together, at its commit.
        _query(
            pg_url,
            sql.SQL("SELECT pg_notify(%s, p) FROM unnest(%s::text[]) AS p"),
            world.channel,
            payloads,
        )
        await _until(lambda: sum(map(len, calls)) >= 50)
        assert [c.run_id for call in calls for c in call] == run_ids
        assert len(calls) < 5
    finally:
        await world.close()


async def test_lost_listen_connection_is_reopened_and_catches_up(
    pg_url: str, pg_schema: str
) -> None:
    listening = PostgresWorld(pg_url, schema=pg_schema, listen_heartbeat=0.1)
    writing = PostgresWorld(pg_url, schema=pg_schema)
    try:
        heard: list[RunChange] = []
        listening.subscribe(heard.extend)
        await asyncio.sleep(0.3)
        # Kill this schema's LISTEN connections (only these: other test processes share the
        # server), then write while they are down.
        killed = _query(
            pg_url,
            sql.SQL(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s"
            ),
            listening.channel,  # the LISTEN connection's application_name
        )
        assert any(row[0] for row in killed)
        run_id = new_id("wrun")
        await writing.create_run(run_id, "wf", b"", {})
        await _until(lambda: any(c.run_id == run_id for c in heard))
    finally:
        await listening.close()
        await writing.close()


async def test_callable_from_many_event_loops(pg_url: str, pg_schema: str) -> None:
    world = PostgresWorld(pg_url, schema=pg_schema)
    try:
        errors: list[BaseException] = []

        def in_thread() -> None:
            async def use() -> None:
                run_id = new_id("wrun")
                await world.create_run(run_id, "wf", b"", {})
                await world.append(run_id, [NewEvent(EventType.RUN_STARTED)])

            try:
                asyncio.run(use())
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=in_thread) for _ in range(4)]
        for thread in threads:
            thread.start()
        await world.create_run(new_id("wrun"), "wf", b"", {})
        for thread in threads:
            await asyncio.to_thread(thread.join)
        assert not errors
        assert len(await world.list_runs()) == 5
    finally:
        await world.close()


async def test_a_burst_of_calls_from_two_loops_gets_each_call_its_own_answer(
    pg_url: str, pg_schema: str
) -> None:
    # Calls cross to the World's loop in batches and their outcomes come back in batches,
    # one batch per caller loop: each must still reach the call that made it.
    world = PostgresWorld(pg_url, schema=pg_schema)
    try:

        async def burst(tag: str) -> list[tuple[str, str]]:
            run_ids = [f"{new_id('wrun')}-{tag}{i}" for i in range(40)]
            await asyncio.gather(*(world.create_run(r, "wf", tag.encode(), {}) for r in run_ids))
            results = await asyncio.gather(
                *(world.append(r, [NewEvent(EventType.RUN_STARTED)]) for r in run_ids)
            )
            return [
                (r, result.events[0].run_id) for r, result in zip(run_ids, results, strict=True)
            ]

        elsewhere: list[list[tuple[str, str]]] = []
        thread = threading.Thread(target=lambda: elsewhere.append(asyncio.run(burst("b"))))
        thread.start()
        here = await burst("a")
        await asyncio.to_thread(thread.join)
        for asked, answered in here + elsewhere[0]:
            assert asked == answered
    finally:
        await world.close()


@pytest.mark.parametrize("caller", ["another loop", "the World's loop"])
async def test_a_cancelled_caller_does_not_cancel_its_write(
    pg_url: str, pg_schema: str, caller: str
) -> None:
    world = PostgresWorld(pg_url, schema=pg_schema)
    try:
        run_id = new_id("wrun")
        await world.create_run(run_id, "wf", b"", {})

        async def append_then_cancel() -> None:
            call = asyncio.ensure_future(world.append(run_id, [NewEvent(EventType.RUN_STARTED)]))
            await asyncio.sleep(0)  # the write is under way
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call

        if caller == "another loop":
            await append_then_cancel()
        else:
            await on_home_loop(world, append_then_cancel())
        logged: list[EventType] = []
        for _ in range(500):  # until the write lands (it never does if the call was cancelled)
            logged = [e.type for e in await world.get_events(run_id)]
            if EventType.RUN_STARTED in logged:
                break
            await asyncio.sleep(0.01)
        assert logged == [EventType.RUN_CREATED, EventType.RUN_STARTED]
    finally:
        await world.close()


async def test_code_on_the_worlds_own_loop_calls_it_and_cannot_close_it(
    pg_url: str, pg_schema: str
) -> None:
    # A worker runs on the World's loop (no thread hand-off per call); closing the World
    # stops that loop, so from there it is a clear error and the World goes on working.
    world = PostgresWorld(pg_url, schema=pg_schema)
    try:
        run_id = new_id("wrun")

        async def use() -> list[EventType]:
            await world.create_run(run_id, "wf", b"", {})
            await world.append(run_id, [NewEvent(EventType.RUN_STARTED)])
            return [e.type for e in await world.get_events(run_id)]

        assert await on_home_loop(world, use()) == [EventType.RUN_CREATED, EventType.RUN_STARTED]
        with pytest.raises(RuntimeError, match="from another thread or event loop"):
            await on_home_loop(world, world.close())
        assert (await world.get_run(run_id)) is not None
    finally:
        await world.close()
    assert not world.home_loop.is_running()


async def test_a_chain_of_calls_runs_on_the_worlds_loop_in_the_callers_context(
    pg_url: str, pg_schema: str
) -> None:
    # A client's resume_hook (look the hook up, then append) pays one hand-off each way
    # instead of two per call; it still sees the caller's context (workflow code refusals,
    # tracing) and its errors arrive as they are.
    world = PostgresWorld(pg_url, schema=pg_schema)
    caller = contextvars.ContextVar[str]("caller")
    caller.set("the caller's")
    try:
        run_id = new_id("wrun")

        async def chain() -> tuple[bool, str]:
            await world.create_run(run_id, "wf", b"", {})
            await world.append(run_id, [NewEvent(EventType.RUN_STARTED)])
            return asyncio.get_running_loop() is world.home_loop, caller.get()

        assert await on_home_loop(world, chain()) == (True, "the caller's")

        async def failing() -> None:
            raise HookNotFoundError("no-such-token")

        with pytest.raises(HookNotFoundError):
            await on_home_loop(world, failing())
    finally:
        await world.close()


async def test_an_owners_step_append_is_decided_unread_and_checked_in_its_commit(
    pg_url: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hot path (a step's result, the next one's creation and start) costs one round
    # trip: decided on the run as its owner knows it, checked under the run's lock in the
    # pipeline that commits. A presumption that misses writes nothing and is decided again
    # from the rows read.
    world = PostgresWorld(pg_url, schema=pg_schema)
    reads: list[str] = []
    read_states = pg_jobs.read_states

    async def counted(conn: Any, jobs: Any, *args: Any, **kwargs: Any) -> Any:
        reads.extend(job.run_id for job in jobs)
        return await read_states(conn, jobs, *args, **kwargs)

    monkeypatch.setattr(pg_jobs, "read_states", counted)
    try:
        me = worker("me")
        await world.register_worker(me)
        run_id = new_id("wrun")
        await world.create_run(run_id, "wf", b"", {})
        assert await world.claim_runs(me, ["wf"], limit=1, lease_seconds=60)
        owner = me.worker_id
        head = await world.append(run_id, [NewEvent(EventType.RUN_STARTED)], owner=owner)
        known = head.events[-1].seq
        reads.clear()

        created = NewEvent(EventType.STEP_CREATED, "step-1", b"in", {"step_name": "s"})
        started = NewEvent(EventType.STEP_STARTED, "step-1", None, {"attempt": 1})
        first = await world.append(
            run_id, [created, started], owner=owner, after=AppendAfter(known, facts=0)
        )
        assert reads == []
        assert [e.seq for e in first.events] == [known + 1, known + 2]
        steps = {s.step_id: s.status for s in await world.list_steps(run_id)}
        assert steps == {"step-1": StepStatus.RUNNING}

        # Decided from a log that has moved on since (the owner's view is stale).
        outcome = NewEvent(EventType.STEP_COMPLETED, "step-1", b"out")
        next_step = NewEvent(EventType.STEP_CREATED, "step-2", b"in", {"step_name": "s"})
        moved = await world.append(
            run_id, [outcome, next_step], owner=owner, after=AppendAfter(known, facts=1)
        )
        assert reads == [run_id]
        assert [e.type for e in moved.events] == [EventType.STEP_COMPLETED]
        assert [(r.event, r.reason) for r in moved.rejected] == [(next_step, MOVED)]

        # A step row not as its events expect (completed already): read, then decided.
        reads.clear()
        again = await world.append(
            run_id, [outcome], owner=owner, after=AppendAfter(moved.events[-1].seq, facts=1)
        )
        assert reads == [run_id]
        assert not again.events and len(again.rejected) == 1
        logged = [e.type for e in await world.get_events(run_id)]
        assert logged.count(EventType.STEP_COMPLETED) == 1
    finally:
        await world.close()


# -- failures: retried when nothing committed, never doubled when the commit was lost ----------


@pytest.mark.parametrize("when", ["after", "before"])
async def test_lost_commit_of_append_is_neither_lost_nor_doubled(
    pg_url: str, pg_schema: str, flaky_commit: Callable[[str], None], when: str
) -> None:
    world = PostgresWorld(pg_url, schema=pg_schema)
    try:
        run_id = new_id("wrun")
        flaky_commit(when)
        await world.create_run(run_id, "wf", b"in", {})
        flaky_commit(when)
        result = await world.append(run_id, [NewEvent(EventType.RUN_STARTED)])
        assert [e.seq for e in result.events] == [2] and not result.rejected
        events = await world.get_events(run_id)
        assert [(e.seq, e.type) for e in events] == [
            (1, EventType.RUN_CREATED),
            (2, EventType.RUN_STARTED),
        ]
        assert events[1].event_id == result.events[0].event_id
    finally:
        await world.close()


async def test_lost_commit_of_claim_returns_what_the_worker_holds(
    pg_url: str, pg_schema: str, flaky_commit: Callable[[str], None]
) -> None:
    world = PostgresWorld(pg_url, schema=pg_schema)
    try:
        run_id = new_id("wrun")
        await world.create_run(run_id, "wf", b"", {})
        info = worker("a")
        await world.register_worker(info)
        flaky_commit("after")
        claimed = await world.claim_runs(info, ["wf"], limit=5, lease_seconds=30)
        assert [r.run_id for r in claimed] == [run_id]
    finally:
        await world.close()


async def test_unreachable_database_is_a_clear_error_after_the_retry_budget(
    pg_url: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workflowkit.errors import WorldUnavailableError

    world = PostgresWorld(pg_url, schema=pg_schema, retry_for=0.3)
    try:
        real = psycopg.AsyncConnection.execute

        async def broken(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            raise psycopg.OperationalError("server closed the connection (simulated)")

        monkeypatch.setattr(psycopg.AsyncConnection, "execute", broken)
        with pytest.raises(WorldUnavailableError, match="get_run"):
            await world.get_run("wrun_x")
        monkeypatch.setattr(psycopg.AsyncConnection, "execute", real)
        assert await world.get_run("wrun_x") is None
    finally:
        await world.close()


def test_a_database_that_cannot_be_reached_at_open_is_a_typed_error_saying_why(
    pg_url: str,
) -> None:
    """Opening used to end in psycopg_pool's bare "pool initialization incomplete after
    30 sec": no type to catch, no reason, whatever was wrong (server down, no such
    database, no such role)."""
    from urllib.parse import urlsplit

    from workflowkit.errors import WorldUnavailableError

    secret = "s3cr3t-pw"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]  # nothing listens there once the socket closes
    server = urlsplit(pg_url)
    cases = [
        (f"postgresql://app:{secret}@127.0.0.1:{closed_port}/db", "refused"),
        (f"postgresql://{server.netloc}/no_such_db_{new_id('wrun')[-6:].lower()}", "does not"),
    ]
    for url, why in cases:
        with pytest.raises(WorldUnavailableError) as info:
            PostgresWorld(url, retry_for=0.5)
        message = str(info.value)
        assert why in message and "retry_for" in message, message
        assert secret not in message


async def test_close_ends_calls_that_are_still_retrying(
    pg_url: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workflowkit.errors import WorldClosedError

    world = PostgresWorld(pg_url, schema=pg_schema)

    async def broken(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        raise psycopg.OperationalError("server closed the connection (simulated)")

    monkeypatch.setattr(psycopg.AsyncConnection, "execute", broken)
    pending = asyncio.ensure_future(world.get_run("wrun_x"))
    await asyncio.sleep(0.2)
    await asyncio.wait_for(world.close(), 10)
    with pytest.raises(WorldClosedError):
        await asyncio.wait_for(pending, 5)
    with pytest.raises(WorldClosedError):
        await world.get_run("wrun_x")


async def test_a_call_that_finds_the_pool_closed_gets_world_closed_error(pg_url: str) -> None:
    # The race above, made certain: a call waiting out a lost connection wakes up after
    # close() closed the pool and before it cancelled the call. It got psycopg's PoolClosed.
    from psycopg_pool import AsyncConnectionPool

    from workflowkit.errors import WorldClosedError
    from workflowkit.worlds._listeners import Listeners
    from workflowkit.worlds.postgres._transactions import Database, Outcome

    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(pg_url, open=False)
    db = Database(pool, Listeners(), retry_for=5.0)

    async def body(conn: Any, retry: bool) -> Outcome:
        return Outcome(None)

    with pytest.raises(WorldClosedError, match="closed while get_run"):
        await db.read(lambda conn: conn.execute("SELECT 1"), "get_run")
    with pytest.raises(WorldClosedError, match="closed while an append"):
        await db.transaction(body, what="an append")


@pytest.mark.parametrize("timeout", [0.3, 30.0], ids=["ended", "still-locked"])
async def test_a_client_frozen_inside_a_transaction_loses_its_locks(
    pg_url: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch, timeout: float
) -> None:
    """A worker frozen mid-transaction (SIGSTOP, a paused VM) would keep its run locked, and
    claims skip locked runs; the server ends such a session, and the write is retried once."""
    world = PostgresWorld(pg_url, schema=pg_schema, idle_in_transaction_timeout=timeout)
    try:
        run_id = new_id("wrun")
        await world.create_run(run_id, "wf", b"in", {})
        real = psycopg.AsyncConnection.pipeline
        frozen = threading.Event()

        @contextlib.asynccontextmanager
        async def pipeline(self: Any) -> AsyncIterator[Any]:
            if not frozen.is_set():  # the append read its run, locked: now the writes
                frozen.set()
                await asyncio.sleep(1.5)  # frozen, holding the run's row lock
            async with real(self) as p:
                yield p

        monkeypatch.setattr(psycopg.AsyncConnection, "pipeline", pipeline)
        appending = asyncio.ensure_future(world.append(run_id, [NewEvent(EventType.RUN_STARTED)]))
        await asyncio.to_thread(frozen.wait, 10)
        await asyncio.sleep(0.6)
        query = sql.SQL("SELECT 1 FROM {}.runs WHERE run_id = %s FOR UPDATE NOWAIT").format(
            sql.Identifier(pg_schema)
        )
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
            if timeout < 1:
                await conn.execute(query, (run_id,))  # the lock is free again
            else:
                with pytest.raises(psycopg.errors.LockNotAvailable):
                    await conn.execute(query, (run_id,))
        result = await appending
        assert [e.seq for e in result.events] == [2]
        events = await world.get_events(run_id)
        assert [(e.seq, e.type) for e in events] == [
            (1, EventType.RUN_CREATED),
            (2, EventType.RUN_STARTED),
        ]
    finally:
        await world.close()


async def test_finishing_a_claimed_step_takes_the_runs_lock_before_the_steps(
    pg_url: str, pg_schema: str
) -> None:
    # Appends lock a run's row and then write its steps' rows; finish_step must take the
    # two in the same order, or the two can deadlock (each waiting deadlock_timeout).
    world = PostgresWorld(pg_url, schema=pg_schema)
    try:
        owner, executor = worker("owner"), worker("executor")
        run_id, step_id = new_id("wrun"), new_id("step")
        await world.create_run(run_id, "wf", b"", {})
        await world.register_worker(owner)
        await world.claim_runs(owner, ["wf"], limit=10, lease_seconds=30)
        created = NewEvent(EventType.STEP_CREATED, step_id, b"in", {"name": "a"})
        await world.append(
            run_id, [NewEvent(EventType.RUN_STARTED), created], owner=owner.worker_id
        )
        await world.queue_steps(run_id, [step_id], owner=owner.worker_id)
        (claim,) = await world.claim_steps(executor, ["a"], limit=1, lease_seconds=30)
        done = NewEvent(EventType.STEP_COMPLETED, claim.step_id, b"out")
        runs = sql.Identifier(pg_schema, "runs")
        steps = sql.Identifier(pg_schema, "steps")
        async with (
            await psycopg.AsyncConnection.connect(pg_url) as holder,
            await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as probe,
        ):
            await holder.execute(
                sql.SQL("SELECT 1 FROM {} WHERE run_id = %s FOR UPDATE").format(runs), (run_id,)
            )
            finishing = asyncio.ensure_future(
                world.finish_step(run_id, done, claimer=executor.worker_id)
            )
            waiting = 0
            for _ in range(500):  # until finish_step waits for the run's lock
                cur = await probe.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND position(%s in query) > 0",
                    (run_id,),
                )
                row = await cur.fetchone()
                waiting = row[0] if row else 0
                if waiting:
                    break
                await asyncio.sleep(0.01)
            assert waiting == 1
            # Meanwhile it holds nothing of the step's: an append could write its row.
            async with probe.transaction():
                await probe.execute(
                    sql.SQL(
                        "SELECT 1 FROM {} WHERE run_id = %s AND step_id = %s FOR UPDATE NOWAIT"
                    ).format(steps),
                    (run_id, step_id),
                )
            await holder.commit()
            assert await finishing
    finally:
        await world.close()


def test_a_run_claim_reads_what_it_takes_not_every_due_run(pg_url: str, pg_schema: str) -> None:
    """With many runs due at once (a wake-up of sleeping runs), a claim of a few reads about
    that many through the wake_at and deadline indexes: it read and sorted every due run
    (100,000 due: ~350 ms a claim)."""
    from workflowkit.worlds.postgres._scheduling import _CLAIM_DUE

    asyncio.run(PostgresWorld(pg_url, schema=pg_schema).close())  # the schema and tables
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(pg_schema)))
        conn.execute(
            "INSERT INTO runs (run_id, workflow_name, status, created_at, updated_at, wake_at) "
            "SELECT 'wrun_' || g, 'wf', 'running', now(), now(), now() - g * interval '1 ms' "
            "FROM generate_series(1, 20000) g"
        )
        conn.execute("ANALYZE runs")
        params = (["wf"], 10, ["wf"], 10, 10, 10, "wrkr_x", 30.0)
        with conn.transaction(force_rollback=True):
            plan = conn.execute(b"EXPLAIN (ANALYZE, FORMAT JSON) " + _CLAIM_DUE.encode(), params)
            tree = plan.fetchone()[0][0]["Plan"]

    def rows_read(node: dict[str, Any]) -> int:
        own = 0
        if node.get("Relation Name") == "runs" and "Scan" in node["Node Type"]:
            own = node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
        return own + sum(rows_read(child) for child in node.get("Plans", []))

    assert rows_read(tree) < 500  # 10 claimed (and the rows they are updated through)


async def claimed_at_once_with_the_clock_ahead(
    world: PostgresWorld, me: WorkerInfo, run_id: str, make_due: Callable[[], Any]
) -> None:
    """``make_due()`` makes the run due while this process's estimate of the database clock
    is 5 s ahead; a claim right after takes it."""
    world._clock.offset += 5.0
    assert await make_due()
    claimed = await world.claim_runs(me, ["wf"], limit=1, lease_seconds=60)
    assert [r.run_id for r in claimed] == [run_id]


async def test_a_resumed_parked_run_is_due_by_the_databases_clock(
    pg_world: PostgresWorld,
) -> None:
    """A worker's estimate of the database clock may run a little ahead of it: a parked run
    made due again is due by the database's clock, so a claim right after takes it."""
    world, me, run_id = pg_world, worker("me"), new_id("wrun")
    await world.register_worker(me)
    await world.create_run(run_id, "wf", b"", {})
    assert await world.claim_runs(me, ["wf"], limit=1, lease_seconds=60)
    found = Divergence(1, "step 'a'", "step 'b'", "changed", "v1", datetime.now(UTC))
    assert await world.park_run(run_id, me.worker_id, found)

    async def resume() -> bool:
        return await world.resume_diverged({"wf": "v2"}) == [run_id]

    await claimed_at_once_with_the_clock_ahead(world, me, run_id, resume)


async def test_a_run_woken_before_its_start_time_is_due_by_the_databases_clock(
    pg_world: PostgresWorld,
) -> None:
    world, me, run_id = pg_world, worker("me"), new_id("wrun")
    await world.register_worker(me)
    later = datetime.fromtimestamp(time.time() + 3600, UTC)
    await world.create_run(run_id, "wf", b"", {}, start_at=later)
    assert await world.claim_runs(me, ["wf"], limit=1, lease_seconds=60) == []
    await claimed_at_once_with_the_clock_ahead(world, me, run_id, lambda: world.wake_run(run_id))
