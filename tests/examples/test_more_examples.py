"""The remaining examples, end to end (long sleeps run on the virtual clock)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from test_examples import load

import workflowkit
from workflowkit import WorkflowRunFailedError
from workflowkit.api import get_schedule, resume_hook, start
from workflowkit.registry import REGISTRY
from workflowkit.runtime.runtime import Runtime
from workflowkit.testing import advance_schedules, wait_for_hook

BERLIN = ZoneInfo("Europe/Berlin")


async def test_saga_compensates_in_reverse(
    workflow_runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    example = load("saga")
    ok = await start(example.place_order, "o-1", 1200, "1 Main St")
    assert await ok.return_value(timeout=10) == "trk-o-1"
    capsys.readouterr()
    bad = await start(example.place_order, "o-2", 900, "")
    with pytest.raises(WorkflowRunFailedError, match="no shipping address"):
        await bad.return_value(timeout=10)
    out = capsys.readouterr().out
    assert out.index("refunded ch-o-2") < out.index("released res-o-2")


async def test_approval_in_time(workflow_runtime: Runtime) -> None:
    example = load("approval_timeout")
    run = await start(example.expense_approval, "exp-1")
    await wait_for_hook(run, token="expense:exp-1")
    await resume_hook("expense:exp-1", {"approve": False})
    assert await run.return_value(timeout=10) == "rejected"


@pytest.mark.workflowkit(virtual_clock=True)
async def test_approval_times_out_after_seven_days(workflow_runtime: Runtime) -> None:
    example = load("approval_timeout")
    run = await start(example.expense_approval, "exp-2")
    assert await run.return_value(timeout=10) == "escalated"
    info = await run.info()
    assert info.completed_at is not None  # seven virtual days, a few real milliseconds


@pytest.mark.workflowkit(virtual_clock=True)
async def test_daily_digest_runs_each_working_day(
    workflow_runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    example = load("daily_digest")
    try:
        await until_declared(workflow_runtime, "examples.daily_digest")
        runs = await advance_schedules("14 days")
        days = [await run.return_value(timeout=10) for run in runs]
        assert len(days) == 10  # two weeks of working days
        assert all(date.fromisoformat(d).weekday() < 5 for d in days)
        lines = [line for line in capsys.readouterr().out.splitlines() if "digest to" in line]
        assert len(lines) == 10
        info = await get_schedule("examples.daily_digest")
        assert info.declared_in_code and info.catch_up == "latest"
        assert info.next_tick is not None and info.next_tick.astimezone(BERLIN).hour == 7
    finally:
        # The registry is the process's: keep this schedule out of later tests' Worlds.
        REGISTRY.workflows.pop(example.daily_digest.name, None)


def test_daily_digest_as_a_script_sends_todays_digest(tmp_path: Path) -> None:
    """``python examples/daily_digest.py`` on a fresh World, as its docstring says to run it:
    today's digest at once (the schedule the code declares is there for its first call)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(workflowkit.__file__).parents[1]),
        "WORKFLOWKIT_WORLD": f"sqlite:///{tmp_path / 'wk.db'}",
    }
    script = Path(__file__).parents[2] / "examples" / "daily_digest.py"
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(60, proc.kill)  # it waits for the next tick forever
    watchdog.start()
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        assert "digest to team@example.com" in lines[0], (lines, proc.stderr)
        assert lines[1].startswith("sent today's digest ("), lines
    finally:
        watchdog.cancel()
        proc.kill()
        _, err = proc.communicate()
    assert "Traceback" not in err, err


async def until_declared(runtime: Runtime, schedule_id: str) -> None:
    runtime.schedules_changed()
    for _ in range(500):
        if await runtime.world.get_schedule(schedule_id) is not None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the worker did not write schedule {schedule_id}")


async def test_batch_of_a_thousand(workflow_runtime: Runtime) -> None:
    example = load("batch_fanout")
    run = await start(example.batch, 1000, 100)
    assert await run.return_value(timeout=60) == sum(i * i for i in range(1000))
    assert len(await workflow_runtime.world.list_steps(run.run_id)) == 1001
