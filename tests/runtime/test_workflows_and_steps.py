"""The examples of foundations/workflows-and-steps and starting-workflows, in Python."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from workflowkit import (
    InvalidWorkflowFunctionError,
    NotInWorkflowError,
    WorkflowRunNotFoundError,
    get_step_metadata,
    get_workflow_metadata,
    sleep,
    step,
    workflow,
)
from workflowkit.api import get_run, start
from workflowkit.runtime.runtime import Runtime

CALLS: list[str] = []


@step
async def fetch_order(order_id: str) -> dict[str, object]:
    CALLS.append(f"fetch {order_id}")
    return {"id": order_id, "total": 42}


@step
def charge_payment(order: dict[str, object]) -> dict[str, str]:
    CALLS.append(f"charge {order['id']}")
    return {"charge_id": f"ch_{order['id']}"}


@workflow
async def process_order(order_id: str) -> dict[str, object]:
    order = await fetch_order(order_id)
    payment = await charge_payment(order)
    return {"order_id": order_id, "status": "completed", "payment": payment}


@step
async def greet(name: str) -> str:
    return f"Hello {name}"


@workflow
async def greeting(name: str) -> dict[str, str]:
    message = await greet(name)
    return {"message": message}


async def test_process_order_runs_each_step_once(runtime: Runtime) -> None:
    CALLS.clear()
    run = await start(process_order, "o-1")
    result = await run.return_value(timeout=10)
    assert result == {"order_id": "o-1", "status": "completed", "payment": {"charge_id": "ch_o-1"}}
    assert CALLS == ["fetch o-1", "charge o-1"]
    assert await run.status() == "completed"


async def test_greeting_and_get_run(runtime: Runtime) -> None:
    run = await start(greeting, "Ada")
    again = get_run(run.run_id)
    assert await again.return_value(timeout=10) == {"message": "Hello Ada"}
    info = await again.info()
    assert info.workflow_name.endswith(":greeting")
    assert info.created_at <= info.started_at <= info.completed_at  # type: ignore[operator]
    assert info.waiting_for is None


@workflow
async def naps() -> None:
    await sleep("3 days")


async def test_info_says_what_a_run_waits_for(runtime: Runtime) -> None:
    """DESIGN §8: runs not yet allowed to start are pending and say why; so do runs that
    wait in their code, as the CLI and the dashboard say it."""
    later = await start(greeting.options(delay="1h"), "Later")
    assert (await later.info()).waiting_for in ("its start, in 1h", "its start, in 59m")
    asleep = await start(naps)
    for _ in range(500):
        waiting = (await asleep.info()).waiting_for
        if waiting is not None:
            break
        await asyncio.sleep(0.01)
    assert waiting is not None and waiting.startswith("sleep until") and "(in 2d)" in waiting


def test_info_says_when_no_worker_has_the_workflow(tmp_path: object) -> None:
    import workflowkit
    from workflowkit import sync

    workflowkit.configure(f"sqlite:///{tmp_path}/wk.db", embedded_worker=False)
    try:
        run = sync.start(greeting, "nobody")
        assert run.info().waiting_for == (f"a worker: no worker has workflow `{greeting.name}`")
    finally:
        workflowkit.shutdown()


async def test_step_outside_a_workflow_is_a_plain_call() -> None:
    assert await greet("Bob") == "Hello Bob"
    assert charge_payment({"id": "x"}) == {"charge_id": "ch_x"}
    with pytest.raises(NotInWorkflowError):
        get_step_metadata()


async def test_unknown_run_id_raises(runtime: Runtime) -> None:
    run = get_run("wrun_doesnotexist")
    with pytest.raises(WorkflowRunNotFoundError):
        await run.status()
    with pytest.raises(WorkflowRunNotFoundError):
        await run.return_value(timeout=1)


async def test_start_rejects_a_plain_function(runtime: Runtime) -> None:
    async def not_a_workflow() -> None:
        pass

    with pytest.raises(InvalidWorkflowFunctionError, match="@workflow"):
        await start(not_a_workflow)  # type: ignore[arg-type]


def test_workflow_must_be_async() -> None:
    with pytest.raises(InvalidWorkflowFunctionError, match="async def"):

        @workflow
        def sync_workflow() -> None:  # type: ignore[type-var]
            pass


@step
async def metadata_step() -> dict[str, object]:
    meta = get_step_metadata()
    wf = get_workflow_metadata()
    return {
        "step_id": meta.step_id,
        "name": meta.step_name,
        "attempt": meta.attempt,
        "run_id": wf.workflow_run_id,
    }


@workflow
async def metadata_workflow() -> dict[str, object]:
    wf = get_workflow_metadata()
    inner = await metadata_step()
    return {"outer_run": wf.workflow_run_id, "name": wf.workflow_name, **inner}


async def test_metadata(runtime: Runtime) -> None:
    run = await start(metadata_workflow)
    result = await run.return_value(timeout=10)
    assert result["outer_run"] == run.run_id == result["run_id"]
    assert str(result["step_id"]).startswith("step_")
    assert result["attempt"] == 1
    assert str(result["name"]).endswith(":metadata_step")


@workflow
async def kwargs_workflow(a: int, *, b: int = 2, c: tuple[int, int] = (0, 0)) -> object:
    return [a, b, c]


async def test_positional_and_keyword_arguments(runtime: Runtime) -> None:
    run = await start(kwargs_workflow, 1, b=5, c=(3, 4))
    assert await run.return_value(timeout=10) == [1, 5, (3, 4)]


@workflow
async def sleepy(until: datetime | None) -> str:
    await sleep("50ms")
    await sleep(timedelta(milliseconds=20))
    await sleep(0.01)
    if until is not None:
        await sleep(until)
    await asyncio.sleep(0.01)
    return "rested"


async def test_sleep_forms(runtime: Runtime) -> None:
    until = datetime.now(UTC) + timedelta(milliseconds=100)
    run = await start(sleepy, until)
    assert await run.return_value(timeout=10) == "rested"
    assert datetime.now(UTC) >= until


async def test_sleep_outside_workflow_raises() -> None:
    with pytest.raises(NotInWorkflowError):
        await sleep(1)


@workflow
async def inner_workflow(x: int) -> int:
    return await greet_number(x)


@step
async def greet_number(x: int) -> int:
    return x * 10


@workflow
async def outer_workflow(x: int) -> int:
    return await inner_workflow(x) + 1


async def test_awaiting_a_workflow_runs_it_inline(runtime: Runtime) -> None:
    run = await start(outer_workflow, 4)
    assert await run.return_value(timeout=10) == 41


async def test_a_worker_with_retention_deletes_ended_runs(tmp_path: object) -> None:
    import asyncio as _asyncio

    import workflowkit
    from workflowkit.api import start as _start

    runtime = workflowkit.configure(
        f"sqlite:///{tmp_path}/wk.db", retention=0.2, collect_every=0.1, poll_interval=0.1
    )
    try:
        run = await _start(retention_flow, 2)
        assert await run.return_value(timeout=20) == 4
        for _ in range(200):
            if await runtime.world.get_run(run.run_id) is None:
                break
            await _asyncio.sleep(0.05)
        assert await runtime.world.get_run(run.run_id) is None
    finally:
        workflowkit.shutdown()


@workflow
async def retention_flow(n: int) -> int:
    return n * 2
