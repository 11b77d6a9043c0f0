"""Failing runs from outside (``Run.fail()``, ``workflowkit fail``) while a worker holds them."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import blocked_step
import pytest

import workflowkit
from workflowkit import (
    ClientCallInWorkflowError,
    RunFailedByOperatorError,
    WorkflowRunFailedError,
    create_hook,
    serde,
    sleep,
    step,
    workflow,
)
from workflowkit.api import Run, start
from workflowkit.cli.main import main
from workflowkit.runtime.executor import encode_error
from workflowkit.runtime.runtime import Runtime, get_runtime
from workflowkit.worlds.records import EventType, StepStatus

AFTER_SLEEP: list[str] = []


@step
def record(tag: str) -> str:
    AFTER_SLEEP.append(tag)
    return tag


@workflow
async def naps(tag: str) -> str:
    await sleep("1 hour")
    return await record(tag)


@step
def echo(text: str) -> str:
    return text


@workflow
async def quick(text: str) -> str:
    return await echo(text)


async def wait_for_event(runtime: Runtime, run_id: str, kind: EventType) -> None:
    for _ in range(1000):
        if any(e.type is kind for e in await runtime.world.get_events(run_id)):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {kind} in {run_id}")


def operator_failure(exc: WorkflowRunFailedError) -> RunFailedByOperatorError:
    cause = exc.__cause__
    assert isinstance(cause, RunFailedByOperatorError), repr(cause)
    return cause


def worker_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("workflowkit") and r.levelno >= logging.ERROR
    ]


def test_the_error_round_trips_through_a_payload() -> None:
    stored = encode_error(RunFailedByOperatorError("wrun_X", "no longer needed"))
    error = serde.decode(stored)
    assert type(error) is RunFailedByOperatorError
    assert (error.run_id, error.reason) == ("wrun_X", "no longer needed")
    assert str(error) == "run wrun_X was failed by an operator: no longer needed"
    assert error.docs_url.endswith("#run-failed-by-operator")
    bare = serde.decode(encode_error(RunFailedByOperatorError("wrun_Y")))
    assert isinstance(bare, RunFailedByOperatorError) and bare.reason is None
    assert str(bare) == "run wrun_Y was failed by an operator"


# -- Run.fail() --------------------------------------------------------------------------------


async def test_fail_while_sleeping(runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    tag = f"fail-sleep-{uuid.uuid4().hex}"
    run = await start(naps, tag)
    await wait_for_event(runtime, run.run_id, EventType.WAIT_CREATED)
    await run.fail("stuck behind a bad deploy")
    with pytest.raises(WorkflowRunFailedError) as caught:
        await run.return_value(timeout=10)
    cause = operator_failure(caught.value)
    assert (cause.run_id, cause.reason) == (run.run_id, "stuck behind a bad deploy")
    assert caught.value.error_type == "workflowkit.errors.RunFailedByOperatorError"
    assert await run.status() == "failed"
    await run.fail("again")  # a run that ended is left as it is
    with pytest.raises(WorkflowRunFailedError) as again:
        await run.return_value(timeout=10)
    assert operator_failure(again.value).reason == "stuck behind a bad deploy"
    assert await run.wake_up() == []
    events = await runtime.world.get_events(run.run_id)
    assert [e.type for e in events].count(EventType.RUN_FAILED) == 1
    # The worker dropped the run and carries on with others.
    assert await (await start(quick, "still here")).return_value(timeout=10) == "still here"
    assert tag not in AFTER_SLEEP
    assert worker_errors(caplog) == []


async def test_fail_while_a_step_runs(runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    blocked_step.reset()
    run = await start(blocked_step.held_in_a_step)
    assert await asyncio.to_thread(blocked_step.STEP_STARTED.wait, 10)
    await run.fail()
    blocked_step.STEP_RELEASE.set()
    with pytest.raises(WorkflowRunFailedError) as caught:
        await run.return_value(timeout=10)
    assert operator_failure(caught.value).reason is None
    await asyncio.sleep(0.3)  # the step's late result arrives, and is refused
    kinds = [e.type for e in await runtime.world.get_events(run.run_id)]
    assert EventType.STEP_COMPLETED not in kinds  # the in-flight result was discarded
    assert kinds[-1] is EventType.RUN_FAILED
    assert blocked_step.FOLLOW_UPS == []
    steps = await runtime.world.list_steps(run.run_id)
    assert [s.status for s in steps] == [StepStatus.ABANDONED]
    assert await (await start(quick, "next")).return_value(timeout=10) == "next"
    assert worker_errors(caplog) == []


@workflow
async def awaits_its_child(child_id: str) -> str:
    child = await start(naps.options(run_id=child_id), "child")
    try:
        await child.return_value()
    except WorkflowRunFailedError as exc:
        cause = exc.__cause__
        return f"{type(cause).__name__}:{getattr(cause, 'reason', None)}"
    return "no error"


async def test_a_parent_awaiting_a_failed_child_gets_the_error(runtime: Runtime) -> None:
    child_id = f"child-{uuid.uuid4().hex}"
    parent = await start(awaits_its_child, child_id)
    await wait_for_event(runtime, child_id, EventType.WAIT_CREATED)
    await Run(child_id).fail("not needed")
    assert await parent.return_value(timeout=10) == "RunFailedByOperatorError:not needed"


@workflow
async def parent_on_hook(child_id: str) -> None:
    await start(naps.options(run_id=child_id), "orphan")
    await create_hook()


async def test_failing_a_parent_cancels_its_children(runtime: Runtime) -> None:
    child_id = f"child-{uuid.uuid4().hex}"
    parent = await start(parent_on_hook, child_id)
    await wait_for_event(runtime, child_id, EventType.WAIT_CREATED)
    await parent.fail("whole order dropped")
    with pytest.raises(WorkflowRunFailedError):
        await parent.return_value(timeout=10)
    with pytest.raises(workflowkit.WorkflowRunCancelledError):
        await Run(child_id).return_value(timeout=10)


@workflow
async def fails_another(run_id: str) -> str:
    try:
        await Run(run_id).fail("from workflow code")
    except ClientCallInWorkflowError as exc:
        return str(exc)
    return "no error"


async def test_fail_is_refused_in_workflow_code(cached_runtime: Runtime) -> None:
    target = await start(naps, "target")
    run = await start(fails_another, target.run_id)
    message = await run.return_value(timeout=20)
    assert message.startswith("fail() cannot be called in workflow code") and "@step" in message
    assert await target.status() in ("pending", "running")


async def test_a_run_failed_by_an_operator_is_logged(
    cached_runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="workflowkit")
    run = await start(naps, "logged")
    await run.fail("why not")
    ours = [r for r in caplog.records if getattr(r, "run_id", None) == run.run_id]
    [entry] = [r for r in ours if r.name == "workflowkit.runs" and r.levelno == logging.INFO]
    error = f"RunFailedByOperatorError: run {run.run_id} was failed by an operator: why not"
    assert entry.getMessage() == f"run {run.run_id} ({naps.name}) failed: {error}"
    assert entry.workflow == naps.name and entry.error == error  # type: ignore[attr-defined]
    assert entry.step_id is None  # type: ignore[attr-defined]


# -- workflowkit fail, while this process's worker holds the run ---------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def world_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'wk.db'}"
    else:
        url = f"{request.getfixturevalue('pg_url')}?schema={request.getfixturevalue('pg_schema')}"
    workflowkit.configure(url, poll_interval=0.05, lease_seconds=5)
    yield url
    workflowkit.shutdown()


async def test_the_cli_fails_a_run_a_worker_holds(
    world_url: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    tag = f"cli-fail-{uuid.uuid4().hex}"
    run = await start(naps, tag)
    done = await start(quick, "done")
    assert await done.return_value(timeout=10) == "done"
    runtime = get_runtime()
    await wait_for_event(runtime, run.run_id, EventType.WAIT_CREATED)
    argv = ["--world", world_url, "fail", run.run_id, done.run_id, "--reason", "ops", "--json"]
    code = await asyncio.to_thread(main, argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out) == {
        "failed": [run.run_id],
        "skipped": [{"run_id": done.run_id, "status": "completed"}],
    }
    with pytest.raises(WorkflowRunFailedError) as caught:
        await run.return_value(timeout=10)
    assert operator_failure(caught.value).reason == "ops"
    assert await (await start(quick, "after")).return_value(timeout=10) == "after"
    assert tag not in AFTER_SLEEP
    assert worker_errors(caplog) == []
