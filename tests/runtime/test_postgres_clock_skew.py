"""Timers fire from the database clock: workers whose wall clocks are an hour off (ahead or
behind) neither fire a 2 s sleep early nor stall it, even when the run changes workers in the
middle of the sleep."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pg_procs import HERE, kill_all, spawn, stop, wait_for_path

import workflowkit
from workflowkit.api import get_run, start
from workflowkit.runtime.runtime import get_runtime

PG_URL = os.environ.get("WORKFLOWKIT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
HOUR = 3600.0


@pytest.fixture
def pg_world(pg_schema: str) -> Iterator[str]:
    sys.path.insert(0, str(HERE))
    yield f"{PG_URL}?schema={pg_schema}"
    workflowkit.shutdown()
    sys.path.remove(str(HERE))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("first_skew", "how", "second_skew"),
    [(HOUR, signal.SIGTERM, -HOUR), (-HOUR, signal.SIGKILL, HOUR)],
    ids=["ahead-handed-back-to-behind", "behind-killed-taken-by-ahead"],
)
async def test_a_sleep_fires_on_the_database_clock(
    pg_world: str, tmp_path: Path, first_skew: float, how: signal.Signals, second_skew: float
) -> None:
    import skew_app

    workflowkit.configure(pg_world, embedded_worker=False)
    world = get_runtime().world
    # A short lease: a killed worker's run moves when its lease runs out (no pid is asked).
    first = spawn(pg_world, ["skew_app"], tmp_path / "first.log", skew=first_skew, lease=3)
    workers = [first]
    try:
        run = await start(skew_app.sleeps_two_seconds, str(tmp_path))
        sleeping = await wait_for_path(tmp_path / "sleeping")
        deadline = time.monotonic() + 30
        while not await world.list_waits(run.run_id):
            assert time.monotonic() < deadline, "the sleep was never recorded"
            await asyncio.sleep(0.01)
        # The first worker leaves in the middle of the sleep: handing the run back on
        # SIGTERM, or killed; the second, an hour off the other way, finishes it.
        first.signal(how)
        first.proc.wait(30)
        second = spawn(pg_world, ["skew_app"], tmp_path / "second.log", skew=second_skew)
        workers.append(second)
        woke = await wait_for_path(tmp_path / "woke", timeout=30)
        assert await get_run(run.run_id).return_value(timeout=30) == "done"
        stop(workers)
    finally:
        kill_all(workers)
    (wait,) = await world.list_waits(run.run_id)
    # Due 2 s after it was recorded, both read on the database clock.
    assert abs(wait.resume_at - wait.created_at - timedelta(seconds=2)) < timedelta(seconds=0.5)
    assert wait.completed_at is not None and wait.completed_at >= wait.resume_at
    # Not early, and not an hour late: the 2 s started after the marker was written.
    assert woke - sleeping >= 1.95
    assert woke - sleeping < 20
