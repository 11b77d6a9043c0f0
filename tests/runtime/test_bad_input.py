"""Bad input gets a typed error that says what to fix, and nothing half-written."""

from __future__ import annotations

import asyncio
import threading

import pytest

from workflowkit import SerializationError, Workflow, WorkflowRunFailedError, step, workflow
from workflowkit.api import start
from workflowkit.registry import REGISTRY
from workflowkit.runtime.runtime import Runtime


@workflow
async def takes_anything(value: object) -> object:
    return value


async def test_unserializable_argument_is_refused_before_anything_is_written(
    runtime: Runtime,
) -> None:
    before = await runtime.world.list_runs()
    with pytest.raises(SerializationError) as info:
        await start(takes_anything, {"user": {"callback": threading.Lock()}})
    assert "args[0]['user']['callback']" in str(info.value)
    assert await runtime.world.list_runs() == before


@step
def consume(value: object) -> None:
    pass


@workflow
async def passes_a_lock() -> str:
    try:
        await consume(threading.Lock())
    except SerializationError as exc:
        return f"caught: {exc}"
    return "no error"


async def test_unserializable_step_argument_raises_in_workflow_code(runtime: Runtime) -> None:
    run = await start(passes_a_lock)
    result = await run.return_value(timeout=10)
    assert result.startswith("caught:") and "args[0]" in result


@step
def returns_a_lock() -> object:
    return threading.Lock()


@workflow
async def bad_step_result() -> object:
    return await returns_a_lock()


async def test_unserializable_step_result_fails_without_retrying(runtime: Runtime) -> None:
    run = await start(bad_step_result)
    with pytest.raises(WorkflowRunFailedError) as info:
        await run.return_value(timeout=10)
    assert "SerializationError" in info.value.error_type
    steps = await runtime.world.list_steps(run.run_id)
    assert [s.attempt for s in steps] == [1]


@workflow
async def bad_return_value() -> object:
    return threading.Lock()


async def test_unserializable_return_value_fails_the_run(runtime: Runtime) -> None:
    run = await start(bad_return_value)
    with pytest.raises(WorkflowRunFailedError, match="return value"):
        await run.return_value(timeout=10)


async def _unregistered_body() -> str:
    return "never"


async def test_a_run_no_worker_can_execute_waits_for_one(runtime: Runtime) -> None:
    """Routing: a worker claims only runs of workflows it has registered. A run nobody here
    can execute stays pending, unowned, never failed; it runs once a worker has it."""
    ghost: Workflow[[], str] = Workflow(_unregistered_body, "ghosts:not_imported")
    run = await start(ghost)
    await asyncio.sleep(1.0)  # several of the worker's polls (0.2 s)
    record = await runtime.world.get_run(run.run_id)
    assert record is not None and record.status == "pending" and record.owner is None
    assert len(await runtime.world.get_events(run.run_id)) == 1  # run_created only
    REGISTRY.add_workflow(ghost)
    try:
        assert await run.return_value(timeout=10) == "never"
    finally:
        del REGISTRY.workflows[ghost.name]
