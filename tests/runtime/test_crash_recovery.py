"""A process killed with SIGKILL mid-run; another process finishes the run.

Completed steps never run again; only the step that was interrupted runs a second time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import workflowkit
from workflowkit.api import get_run

HERE = Path(__file__).parent
SRC = HERE.parents[1] / "src"

STARTER = """
import asyncio, sys
sys.path.insert(0, {here!r})
import workflowkit, crash_app
from workflowkit.api import start

workflowkit.configure({url!r})

async def main():
    run = await start(getattr(crash_app, {name!r}), {directory!r})
    print(run.run_id, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def executions(directory: Path, name: str) -> int:
    return len(list(directory.glob(f"{name}.*")))


def completed(db: Path, step_name: str) -> bool:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        query = "SELECT count(*) FROM steps WHERE step_name = ? AND status = 'completed'"
        return bool(conn.execute(query, (step_name,)).fetchone()[0])


def start_and_kill(tmp_path: Path, name: str, ready_file: str, recorded: str | None = None) -> str:
    """Kill the process once ``ready_file`` exists and (``recorded``) that step's result is
    in the log: a kill between a step's last line and its recording runs it again, rightly."""
    url = f"sqlite:///{tmp_path / 'wk.db'}"
    code = STARTER.format(here=str(HERE), url=url, name=name, directory=str(tmp_path))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        # A killed worker's runs are taken when its leases run out (no pid is asked).
        "WORKFLOWKIT_LEASE_SECONDS": "2",
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        assert run_id.startswith("wrun_"), run_id
        deadline = time.monotonic() + 30
        while not (tmp_path / ready_file).exists() or (
            recorded is not None and not completed(tmp_path / "wk.db", recorded)
        ):
            assert time.monotonic() < deadline, "the run never got to the crash point"
            assert proc.poll() is None, "the starter process died on its own"
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    (tmp_path / "killed").write_text("x")
    return run_id


@pytest.fixture
def recovering(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(HERE))
    yield tmp_path
    workflowkit.shutdown()
    sys.path.remove(str(HERE))


@pytest.mark.slow
async def test_killed_inside_a_step(recovering: Path) -> None:
    run_id = start_and_kill(recovering, "killed_in_step", "inside-slow")
    import crash_app  # noqa: F401  - registers the workflow in this process

    workflowkit.configure(f"sqlite:///{recovering / 'wk.db'}")
    assert await get_run(run_id).return_value(timeout=30) == [1, 2, 3]
    assert executions(recovering, "first") == 1
    assert executions(recovering, "slow") == 2  # interrupted, so executed again
    assert executions(recovering, "last") == 1


@pytest.mark.slow
async def test_killed_while_sleeping(recovering: Path) -> None:
    run_id = start_and_kill(recovering, "killed_while_sleeping", "sleeping", "crash.before_sleep")
    import crash_app  # noqa: F401

    workflowkit.configure(f"sqlite:///{recovering / 'wk.db'}")
    started, _, ended = await get_run(run_id).return_value(timeout=30)
    assert ended - started >= 1.5
    assert executions(recovering, "first") == 1
    assert executions(recovering, "last") == 1


@pytest.mark.slow
async def test_hook_resumed_after_the_worker_was_killed(recovering: Path) -> None:
    run_id = start_and_kill(recovering, "waits_for_hook", "sleeping", "crash.before_sleep")
    import crash_app  # noqa: F401

    from workflowkit.api import resume_hook

    workflowkit.configure(f"sqlite:///{recovering / 'wk.db'}")
    await resume_hook(f"crash:{recovering}", "approved")
    assert await get_run(run_id).return_value(timeout=30) == "approved"
    assert executions(recovering, "first") == 1
    assert executions(recovering, "last") == 1


@pytest.mark.slow
async def test_parent_killed_mid_fan_out(recovering: Path) -> None:
    """Half the children were started (and some ran) when the parent's process died: the
    recovered parent starts the other half, none twice, and collects all 50 results."""
    run_id = start_and_kill(recovering, "fan_out", "fanned-out-half")
    import crash_app  # noqa: F401

    runtime = workflowkit.configure(f"sqlite:///{recovering / 'wk.db'}")
    assert await get_run(run_id).return_value(timeout=60) == sum(range(50))
    children = await runtime.world.list_runs(parent_run_id=run_id, limit=100)
    assert sorted(c.run_id for c in children) == sorted(f"{run_id}.{n}" for n in range(1, 51))
    for n in range(50):
        # A child's step may run again only if the kill interrupted it.
        assert 1 <= executions(recovering, f"child-{n}") <= 2
    assert executions(recovering, "halfway") == 2


RECOVERER = """
import sys, time
sys.path.insert(0, {here!r})
import workflowkit, crash_app
workflowkit.configure({url!r})
time.sleep(60)
"""


@pytest.mark.slow
async def test_a_step_that_kills_its_worker_fails_once_its_attempts_are_used_up(
    recovering: Path,
) -> None:
    """Each worker that takes the run over runs the step again, until its policy's attempts
    (2) are used up: then the run fails with StepAttemptLostError, and no worker dies."""
    url = f"sqlite:///{recovering / 'wk.db'}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        "WORKFLOWKIT_LEASE_SECONDS": "1",
    }
    first = STARTER.format(here=str(HERE), url=url, name="poisoned", directory=str(recovering))
    again = RECOVERER.format(here=str(HERE), url=url)
    for code in (first, again):
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, timeout=60
        )
        assert done.returncode == 3, done.stderr  # the step's os._exit
    run_id = next(iter(done.stdout.split() or []), None) or _only_run(recovering / "wk.db")
    import crash_app  # noqa: F401

    workflowkit.configure(url)
    with pytest.raises(workflowkit.WorkflowRunFailedError) as failed:
        await get_run(run_id).return_value(timeout=30)
    cause = failed.value.__cause__
    assert isinstance(cause, workflowkit.StepAttemptLostError), cause
    assert (cause.step_name, cause.lost, cause.attempts) == ("crash.poison", 2, 2)
    assert executions(recovering, "poison") == 2


def _only_run(db: Path) -> str:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        (run_id,) = conn.execute("SELECT run_id FROM runs").fetchone()
    return str(run_id)
