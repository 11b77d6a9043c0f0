"""``return_value()``'s wait: woken from the World's threads, never missing a wake-up."""

from __future__ import annotations

import asyncio
import gc
import threading
import time

import pytest

from workflowkit import WorkflowRunFailedError, sleep, step, workflow
from workflowkit.api import get_run, start
from workflowkit.runtime.runtime import Runtime
from workflowkit.runtime.waiters import Nudge


async def test_a_nudge_from_another_thread_ends_the_wait() -> None:
    nudge = Nudge(asyncio.get_running_loop())
    threading.Timer(0.05, nudge.nudge).start()
    began = time.monotonic()
    await nudge.wait(10)
    assert time.monotonic() - began < 5


async def test_a_nudge_while_nobody_waits_ends_the_next_wait_at_once() -> None:
    # The run may end between the waiter's read and its wait: that wake-up must not be lost.
    nudge = Nudge(asyncio.get_running_loop())
    nudge.nudge()
    await asyncio.sleep(0.01)  # delivered to the loop, nobody waiting yet
    began = time.monotonic()
    await nudge.wait(10)
    assert time.monotonic() - began < 1
    began = time.monotonic()
    await nudge.wait(0.05)  # consumed: this one waits out its timeout
    assert time.monotonic() - began >= 0.04


async def test_a_cancelled_wait_leaves_the_nudge_usable() -> None:
    nudge = Nudge(asyncio.get_running_loop())
    waiting = asyncio.ensure_future(nudge.wait(10))
    await asyncio.sleep(0.01)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    nudge.nudge()
    await asyncio.wait_for(nudge.wait(10), 5)


@step(name="waiters.double")
async def double(x: int) -> int:
    return 2 * x


@workflow(name="waiters.doubling")
async def doubling(x: int) -> int:
    return await double(x)


async def _ended(runtime: Runtime, run_id: str) -> None:
    for _ in range(1000):
        record = await runtime.world.get_run(run_id)
        if record is not None and record.status.terminal:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"run {run_id} never ended")


async def test_a_run_that_ended_before_anyone_waited_returns_at_once(
    cached_runtime: Runtime,
) -> None:
    # start() listens for the run's end before creating it, and return_value() then waits
    # before its first read: the end heard meanwhile must not be waited out (a 1 s poll).
    run = await start(doubling, 21)
    await _ended(cached_runtime, run.run_id)
    began = time.monotonic()
    assert await run.return_value(timeout=10) == 42
    assert time.monotonic() - began < 0.5


async def test_return_value_times_out_with_the_runs_status(cached_runtime: Runtime) -> None:
    run = await start(doubling.options(delay="1h"), 1)
    with pytest.raises(TimeoutError, match="still pending"):
        await run.return_value(timeout=0.05)
    with pytest.raises(TimeoutError, match="still pending"):
        await run.return_value(timeout=0)


async def test_a_run_handle_awaited_on_another_loop_still_gets_its_result(
    cached_runtime: Runtime,
) -> None:
    run = await start(doubling, 4)
    result = await asyncio.to_thread(lambda: asyncio.run(run.return_value(timeout=10)))
    assert result == 8


@workflow(name="waiters.napping")
async def napping() -> None:
    await sleep("1h")


async def test_run_handles_held_or_dropped_unawaited_leave_no_listener_behind(
    cached_runtime: Runtime,
) -> None:
    # A process that starts many runs and keeps (or drops) their handles must not keep a
    # listener for each: one stops at its run's end, or when its handle goes.
    ended = [await start(doubling, i) for i in range(20)]
    for run in ended:
        await _ended(cached_runtime, run.run_id)
    assert not cached_runtime.waiters._waiters
    asleep = [await start(napping) for _ in range(5)]
    assert len(cached_runtime.waiters._waiters) == 5
    del asleep
    gc.collect()
    assert not cached_runtime.waiters._waiters


@workflow(name="waiters.failing")
async def failing(x: int) -> int:
    await double(x)
    raise ValueError(f"no good: {x}")


async def test_a_result_told_with_the_runs_end_is_not_read_again(
    cached_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The change that ends a run carries its last event: ``return_value()`` takes the
    result, or the error, from it rather than reading the run once more."""
    world = cached_runtime.world
    reads: list[str] = []
    read = world.get_run

    async def counted(run_id: str) -> object:
        reads.append(run_id)
        return await read(run_id)

    await (await start(doubling, 1)).return_value(timeout=10)  # the worker is up
    monkeypatch.setattr(world, "get_run", counted)
    assert await (await start(doubling, 21)).return_value(timeout=10) == 42
    with pytest.raises(WorkflowRunFailedError, match="no good: 3"):
        await (await start(failing, 3)).return_value(timeout=10)
    assert reads == []
    # A run that has ended before its result is asked for: the change that ended it was
    # kept (on a busy machine the worker may well finish a short run that soon).
    early = await start(doubling, 5)
    while not (record := await read(early.run_id)) or not record.status.terminal:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # the change reaches this loop's listener
    assert await early.return_value(timeout=10) == 10
    assert reads == []
    # A handle that did not start the run reads it once, then hears how it ended.
    run = await start(napping)
    other = get_run(run.run_id)
    reads.clear()
    waiting = asyncio.ensure_future(other.return_value(timeout=10))
    await asyncio.sleep(0.2)
    await run.cancel()
    with pytest.raises(Exception, match="cancelled"):
        await waiting
    assert reads.count(run.run_id) == 2  # the wait's first read, and cancel()'s
