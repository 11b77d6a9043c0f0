"""Standalone ``workflowkit worker`` processes sharing one SQLite file with a client."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import workflowkit
from workflowkit import Retry, sleep, step, workflow
from workflowkit.api import start

HERE = Path(__file__).parent
SRC = HERE.parents[1] / "src"


def spawn_worker(db: Path, *extra: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), str(HERE), os.environ.get("PYTHONPATH", "")]),
        "WORKFLOWKIT_WORLD": f"sqlite:///{db}",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "workflowkit", "worker", "worker_app", *extra],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Wait for the worker to be up, so a later SIGTERM tests shutdown, not interpreter start.
    assert proc.stderr is not None
    for line in proc.stderr:
        if "started on" in line:
            return proc
    raise AssertionError(f"worker exited early with {proc.wait()}")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(HERE))
    yield tmp_path
    workflowkit.shutdown()
    sys.path.remove(str(HERE))


@pytest.mark.slow
async def test_two_worker_processes_share_the_load(app: Path) -> None:
    import worker_app

    db = app / "wk.db"
    workflowkit.configure(f"sqlite:///{db}", embedded_worker=False)
    workers = [spawn_worker(db), spawn_worker(db)]
    try:
        runs = [await start(worker_app.five_steps, str(app), f"r{i}") for i in range(60)]
        results = [await run.return_value(timeout=60) for run in runs]
    finally:
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
        errors = [proc.communicate(timeout=30)[1] for proc in workers]
    assert results == [10] * 60
    assert all(proc.returncode == 0 for proc in workers), errors
    assert not any("database is locked" in text for text in errors)
    for i in range(60):
        for index in range(5):
            assert len(list(app.glob(f"work-r{i}-{index}.*"))) == 1


@pytest.mark.slow
async def test_sigterm_lets_the_running_step_finish(app: Path) -> None:
    import worker_app

    db = app / "wk.db"
    workflowkit.configure(f"sqlite:///{db}", embedded_worker=False)
    proc = spawn_worker(db, "--grace", "10")
    try:
        run = await start(worker_app.slow_then_after, str(app))
        deadline = time.monotonic() + 30
        while not (app / "inside-slow").exists():
            assert time.monotonic() < deadline and proc.poll() is None
            await asyncio.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.to_thread(proc.communicate, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    steps = {
        s.step_name: s.status
        for s in await workflowkit.api.get_run(run.run_id).runtime.world.list_steps(run.run_id)
    }
    assert steps["worker_app.slow"] == "completed"
    # The run was handed back: a worker started now finishes it at once.
    workflowkit.configure(f"sqlite:///{db}")
    assert await run.return_value(timeout=30) == ["slow done", "after done"]
    assert len(list(app.glob("slow.*"))) == 1
    assert len(list(app.glob("after.*"))) == 1


@pytest.mark.slow
async def test_a_step_calling_sys_exit_does_not_end_the_worker(app: Path) -> None:
    import worker_app

    db = app / "wk.db"
    workflowkit.configure(f"sqlite:///{db}", embedded_worker=False)
    proc = spawn_worker(db)
    try:
        exiting = await start(worker_app.step_exits, 3)
        assert await exiting.return_value(timeout=30) == "StepExitError"
        after = await start(worker_app.five_steps, str(app), "after")
        assert await after.return_value(timeout=30) == 10
        assert proc.poll() is None, "the worker process ended"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, errors = proc.communicate(timeout=30)
    assert proc.returncode == 0, errors


@workflow(name="late.claimed")
async def late_claimed() -> None:
    await sleep(3600)


async def test_a_claim_in_flight_when_the_worker_stops_leaves_nothing_held(
    tmp_path: Path,
) -> None:
    """The claim lands after the hand-back: the run must still end up unheld, not leased
    to a worker that is gone (it would wait out the lease after every restart)."""
    import asyncio as _asyncio

    from workflowkit.runtime.worker import Worker
    from workflowkit.worlds.sqlite import SQLiteWorld

    world = SQLiteWorld(tmp_path / "wk.db")
    gate, claiming = _asyncio.Event(), _asyncio.Event()
    real_claim = world.claim_runs

    async def slow_claim(*args: Any, **kwargs: Any) -> Any:
        claiming.set()
        await gate.wait()
        return await real_claim(*args, **kwargs)

    world.claim_runs = slow_claim  # type: ignore[method-assign]
    worker = Worker(world, poll_interval=0.05)
    running = _asyncio.create_task(worker.run())
    await world.create_run("late-claim-1", late_claimed.name, b"wk1j[[],{}]", {})
    await claiming.wait()
    stopping = _asyncio.create_task(worker.stop(grace=2))
    await _asyncio.sleep(0.05)
    gate.set()
    await stopping
    await running
    record = await world.get_run("late-claim-1")
    assert record is not None and record.owner is None
    await world.close()


@step(retry=Retry(attempts=3, initial="1h"))
def fails_then_waits_an_hour() -> None:
    raise RuntimeError("not yet")


@workflow(name="retrying.in.an.hour")
async def retrying_in_an_hour() -> None:
    await fails_then_waits_an_hour()


async def test_a_stopping_worker_does_not_wait_for_a_retry_due_in_an_hour(
    tmp_path: Path,
) -> None:
    """A step waiting out its retry delay is not running: stopping hands the run back at
    once instead of waiting the whole grace period for it."""
    from workflowkit.runtime.worker import Worker
    from workflowkit.worlds.sqlite import SQLiteWorld

    world = SQLiteWorld(tmp_path / "wk.db")
    worker = Worker(world, poll_interval=0.05)
    running = asyncio.create_task(worker.run())
    await world.create_run("retry-later-1", retrying_in_an_hour.name, b"wk1j[[],{}]", {})
    for _ in range(200):  # until the first attempt failed and the retry waits
        steps = await world.list_steps("retry-later-1")
        if steps and steps[0].retry_at is not None:
            break
        await asyncio.sleep(0.02)
    began = time.monotonic()
    await worker.stop(grace=10)
    await running
    assert time.monotonic() - began < 5
    record = await world.get_run("retry-later-1")
    assert record is not None and record.owner is None
    (step_record,) = await world.list_steps("retry-later-1")
    assert step_record.attempt == 1  # the retry was not run early
    await world.close()


@pytest.mark.parametrize(
    ("modules", "expected"),
    [((), [50_000, 10, 10]), (("gc_tuned_app",), [1234, 5, 5])],
    ids=["tuned", "application-settings-kept"],
)
async def test_the_worker_tunes_the_collector_unless_the_application_did(
    app: Path, modules: tuple[str, ...], expected: list[int]
) -> None:
    # A worker holding many runs spent a fifth of its CPU in the collector's passes with
    # Python's default thresholds; thresholds the application set are its own business.
    import worker_app

    db = app / "wk.db"
    workflowkit.configure(f"sqlite:///{db}", embedded_worker=False)
    worker = spawn_worker(db, *modules)
    try:
        run = await start(worker_app.report_gc)
        assert await run.return_value(timeout=30) == expected
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=30)
