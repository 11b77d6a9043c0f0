"""Forking a run: its first steps' results reused, the code run again from there."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from workflowkit import ForkError, WorkflowRunFailedError, create_hook, sleep, step, workflow
from workflowkit.api import fork_run, resume_hook, start
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
