"""Child runs: ``start()`` in workflow code, a durable wait on their outcome, and
cancellation down the tree."""

from __future__ import annotations

import asyncio

import pytest

from workflowkit import (
    WorkflowRunAlreadyExistsError,
    WorkflowRunCancelledError,
    WorkflowRunFailedError,
    create_hook,
    step,
    workflow,
)
from workflowkit.api import Run, start
from workflowkit.runtime.runtime import Runtime
from workflowkit.worlds.records import EventType, RunStatus


@step
def double(n: int) -> int:
    return n * 2


@workflow
async def child(n: int) -> int:
    return await double(n)


@workflow
async def failing_child(message: str) -> None:
    raise ValueError(message)


@workflow
async def parent(count: int) -> list[int]:
    runs = [await start(child, n) for n in range(count)]
    return [await run.return_value() for run in runs]


@workflow
async def parent_of_failing() -> str:
    run = await start(failing_child, "boom")
    try:
        await run.return_value()
    except WorkflowRunFailedError as exc:
        return f"{exc.run_id == run.run_id}:{exc.error_type}:{exc.error_message}"
    return "no error"


@workflow
async def waits_forever() -> None:
    hook = create_hook()
    await hook


@workflow
async def tree(depth: int) -> None:
    if depth > 0:
        run = await start(tree, depth - 1)
        await run.return_value()
    else:
        await waits_forever()


@workflow
async def starts_detached() -> str:
    attached = await start(waits_forever)
    detached = await start(waits_forever.options(detached=True))
    hook = create_hook(token=f"release-{attached.run_id}")
    await hook
    return f"{attached.run_id} {detached.run_id}"


@workflow
async def named_child(run_id: str) -> int:
    first = await start(child.options(run_id=run_id), 1)
    again = await start(child.options(run_id=run_id), 1)
    return await first.return_value() + await again.return_value()


@workflow
async def takes_existing_id(run_id: str) -> str:
    run = await start(child.options(run_id=run_id), 5)
    try:
        await run.return_value()
    except WorkflowRunAlreadyExistsError as exc:
        return f"taken:{exc.workflow_name}"
    return "ours"


async def test_a_parent_awaits_its_children(runtime: Runtime) -> None:
    run = await start(parent, 3)
    assert await run.return_value(timeout=20) == [0, 2, 4]
    children = await runtime.world.list_runs(parent_run_id=run.run_id)
    assert sorted(c.run_id for c in children) == [f"{run.run_id}.{n}" for n in (1, 2, 3)]
    assert all(c.status is RunStatus.COMPLETED for c in children)
    events = await runtime.world.get_events(run.run_id)
    kinds = [e.type for e in events]
    assert kinds.count(EventType.CHILD_CREATED) == 3
    assert kinds.count(EventType.CHILD_COMPLETED) == 3


async def test_a_child_failure_reaches_the_parent(runtime: Runtime) -> None:
    run = await start(parent_of_failing)
    assert await run.return_value(timeout=20) == "True:ValueError:boom"


async def wait_status(runtime: Runtime, run_id: str, status: RunStatus) -> None:
    for _ in range(1000):
        record = await runtime.world.get_run(run_id)
        if record is not None and record.status is status:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{run_id} never became {status}")


async def test_cancelling_a_parent_cancels_the_tree(runtime: Runtime) -> None:
    root = await start(tree, 2)
    leaf = f"{root.run_id}.1.1"
    await wait_status(runtime, leaf, RunStatus.RUNNING)
    await root.cancel()
    for run_id in (root.run_id, f"{root.run_id}.1", leaf):
        await wait_status(runtime, run_id, RunStatus.CANCELLED)
    with pytest.raises(WorkflowRunCancelledError):
        await Run(leaf).return_value(timeout=5)


async def test_detached_children_outlive_their_parent(runtime: Runtime) -> None:
    root = await start(starts_detached)
    attached, detached = f"{root.run_id}.1", f"{root.run_id}.2"
    await wait_status(runtime, detached, RunStatus.RUNNING)
    await root.cancel()
    await wait_status(runtime, attached, RunStatus.CANCELLED)
    record = await runtime.world.get_run(detached)
    assert record is not None and record.status is RunStatus.RUNNING
    assert record.options.parent_run_id == root.run_id and record.options.detached
    await Run(detached).cancel()


