"""Forking a run: its first steps' results reused, the code run again from there."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from pathlib import Path

import pytest

import workflowkit.sync
from workflowkit import (
    ForkError,
    WorkflowRunFailedError,
    create_hook,
    get_writable,
    sleep,
    step,
    workflow,
)
from workflowkit.api import fork_run, get_run, resume_hook, start
from workflowkit.runtime.runtime import Runtime
from workflowkit.testing import wait_for_hook
from workflowkit.worlds.records import EventType

CALLS: Counter[str] = Counter()
LOCK = threading.Lock()
BROKEN = {"charge": True}


def called(name: str) -> None:
    with LOCK:
        CALLS[name] += 1


@pytest.fixture(autouse=True)
def fresh() -> None:
    CALLS.clear()
    BROKEN["charge"] = True


@step
def reserve(order: str) -> str:
    called("reserve")
    return f"reserved {order}"


@step(max_retries=0)
def charge(order: str) -> str:
    called("charge")
    if BROKEN["charge"]:
        raise RuntimeError("card service said no")
    return f"charged {order}"


@step
def ship(order: str) -> str:
    called("ship")
    return f"shipped {order}"


@workflow
async def order_flow(order: str) -> list[str]:
    done = [await reserve(order)]
    await sleep(0.05)
    done.append(await charge(order))
    done.append(await ship(order))
    return done


@workflow
async def approved_flow(order: str) -> list[str]:
    done = [await reserve(order)]
    decision = await create_hook(token=f"approve:{order}")
    done.append(str(decision))
    done.append(await ship(order))
    return done


@workflow
async def with_child(order: str) -> str:
    await reserve(order)
    child = await start(order_flow, order)
    await child.return_value()
    return await ship(order)


async def test_fork_a_failed_run_after_fixing_the_step(runtime: Runtime) -> None:
    source = await start(order_flow, "o-1")
    with pytest.raises(WorkflowRunFailedError):
        await source.return_value(timeout=20)
    BROKEN["charge"] = False  # the fix is deployed
    fork = await fork_run(source.run_id, from_step=1)
    assert await fork.return_value(timeout=20) == ["reserved o-1", "charged o-1", "shipped o-1"]
    assert dict(CALLS) == {"reserve": 1, "charge": 2, "ship": 1}  # reserve reused
    record = await runtime.world.get_run(fork.run_id)
    assert record is not None and record.options.forked_from == source.run_id
    assert [r.run_id for r in await runtime.world.list_runs(forked_from=source.run_id)] == [
        fork.run_id
    ]


async def test_a_fork_reuses_a_hook_s_payload(runtime: Runtime) -> None:
    source = await start(approved_flow, "o-2")
    await wait_for_hook(source, "approve:o-2")
    await resume_hook("approve:o-2", "approved")
    assert await source.return_value(timeout=20) == ["reserved o-2", "approved", "shipped o-2"]
    fork = await fork_run(source.run_id, from_step=1)
    assert await fork.return_value(timeout=20) == ["reserved o-2", "approved", "shipped o-2"]
    assert dict(CALLS) == {"reserve": 1, "ship": 2}
    kinds = [e.type for e in await runtime.world.get_events(fork.run_id)]
    assert kinds.count(EventType.HOOK_RECEIVED) == 1


async def test_fork_from_zero_runs_everything_again(runtime: Runtime) -> None:
    BROKEN["charge"] = False
    source = await start(order_flow, "o-3")
    await source.return_value(timeout=20)
    fork = await fork_run(source.run_id, from_step=0)
    assert await fork.return_value(timeout=20) == ["reserved o-3", "charged o-3", "shipped o-3"]
    assert dict(CALLS) == {"reserve": 2, "charge": 2, "ship": 2}


async def test_bad_forks_are_refused(runtime: Runtime) -> None:
    BROKEN["charge"] = False
    source = await start(order_flow, "o-4")
    await source.return_value(timeout=20)
    with pytest.raises(ForkError, match="has 3 step"):
        await fork_run(source.run_id, from_step=4)
    with pytest.raises(ForkError):
        await fork_run(source.run_id, from_step=-1)
    parent = await start(with_child, "o-5")
    await parent.return_value(timeout=20)
    with pytest.raises(ForkError, match="child run"):
        await fork_run(parent.run_id, from_step=1)  # step 2 comes after the child's start
    fork = await fork_run(parent.run_id, from_step=0)
    assert await fork.return_value(timeout=20) == "shipped o-5"


@workflow(name="fork.placed")
async def placed(n: int) -> int:
    return n


async def test_a_rerun_keeps_the_runs_queue_key_and_priority(runtime: Runtime) -> None:
    """Re-running (the dashboard's button) starts a run that flow control treats like the
    first: same queue, key and priority, and the same input."""
    from workflowkit import Queue
    from workflowkit._operations import rerun

    Queue("fork.rerun-queue", concurrency=1)
    first = await start(placed.options(queue="fork.rerun-queue", key="cust-7", priority=5), 3)
    assert await first.return_value(timeout=10) == 3
    again = await rerun(runtime.world, first.run_id)
    before = await runtime.world.get_run(first.run_id)
    assert before is not None and again.run_id != first.run_id and again.input == before.input
    assert (again.options.queue, again.options.key, again.options.priority) == (
        "fork.rerun-queue",
        "cust-7",
        5,
    )


@step
async def say(line: str) -> str:
    called("say")
    await get_writable().write(line)
    return line


@workflow
async def napping(order: str) -> list[str]:
    done = [await reserve(order)]
    await sleep("1 hour")
    done.append(await ship(order))
    return done


@workflow
async def talking(order: str) -> list[str]:
    return [await say(f"hello {order}"), await ship(order)]


async def until_sleeping(runtime: Runtime, run_id: str) -> None:
    for _ in range(1000):
        if any(e.type is EventType.WAIT_CREATED for e in await runtime.world.get_events(run_id)):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{run_id} never slept")


async def test_a_fork_does_not_sleep_again_what_its_source_slept(runtime: Runtime) -> None:
    """A sleep of the copied part that was over is over in the fork too; one still going
    keeps its time (the fork waits until then, as the source does)."""
    source = await start(napping, "o-6")
    await until_sleeping(runtime, source.run_id)
    waiting = await fork_run(source.run_id, from_step=1)  # the sleep is copied unfinished
    await source.wake_up()
    assert await source.return_value(timeout=20) == ["reserved o-6", "shipped o-6"]
    fork = await fork_run(source.run_id, from_step=1)  # the sleep is copied over
    assert await fork.return_value(timeout=20) == ["reserved o-6", "shipped o-6"]
    assert dict(CALLS) == {"reserve": 1, "ship": 2}
    kinds = [e.type for e in await runtime.world.get_events(fork.run_id)]
    assert (kinds.count(EventType.WAIT_CREATED), kinds.count(EventType.WAIT_COMPLETED)) == (1, 1)
    assert await waiting.status() == "running"
    source_wait = (await runtime.world.list_waits(source.run_id))[0]
    (copied_wait,) = await runtime.world.list_waits(waiting.run_id)
    assert copied_wait.completed_at is None and copied_wait.resume_at == source_wait.resume_at
    await waiting.cancel()


async def test_a_fork_does_not_copy_stream_chunks(runtime: Runtime) -> None:
    source = await start(talking, "o-7")
    assert await source.return_value(timeout=20) == ["hello o-7", "shipped o-7"]
    assert [c async for c in source.get_readable()] == ["hello o-7"]
    fork = await fork_run(source.run_id, from_step=1)  # the step that wrote is reused
    assert await fork.return_value(timeout=20) == ["hello o-7", "shipped o-7"]
    assert CALLS["say"] == 1
    assert [c async for c in get_run(fork.run_id).get_readable()] == []


def test_fork_run_from_sync_code(tmp_path: Path) -> None:
    BROKEN["charge"] = False
    workflowkit.configure(f"sqlite:///{tmp_path}/wk.db", poll_interval=0.05)
    try:
        source = workflowkit.sync.start(order_flow, "o-8")
        assert source.return_value(timeout=20)[0] == "reserved o-8"
        fork = workflowkit.sync.fork_run(source.run_id, from_step=2)
        assert fork.return_value(timeout=20) == ["reserved o-8", "charged o-8", "shipped o-8"]
        assert dict(CALLS) == {"reserve": 1, "charge": 1, "ship": 2}
        assert fork.info().forked_from == source.run_id
    finally:
        workflowkit.shutdown()
