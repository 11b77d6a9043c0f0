"""The database restarts under load (cleanly, then in a crash) and nothing is lost: every run
completes, every step's result is recorded once, and a step body runs again only as a new,
recorded attempt of a step that was in flight.

The test runs its own throwaway PostgreSQL cluster (initdb into a temporary directory, a free
port), never the shared server other tests use, and removes it whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pg_procs import HERE, Cluster, kill_all, private_cluster, spawn, stop

import workflowkit
from workflowkit import step, workflow
from workflowkit.api import Run, start
from workflowkit.errors import WorldUnavailableError
from workflowkit.runtime.runtime import get_runtime
from workflowkit.worlds.postgres import PostgresWorld
from workflowkit.worlds.records import EventType

RUNS = 300
STEPS = 5


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    sys.path.insert(0, str(HERE))
    try:
        with private_cluster() as server:
            yield server
            workflowkit.shutdown()
    finally:
        sys.path.remove(str(HERE))


async def results_of(runs: list[Run[Any]], timeout: float) -> list[Any]:
    """The runs' results, in order; a run not ended in time fails the test with what the
    World and this process's worker know of it."""
    results = []
    for run in runs:
        try:
            results.append(await run.return_value(timeout=timeout))
        except TimeoutError as exc:
            runtime = get_runtime()
            record = await runtime.world.get_run(run.run_id)
            events = [e.type.value for e in await runtime.world.get_events(run.run_id)]
            held = runtime.worker is not None and run.run_id in runtime.worker.drivers
            raise AssertionError(f"{exc}: {record}, events {events}, driven here: {held}") from exc
    return results


def done_steps(directory: Path) -> int:
    return sum(1 for _ in directory.glob("work-*"))


async def restart_when(cluster: Cluster, directory: Path, steps: int, mode: str) -> None:
    """Restart the server once ``steps`` step bodies ran, while the rest are still to come."""
    deadline = time.monotonic() + 60
    while done_steps(directory) < steps:
        assert time.monotonic() < deadline, f"only {done_steps(directory)} steps ran"
        await asyncio.sleep(0.02)
    assert done_steps(directory) < RUNS * STEPS, "the load was over before the restart"
    await asyncio.to_thread(cluster.restart, mode)


