"""Cancelling runs and waking sleeps early."""

from __future__ import annotations

import asyncio
import time

import blocked_step
import pytest

from workflowkit import WorkflowRunCancelledError, sleep, step, workflow
from workflowkit.api import start
from workflowkit.runtime.runtime import Runtime
from workflowkit.worlds.records import EventType

AFTER_SLEEP: list[str] = []


@step
def record(tag: str) -> None:
    AFTER_SLEEP.append(tag)


@workflow
async def long_sleep(tag: str) -> str:
    await sleep("1 hour")
    await record(tag)
    return "woke"


async def wait_for_event(runtime: Runtime, run_id: str, kind: EventType) -> None:
    for _ in range(500):
        events = await runtime.world.get_events(run_id)
        if any(e.type is kind for e in events):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {kind} in {run_id}")


async def test_wake_up_ends_a_sleep(runtime: Runtime) -> None:
    run = await start(long_sleep, "w")
    await wait_for_event(runtime, run.run_id, EventType.WAIT_CREATED)
    woken = await run.wake_up()
    assert len(woken) == 1 and woken[0].startswith("wait_")
    assert await run.return_value(timeout=10) == "woke"


async def test_wake_up_by_correlation_id(runtime: Runtime) -> None:
    run = await start(long_sleep, "c")
    await wait_for_event(runtime, run.run_id, EventType.WAIT_CREATED)
    assert await run.wake_up(["wait_unknown"]) == []
    waits = await runtime.world.list_waits(run.run_id)
    assert await run.wake_up([waits[0].wait_id]) == [waits[0].wait_id]
    assert await run.return_value(timeout=10) == "woke"


async def test_cancel_while_sleeping(runtime: Runtime) -> None:
    tag = f"cancel-sleep-{time.monotonic()}"
    run = await start(long_sleep, tag)
    await wait_for_event(runtime, run.run_id, EventType.WAIT_CREATED)
    await run.cancel()
    with pytest.raises(WorkflowRunCancelledError):
        await run.return_value(timeout=10)
    assert await run.status() == "cancelled"
    assert tag not in AFTER_SLEEP
    assert await run.wake_up() == []


async def test_cancel_while_a_step_runs(runtime: Runtime) -> None:
    blocked_step.reset()
    run = await start(blocked_step.held_in_a_step)
    assert await asyncio.to_thread(blocked_step.STEP_STARTED.wait, 10)
    await run.cancel()
    blocked_step.STEP_RELEASE.set()
    with pytest.raises(WorkflowRunCancelledError):
        await run.return_value(timeout=10)
    await asyncio.sleep(0.2)
    events = await runtime.world.get_events(run.run_id)
    kinds = [e.type for e in events]
    assert EventType.STEP_COMPLETED not in kinds  # the in-flight result was discarded
    assert kinds[-1] is EventType.RUN_CANCELLED
    assert blocked_step.FOLLOW_UPS == []


async def test_cancel_is_terminal(runtime: Runtime) -> None:
    run = await start(long_sleep, "t")
    await run.cancel()
    await run.cancel()  # a second cancel is a no-op
    with pytest.raises(WorkflowRunCancelledError):
        await run.return_value(timeout=10)
