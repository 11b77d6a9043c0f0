"""A worker with no free step slot queues a run's steps in the World's step queue.

Here one worker takes them back itself as its slots free up; tests/runtime/test_postgres_workers.py
has several worker processes sharing one run's steps.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

import pytest

from workflowkit import RetryableError, get_step_metadata, step, workflow
from workflowkit.api import start
from workflowkit.runtime.runtime import Runtime
from workflowkit.worlds.records import EventType

CALLS: Counter[int] = Counter()
LOCK = threading.Lock()


pytestmark = pytest.mark.worker_options(step_slots=2)


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    CALLS.clear()


@step
async def square(i: int) -> int:
    with LOCK:
        CALLS[i] += 1
    await asyncio.sleep(0.01)
    return i * i


@workflow
async def fan_out(n: int) -> list[int]:
    return list(await asyncio.gather(*(square(i) for i in range(n))))


async def test_steps_beyond_the_slots_go_through_the_queue(runtime: Runtime) -> None:
    run = await start(fan_out, 20)
    assert await run.return_value(timeout=30) == [i * i for i in range(20)]
    assert dict(CALLS) == dict.fromkeys(range(20), 1)  # every body once
    events = await runtime.world.get_events(run.run_id)
    completed = [e.correlation_id for e in events if e.type is EventType.STEP_COMPLETED]
    assert len(completed) == len(set(completed)) == 20
    steps = await runtime.world.list_steps(run.run_id)
    assert not any(s.in_step_queue for s in steps)  # nothing left queued or claimed
    assert runtime.worker is not None and runtime.worker.running_steps == 0


@step(max_retries=3)
async def flaky(i: int) -> int:
    if get_step_metadata().attempt < 2:
        raise RetryableError("once more", retry_after=0.05)
    return i


@workflow
async def flaky_fan_out(n: int) -> list[int]:
    return list(await asyncio.gather(*(flaky(i) for i in range(n))))


async def test_queued_steps_retry_through_the_queue(runtime: Runtime) -> None:
    run = await start(flaky_fan_out, 8)
    assert await run.return_value(timeout=30) == list(range(8))
    steps = await runtime.world.list_steps(run.run_id)
    assert [s.attempt for s in steps] == [2] * 8


@step
async def stall(i: int) -> int:
    await asyncio.sleep(30)
    return i


@workflow
async def stalled_fan_out(n: int) -> list[int]:
    return list(await asyncio.gather(*(stall(i) for i in range(n))))


async def _slots_in_use(runtime: Runtime, expected: int) -> None:
    worker = runtime.worker
    assert worker is not None
    for _ in range(500):
        if worker.running_steps == expected:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{worker.running_steps} step slots in use, expected {expected}")


async def test_a_cancelled_run_gives_its_step_slots_back(runtime: Runtime) -> None:
    run = await start(stalled_fan_out, 2)
    await _slots_in_use(runtime, 2)  # both steps running
    await run.cancel()
    await _slots_in_use(runtime, 0)
    # Released once each, not twice: the slots are usable, and the count stays at zero.
    again = await start(fan_out, 4)
    assert await again.return_value(timeout=30) == [0, 1, 4, 9]
    await asyncio.sleep(0.05)
    assert runtime.worker is not None and runtime.worker.running_steps == 0


@step
async def instant(i: int) -> int:
    return i


@workflow
async def one_step(i: int) -> int:
    return await instant(i)


@workflow
async def many_children(n: int) -> int:
    runs = [await start(one_step, i) for i in range(n)]
    return sum(await asyncio.gather(*(run.return_value() for run in runs)))


async def test_queued_steps_start_as_soon_as_slots_free_up(tmp_path: object) -> None:
    """The running steps may all end while the rest are being queued: the worker must not
    wait for its next poll to take them (a 5 s poll here would show as a 5 s stall)."""
    import time

    import workflowkit

    workflowkit.configure(f"sqlite:///{tmp_path}/wk.db", step_slots=8, poll_interval=5)
    try:
        began = time.monotonic()
        for _ in range(3):
            run = await start(many_children, 20)
            assert await run.return_value(timeout=30) == sum(range(20))
        assert time.monotonic() - began < 4.0
    finally:
        workflowkit.shutdown()


async def test_steps_whose_starts_are_being_recorded_hold_no_slot(runtime: Runtime) -> None:
    """Three runs place a step each while their appends are held up, with two slots: the
    steps are not running yet, so none goes to the World's step queue (which costs three
    more transactions and a read of the log per step)."""
    world = runtime.world
    real_append = world.append
    gate = threading.Event()
    held: list[str] = []

    async def append(run_id: str, events: Any, **kwargs: Any) -> Any:
        if any(e.type is EventType.STEP_STARTED for e in events):
            held.append(run_id)
            await asyncio.to_thread(gate.wait, 30)
        return await real_append(run_id, events, **kwargs)

    world.append = append  # type: ignore[method-assign]
    try:
        runs = [await start(one_step, i) for i in range(3)]
        for _ in range(500):  # until all three wait to record their step's start
            if len(held) == 3:
                break
            await asyncio.sleep(0.01)
        assert sorted(held) == sorted(run.run_id for run in runs)
    finally:
        gate.set()
    assert [await run.return_value(timeout=30) for run in runs] == [0, 1, 2]
    for run in runs:
        assert all(s.queued_at is None for s in await world.list_steps(run.run_id))
    assert runtime.worker is not None and runtime.worker.running_steps == 0