@pytest.mark.slow
async def test_database_restarts_mid_load_lose_nothing(cluster: Cluster, tmp_path: Path) -> None:
    import worker_app

    url = f"{cluster.url}?schema=wk"
    workflowkit.configure(url, embedded_worker=False)
    workers = [spawn(url, ["worker_app"], tmp_path / f"worker{i}.log") for i in range(2)]
    work = tmp_path / "work"
    work.mkdir()
    try:
        runs = [await start(worker_app.five_steps, str(work), f"r{i}") for i in range(RUNS)]
        total = RUNS * STEPS
        await restart_when(cluster, work, total // 5, "fast")
        await restart_when(cluster, work, total // 2, "immediate")  # a crash: WAL recovery
        results = [await run.return_value(timeout=120) for run in runs]
        stop(workers)
    finally:
        kill_all(workers)
    assert results == [10] * RUNS
    logs = "".join(w.text() for w in workers)
    assert all(w.proc.returncode == 0 for w in workers), logs
    assert "retrying" in logs  # the workers did see the database go away

    # Every step's result is recorded exactly once; a body ran more than once only as a
    # recorded retry of an attempt that was in flight when the server went down.
    ran = Counter(p.name.rsplit(".", 2)[0] for p in work.glob("work-*"))
    assert len(ran) == RUNS * STEPS
    world = get_runtime().world
    repeated = 0
    for i, run in enumerate(runs):
        events = await world.get_events(run.run_id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        created = [e.correlation_id for e in events if e.type is EventType.STEP_CREATED]
        completed = [e.correlation_id for e in events if e.type is EventType.STEP_COMPLETED]
        assert len(created) == STEPS and Counter(completed) == Counter(created)
        attempts = {s.step_id: s.attempt for s in await world.list_steps(run.run_id)}
        for index, step_id in enumerate(created):
            executions = ran[f"work-r{i}-{index}"]
            assert 1 <= executions <= attempts[step_id], (run.run_id, step_id, executions)
            repeated += executions > 1
    print(f"{repeated} of {RUNS * STEPS} step bodies ran more than once")


@step(name="outage.tick")
def tick(index: int) -> int:
    time.sleep(0.02)
    return index


@workflow(name="outage.ticks")
async def ticks(count: int) -> int:
    total = 0
    for index in range(count):
        total += await tick(index)
    return total


@pytest.mark.slow
async def test_an_outage_past_the_retry_window_stalls_no_run(cluster: Cluster) -> None:
    """The database stays away longer than the World retries: drivers give up on their runs
    and cannot even hand them back. The worker must not keep renewing those leases: once
    the database is back, every run resumes (here, or on any worker) and completes."""
    world = PostgresWorld(f"{cluster.url}?schema=wk", retry_for=1.0)
    workflowkit.configure(world, lease_seconds=2, poll_interval=0.2)
    try:
        runs = [await start(ticks, 30) for _ in range(40)]
        await asyncio.sleep(0.5)  # every run is under way
        await asyncio.to_thread(cluster.outage, 6.0)
        results = await results_of(runs, timeout=60)
        assert results == [sum(range(30))] * len(runs)
    finally:
        workflowkit.shutdown()
        await world.close()


SLOW_STEP_RUNS: Counter[tuple[str, int]] = Counter()


@step(name="outage.slow_tick")
def slow_tick(key: str, index: int) -> int:
    time.sleep(1.0)  # still running when the database goes away
    SLOW_STEP_RUNS[(key, index)] += 1
    return index


@workflow(name="outage.slow_ticks")
async def slow_ticks(key: str, count: int) -> int:
    total = 0
    for index in range(count):
        total += await slow_tick(key, index)
    return total


@pytest.mark.slow
async def test_a_step_finished_during_a_long_outage_is_recorded_not_run_again(
    cluster: Cluster,
) -> None:
    """Steps finish while the database is away for longer than the World retries: their
    results wait in the worker and are recorded once it is back; no step body runs twice."""
    world = PostgresWorld(f"{cluster.url}?schema=wk", retry_for=1.0)
    workflowkit.configure(world, lease_seconds=30, poll_interval=0.2)
    SLOW_STEP_RUNS.clear()
    try:
        runs = [await start(slow_ticks, f"r{i}", 3) for i in range(8)]
        await asyncio.sleep(0.4)  # every run's first step is running
        await asyncio.to_thread(cluster.outage, 4.0)
        results = await results_of(runs, timeout=60)
    finally:
        workflowkit.shutdown()
        await world.close()
    assert results == [3] * len(runs)
    assert set(SLOW_STEP_RUNS.values()) == {1}, SLOW_STEP_RUNS


@workflow(name="outage.one_tick")
async def one_tick() -> int:
    return await tick(7)


@pytest.mark.slow
async def test_a_worker_started_during_an_outage_starts_once_it_ends(cluster: Cluster) -> None:
    """The database goes away before the process's worker has registered: the worker waits
    it out, as it would once running, and then runs the process's runs (it used to stop for
    good there, every run of the process left pending)."""
    world = PostgresWorld(f"{cluster.url}?schema=wk", retry_for=0.5)
    try:
        await asyncio.to_thread(cluster.crash)
        workflowkit.configure(world, poll_interval=0.2)
        await asyncio.sleep(1.5)  # its first tries fail
        await asyncio.to_thread(cluster.start)
        runtime = get_runtime()
        assert runtime.worker is not None
        deadline = time.monotonic() + 30
        while runtime.worker.worker_id not in await _worker_ids(world):
            assert time.monotonic() < deadline, "the worker never registered"
            await asyncio.sleep(0.2)
        run = await start(one_tick)
        assert await results_of([run], timeout=30) == [7]
    finally:
        workflowkit.shutdown()
        await world.close()


async def _worker_ids(world: PostgresWorld) -> set[str]:
    with contextlib.suppress(WorldUnavailableError):  # not reconnected yet
        return {w.info.worker_id for w in await world.list_workers()}
    return set()
