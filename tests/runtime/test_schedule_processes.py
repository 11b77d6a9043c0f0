"""Schedules across processes: every tick of a per-second schedule runs exactly once while
several workers fire it, none is missed while one of them lives, and killing a worker as a
tick falls due loses nothing.

The workers are real processes (``workflowkit worker sched_app``) on PostgreSQL (three) and
on one SQLite file (two); the test reads the World afterwards.
"""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pg_procs import WorkerProc, spawn, stop

from workflowkit.worlds.base import World
from workflowkit.worlds.records import RunStatus
from workflowkit.worlds.schedule_rules import GRACE_SECONDS

SCHEDULE = "sched_app.tick"
RUN_FOR = 20.0


async def sleep_to_tick(offset: float = 0.0) -> None:
    """Sleep until ``offset`` seconds past the next whole second (when a tick falls due)."""
    now = time.time()
    await asyncio.sleep(1 - (now % 1) + offset)


async def exercise(workers: list[WorkerProc], kill: WorkerProc) -> tuple[datetime, datetime]:
    """Let the workers fire for ``RUN_FOR`` s, killing ``kill`` at a tick halfway."""
    started = datetime.now(UTC)
    await asyncio.sleep(RUN_FOR / 2)
    await sleep_to_tick()
    kill.signal(signal.SIGKILL)
    kill.proc.wait()
    await asyncio.sleep(RUN_FOR / 2)
    return started, datetime.now(UTC)


async def check_every_tick_ran_once(world: World, started: datetime, ended: datetime) -> None:
    deadline = time.monotonic() + 60
    while True:  # runs the killed worker held are taken over once its lease ends
        runs = await world.list_runs(id_prefix=f"{SCHEDULE}@", limit=10_000)
        if all(r.status is RunStatus.COMPLETED for r in runs):
            break
        assert time.monotonic() < deadline, [r.run_id for r in runs if not r.status.terminal]
        await asyncio.sleep(0.2)
    ticks = sorted(
        datetime.strptime(r.run_id.split("@", 1)[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        for r in runs
    )
    assert len(ticks) == len(set(ticks))
    # One run for each second from the first tick to the last: none missed, none twice.
    assert ticks == [ticks[0] + timedelta(seconds=i) for i in range(len(ticks))]
    # The first tick fired once the workers were up, the last as they stopped.
    assert ticks[0] <= started + timedelta(seconds=5), (ticks[0], started)
    assert ticks[-1] >= ended - timedelta(seconds=3), (ticks[-1], ended)
    assert len(ticks) >= RUN_FOR - 3
    # Each on time, the tick at the kill included: none was left to catch-up (the schedule
    # has catch_up="all", which would fill a gap late and hide a missed tick).
    late = [
        (r.run_id, (r.created_at - tick).total_seconds())
        for r, tick in zip(sorted(runs, key=lambda r: r.run_id), ticks, strict=True)
        if (r.created_at - tick).total_seconds() > GRACE_SECONDS
    ]
    assert late == [], late
    schedule = await world.get_schedule(SCHEDULE)
    assert schedule is not None and schedule.static and schedule.last_tick == ticks[-1]


@pytest.mark.slow
async def test_three_postgres_workers_fire_each_tick_once(
    pg_url: str, pg_schema: str, tmp_path: Path
) -> None:
    from workflowkit.worlds.postgres import PostgresWorld

    url = f"{pg_url}?schema={pg_schema}"
    workers = [spawn(url, ["sched_app"], tmp_path / f"w{i}.log", lease=3) for i in range(3)]
    try:
        started, ended = await exercise(workers, workers[0])
        world = PostgresWorld(pg_url, schema=pg_schema)
        try:
            await check_every_tick_ran_once(world, started, ended)
        finally:
            await world.close()
    finally:
        stop(workers)


@pytest.mark.slow
async def test_two_sqlite_processes_fire_each_tick_once(tmp_path: Path) -> None:
    from workflowkit.worlds.sqlite import SQLiteWorld

    url = f"sqlite:///{tmp_path / 'wk.db'}"
    workers = [spawn(url, ["sched_app"], tmp_path / f"w{i}.log", lease=3) for i in range(2)]
    try:
        started, ended = await exercise(workers, workers[1])
        world = SQLiteWorld(tmp_path / "wk.db")
        try:
            await check_every_tick_ran_once(world, started, ended)
        finally:
            await world.close()
    finally:
        stop(workers)
