"""Workers of one SQLite file know at once when another is gone: each holds a file lock the
kernel drops when its process ends. A killed worker's runs move without waiting out its
lease (a script killed and started again carries on at once); a worker that is alive, if
frozen, keeps them until its lease runs out."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pg_procs import HERE, WorkerProc, kill_all, spawn, stop

import workflowkit
from workflowkit.api import Run, start
from workflowkit.worlds.records import WorkerInfo
from workflowkit.worlds.sqlite import SQLiteWorld


@pytest.fixture
def app() -> Iterator[object]:
    sys.path.insert(0, str(HERE))
    try:
        import worker_app

        yield worker_app
    finally:
        workflowkit.shutdown()
        sys.path.remove(str(HERE))


@dataclass
class Started:
    """A run of ``slow_then_after`` inside its slow step on a worker of its own."""

    url: str
    work: Path
    run: Run[list[str]]
    first: WorkerProc


async def _start_inside_slow(tmp_path: Path, lease: float) -> Started:
    import worker_app

    url = f"sqlite:///{tmp_path / 'wk.db'}"
    workflowkit.configure(url, embedded_worker=False)
    work = tmp_path / "work"
    work.mkdir()
    first = spawn(url, ["worker_app"], tmp_path / "first.log", lease=lease)
    run = await start(worker_app.slow_then_after, str(work))
    deadline = time.monotonic() + 30
    while not (work / "inside-slow").exists():
        if time.monotonic() > deadline:
            kill_all([first])
            raise AssertionError("the step never started")
        await asyncio.sleep(0.02)
    return Started(url, work, run, first)


@pytest.mark.slow
async def test_a_killed_workers_runs_move_at_once_not_after_its_lease(
    app: object, tmp_path: Path
) -> None:
    started = await _start_inside_slow(tmp_path, lease=60)
    workers = [started.first]
    try:
        started.first.signal(signal.SIGKILL)
        started.first.proc.wait(10)
        killed_at = time.monotonic()
        workers.append(spawn(started.url, ["worker_app"], tmp_path / "second.log", lease=60))
        assert await started.run.return_value(timeout=30) == ["slow done", "after done"]
        assert time.monotonic() - killed_at < 20  # far less than the 60 s lease
        assert len(list(started.work.glob("slow.*"))) == 2  # the step was running when killed
        stop(workers[1:])
    finally:
        kill_all(workers)


@pytest.mark.slow
async def test_a_frozen_worker_keeps_its_runs_until_its_lease_runs_out(
    app: object, tmp_path: Path
) -> None:
    started = await _start_inside_slow(tmp_path, lease=4)
    workers = [started.first]
    try:
        started.first.signal(signal.SIGSTOP)  # alive, holding its lock, renewing nothing
        frozen_at = time.monotonic()
        workers.append(spawn(started.url, ["worker_app"], tmp_path / "second.log", lease=4))
        assert await started.run.return_value(timeout=60) == ["slow done", "after done"]
        assert time.monotonic() - frozen_at > 2  # not before the lease ran out
        stop(workers)
    finally:
        kill_all(workers)


async def test_a_live_workers_lock_holds_and_a_clean_close_leaves_no_lock_files(
    tmp_path: Path,
) -> None:
    first = SQLiteWorld(tmp_path / "wk.db")
    second = SQLiteWorld(tmp_path / "wk.db")
    try:
        await first.register_worker(WorkerInfo("wrkr_first", "here", os.getpid()))
        await first.create_run("wrun_held", "flow", b"", {})
        held = await first.claim_runs(
            WorkerInfo("wrkr_first", "here", os.getpid()), ["flow"], limit=1, lease_seconds=60
        )
        assert [r.run_id for r in held] == ["wrun_held"]
        # Another World of the file registers: the first worker's lock is held, so it lives.
        await second.register_worker(WorkerInfo("wrkr_second", "here", os.getpid()))
        record = await second.get_run("wrun_held")
        assert record is not None and record.owner == "wrkr_first"
        # Nothing a copy of the database's files (``wk.db*``) would pick up.
        assert all(path.is_file() for path in tmp_path.glob("wk.db*"))
    finally:
        await first.close()
        await second.close()
    assert not (tmp_path / ".wk.db-workers").exists()
