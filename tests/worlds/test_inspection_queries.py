"""``World.open_work``: what a page of runs waits on, on every World."""

from __future__ import annotations

import asyncio
import time

import pytest
from test_conformance import new_run

from workflowkit.ids import new_id
from workflowkit.worlds import _listing_sql
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


@pytest.mark.parametrize("few_prefixed", [1000, 2])
async def test_runs_by_id_prefix_and_pages_deep_down(
    world: World, monkeypatch: pytest.MonkeyPatch, few_prefixed: int
) -> None:
    # Many ids with a prefix are checked on runs read in time order, few are read by id
    # range and sorted: either way the same runs, newest first.
    monkeypatch.setattr(_listing_sql, "FEW_PREFIXED", few_prefixed)
    ids = [f"job-{i % 2}-{i:02d}" for i in range(8)]
    for run_id in ids:
        await world.create_run(run_id, "wf.a" if run_id.startswith("job-0") else "wf.b", b"", {})
        await asyncio.sleep(0.002)  # distinct creation times: a known order
    newest_first = list(reversed(ids))
    found = await world.list_runs(id_prefix="job-1")
    assert [r.run_id for r in found] == [i for i in newest_first if i.startswith("job-1")]
    assert await world.list_runs(id_prefix="job-1-99") == []
    assert [r.run_id for r in await world.list_runs(id_prefix="job-0-06")] == ["job-0-06"]

    page = await world.list_runs(limit=3, before=newest_first[2])
    assert [r.run_id for r in page] == newest_first[3:6]
    page = await world.list_runs(workflow_name="wf.a", limit=2, before="job-0-04")
    assert [r.run_id for r in page] == ["job-0-02", "job-0-00"]
    assert await world.list_runs(before="no-such-run") == []
    assert await world.recent_workflows(100) == ["wf.a", "wf.b"]
    assert await world.recent_workflows(1) == ["wf.b"]  # the newest run's
