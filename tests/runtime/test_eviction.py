"""Sleeping runs leave memory and come back from the store when their timer is due."""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Iterator
from contextvars import ContextVar
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


@workflow
async def sleeps_for(seconds: float) -> str:
    await sleep(seconds)
    return "woke"


async def _asleep(rt: Runtime, run_id: str) -> None:
    """Until the run's sleep is recorded."""
    for _ in range(500):
        kinds = [e.type for e in await rt.world.get_events(run_id)]
        if EventType.WAIT_CREATED in kinds:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"run {run_id} never fell asleep")


async def test_a_run_asleep_for_long_leaves_memory_at_once_a_short_nap_stays(
    tmp_path: Path,
) -> None:
    # With only a timer to wait for, and one due well after the idle time would end, idling
    # first would hold the run's memory for nothing; a nap due within it keeps the run.
    rt = workflowkit.configure(f"sqlite:///{tmp_path / 'wk.db'}", evict_after=2.0)
    try:
        assert rt.worker is not None
        long = await start(sleeps_for, 3600.0)
        nap = await start(sleeps_for, 3.0)
        await _asleep(rt, long.run_id)
        await _asleep(rt, nap.run_id)
        await asyncio.sleep(0.3)  # far less than evict_after
        assert long.run_id not in rt.worker.drivers
        record = await rt.world.get_run(long.run_id)
        assert record is not None and record.owner is None and record.wake_at is not None
        assert nap.run_id in rt.worker.drivers
        assert await nap.return_value(timeout=10) == "woke"
    finally:
        workflowkit.shutdown()


@workflow
async def quick(x: int) -> int:
    return await double(x)


async def test_a_full_worker_makes_room_by_sending_idle_runs_out_of_memory(
    tmp_path: Path,
) -> None:
    # Three runs waiting on hooks fill a worker that holds three: a fourth, due now, must not
    # wait out their idle time (30 s here) to be run.
    from workflowkit.api import resume_hook

    rt = workflowkit.configure(f"sqlite:///{tmp_path / 'wk.db'}", evict_after=30.0, max_runs=3)
    try:
        assert rt.worker is not None
        waiting = [await start(waits_on_hook, f"full-{i}") for i in range(3)]
        for i in range(3):
            while await rt.world.get_hook_by_token(f"full-{i}") is None:
                await asyncio.sleep(0.01)
        assert await (await start(quick, 21)).return_value(timeout=10) == 42
        for i in range(3):
            await resume_hook(f"full-{i}", i)
        assert [await run.return_value(timeout=10) for run in waiting] == [0, 1, 2]
    finally:
        workflowkit.shutdown()


REQUEST: ContextVar[str] = ContextVar("eviction_test_request", default="none")
CLEANUPS: list[str] = []


@workflow
async def holds_a_context_variable(n: int) -> str:
    async def child() -> str:
        token = REQUEST.set("child")
        try:
            await sleep(0.3)
            return REQUEST.get()
        finally:
            CLEANUPS.append(REQUEST.get())
            REQUEST.reset(token)  # a token reset in a context other than its own raises

    token = REQUEST.set("parent")
    try:
        return "/".join(await asyncio.gather(*(child() for _ in range(n))))
    finally:
        CLEANUPS.append(REQUEST.get())
        REQUEST.reset(token)


async def test_cleanup_code_of_an_evicted_run_runs_in_the_run_own_context(
    evicting: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Libraries reset context variables and exit anyio cancel scopes in their finally
    # blocks (pydantic-ai's agent graph does): when a run leaves memory, those run in the
    # task and context that entered them, not the worker's.
    unraisable: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(u.exc_value))
    CLEANUPS.clear()
    run = await start(holds_a_context_variable, 2)
    assert await run.return_value(timeout=10) == "child/child"
    gc.collect()
    assert unraisable == []
    assert set(CLEANUPS) == {"parent", "child"}  # on eviction and again at the real end
    assert len(CLEANUPS) > 3
