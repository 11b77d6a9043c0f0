"""A run started in a process whose embedded worker can execute it is created held by that
worker and handed over at once: no claim, no wake-up, no read of its log. Anything a claim
would treat differently (a delay, a queue, a workflow the worker lacks) goes the usual way."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

import workflowkit
from workflowkit import Queue, create_hook, step, workflow
from workflowkit.api import resume_hook, start
from workflowkit.registry import Registry
from workflowkit.runtime.runtime import Runtime
from workflowkit.worlds.records import RunOptions


@step(name="direct.double")
async def double(x: int) -> int:
    return 2 * x


@workflow(name="direct.once")
async def once(x: int) -> int:
    return await double(x)


@workflow(name="direct.waits")
async def waits(token: str) -> str:
    got: str = await create_hook(token=token)
    return got


def world_url(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'wk.db'}"
    return f"{request.getfixturevalue('pg_url')}?schema={request.getfixturevalue('pg_schema')}"


LIMITED = Queue("direct-limited", concurrency=5)


async def listening(runtime: Runtime) -> None:
    """Until the embedded worker takes runs directly (it does once it listens for changes)."""
    assert runtime.worker is not None
    for _ in range(500):
        if runtime.worker.lease_for("direct.once", RunOptions(), None) is not None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the embedded worker never started listening")


async def test_a_run_started_here_is_created_held_by_this_worker(cached_runtime: Runtime) -> None:
    await listening(cached_runtime)
    run = await start(once, 21)
    record = await cached_runtime.world.get_run(run.run_id)
    assert record is not None
    assert cached_runtime.worker is not None
    # Held from its first write: no other worker could claim it in between.
    assert record.owner == cached_runtime.worker.worker_id or record.status.terminal
    assert await run.return_value(timeout=10) == 42
    events = [e.type.value for e in await cached_runtime.world.get_events(run.run_id)]
    assert events == [
        "run_created",
        "run_started",
        "step_created",
        "step_started",
        "step_completed",
        "run_completed",
    ]


async def test_a_delayed_run_waits_for_its_time_and_a_claim(cached_runtime: Runtime) -> None:
    await listening(cached_runtime)
    run = await start(once.options(delay=0.3), 1)
    record = await cached_runtime.world.get_run(run.run_id)
    assert record is not None
    assert record.owner is None
    assert await run.return_value(timeout=10) == 2


async def test_a_queued_run_is_left_to_a_claim_which_applies_the_limits(
    cached_runtime: Runtime,
) -> None:
    await listening(cached_runtime)
    worker = cached_runtime.worker
    assert worker is not None
    assert worker.lease_for("direct.once", RunOptions(queue=LIMITED.name), None) is None
    run = await start(once.options(queue=LIMITED), 1)  # a Queue, or its name
    assert await run.return_value(timeout=10) == 2
    record = await cached_runtime.world.get_run(run.run_id)
    assert record is not None and record.options.queue == "direct-limited"


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_run_of_a_workflow_the_worker_lacks_stays_pending_for_another(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    runtime = workflowkit.configure(world_url(request, kind, tmp_path), registry=Registry())
    try:
        assert runtime.worker is not None
        for _ in range(500):  # listening, with nothing it can run
            if runtime.worker._adopting:
                break
            await asyncio.sleep(0.01)
        run = await start(once, 1)
        await asyncio.sleep(0.3)
        record = await runtime.world.get_run(run.run_id)
        assert record is not None
        assert (record.status.value, record.owner) == ("pending", None)
    finally:
        workflowkit.shutdown()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_run_started_as_the_runtime_starts_hears_its_hook_payload(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    """A run handed over before the worker listened for changes missed the payload's
    notification and sat until it left memory (5 s)."""
    workflowkit.configure(world_url(request, kind, tmp_path), poll_interval=30)
    try:
        token = uuid.uuid4().hex
        run = await start(waits, token)  # at once: the worker may still be starting
        for _ in range(500):
            try:
                await resume_hook(token, "payload")
                break
            except workflowkit.HookNotFoundError:
                await asyncio.sleep(0.01)
        assert await run.return_value(timeout=3) == "payload"
    finally:
        workflowkit.shutdown()
