"""Several worker processes on one PostgreSQL database: the load is shared, nothing is
done twice, and a killed worker's runs are finished by another."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import workflowkit
from workflowkit.api import get_run, start

HERE = Path(__file__).parent
SRC = HERE.parents[1] / "src"
PG_URL = os.environ.get("WORKFLOWKIT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_world(pg_schema: str, tmp_path: Path) -> Iterator[str]:
    sys.path.insert(0, str(HERE))
    yield f"{PG_URL}?schema={pg_schema}"
    workflowkit.shutdown()
    sys.path.remove(str(HERE))


def spawn_worker(url: str, lease: str = "30", slots: int = 256) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), str(HERE), os.environ.get("PYTHONPATH", "")]),
        "WORKFLOWKIT_WORLD": url,
        "WORKFLOWKIT_LEASE_SECONDS": lease,
        "WORKFLOWKIT_STEP_SLOTS": str(slots),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "workflowkit", "worker", "worker_app", "crash_app"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "started on" in line:
            return proc
    raise AssertionError(f"worker exited early with {proc.wait()}")


async def kill_when(proc: subprocess.Popen[str], marker: Path, settle: float = 0.0) -> None:
    """SIGKILL ``proc`` once the workflow has written ``marker`` (and ``settle`` s more)."""
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline, f"the run never wrote {marker.name}"
        await asyncio.sleep(0.01)
    await asyncio.sleep(settle)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def stop(procs: list[subprocess.Popen[str]]) -> list[str]:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    return [proc.communicate(timeout=60)[1] for proc in procs]


async def test_a_worker_process_runs_on_the_postgres_worlds_own_loop(pg_world: str) -> None:
    # There its World calls cost no hand-off between threads (bench/README.md); async steps
    # run there too. The embedded worker keeps a loop of its own: a step blocking it must not
    # hold up the application's calls to the World.
    import worker_app

    workflowkit.configure(pg_world, embedded_worker=False)
    worker = spawn_worker(pg_world)
    try:
        run = await start(worker_app.report_thread)
        assert await run.return_value(timeout=30) == "workflowkit-postgres"
    finally:
        errors = stop([worker])
    assert worker.returncode == 0, errors

    workflowkit.configure(pg_world)
    run = await start(worker_app.report_thread)
    assert await run.return_value(timeout=30) == "workflowkit-runtime"


@pytest.mark.slow
async def test_four_workers_share_many_runs_exactly_once(pg_world: str, tmp_path: Path) -> None:
    import worker_app

    workflowkit.configure(pg_world, embedded_worker=False)
    workers = [spawn_worker(pg_world) for _ in range(4)]
    try:
        runs = [await start(worker_app.five_steps, str(tmp_path), f"r{i}") for i in range(2000)]
        results = [await run.return_value(timeout=300) for run in runs]
    finally:
        errors = stop(workers)
    assert results == [10] * 2000
    assert all(proc.returncode == 0 for proc in workers), errors
    done = {p.name.rsplit(".", 2)[0] for p in tmp_path.glob("work-*")}
    assert len(done) == 2000 * 5
    assert len(list(tmp_path.glob("work-*"))) == 2000 * 5  # no step body ran twice
    pids = {p.name.split(".")[1] for p in tmp_path.glob("work-*")}
    assert len(pids) >= 2  # the load really was shared


@pytest.mark.slow
async def test_a_killed_worker_s_run_is_finished_by_another(pg_world: str, tmp_path: Path) -> None:
    import crash_app

    workflowkit.configure(pg_world, embedded_worker=False)
    first = spawn_worker(pg_world, lease="2")
    try:
        run = await start(crash_app.killed_in_step, str(tmp_path))
        await kill_when(first, tmp_path / "inside-slow")
        (tmp_path / "killed").write_text("x")
        second = spawn_worker(pg_world, lease="2")
        try:
            assert await get_run(run.run_id).return_value(timeout=60) == [1, 2, 3]
        finally:
            stop([second])
    finally:
        if first.poll() is None:
            first.kill()
    assert len(list(tmp_path.glob("first.*"))) == 1
    assert len(list(tmp_path.glob("slow.*"))) == 2
    assert len(list(tmp_path.glob("last.*"))) == 1


@pytest.mark.slow
async def test_a_worker_killed_during_a_sleep(pg_world: str, tmp_path: Path) -> None:
    import crash_app

    workflowkit.configure(pg_world, embedded_worker=False)
    first = spawn_worker(pg_world, lease="2")
    try:
        run = await start(crash_app.killed_while_sleeping, str(tmp_path))
        await kill_when(first, tmp_path / "sleeping", settle=0.2)  # the sleep is recorded
        second = spawn_worker(pg_world, lease="2")
        try:
            started, _, ended = await get_run(run.run_id).return_value(timeout=60)
        finally:
            stop([second])
    finally:
        if first.poll() is None:
            first.kill()
    assert ended - started >= 1.5
    assert len(list(tmp_path.glob("first.*"))) == 1
    assert len(list(tmp_path.glob("last.*"))) == 1


def step_marks(directory: Path, run_key: str) -> list[tuple[int, str]]:
    """(step index, pid) for every body that ran."""
    found = []
    for path in directory.glob(f"sq-{run_key}-*"):
        name, pid, _ = path.name.rsplit(".", 2)
        found.append((int(name.rsplit("-", 1)[1]), pid))
    return found


@pytest.mark.slow
async def test_one_run_s_steps_spread_over_workers(pg_world: str, tmp_path: Path) -> None:
    import worker_app

    workflowkit.configure(pg_world, embedded_worker=False)
    workers = [spawn_worker(pg_world, slots=2) for _ in range(3)]
    try:
        run = await start(worker_app.fan_out, str(tmp_path), "spread", 24, 0.1)
        result = await run.return_value(timeout=60)
    finally:
        errors = stop(workers)
    assert result == [i * i for i in range(24)]
    assert all(proc.returncode == 0 for proc in workers), errors
    marks = step_marks(tmp_path, "spread")
    assert sorted(i for i, _ in marks) == list(range(24))  # every body ran exactly once
    assert len({pid for _, pid in marks}) == 3  # ... on all three workers


@pytest.mark.slow
async def test_steps_of_a_killed_claimer_are_taken_over(pg_world: str, tmp_path: Path) -> None:
    import worker_app

    workflowkit.configure(pg_world, embedded_worker=False)
    first, second = spawn_worker(pg_world, lease="2", slots=2), spawn_worker(pg_world, slots=2)
    try:
        run = await start(worker_app.fan_out, str(tmp_path), "kill", 12, 0.5)
        deadline = time.monotonic() + 30
        while not any(pid == str(first.pid) for _, pid in step_marks(tmp_path, "kill")):
            assert time.monotonic() < deadline, "the first worker never ran a step"
            await asyncio.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait()
        result = await run.return_value(timeout=60)
    finally:
        errors = stop([second])
        if first.poll() is None:
            first.kill()
    assert result == [i * i for i in range(12)]
    assert second.returncode == 0, errors
    assert {i for i, _ in step_marks(tmp_path, "kill")} == set(range(12))
    events = await get_run(run.run_id).runtime.world.get_events(run.run_id)
    completed = [e.correlation_id for e in events if e.type.value == "step_completed"]
    assert len(completed) == len(set(completed)) == 12  # each result recorded once
