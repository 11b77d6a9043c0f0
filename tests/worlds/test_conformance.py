"""The World contract: every backend passes this suite."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest

from workflowkit.errors import LeaseLostError, WorkflowRunNotFoundError
from workflowkit.ids import new_id
from workflowkit.worlds.base import World
from workflowkit.worlds.records import (
    MOVED,
    AppendAfter,
    EventType,
    NewEvent,
    RunChange,
    RunOptions,
    RunStatus,
    StepStatus,
    WorkerInfo,
)


def worker(name: str = "a", pid: int | None = None) -> WorkerInfo:
    return WorkerInfo(new_id("wrkr") + name, socket.gethostname(), pid or os.getpid())


async def new_run(world: World, name: str = "wf") -> str:
    run_id = new_id("wrun")
    await world.create_run(run_id, name, b"input", {"name": name})
    return run_id


async def test_create_and_get_run(world: World) -> None:
    run_id = await new_run(world)
    record = await world.get_run(run_id)
    assert record is not None
    assert record.status is RunStatus.PENDING
    assert record.input == b"input"
    assert record.last_seq == 1
    events = await world.get_events(run_id)
    assert [e.type for e in events] == [EventType.RUN_CREATED]
    assert events[0].event_id.startswith("evnt_")
    assert await world.get_run("wrun_missing") is None


async def test_the_logs_of_several_runs_read_at_once_are_their_logs(world: World) -> None:
    short, longer = await new_run(world), await new_run(world)
    await world.append(longer, [NewEvent(EventType.RUN_STARTED)])
    await world.append(longer, [NewEvent(EventType.STEP_CREATED, "step_1", b"payload")])
    logs = await world.get_logs([longer, "wrun_missing", short])
    assert logs == {short: await world.get_events(short), longer: await world.get_events(longer)}
    assert [e.seq for e in logs[longer]] == [1, 2, 3] and logs[longer][2].payload == b"payload"
    assert await world.get_logs([]) == {}


async def test_create_run_returns_what_is_stored(world: World) -> None:
    created = await world.create_run(new_id("wrun"), "wf", b"input", {"name": "wf"})
    assert created.created
    assert await world.get_run(created.record.run_id) == created.record


async def test_creating_an_existing_run_id_returns_that_run_and_writes_nothing(
    world: World,
) -> None:
    first = await world.create_run("order-1", "wf", b"first", {})
    await world.append("order-1", [NewEvent(EventType.RUN_CANCELLED)])
    again = await world.create_run("order-1", "other", b"second", {})
    assert first.created and not again.created
    assert again.record.input == b"first" and again.record.status is RunStatus.CANCELLED
    assert len(await world.get_events("order-1")) == 2  # run_created, run_cancelled


async def test_concurrent_creates_of_one_id_make_one_run(world: World) -> None:
    results = await asyncio.gather(
        *(world.create_run("race-1", "wf", str(i).encode(), {}) for i in range(20))
    )
    assert sum(r.created for r in results) == 1
    winner = next(r.record for r in results if r.created)
    assert all(r.record.input == winner.input for r in results)
    assert len(await world.get_events("race-1")) == 1


async def test_run_options_are_stored_and_a_delayed_run_is_not_due_before_its_start(
    world: World,
) -> None:
    a = worker()
    await world.register_worker(a)
    start_at = datetime.now(UTC) + timedelta(seconds=60)
    deadline = datetime.now(UTC) + timedelta(hours=1)
    options = RunOptions(deadline, "billing", "customer-7", 5, "wrun_parent", True)
    created = await world.create_run("delayed", "wf", b"", {}, options, start_at=start_at)
    record = await world.get_run("delayed")
    assert record == created.record and record.options == options
    assert record.wake_at is not None and abs((record.wake_at - start_at).total_seconds()) < 0.01
    assert record.options.deadline is not None
    assert abs((record.options.deadline - deadline).total_seconds()) < 0.01
    assert await world.claim_runs(a, ["wf"], limit=1, lease_seconds=30) == []


async def test_run_lifecycle_and_terminal_states(world: World) -> None:
    run_id = await new_run(world)
    result = await world.append(run_id, [NewEvent(EventType.RUN_STARTED)])
    assert result.run_status is RunStatus.RUNNING and not result.rejected
    result = await world.append(run_id, [NewEvent(EventType.RUN_COMPLETED, payload=b"out")])
    assert result.run_status is RunStatus.COMPLETED
    record = await world.get_run(run_id)
    assert record is not None and record.output == b"out" and record.completed_at is not None
    # Nothing transitions out of a terminal state.
    for kind in (EventType.RUN_STARTED, EventType.RUN_FAILED, EventType.RUN_CANCELLED):
        refused = await world.append(run_id, [NewEvent(kind)])
        assert not refused.events and refused.rejected
        assert "completed" in refused.rejected[0].reason
    assert [e.seq for e in await world.get_events(run_id)] == [1, 2, 3]


async def test_pending_run_can_be_cancelled_but_not_completed(world: World) -> None:
    run_id = await new_run(world)
    refused = await world.append(run_id, [NewEvent(EventType.RUN_COMPLETED)])
    assert refused.rejected
    result = await world.append(run_id, [NewEvent(EventType.RUN_CANCELLED)])
    assert result.run_status is RunStatus.CANCELLED


async def test_an_append_after_a_moved_log_keeps_its_facts_and_refuses_the_rest(
    world: World,
) -> None:
    """A worker appends a step's outcome with what its code did next, decided from the log
    as it read it. If another writer got in between (a hook payload), the outcome is still
    recorded but what followed is refused, for the worker to decide again by replay."""
    run_id = await new_run(world)
    a = worker("a")
    await world.register_worker(a)
    assert await world.claim_runs(a, ["wf"], limit=1, lease_seconds=30)
    owner = a.worker_id
    head = await world.append(
        run_id,
        [
            NewEvent(EventType.RUN_STARTED),
            NewEvent(EventType.HOOK_CREATED, "hook-1", None, {"token": f"tok-{run_id}"}),
            NewEvent(EventType.STEP_CREATED, "step-1", b"in", {"step_name": "s"}),
            NewEvent(EventType.STEP_STARTED, "step-1", None, {"attempt": 1}),
        ],
        owner=owner,
    )
    read_to = head.events[-1].seq
    await world.append(run_id, [NewEvent(EventType.HOOK_RECEIVED, "hook-1", b"payload")])
    outcome = NewEvent(EventType.STEP_COMPLETED, "step-1", b"out")
    next_step = NewEvent(EventType.STEP_CREATED, "step-2", b"in", {"step_name": "s"})
    moved = await world.append(
        run_id, [outcome, next_step], owner=owner, after=AppendAfter(read_to, facts=1)
    )
    assert [e.type for e in moved.events] == [EventType.STEP_COMPLETED]
    assert [(r.event, r.reason) for r in moved.rejected] == [(next_step, MOVED)]
    # From the log as it now ends, the same append goes through.
    again = await world.append(
        run_id, [next_step], owner=owner, after=AppendAfter(moved.events[-1].seq, facts=0)
    )
    assert [e.correlation_id for e in again.events] == ["step-2"] and not again.rejected


async def test_an_append_that_ends_a_run_names_the_children_it_cancelled(world: World) -> None:
    """Its children that are not detached, and theirs in turn: whoever ended the run logs
    and counts them (no other process knows they were cancelled)."""
    parent = await new_run(world)
    child, grandchild, detached = f"{parent}.1", f"{parent}.1.1", f"{parent}.2"
    started = NewEvent(EventType.RUN_STARTED)

    def created(run_id: str, detached: bool = False) -> NewEvent:
        return NewEvent(
            EventType.CHILD_CREATED, run_id, b"in", {"name": "wf", "detached": detached}
        )

    await world.append(parent, [started, created(child), created(detached, detached=True)])
    await world.append(child, [started, created(grandchild)])
    result = await world.append(parent, [NewEvent(EventType.RUN_CANCELLED)])
    assert sorted(result.cancelled_children) == sorted([child, grandchild])
    for run_id, status in ((child, RunStatus.CANCELLED), (grandchild, RunStatus.CANCELLED),
                           (detached, RunStatus.PENDING)):  # fmt: skip
        record = await world.get_run(run_id)
        assert record is not None and record.status is status
    lone = await new_run(world)
    assert (await world.append(lone, [NewEvent(EventType.RUN_CANCELLED)])).cancelled_children == ()


async def test_append_to_unknown_run(world: World) -> None:
    with pytest.raises(WorkflowRunNotFoundError):
        await world.append("wrun_missing", [NewEvent(EventType.RUN_STARTED)])


async def test_step_lifecycle_records_result_once(world: World) -> None:
    run_id = await new_run(world)
    step_id = new_id("step")
    await world.append(
        run_id,
        [
            NewEvent(EventType.RUN_STARTED),
            NewEvent(EventType.STEP_CREATED, step_id, b"args", {"name": "s"}),
            NewEvent(EventType.STEP_STARTED, step_id, None, {"attempt": 1}),
            NewEvent(EventType.STEP_RETRYING, step_id, b"err", {"retry_at": time.time() + 1}),
        ],
    )
    (step,) = await world.list_steps(run_id)
    assert step.status is StepStatus.PENDING and step.attempt == 1 and step.retry_at is not None
    assert step.error == b"err"
    await world.append(run_id, [NewEvent(EventType.STEP_STARTED, step_id, None, {"attempt": 2})])
    first = await world.append(run_id, [NewEvent(EventType.STEP_COMPLETED, step_id, b"one")])
    second = await world.append(run_id, [NewEvent(EventType.STEP_COMPLETED, step_id, b"two")])
    assert first.events and not first.rejected
    assert not second.events and "completed" in second.rejected[0].reason
    (step,) = await world.list_steps(run_id)
    assert step.status is StepStatus.COMPLETED and step.output == b"one" and step.attempt == 2
    assert step.input == b"args"


async def test_steps_created_and_started_in_one_batch(world: World) -> None:
    # The hot path: a worker records new steps and their starts together.
    run_id = await new_run(world)
    a, b = new_id("step"), new_id("step")
    result = await world.append(
        run_id,
        [
            NewEvent(EventType.RUN_STARTED),
            NewEvent(EventType.STEP_CREATED, a, b"a", {"name": "s"}),
            NewEvent(EventType.STEP_CREATED, b, b"b", {"name": "s"}),
            NewEvent(EventType.STEP_STARTED, a, None, {"attempt": 1}),
            NewEvent(EventType.STEP_STARTED, b, None, {"attempt": 1}),
        ],
    )
    assert not result.rejected and len(result.events) == 5
    steps = {s.step_id: s for s in await world.list_steps(run_id)}
    for step_id in (a, b):
        step = steps[step_id]
        assert step.status is StepStatus.RUNNING and step.attempt == 1
        assert step.started_at is not None

    # Created again in a batch that also starts it: the creation is refused and the start
    # is judged against the existing row (a restart of a running step, like a takeover).
    again = await world.append(
        run_id,
        [
            NewEvent(EventType.STEP_CREATED, a, b"other", {"name": "s"}),
            NewEvent(EventType.STEP_STARTED, a, None, {"attempt": 2}),
        ],
    )
    assert [r.event.type for r in again.rejected] == [EventType.STEP_CREATED]
    step = {s.step_id: s for s in await world.list_steps(run_id)}[a]
    assert step.attempt == 2 and step.input == b"a"

    # A run that ends between a step's creation and its start never starts it.
    c = new_id("step")
    ended = await world.append(
        run_id,
        [
            NewEvent(EventType.STEP_CREATED, c, b"c", {"name": "s"}),
            NewEvent(EventType.RUN_CANCELLED),
            NewEvent(EventType.STEP_STARTED, c, None, {"attempt": 1}),
        ],
    )
    assert [r.event.type for r in ended.rejected] == [EventType.STEP_STARTED]
    step = {s.step_id: s for s in await world.list_steps(run_id)}[c]
    # It ends with its run, never started.
    assert step.status is StepStatus.CANCELLED and step.started_at is None


async def test_one_append_may_touch_many_steps(world: World) -> None:
    # A gather of many steps: their creations in one append, their outcomes in another
    # (past any per-statement limit of a backend), and a refusal among them still found.
    run_id = await new_run(world)
    ids = [new_id("step") for _ in range(600)]
    created = [NewEvent(EventType.RUN_STARTED)]
    for step_id in ids:
        created.append(NewEvent(EventType.STEP_CREATED, step_id, b"in", {"name": "s"}))
        created.append(NewEvent(EventType.STEP_STARTED, step_id, None, {"attempt": 1}))
    assert not (await world.append(run_id, created)).rejected
    done = [NewEvent(EventType.STEP_COMPLETED, step_id, b"out") for step_id in ids]
    done.append(NewEvent(EventType.STEP_COMPLETED, ids[0], b"again"))
    result = await world.append(run_id, done)
    assert len(result.events) == 600
    assert [r.event.payload for r in result.rejected] == [b"again"]
    steps = await world.list_steps(run_id)
    assert len(steps) == 600 and all(s.status is StepStatus.COMPLETED for s in steps)


async def test_steps_still_active_end_with_their_run(world: World) -> None:
    run_id = await new_run(world)
    running, retrying, done = new_id("step"), new_id("step"), new_id("step")
    events = [NewEvent(EventType.RUN_STARTED)]
    for step_id in (running, retrying, done):
        events.append(NewEvent(EventType.STEP_CREATED, step_id, b"x", {"name": "s"}))
        events.append(NewEvent(EventType.STEP_STARTED, step_id, None, {"attempt": 1}))
    events.append(
        NewEvent(EventType.STEP_RETRYING, retrying, b"e", {"attempt": 1, "retry_at": 9e9})
    )
    events.append(NewEvent(EventType.STEP_COMPLETED, done, b"ok"))
    events.append(NewEvent(EventType.RUN_COMPLETED, None, b"r"))
    result = await world.append(run_id, events)
    assert not result.rejected
    steps = {s.step_id: s for s in await world.list_steps(run_id)}
    assert steps[running].status is StepStatus.ABANDONED
    assert steps[retrying].status is StepStatus.ABANDONED and steps[retrying].retry_at is None
    assert steps[done].status is StepStatus.COMPLETED
    assert all(s.completed_at is not None for s in steps.values())
    # The abandoned step's late result is refused: the run has ended.
    late = await world.append(run_id, [NewEvent(EventType.STEP_COMPLETED, running, b"late")])
    assert [r.event.type for r in late.rejected] == [EventType.STEP_COMPLETED]
    assert {s.step_id: s for s in await world.list_steps(run_id)}[running].output is None


async def test_step_events_need_an_existing_step(world: World) -> None:
    run_id = await new_run(world)
    await world.append(run_id, [NewEvent(EventType.RUN_STARTED)])
    result = await world.append(run_id, [NewEvent(EventType.STEP_COMPLETED, "step_nope")])
    assert result.rejected and "does not exist" in result.rejected[0].reason
    duplicate = NewEvent(EventType.STEP_CREATED, "step_x", b"", {"name": "s"})
    await world.append(run_id, [duplicate])
    assert (await world.append(run_id, [duplicate])).rejected


async def test_waits_complete_once(world: World) -> None:
    run_id = await new_run(world)
    wait_id = new_id("wait")
    resume_at = time.time() + 60
    await world.append(
        run_id,
        [
            NewEvent(EventType.RUN_STARTED),
            NewEvent(EventType.WAIT_CREATED, wait_id, None, {"resume_at": resume_at}),
        ],
    )
    (wait,) = await world.list_waits(run_id)
    assert wait.completed_at is None
    assert wait.resume_at.timestamp() == pytest.approx(resume_at)
    assert (await world.append(run_id, [NewEvent(EventType.WAIT_COMPLETED, wait_id)])).events
    assert (await world.append(run_id, [NewEvent(EventType.WAIT_COMPLETED, wait_id)])).rejected


async def test_hook_tokens_are_exclusive_while_active(world: World) -> None:
    first, second = await new_run(world), await new_run(world)
    for run_id in (first, second):
        await world.append(run_id, [NewEvent(EventType.RUN_STARTED)])
    hook_a, hook_b = new_id("hook"), new_id("hook")
    created = await world.append(
        first, [NewEvent(EventType.HOOK_CREATED, hook_a, None, {"token": "tok"})]
    )
    assert created.events[0].type is EventType.HOOK_CREATED
    conflict = await world.append(
        second, [NewEvent(EventType.HOOK_CREATED, hook_b, None, {"token": "tok"})]
    )
    assert conflict.events[0].type is EventType.HOOK_CONFLICT
    assert conflict.events[0].attrs["holder_run_id"] == first
    # A terminal run releases its tokens.
    await world.append(first, [NewEvent(EventType.RUN_COMPLETED)])
    again = await world.append(
        second, [NewEvent(EventType.HOOK_CREATED, new_id("hook"), None, {"token": "tok"})]
    )
    assert again.events[0].type is EventType.HOOK_CREATED


async def test_disposed_hook_releases_token(world: World) -> None:
    run_id = await new_run(world)
    await world.append(run_id, [NewEvent(EventType.RUN_STARTED)])
    hook = new_id("hook")
    await world.append(run_id, [NewEvent(EventType.HOOK_CREATED, hook, None, {"token": "t2"})])
    assert (await world.append(run_id, [NewEvent(EventType.HOOK_RECEIVED, hook, b"p")])).events
    assert (await world.append(run_id, [NewEvent(EventType.HOOK_DISPOSED, hook)])).events
    assert (await world.append(run_id, [NewEvent(EventType.HOOK_RECEIVED, hook, b"p")])).rejected
    reuse = await world.append(
        run_id, [NewEvent(EventType.HOOK_CREATED, new_id("hook"), None, {"token": "t2"})]
    )
    assert reuse.events[0].type is EventType.HOOK_CREATED


async def test_claims_and_leases(world: World) -> None:
    a, b = worker("a"), worker("b")
    await world.register_worker(a)
    await world.register_worker(b)
    run_id = await new_run(world)
    claimed = await world.claim_runs(a, ["wf"], limit=10, lease_seconds=30)
    assert [r.run_id for r in claimed] == [run_id]
    assert await world.claim_runs(b, ["wf"], limit=10, lease_seconds=30) == []
    with pytest.raises(LeaseLostError):
        await world.append(run_id, [NewEvent(EventType.RUN_STARTED)], owner=b.worker_id)
    assert (await world.append(run_id, [NewEvent(EventType.RUN_STARTED)], owner=a.worker_id)).events
    # Released with a future wake time: nobody can claim it before then.
    later = datetime.now(UTC) + timedelta(seconds=60)
    await world.release_run(run_id, a.worker_id, later)
    assert await world.claim_runs(b, ["wf"], limit=10, lease_seconds=30) == []
    next_wake = await world.next_wake_at(["wf"])
    assert next_wake is not None and abs((next_wake - later).total_seconds()) < 0.01


async def test_expired_lease_is_taken_over(world: World, caplog: pytest.LogCaptureFixture) -> None:
    a, b = worker("a"), worker("b")
    await world.register_worker(a)
    await world.register_worker(b)
    run_id = await new_run(world)
    assert await world.claim_runs(a, ["wf"], limit=1, lease_seconds=0.05)
    await asyncio.sleep(0.1)
    with caplog.at_level(logging.INFO, logger="workflowkit.worker"):
        claimed = await world.claim_runs(b, ["wf"], limit=1, lease_seconds=30)
    assert [r.run_id for r in claimed] == [run_id]
    # The taker says so (the loser says "lease lost" when its next write is refused).
    (taken,) = [r for r in caplog.records if "taken over" in r.getMessage()]
    assert a.worker_id in taken.getMessage() and taken.__dict__["run_id"] == run_id
    # The ids every record about a run carries (docs/observability.md).
    assert taken.__dict__["workflow"] == "wf" and taken.__dict__["step_id"] is None
    assert taken.__dict__["previous_worker"] == a.worker_id
    with pytest.raises(LeaseLostError):
        await world.append(run_id, [NewEvent(EventType.RUN_STARTED)], owner=a.worker_id)


async def test_renewed_lease_is_kept(world: World) -> None:
    a, b = worker("a"), worker("b")
    await world.register_worker(a)
    run_id = await new_run(world)
    assert await world.claim_runs(a, ["wf"], limit=1, lease_seconds=0.2)
    for _ in range(3):
        await asyncio.sleep(0.1)
        await world.renew_leases(a.worker_id, [run_id], [], 0.2)
    assert await world.claim_runs(b, ["wf"], limit=1, lease_seconds=30) == []


async def test_renewal_keeps_only_the_runs_named(world: World) -> None:
    """A run its worker no longer works on (its driver failed while the store was away) is
    not renewed with the others: its lease runs out and another worker takes it over."""
    a, b = worker("a"), worker("b")
    await world.register_worker(a)
    kept, forgotten = await new_run(world), await new_run(world)
    assert len(await world.claim_runs(a, ["wf"], limit=2, lease_seconds=0.2)) == 2
    for _ in range(3):
        await asyncio.sleep(0.1)
        await world.renew_leases(a.worker_id, [kept], [], 0.2)
    taken = await world.claim_runs(b, ["wf"], limit=2, lease_seconds=30)
    assert [r.run_id for r in taken] == [forgotten]


async def test_a_worker_is_never_judged_by_its_pid_only_by_its_lease(world: World) -> None:
    """Same hostname, a pid with no process here: a worker in another PID namespace (a
    container with a fixed hostname) looks just like that, and is alive. Its run is taken
    when its lease runs out, never before (issue 25 item 3)."""
    no_such_pid = 2**22 + 12345  # beyond pid_max on typical systems: no process here
    elsewhere, here = worker("elsewhere", no_such_pid), worker("here")
    await world.register_worker(elsewhere)
    await world.register_worker(here)
    run_id = await new_run(world)
    assert await world.claim_runs(elsewhere, ["wf"], limit=1, lease_seconds=0.5)
    assert await world.claim_runs(here, ["wf"], limit=1, lease_seconds=30) == []
    await asyncio.sleep(0.7)
    taken = await world.claim_runs(here, ["wf"], limit=1, lease_seconds=30)
    assert [r.run_id for r in taken] == [run_id]


async def test_release_does_not_lose_a_wakeup(world: World) -> None:
    a = worker()
    await world.register_worker(a)
    run_id = await new_run(world)
    (record,) = await world.claim_runs(a, ["wf"], limit=1, lease_seconds=30)
    # Someone appends while the worker decides to let go of the run.
    await world.append(run_id, [NewEvent(EventType.RUN_STARTED)])
    await world.release_run(run_id, a.worker_id, None, known_seq=record.last_seq)
    assert [r.run_id for r in await world.claim_runs(a, ["wf"], limit=1, lease_seconds=30)] == [
        run_id
    ]


async def test_delivery_without_owner_makes_run_due(world: World) -> None:
    a = worker()
    await world.register_worker(a)
    run_id = await new_run(world)
    await world.claim_runs(a, ["wf"], limit=1, lease_seconds=30)
    wait_id = new_id("wait")
    await world.append(
        run_id,
        [
            NewEvent(EventType.RUN_STARTED),
            NewEvent(EventType.WAIT_CREATED, wait_id, None, {"resume_at": time.time() + 99}),
        ],
        owner=a.worker_id,
    )
    await world.release_run(run_id, a.worker_id, None)
    assert await world.claim_runs(a, ["wf"], limit=1, lease_seconds=30) == []
    await world.append(run_id, [NewEvent(EventType.WAIT_COMPLETED, wait_id)])
    assert [r.run_id for r in await world.claim_runs(a, ["wf"], limit=1, lease_seconds=30)] == [
        run_id
    ]


async def test_list_runs_filters_and_pages(world: World) -> None:
    ids = [await new_run(world, "alpha" if i % 2 else "beta") for i in range(7)]
    await world.append(ids[0], [NewEvent(EventType.RUN_CANCELLED)])
    everything = await world.list_runs()
    assert [r.run_id for r in everything] == sorted(ids, reverse=True)
    alphas = await world.list_runs(workflow_name="alpha")
    assert {r.workflow_name for r in alphas} == {"alpha"} and len(alphas) == 3
    cancelled = await world.list_runs(status=RunStatus.CANCELLED)
    assert [r.run_id for r in cancelled] == [ids[0]]
    page1 = await world.list_runs(limit=3)
    page2 = await world.list_runs(limit=3, before=page1[-1].run_id)
    assert [r.run_id for r in page1 + page2] == sorted(ids, reverse=True)[:6]


async def test_listeners_hear_about_commits(world: World) -> None:
    heard: list[RunChange] = []
    unsubscribe = world.subscribe(heard.extend)
    run_id = await new_run(world)
    await world.append(run_id, [NewEvent(EventType.RUN_STARTED)])
    unsubscribe()
    await world.append(run_id, [NewEvent(EventType.RUN_CANCELLED)])
    mine = [c for c in heard if c.run_id == run_id]
    assert [c.last_seq for c in mine][:2] == [1, 2]
    assert all(c.last_seq <= 2 for c in mine)


async def test_concurrent_appends_share_commits(world: World) -> None:
    runs = [await new_run(world) for _ in range(50)]
    await asyncio.gather(*(world.append(r, [NewEvent(EventType.RUN_STARTED)]) for r in runs))

    async def many(run_id: str) -> None:
        for _ in range(20):
            step_id = new_id("step")
            await world.append(
                run_id, [NewEvent(EventType.STEP_CREATED, step_id, b"", {"name": "s"})]
            )

    await asyncio.gather(*(many(r) for r in runs))
    for run_id in runs:
        assert [e.seq for e in await world.get_events(run_id)] == list(range(1, 23))


async def test_claims_only_runs_of_the_named_workflows(world: World) -> None:
    a = worker()
    await world.register_worker(a)
    mine = await new_run(world, "mine")
    theirs = await new_run(world, "theirs")
    claimed = await world.claim_runs(a, ["mine", "other"], limit=10, lease_seconds=30)
    assert [r.run_id for r in claimed] == [mine]
    # The run nobody here can execute does not count as due for this worker either.
    assert await world.next_wake_at(["mine"]) is None
    assert await world.next_wake_at(["theirs"]) is not None
    assert await world.claim_runs(a, [], limit=10, lease_seconds=30) == []
    record = await world.get_run(theirs)
    assert record is not None and record.owner is None and record.status is RunStatus.PENDING


async def test_workers_register_what_they_can_execute(world: World) -> None:
    info = WorkerInfo(new_id("wrkr"), "host-a", 42, ("a.wf", "b.wf"), 12.0)
    await world.register_worker(info)
    await world.register_worker(WorkerInfo(info.worker_id, "host-a", 42, ("c.wf",), 12.0))
    (found,) = [w for w in await world.list_workers() if w.info.worker_id == info.worker_id]
    assert found.info.workflows == ("c.wf",) and found.info.lease_seconds == 12.0
    assert found.live(datetime.now(UTC)) and not found.live(datetime.now(UTC) + timedelta(1))


async def test_a_delayed_run_woken_is_due_at_once(world: World) -> None:
    a = worker()
    await world.register_worker(a)
    later = datetime.now(UTC) + timedelta(hours=1)
    await world.create_run("sleepy", "wf", b"", {}, start_at=later)
    assert await world.next_wake_at(["wf"]) == (await world.get_run("sleepy")).wake_at  # type: ignore[union-attr]
    assert await world.wake_run("sleepy")
    assert not await world.wake_run("sleepy")  # due already
    assert [r.run_id for r in await world.claim_runs(a, ["wf"], limit=1, lease_seconds=30)] == [
        "sleepy"
    ]


async def test_a_run_past_its_deadline_is_claimed_by_any_worker(world: World) -> None:
    """Failing a run that timed out needs none of its code: any worker takes it."""
    a = worker()
    await world.register_worker(a)
    options = RunOptions(deadline=datetime.now(UTC) - timedelta(seconds=1))
    later = datetime.now(UTC) + timedelta(hours=1)
    await world.create_run("overdue", "nobody.has.this", b"", {}, options, start_at=later)
    assert await world.next_wake_at(["wf"]) is not None
    claimed = await world.claim_runs(a, ["wf"], limit=1, lease_seconds=30)
    assert [r.run_id for r in claimed] == ["overdue"]


async def test_runs_are_listed_newest_first_whatever_their_ids(world: World) -> None:
    """User-chosen ids do not sort by time: the list is by creation time, then id."""
    for run_id in ["zeta", "alpha", "mid", "wrun_0"]:
        await world.create_run(run_id, "wf", b"", {})
        await asyncio.sleep(0.002)
    ids = [r.run_id for r in await world.list_runs()]
    assert ids == ["wrun_0", "mid", "alpha", "zeta"]
    first = await world.list_runs(limit=2)
    rest = await world.list_runs(limit=2, before=first[-1].run_id)
    assert [r.run_id for r in first + rest] == ids
    created = {r.run_id: r.created_at for r in await world.list_runs()}
    window = await world.list_runs(since=created["alpha"], until=created["wrun_0"])
    assert [r.run_id for r in window] == ["mid", "alpha"]
    assert [r.run_id for r in await world.list_runs(id_prefix="al")] == ["alpha"]


async def test_count_active_runs_counts_pending_and_running_runs_only(world: World) -> None:
    assert {status: n for status, n in (await world.count_active_runs()).items() if n} == {}
    await new_run(world)  # pending
    running, ended = await new_run(world), await new_run(world)
    await world.append(running, [NewEvent(EventType.RUN_STARTED)])
    await world.append(
        ended, [NewEvent(EventType.RUN_STARTED), NewEvent(EventType.RUN_COMPLETED, payload=b"x")]
    )
    counts = await world.count_active_runs()
    assert {status: n for status, n in counts.items() if n} == {
        RunStatus.PENDING: 1,
        RunStatus.RUNNING: 1,
    }
