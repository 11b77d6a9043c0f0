"""asyncio inside workflow code: gather, TaskGroup, wait, as_completed, timeouts."""

from __future__ import annotations

import asyncio

from workflowkit import sleep, step, workflow
from workflowkit.api import start
from workflowkit.runtime.runtime import Runtime


@step
async def square(x: int) -> int:
    await asyncio.sleep(0.001 * (x % 7))
    return x * x


@workflow
async def fan_out(n: int) -> list[int]:
    return list(await asyncio.gather(*(square(i) for i in range(n))))


async def test_hundred_way_gather(runtime: Runtime) -> None:
    run = await start(fan_out, 100)
    assert await run.return_value(timeout=30) == [i * i for i in range(100)]
    steps = await runtime.world.list_steps(run.run_id)
    assert len(steps) == 100
    assert all(s.attempt == 1 for s in steps)


@workflow
async def task_group(n: int) -> list[int]:
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(square(i)) for i in range(n)]
    return [t.result() for t in tasks]


async def test_task_group(runtime: Runtime) -> None:
    run = await start(task_group, 10)
    assert await run.return_value(timeout=10) == [i * i for i in range(10)]


@workflow
async def completed_order(n: int) -> list[int]:
    results = []
    for fut in asyncio.as_completed([square(i) for i in range(n)]):
        results.append(await fut)
    return sorted(results)


async def test_as_completed(runtime: Runtime) -> None:
    run = await start(completed_order, 8)
    assert await run.return_value(timeout=10) == [i * i for i in range(8)]


@step
async def slow_step(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "step"


@workflow
async def race(step_seconds: float, sleep_seconds: float) -> str:
    work = asyncio.ensure_future(slow_step(step_seconds))
    timer = asyncio.ensure_future(sleep(sleep_seconds))
    done, _ = await asyncio.wait({work, timer}, return_when=asyncio.FIRST_COMPLETED)
    winner = "step" if work in done else "sleep"
    # Whatever won, the run goes on deterministically after it.
    after = await square(3)
    return f"{winner}:{after}"


async def test_race_step_wins(runtime: Runtime) -> None:
    run = await start(race, 0.01, 5)
    assert await run.return_value(timeout=10) == "step:9"


async def test_race_sleep_wins(runtime: Runtime) -> None:
    run = await start(race, 3, 0.05)
    assert await run.return_value(timeout=10) == "sleep:9"


@workflow
async def with_timeout(step_seconds: float, limit: float) -> str:
    try:
        return await asyncio.wait_for(slow_step(step_seconds), limit)
    except TimeoutError:
        return "timed out"


async def test_wait_for_times_out_durably(runtime: Runtime) -> None:
    run = await start(with_timeout, 2, 0.05)
    assert await run.return_value(timeout=10) == "timed out"


async def test_wait_for_in_time(runtime: Runtime) -> None:
    run = await start(with_timeout, 0.01, 5)
    assert await run.return_value(timeout=10) == "step"


@workflow
async def timeout_block(limit: float) -> str:
    try:
        async with asyncio.timeout(limit):
            await sleep(10)
    except TimeoutError:
        return "cut short"
    return "slept"


async def test_asyncio_timeout(runtime: Runtime) -> None:
    run = await start(timeout_block, 0.05)
    assert await run.return_value(timeout=10) == "cut short"


@step
def increment(x: int) -> int:
    return x + 1


@workflow
async def chain(n: int) -> int:
    value = 0
    for _ in range(n):
        value = await increment(value)
    return value


async def test_thousand_step_chain(cached_runtime: Runtime) -> None:
    run = await start(chain, 1000)
    assert await run.return_value(timeout=120) == 1000
    steps = await cached_runtime.world.list_steps(run.run_id)
    assert len(steps) == 1000


async def test_chain_replayed_at_every_step(runtime: Runtime) -> None:
    run = await start(chain, 60)
    assert await run.return_value(timeout=60) == 60


@workflow
async def interleaved(n: int) -> list[int]:
    async def seq(start: int) -> int:
        a = await increment(start)
        b = await increment(a)
        return await increment(b)

    return list(await asyncio.gather(*(seq(i * 100) for i in range(n))))


async def test_interleaved_sequences_in_gather(runtime: Runtime) -> None:
    run = await start(interleaved, 5)
    assert await run.return_value(timeout=20) == [i * 100 + 3 for i in range(5)]


FORGOTTEN: list[int] = []


@step
async def forgotten_step(x: int) -> None:
    await asyncio.sleep(0.05)
    FORGOTTEN.append(x)


@workflow
async def returns_without_awaiting() -> str:
    left_behind = asyncio.ensure_future(forgotten_step(1))
    del left_behind  # deliberately never awaited
    return "done"


async def test_steps_left_behind_when_the_run_ends_do_not_run(runtime: Runtime) -> None:
    FORGOTTEN.clear()
    run = await start(returns_without_awaiting)
    assert await run.return_value(timeout=10) == "done"
    await asyncio.sleep(0.2)
    assert FORGOTTEN == []