async def test_a_child_id_given_twice_is_one_child(runtime: Runtime) -> None:
    run = await start(named_child, "invoice-7")
    assert await run.return_value(timeout=20) == 4
    record = await runtime.world.get_run("invoice-7")
    assert record is not None and record.options.parent_run_id == run.run_id


async def test_a_child_id_held_by_another_run_is_an_error_in_the_parent(
    runtime: Runtime,
) -> None:
    other = await start(waits_forever.options(run_id="taken-1"))
    run = await start(takes_existing_id, "taken-1")
    assert await run.return_value(timeout=20) == f"taken:{waits_forever.name}"
    await other.cancel()


@workflow
async def awaits_approval(token: str) -> str:
    return str(await create_hook(token=token))


@workflow
async def parent_of_approval(token: str) -> str:
    run = await start(awaits_approval, token)
    return "child said " + await run.return_value()


@pytest.mark.worker_options(evict_after=0)
async def test_a_parent_leaves_memory_while_its_child_runs(runtime: Runtime) -> None:
    from workflowkit.api import resume_hook

    parent_run = await start(parent_of_approval, f"approve-{id(runtime)}")
    await wait_status(runtime, f"{parent_run.run_id}.1", RunStatus.RUNNING)
    worker = runtime.worker
    assert worker is not None
    for _ in range(500):
        if parent_run.run_id not in worker.drivers:
            break
        await asyncio.sleep(0.01)
    assert parent_run.run_id not in worker.drivers, "the waiting parent stayed in memory"
    await resume_hook(f"approve-{id(runtime)}", "yes")
    assert await parent_run.return_value(timeout=20) == "child said yes"


@workflow
async def starts_and_returns() -> str:
    run = await start(waits_forever)
    return run.run_id


@workflow
async def starts_and_raises() -> None:
    await start(waits_forever)
    raise RuntimeError("parent gives up")


@workflow
async def starts_taken_id_and_returns(run_id: str) -> str:
    await start(waits_forever.options(run_id=run_id))
    return "done"


async def test_a_child_started_in_the_parent_s_last_step_exists_and_ends_with_it(
    runtime: Runtime,
) -> None:
    run = await start(starts_and_returns)
    child_id = await run.return_value(timeout=20)
    await wait_status(runtime, child_id, RunStatus.CANCELLED)
    failing = await start(starts_and_raises)
    with pytest.raises(WorkflowRunFailedError):
        await failing.return_value(timeout=20)
    await wait_status(runtime, f"{failing.run_id}.1", RunStatus.CANCELLED)


async def test_a_parent_ending_never_cancels_a_run_that_is_not_its_child(
    runtime: Runtime,
) -> None:
    other = await start(waits_forever.options(run_id="someone-else"))
    await wait_status(runtime, "someone-else", RunStatus.RUNNING)
    run = await start(starts_taken_id_and_returns, "someone-else")
    assert await run.return_value(timeout=20) == "done"
    await asyncio.sleep(0.2)
    assert await other.status() == "running"
    await other.cancel()


@workflow
async def same_child_id_twice(mode: str) -> str:
    await start(child.options(run_id=f"twice-{mode}"), 1)
    try:
        if mode == "error":
            await start(child.options(run_id="twice-error", on_conflict="error"), 1)
        else:
            await start(failing_child.options(run_id="twice-other"), "x")
    except WorkflowRunAlreadyExistsError as exc:
        return f"refused {exc.run_id}"
    return "accepted"


@pytest.mark.parametrize("mode", ["error", "other"])
async def test_starting_a_child_id_again_follows_on_conflict(
    cached_runtime: Runtime, mode: str
) -> None:
    run = await start(same_child_id_twice, mode)
    assert await run.return_value(timeout=20) == f"refused twice-{mode}"
