"""``World.open_work``: what a page of runs waits on, on every World."""

from __future__ import annotations

import time

import pytest
from test_conformance import new_run

from workflowkit.ids import new_id
from workflowkit.worlds.base import World
from workflowkit.worlds.records import EventType, NewEvent, StepStatus


async def test_open_work_lists_pending_sleeps_active_hooks_and_unended_steps(
    world: World,
) -> None:
    sleeping, hooked, retrying, done = [await new_run(world) for _ in range(4)]
    wait_id, hook_id, step_id, done_step = (new_id(p) for p in ("wait", "hook", "step", "step"))
    woken = new_id("wait")
    resume_at = time.time() + 3600
    retry_at = time.time() + 40
    await world.append(
        sleeping,
        [
            NewEvent(EventType.RUN_STARTED),
            NewEvent(EventType.WAIT_CREATED, woken, None, {"resume_at": time.time()}),
            NewEvent(EventType.WAIT_COMPLETED, woken),
            NewEvent(EventType.WAIT_CREATED, wait_id, None, {"resume_at": resume_at}),
        ],
    )
    await world.append(
        hooked,
        [
            NewEvent(EventType.RUN_STARTED),
            NewEvent(EventType.HOOK_CREATED, hook_id, None, {"token": f"approve:{hooked}"}),
        ],
    )
    await world.append(
        retrying,
        [
            NewEvent(EventType.RUN_STARTED),
            NewEvent(EventType.STEP_CREATED, step_id, b"args", {"name": "orders.charge"}),
            NewEvent(EventType.STEP_STARTED, step_id, None, {"attempt": 1}),
            NewEvent(EventType.STEP_RETRYING, step_id, b"err", {"retry_at": retry_at}),
        ],
    )
    await world.append(
        done,
        [
            NewEvent(EventType.RUN_STARTED),
            NewEvent(EventType.STEP_CREATED, done_step, b"args", {"name": "s"}),
            NewEvent(EventType.STEP_STARTED, done_step, None, {"attempt": 1}),
            NewEvent(EventType.STEP_COMPLETED, done_step, b"out"),
        ],
    )

    work = await world.open_work([sleeping, hooked, retrying, done, "wrun_unknown"])
    [wait] = work.waits
    assert (wait.run_id, wait.wait_id) == (sleeping, wait_id)
    assert wait.resume_at.timestamp() == pytest.approx(resume_at)
    [hook] = work.hooks
    assert (hook.run_id, hook.token, hook.is_webhook) == (hooked, f"approve:{hooked}", False)
    [step] = work.steps
    assert (step.run_id, step.step_id, step.step_name) == (retrying, step_id, "orders.charge")
    assert step.status is StepStatus.PENDING and step.attempt == 1
    assert step.retry_at is not None and abs(step.retry_at.timestamp() - retry_at) < 0.01
    assert work.of(done).waits == work.of(done).hooks == work.of(done).steps == ()
    assert work.of(hooked).hooks == (hook,)

    assert await world.open_work([]) == await world.open_work(["wrun_unknown"])
