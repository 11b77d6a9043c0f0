"""The World's step queue: steps a run's owner offers to other workers, claimed under lease."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys

import pytest

from workflowkit.errors import LeaseLostError, WorkflowRunNotFoundError
from workflowkit.ids import new_id
from workflowkit.worlds.base import World
from workflowkit.worlds.records import EventType, NewEvent, StepStatus, WorkerInfo


def worker(pid: int | None = None) -> WorkerInfo:
    return WorkerInfo(new_id("wrkr"), socket.gethostname(), pid or os.getpid())


async def owned_run_with_steps(
    world: World, owner: WorkerInfo, *names: str
) -> tuple[str, list[str]]:
    """A run held by ``owner`` that created one (not started) step per name."""
    run_id = new_id("wrun")
    await world.create_run(run_id, "wf", b"input", {})
    await world.register_worker(owner)
    claimed = await world.claim_runs(owner, ["wf"], limit=10, lease_seconds=30)
    assert run_id in [r.run_id for r in claimed]
    step_ids = [new_id("step") for _ in names]
    events = [NewEvent(EventType.RUN_STARTED)] + [
        NewEvent(EventType.STEP_CREATED, sid, f"in-{n}".encode(), {"name": n})
        for sid, n in zip(step_ids, names, strict=True)
    ]
    result = await world.append(run_id, events, owner=owner.worker_id)
    assert not result.rejected
    return run_id, step_ids


async def test_queued_steps_are_claimed_once_with_their_input(world: World) -> None:
    owner, other = worker(), worker()
    run_id, (first, second) = await owned_run_with_steps(world, owner, "a", "b")
    await world.register_worker(other)
    await world.queue_steps(run_id, [first, second], owner=owner.worker_id)
    steps = {s.step_id: s for s in await world.list_steps(run_id)}
    assert steps[first].queued_at is not None and steps[first].in_step_queue

    claims = await world.claim_steps(other, ["a", "b"], limit=1, lease_seconds=30)
    assert len(claims) == 1
    claim = claims[0]
    assert (claim.run_id, claim.attempt, claim.workflow_name) == (run_id, 1, "wf")
    assert claim.input == f"in-{claim.step_name}".encode()
    rest = await world.claim_steps(other, ["a", "b"], limit=10, lease_seconds=30)
    assert [c.step_id for c in rest] == [{first, second}.difference({claim.step_id}).pop()]
    assert await world.claim_steps(worker(), ["a", "b"], limit=10, lease_seconds=30) == []

    steps = {s.step_id: s for s in await world.list_steps(run_id)}
    assert steps[claim.step_id].status is StepStatus.RUNNING
    assert steps[claim.step_id].claimed_by == other.worker_id
    assert steps[claim.step_id].queued_at is None
    started = [e for e in await world.get_events(run_id) if e.type is EventType.STEP_STARTED]
    assert sorted(e.correlation_id or "" for e in started) == sorted([first, second])


async def test_only_steps_the_worker_knows_are_claimed(world: World) -> None:
    owner = worker()
    run_id, steps = await owned_run_with_steps(world, owner, "known", "unknown")
    await world.queue_steps(run_id, steps, owner=owner.worker_id)
    claims = await world.claim_steps(worker(), ["known"], limit=10, lease_seconds=30)
    assert [c.step_name for c in claims] == ["known"]


async def test_queueing_needs_the_run_lease(world: World) -> None:
    owner = worker()
    run_id, steps = await owned_run_with_steps(world, owner, "a")
    with pytest.raises(LeaseLostError):
        await world.queue_steps(run_id, steps, owner="wrkr_someone_else")
    with pytest.raises(WorkflowRunNotFoundError):
        await world.queue_steps("wrun_missing", steps, owner=owner.worker_id)


async def test_delayed_queueing(world: World) -> None:
    owner = worker()
    run_id, steps = await owned_run_with_steps(world, owner, "a")
    await world.queue_steps(run_id, steps, owner=owner.worker_id, delay=0.3)
    assert await world.claim_steps(worker(), ["a"], limit=10, lease_seconds=30) == []
    await asyncio.sleep(0.4)
    assert len(await world.claim_steps(worker(), ["a"], limit=10, lease_seconds=30)) == 1


async def test_finish_records_once_and_only_for_the_lease_holder(world: World) -> None:
    owner, executor = worker(), worker()
    run_id, steps = await owned_run_with_steps(world, owner, "a")
    await world.queue_steps(run_id, steps, owner=owner.worker_id)
    (claim,) = await world.claim_steps(executor, ["a"], limit=1, lease_seconds=30)
    done = NewEvent(EventType.STEP_COMPLETED, claim.step_id, b"out")
    assert not await world.finish_step(run_id, done, claimer="wrkr_impostor")
    assert await world.finish_step(run_id, done, claimer=executor.worker_id)
    assert not await world.finish_step(run_id, done, claimer=executor.worker_id)  # twice
    completed = [e for e in await world.get_events(run_id) if e.type is EventType.STEP_COMPLETED]
    assert len(completed) == 1
    (step,) = await world.list_steps(run_id)
    assert step.status is StepStatus.COMPLETED and step.output == b"out" and not step.in_step_queue
    # The run's owner still holds the run: a remote result does not take it away.
    record = await world.get_run(run_id)
    assert record is not None and record.owner == owner.worker_id


async def test_retrying_queues_the_step_again(world: World) -> None:
    owner, executor = worker(), worker()
    run_id, steps = await owned_run_with_steps(world, owner, "a")
    await world.queue_steps(run_id, steps, owner=owner.worker_id)
    (claim,) = await world.claim_steps(executor, ["a"], limit=1, lease_seconds=30)
    retrying = NewEvent(
        EventType.STEP_RETRYING, claim.step_id, b"err", {"attempt": 1, "retry_at": 0}
    )
    assert await world.finish_step(run_id, retrying, claimer=executor.worker_id, retry_after=0.2)
    assert await world.claim_steps(worker(), ["a"], limit=1, lease_seconds=30) == []
    await asyncio.sleep(0.3)
    (again,) = await world.claim_steps(worker(), ["a"], limit=1, lease_seconds=30)
    assert again.attempt == 2


async def test_an_expired_step_lease_is_taken_over(world: World) -> None:
    owner, slow, fast = worker(), worker(), worker()
    run_id, steps = await owned_run_with_steps(world, owner, "a")
    await world.queue_steps(run_id, steps, owner=owner.worker_id)
    (first,) = await world.claim_steps(slow, ["a"], limit=1, lease_seconds=0.2)
    assert await world.claim_steps(fast, ["a"], limit=1, lease_seconds=30) == []
    await asyncio.sleep(0.3)
    (second,) = await world.claim_steps(fast, ["a"], limit=1, lease_seconds=30)
    assert (second.step_id, second.attempt) == (first.step_id, 2)
    late = NewEvent(EventType.STEP_COMPLETED, first.step_id, b"late")
    assert not await world.finish_step(run_id, late, claimer=slow.worker_id)  # lost its lease
    assert await world.finish_step(
        run_id, NewEvent(EventType.STEP_COMPLETED, first.step_id, b"ok"), claimer=fast.worker_id
    )


async def test_renewal_keeps_a_step_lease(world: World) -> None:
    owner, executor = worker(), worker()
    run_id, steps = await owned_run_with_steps(world, owner, "a")
    await world.register_worker(executor)
    await world.queue_steps(run_id, steps, owner=owner.worker_id)
    (claim,) = await world.claim_steps(executor, ["a"], limit=1, lease_seconds=0.3)
    for _ in range(3):
        await asyncio.sleep(0.15)
        await world.renew_leases(executor.worker_id, [], [claim.step_id], 0.3)
    assert await world.claim_steps(worker(), ["a"], limit=1, lease_seconds=30) == []


async def test_an_executor_s_steps_are_taken_when_its_lease_runs_out_whatever_its_pid(
    world: World,
) -> None:
    """A pid that names no process here says nothing (another PID namespace has its own):
    the step stays with its claimer until the step's lease runs out."""
    owner = worker()
    run_id, steps = await owned_run_with_steps(world, owner, "a")
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = worker(pid=int(gone.stdout))
    await world.register_worker(dead)
    await world.queue_steps(run_id, steps, owner=owner.worker_id)
    await world.claim_steps(dead, ["a"], limit=1, lease_seconds=0.5)
    assert await world.claim_steps(worker(), ["a"], limit=1, lease_seconds=30) == []
    await asyncio.sleep(0.7)
    (taken,) = await world.claim_steps(worker(), ["a"], limit=1, lease_seconds=30)
    assert taken.attempt == 2


async def test_unregistering_hands_claimed_steps_back(world: World) -> None:
    owner, leaving = worker(), worker()
    run_id, steps = await owned_run_with_steps(world, owner, "a")
    await world.register_worker(leaving)
    await world.queue_steps(run_id, steps, owner=owner.worker_id)
    await world.claim_steps(leaving, ["a"], limit=1, lease_seconds=60)
    await world.unregister_worker(leaving.worker_id)
    (taken,) = await world.claim_steps(worker(), ["a"], limit=1, lease_seconds=30)
    assert taken.attempt == 2


async def test_steps_of_ended_runs_are_not_claimed(world: World) -> None:
    owner = worker()
    run_id, steps = await owned_run_with_steps(world, owner, "a")
    await world.queue_steps(run_id, steps, owner=owner.worker_id)
    await world.append(run_id, [NewEvent(EventType.RUN_CANCELLED)])
    assert await world.claim_steps(worker(), ["a"], limit=1, lease_seconds=30) == []
