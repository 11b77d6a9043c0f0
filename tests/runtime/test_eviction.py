"""Sleeping runs leave memory and come back from the store when their timer is due."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

import workflowkit
from workflowkit import sleep, step, workflow
from workflowkit.api import start
from workflowkit.runtime.runtime import Runtime
from workflowkit.worlds.records import EventType


@pytest.fixture
def evicting(tmp_path: Path) -> Iterator[Runtime]:
    rt = workflowkit.configure(f"sqlite:///{tmp_path / 'wk.db'}", evict_after=0.05)
    yield rt
    workflowkit.shutdown()


@step
def double(x: int) -> int:
    return 2 * x


@workflow
async def naps(n: int) -> int:
    value = 1
    for _ in range(n):
        await sleep(0.3)
        value = await double(value)
    return value


async def test_a_sleeping_run_is_evicted_and_resumed(evicting: Runtime) -> None:
    run = await start(naps, 2)
    for _ in range(300):
        kinds = [e.type for e in await evicting.world.get_events(run.run_id)]
        if EventType.WAIT_CREATED in kinds:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    assert evicting.worker is not None
    assert run.run_id not in evicting.worker.drivers
    record = await evicting.world.get_run(run.run_id)
    assert record is not None and record.owner is None and record.wake_at is not None
    assert await run.return_value(timeout=10) == 4


async def test_many_sleeping_runs_all_wake(evicting: Runtime) -> None:
    runs = [await start(naps, 1) for _ in range(100)]
    results = await asyncio.gather(*(r.return_value(timeout=30) for r in runs))
    assert results == [2] * 100


@workflow
async def waits_on_hook(token: str) -> object:
    from workflowkit import create_hook

    return await create_hook(token=token)


async def test_a_run_waiting_on_a_hook_stays_for_evict_after_then_leaves(
    tmp_path: Path,
) -> None:
    from workflowkit.api import resume_hook

    rt = workflowkit.configure(f"sqlite:///{tmp_path / 'hooks.db'}", evict_after=0.5)
    try:
        assert rt.worker is not None
        run = await start(waits_on_hook, "evict-me")
        while await rt.world.get_hook_by_token("evict-me") is None:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert run.run_id in rt.worker.drivers  # idle, but not for long enough yet
        await asyncio.sleep(0.8)
        assert run.run_id not in rt.worker.drivers
        await resume_hook("evict-me", "back")
        assert await run.return_value(timeout=10) == "back"
    finally:
        workflowkit.shutdown()
