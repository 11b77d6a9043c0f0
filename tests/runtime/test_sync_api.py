"""workflowkit.sync: the same API for callers without an event loop."""

from __future__ import annotations

import pytest

from workflowkit import WorkflowRunCancelledError, sleep, step, sync, workflow
from workflowkit.runtime.runtime import Runtime


@step
def shout(text: str) -> str:
    return text.upper()


@workflow
async def loud(text: str) -> str:
    return await shout(text)


@workflow
async def forever() -> None:
    await sleep("365 days")


def test_sync_start_and_result(cached_runtime: Runtime) -> None:
    run = sync.start(loud, "hi")
    assert run.return_value(timeout=10) == "HI"
    assert run.status() == "completed"
    again = sync.get_run(run.run_id)
    assert again.workflow_name().endswith(":loud")
    assert again.completed_at() is not None


def test_sync_cancel(cached_runtime: Runtime) -> None:
    run = sync.start(forever)
    run.cancel()
    with pytest.raises(WorkflowRunCancelledError):
        run.return_value(timeout=10)


def test_sync_timeout(cached_runtime: Runtime) -> None:
    run = sync.start(forever)
    with pytest.raises(TimeoutError):
        run.return_value(timeout=0.2)
    run.cancel()
