"""workflowkit.sync: the same API for callers without an event loop."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from workflowkit import (
    HookNotFoundError,
    RunFailedByOperatorError,
    WorkflowRunCancelledError,
    WorkflowRunFailedError,
    sleep,
    step,
    sync,
    workflow,
)
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


def test_sync_fail(cached_runtime: Runtime) -> None:
    run = sync.start(forever)
    run.fail("stuck")
    with pytest.raises(WorkflowRunFailedError) as failed:
        run.return_value(timeout=10)
    cause = failed.value.__cause__
    assert isinstance(cause, RunFailedByOperatorError) and cause.reason == "stuck"
    assert run.status() == "failed"


def test_sync_timeout(cached_runtime: Runtime) -> None:
    run = sync.start(forever)
    with pytest.raises(TimeoutError):
        run.return_value(timeout=0.2)
    run.cancel()


@workflow
async def waits_for_word(token: str) -> str:
    from workflowkit import create_hook

    return str(await create_hook(token=token))


def test_sync_resume_hook(cached_runtime: Runtime) -> None:
    import time
    import uuid

    token = uuid.uuid4().hex
    run = sync.start(waits_for_word, token)
    deadline = time.monotonic() + 10
    while True:
        try:
            info = sync.get_hook_by_token(token)
            break
        except HookNotFoundError:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    assert info.run_id == run.run_id
    sync.resume_hook(token, "hi")
    assert run.return_value(timeout=10) == "hi"


def _parameters(fn: Callable[..., Any]) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def test_sync_takes_the_same_parameters_as_the_async_api() -> None:
    """``workflowkit.sync`` mirrors ``workflowkit.api``: a keyword one side takes and the
    other refuses is a TypeError waiting for whoever switches."""
    from workflowkit import api

    functions = [n for n in api.__all__ if callable(getattr(sync, n, None)) and n != "Run"]
    assert "resume_webhook" in functions and "create_schedule" in functions
    for name in functions:
        assert _parameters(getattr(sync, name)) == _parameters(getattr(api, name)), name
    methods = [m for m in vars(sync.Run) if not m.startswith("_") and hasattr(api.Run, m)]
    assert isinstance(vars(sync.Run)["readable"], property)
    assert isinstance(vars(api.Run)["readable"], property)
    methods = [m for m in methods if callable(getattr(sync.Run, m))]
    assert "return_value" in methods and "get_readable" in methods
    for name in methods:
        assert _parameters(getattr(sync.Run, name)) == _parameters(getattr(api.Run, name)), name
