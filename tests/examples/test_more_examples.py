"""The remaining examples, end to end (long sleeps run on the virtual clock)."""

from __future__ import annotations

import pytest
from test_examples import load

from workflowkit import WorkflowRunFailedError
from workflowkit.api import resume_hook, start
from workflowkit.runtime.runtime import Runtime
from workflowkit.testing import wait_for_hook


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
async def test_daily_digest_runs_for_days(
    workflow_runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    example = load("daily_digest")
    run = await start(example.daily_digest, "team@example.com", 3)
    assert await run.return_value(timeout=10) == 3
    lines = [line for line in capsys.readouterr().out.splitlines() if "digest to" in line]
    days = [line.split("['")[1][:10] for line in lines]
    assert len(set(days)) == 3  # three different days


async def test_batch_of_a_thousand(workflow_runtime: Runtime) -> None:
    example = load("batch_fanout")
    run = await start(example.batch, 1000, 100)
    assert await run.return_value(timeout=60) == sum(i * i for i in range(1000))
    assert len(await workflow_runtime.world.list_steps(run.run_id)) == 1001
