"""Start options: user run ids (idempotent starts), delayed starts, deadlines, queue fields,
and the typed errors for bad values and for client calls made in workflow code."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from workflowkit import (
    ClientCallInWorkflowError,
    StartOptionsError,
    WorkflowRunAlreadyExistsError,
    WorkflowRunFailedError,
    WorkflowTimeoutError,
    create_hook,
    sleep,
    step,
    sync,
    workflow,
)
from workflowkit.api import Run, get_hook_by_token, get_run, list_runs, resume_hook, start
from workflowkit.runtime.runtime import Runtime
from workflowkit.worlds.records import EventType, RunOptions, RunStatus


@step
def add(a: int, b: int) -> int:
    return a + b


@workflow
async def adds(a: int, b: int) -> int:
    return await add(a, b)


@workflow
async def other(a: int, b: int) -> int:
    return a - b


@workflow
async def naps(seconds: float) -> str:
    await sleep(seconds)
    return "rested"


@workflow
async def waits_for_hook() -> None:
    await create_hook()


@workflow
async def times_out_with_a_child() -> None:
    await start(waits_for_hook)
    await sleep("1 hour")


async def wait_status(runtime: Runtime, run_id: str, status: RunStatus) -> None:
    for _ in range(1000):
        record = await runtime.world.get_run(run_id)
        if record is not None and record.status is status:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{run_id} never became {status}")


# -- idempotent run ids -------------------------------------------------------------------------


async def test_starting_an_id_again_returns_the_same_run(runtime: Runtime) -> None:
    first = await start(adds.options(run_id="order-17"), 1, 2)
    assert first.run_id == "order-17"
    assert await first.return_value(timeout=20) == 3
    again = await start(adds.options(run_id="order-17"), 1, 2)
    assert again.run_id == "order-17"
    assert await again.return_value(timeout=5) == 3
    events = await runtime.world.get_events("order-17")
    assert [e.type for e in events].count(EventType.RUN_CREATED) == 1
    assert [e.type for e in events].count(EventType.RUN_STARTED) == 1


async def test_on_conflict_error_raises(runtime: Runtime) -> None:
    await start(adds.options(run_id="order-18"), 1, 2)
    with pytest.raises(WorkflowRunAlreadyExistsError) as caught:
        await start(adds.options(run_id="order-18", on_conflict="error"), 1, 2)
    assert caught.value.run_id == "order-18"


async def test_an_id_held_by_another_workflow_is_an_error(runtime: Runtime) -> None:
    await start(adds.options(run_id="order-19"), 1, 2)
    with pytest.raises(WorkflowRunAlreadyExistsError, match="adds"):
        await start(other.options(run_id="order-19"), 1, 2)


@pytest.mark.parametrize(
    "options",
    [
        {"run_id": ""},
        {"run_id": "has space"},
        {"run_id": "x" * 201},
        {"run_id": 17},
        {"on_conflict": "replace"},
        {"delay": "soon"},
        {"delay": "1m", "start_at": datetime.now(UTC)},
        {"start_at": datetime(2030, 1, 1)},
        {"timeout": 0},
        {"priority": "high"},
        {"queue": ""},
    ],
)
def test_bad_options_are_refused_when_made(options: dict[str, object]) -> None:
    with pytest.raises(StartOptionsError):
        adds.options(**options)  # type: ignore[arg-type]


async def test_queue_key_and_priority_are_stored(runtime: Runtime) -> None:
    run = await start(adds.options(queue="billing", key="cust-1", priority=7), 1, 1)
    record = await runtime.world.get_run(run.run_id)
    assert record is not None
    assert (record.options.queue, record.options.key, record.options.priority) == (
        "billing",
        "cust-1",
        7,
    )


# -- delayed starts ------------------------------------------------------------------------------


async def test_a_delayed_run_stays_pending_until_woken(runtime: Runtime) -> None:
    run = await start(adds.options(delay="1 hour"), 2, 3)
    await asyncio.sleep(0.5)
    assert await run.status() == "pending"
    assert await run.wake_up() == []
    assert await run.return_value(timeout=20) == 5


async def test_a_short_delay_starts_the_run_by_itself(runtime: Runtime) -> None:
    started = datetime.now(UTC)
    run = await start(adds.options(delay=timedelta(seconds=0.3)), 1, 1)
    assert await run.return_value(timeout=20) == 2
    began = await run.started_at()
    assert began is not None and began >= started + timedelta(seconds=0.29)


async def test_start_at_in_the_past_starts_at_once(runtime: Runtime) -> None:
    run = await start(adds.options(start_at=datetime.now(UTC) - timedelta(days=1)), 4, 4)
    assert await run.return_value(timeout=20) == 8


# -- deadlines ---------------------------------------------------------------------------------


async def test_a_run_past_its_deadline_fails(runtime: Runtime) -> None:
    run = await start(naps.options(timeout=0.5), 3600)
    with pytest.raises(WorkflowRunFailedError) as caught:
        await run.return_value(timeout=20)
    assert isinstance(caught.value.__cause__, WorkflowTimeoutError)
    assert caught.value.__cause__.run_id == run.run_id


async def test_a_deadline_cancels_the_runs_children(runtime: Runtime) -> None:
    # Long enough for the first turn (which starts the child) to come before the deadline
    # on a loaded machine: at 1 s a full suite once saw the run fail before it had a child.
    run = await start(times_out_with_a_child.options(timeout=3))
    with pytest.raises(WorkflowRunFailedError):
        await run.return_value(timeout=20)
    await wait_status(runtime, f"{run.run_id}.1", RunStatus.CANCELLED)


@pytest.mark.workflowkit(virtual_clock=True)
async def test_a_deadline_on_the_virtual_clock(workflow_runtime: Runtime) -> None:
    run = await start(naps.options(timeout="10 minutes"), 3600)
    with pytest.raises(WorkflowRunFailedError) as caught:
        await run.return_value(timeout=20)
    assert isinstance(caught.value.__cause__, WorkflowTimeoutError)
    ended = await run.completed_at()
    created = await run.created_at()
    assert ended is not None and ended - created >= timedelta(minutes=10) - timedelta(seconds=1)


@pytest.mark.workflowkit(virtual_clock=True)
async def test_a_sleep_before_the_deadline_completes(workflow_runtime: Runtime) -> None:
    run = await start(naps.options(timeout="2 hours"), 3600)
    assert await run.return_value(timeout=20) == "rested"


async def test_a_run_no_worker_can_execute_fails_at_its_deadline(runtime: Runtime) -> None:
    """Failing it needs no code: any worker does it, once the deadline has passed."""
    world = runtime.world
    deadline = datetime.fromtimestamp(world.now() + 0.3, UTC)
    await world.create_run("orphan-1", "nowhere:flow", b"", {}, RunOptions(deadline=deadline))
    await wait_status(runtime, "orphan-1", RunStatus.FAILED)
    with pytest.raises(WorkflowRunFailedError) as caught:
        await Run("orphan-1").return_value(timeout=5)
    assert isinstance(caught.value.__cause__, WorkflowTimeoutError)


# -- client calls in workflow code ---------------------------------------------------------------

CALLS: dict[str, str] = {}


@workflow
async def makes_client_call(call: str) -> str:
    try:
        if call == "get_run":
            get_run("x")
        elif call == "status":
            await Run("x").status()
        elif call == "cancel":
            await Run("x").cancel()
        elif call == "wake_up":
            await Run("x").wake_up()
        elif call == "fail":
            await Run("x").fail("no")
        elif call == "get_readable":
            Run("x").get_readable()
        elif call == "list_runs":
            await list_runs()
        elif call == "resume_hook":
            await resume_hook("token", 1)
        elif call == "get_hook_by_token":
            await get_hook_by_token("token")
        elif call == "return_value":
            await Run("x").return_value()
        elif call == "sync.start":
            sync.start(adds, 1, 2)
    except ClientCallInWorkflowError as exc:
        return str(exc)
    return "no error"


@pytest.mark.parametrize(
    "call",
    [
        "get_run",
        "status",
        "cancel",
        "wake_up",
        "fail",
        "get_readable",
        "list_runs",
        "resume_hook",
        "get_hook_by_token",
        "sync.start",
    ],
)
async def test_client_calls_in_workflow_code_raise(cached_runtime: Runtime, call: str) -> None:
    run = await start(makes_client_call, call)
    message = await run.return_value(timeout=20)
    assert "cannot be called in workflow code" in message and "@step" in message


async def test_awaiting_a_run_that_is_not_a_child_raises(cached_runtime: Runtime) -> None:
    run = await start(makes_client_call, "return_value")
    assert "did not start" in await run.return_value(timeout=20)


async def test_a_delayed_start_survives_a_restart(tmp_path: object) -> None:
    """The start time is stored with the run: a process that comes later starts it."""
    import workflowkit

    url = f"sqlite:///{tmp_path}/wk.db"
    workflowkit.configure(url, embedded_worker=False)
    run = await start(adds.options(delay=0.5), 20, 22)
    workflowkit.shutdown()
    workflowkit.configure(url, poll_interval=0.1)
    try:
        assert await run.return_value(timeout=20) == 42
        started = await run.started_at()
        created = await run.created_at()
        assert started is not None and (started - created).total_seconds() >= 0.49
    finally:
        workflowkit.shutdown()
