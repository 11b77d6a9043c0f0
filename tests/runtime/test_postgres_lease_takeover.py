"""A worker that stops renewing its leases without dying (SIGSTOP: a frozen VM, a long GC
pause) loses its run to another worker once the lease expires; when it continues, its late
result is refused and nothing is recorded twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_procs import HERE, kill_all, spawn, stop, wait_for_text

import workflowkit
from workflowkit.api import get_run, start
from workflowkit.runtime.runtime import get_runtime
from workflowkit.worlds.records import EventType

PG_URL = os.environ.get("WORKFLOWKIT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_world(pg_schema: str) -> Iterator[str]:
    sys.path.insert(0, str(HERE))
    yield f"{PG_URL}?schema={pg_schema}"
    workflowkit.shutdown()
    sys.path.remove(str(HERE))


def executions(directory: Path, name: str) -> list[int]:
    """The pids that ran step ``name``, one per execution."""
    return sorted(int(p.name.split(".")[1]) for p in directory.glob(f"{name}.*"))


async def wait_for_executions(directory: Path, name: str, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(executions(directory, name)) < count:
        assert time.monotonic() < deadline, f"{name} never ran {count} times"
        await asyncio.sleep(0.01)


@pytest.mark.slow
async def test_a_stopped_worker_loses_its_run_and_its_late_result_is_refused(
    pg_world: str, tmp_path: Path
) -> None:
    import lease_app

    workflowkit.configure(pg_world, embedded_worker=False)
    frozen = spawn(pg_world, ["lease_app"], tmp_path / "frozen.log", lease=2)
    workers = [frozen]
    try:
        run = await start(lease_app.slow_then_after, str(tmp_path))
        await wait_for_executions(tmp_path, "slow", 1)
        frozen.signal(signal.SIGSTOP)  # inside the step, holding the run's lease
        taker = spawn(pg_world, ["lease_app"], tmp_path / "taker.log", lease=2)
        workers.append(taker)
        # Its lease expires; the other worker takes the run over and runs the step again
        # (at least once). While that second execution runs, the frozen worker continues,
        # finishes its own execution and tries to record it.
        await wait_for_executions(tmp_path, "slow", 2)
        frozen.signal(signal.SIGCONT)
        await wait_for_text(frozen, "lease lost")
        result = await get_run(run.run_id).return_value(timeout=30)
        assert result == [taker.proc.pid, taker.proc.pid]  # the taker's results, not both
        assert executions(tmp_path, "slow") == sorted([frozen.proc.pid, taker.proc.pid])
        assert executions(tmp_path, "after") == [taker.proc.pid]

        # The worker that was frozen carries on working normally.
        stop([taker])
        (tmp_path / "again").mkdir()
        again = await start(lease_app.slow_then_after, str(tmp_path / "again"))
        assert await again.return_value(timeout=30) == [frozen.proc.pid, frozen.proc.pid]
        stop([frozen])
    finally:
        kill_all(workers)
    assert frozen.proc.returncode == 0 and taker.proc.returncode == 0

    events = await get_runtime().world.get_events(run.run_id)
    kinds = Counter((e.type, e.correlation_id) for e in events)
    slow_id, after_id = (e.correlation_id for e in events if e.type is EventType.STEP_CREATED)
    assert kinds[EventType.STEP_STARTED, slow_id] == 2  # the frozen worker's and the taker's
    assert kinds[EventType.STEP_COMPLETED, slow_id] == 1
    assert kinds[EventType.STEP_STARTED, after_id] == 1
    assert kinds[EventType.STEP_COMPLETED, after_id] == 1
    assert kinds[EventType.RUN_COMPLETED, None] == 1
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
